package recovery

import "fmt"

// Status is what the FSM did with one ingest request of a BlockAdded.
type Status uint8

// The request outcomes. The zero Status is not one of them.
const (
	Stored    Status = 1 // first time seen: its records count
	Duplicate Status = 2 // (producer, seq) stored before: its records are skipped, the producer may be acknowledged
	Rejected  Status = 3 // never stored and older than the producer's last stored seq: skipped, the producer must not be acknowledged
)

func (s Status) String() string {
	switch s {
	case Stored:
		return "stored"
	case Duplicate:
		return "duplicate"
	case Rejected:
		return "rejected"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// RequestOutcome is the FSM's answer for one Request.
type RequestOutcome struct {
	Status Status
	Reason string // why, for Rejected
}

// Result is what Apply returns, per event kind.
type Result struct {
	// Requests: for BlockAdded, one outcome per Request, in order.
	Requests []RequestOutcome
	// Batch: for BatchAllocated the allocation (also when it already
	// existed); for BatchCompleted the completed batch. A copy.
	Batch *Batch
}

// Range is the records [Offset, Offset+Count) of a block.
type Range struct {
	Offset int `msgpack:"o"`
	Count  int `msgpack:"c"`
}

// BlockEntry is a block as the FSM holds it. Skip lists the record ranges
// of requests that were Duplicate or Rejected, sorted by offset and merged
// where adjacent: a reader of the block must skip them, so no record is
// counted twice. Records outside every request (producer-less sources)
// count.
type BlockEntry struct {
	Ref     BlockRef `msgpack:"r"`
	Records int      `msgpack:"n"`
	Bytes   int64    `msgpack:"b"`
	Skip    []Range  `msgpack:"s,omitempty"`
	// Replicas: the other nodes holding a copy (BlockAdded.Replicas).
	Replicas []string `msgpack:"rp,omitempty"`
}

// Counted is the number of records of the block that count: Records less
// the skipped ones.
func (e BlockEntry) Counted() int {
	n := e.Records
	for _, r := range e.Skip {
		n -= r.Count
	}
	return n
}

// Batch is an allocated batch: the blocks it reads, in the order they were
// added, and whether it completed.
type Batch struct {
	Time      int64        `msgpack:"t"`
	Blocks    []BlockEntry `msgpack:"b,omitempty"`
	Completed bool         `msgpack:"c"`
}

// View is a copy of the FSM's state at one log index. The caller owns it:
// it does not change as later events apply, and changing it changes
// nothing in the log.
type View struct {
	Unallocated     []BlockEntry // added, not yet allocated, in add order
	Batches         []Batch      // allocated and not truncated, by Time ascending
	LastAllocated   int64        // 0 if none
	LastCompleted   int64        // 0 if none
	TruncatedBefore int64        // 0 if never truncated
	// Checkpoints are the checkpoints the log references, oldest first
	// (at most CheckpointsKept).
	Checkpoints []CheckpointRef
	// Fingerprint is the application's graph as recorded, nil if never.
	Fingerprint *FingerprintSet
	// Epoch and Driver: the newest DriverStarted (0 and "" if none).
	Epoch  uint64
	Driver string
	// Partitions: the newest PartitionAssigned, nil if none.
	Partitions *PartitionAssigned

	producers map[string]seqSet
}

// Pending returns the allocated batches that are not completed, by Time
// ascending: what a new driver must (re-)run, in order.
func (v View) Pending() []Batch {
	var out []Batch
	for _, b := range v.Batches {
		if !b.Completed {
			out = append(out, b)
		}
	}
	return out
}

// ProducerSeen tells what a BlockAdded holding (producer, seq) would do as
// of this view: seen is true when it is stored (a retry is a Duplicate);
// reason is set when it would be Rejected. Neither means it would be
// Stored.
func (v View) ProducerSeen(producer string, seq uint64) (seen bool, reason string) {
	return seenIn(v.producers[producer], producer, seq)
}

func seenIn(set seqSet, producer string, seq uint64) (bool, string) {
	if set.contains(seq) {
		return true, ""
	}
	if hi, ok := set.max(); ok && seq < hi {
		return false, rejectReason(producer, seq, hi)
	}
	return false, ""
}

// Producers returns the number of producers the FSM remembers.
func (v View) Producers() int { return len(v.producers) }

func rejectReason(producer string, seq, last uint64) string {
	return fmt.Sprintf("producer %q sequence %d is older than the last acknowledged sequence %d and was never stored: sequences must increase",
		producer, seq, last)
}

func cloneEntries(in []BlockEntry) []BlockEntry {
	if len(in) == 0 {
		return nil
	}
	out := make([]BlockEntry, len(in))
	for i, e := range in {
		out[i] = e
		if e.Replicas != nil {
			out[i].Replicas = append([]string(nil), e.Replicas...)
		}
		if e.Skip != nil {
			out[i].Skip = append([]Range(nil), e.Skip...)
		}
	}
	return out
}

func cloneBatch(b Batch) Batch {
	b.Blocks = cloneEntries(b.Blocks)
	return b
}
