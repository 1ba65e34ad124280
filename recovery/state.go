package recovery

import (
	"sort"
	"strings"
)

// state is what the FSM keeps. It is plain data with no locks: the fsm
// guards it, and the transitions in fsm.go are pure functions of it and
// an event.
//
// Invariants (checked by the tests after every transition):
//   - batches are sorted by Time, all Times distinct and ≤ lastAllocated;
//   - the completed batches are a prefix of batches, lastCompleted is the
//     Time of the last of them (or of a truncated one, or 0);
//   - every block ref in unallocated or in a batch is in blocks;
//   - truncatedBefore ≤ the Time of every batch (allocation refuses a time
//     behind it).
type state struct {
	unallocated     []BlockEntry
	batches         []Batch
	lastAllocated   int64
	lastCompleted   int64
	truncatedBefore int64
	// producers: the sequences stored per producer, kept forever (dedupe
	// needs them after the batches are truncated).
	producers map[string]seqSet
	// blocks: the block sequences ever added per (stream, node), kept
	// forever, so a block is never added twice, even after truncation.
	blocks map[source]seqSet
	// checkpoints: the newest CheckpointsKept references, oldest first.
	checkpoints []CheckpointRef
	// fingerprint: the application's graph, once recorded.
	fingerprint *FingerprintSet
	// epoch and driver: the newest DriverStarted.
	epoch  uint64
	driver string
	// partitions: the newest PartitionAssigned, nil before the first.
	partitions *PartitionAssigned
	// dropped: the blocks of the batches truncations dropped since the fsm
	// last took them (for Config.OnTruncate); not part of the state.
	dropped []BlockRef
}

// source is a receiver: the blocks of one stream cut on one node.
type source struct {
	Stream string
	Node   string
}

func newState() *state {
	return &state{producers: map[string]seqSet{}, blocks: map[source]seqSet{}}
}

// batchIndex returns the index of the batch at t, or -1.
func (s *state) batchIndex(t int64) int {
	i := sort.Search(len(s.batches), func(i int) bool { return s.batches[i].Time >= t })
	if i < len(s.batches) && s.batches[i].Time == t {
		return i
	}
	return -1
}

// view returns a deep copy of s.
func (s *state) view() View {
	v := View{
		Unallocated:     cloneEntries(s.unallocated),
		LastAllocated:   s.lastAllocated,
		LastCompleted:   s.lastCompleted,
		TruncatedBefore: s.truncatedBefore,
		producers:       make(map[string]seqSet, len(s.producers)),
		Checkpoints:     append([]CheckpointRef(nil), s.checkpoints...),
		Epoch:           s.epoch,
		Driver:          s.driver,
	}
	if s.partitions != nil {
		a := clonePartitions(*s.partitions)
		v.Partitions = &a
	}
	if s.fingerprint != nil {
		fp := *s.fingerprint
		fp.Operators = append([]string(nil), fp.Operators...)
		v.Fingerprint = &fp
	}
	if len(s.batches) > 0 {
		v.Batches = make([]Batch, len(s.batches))
		for i, b := range s.batches {
			v.Batches[i] = cloneBatch(b)
		}
	}
	for p, set := range s.producers {
		v.producers[p] = set.clone()
	}
	return v
}

// stateImage is the state as it is written into a snapshot: maps become
// slices sorted by key, so the same state always encodes to the same bytes.
// Its msgpack tags are part of the snapshot format.
type stateImage struct {
	Unallocated     []BlockEntry       `msgpack:"u"`
	Batches         []Batch            `msgpack:"b"`
	LastAllocated   int64              `msgpack:"la"`
	LastCompleted   int64              `msgpack:"lc"`
	TruncatedBefore int64              `msgpack:"tb"`
	Producers       []producerImage    `msgpack:"p"`
	Blocks          []sourceImage      `msgpack:"k"`
	Checkpoints     []CheckpointRef    `msgpack:"ck,omitempty"`
	Fingerprint     *FingerprintSet    `msgpack:"fp,omitempty"`
	Epoch           uint64             `msgpack:"ep,omitempty"`
	Driver          string             `msgpack:"dr,omitempty"`
	Partitions      *PartitionAssigned `msgpack:"pa,omitempty"`
}

type producerImage struct {
	Producer string     `msgpack:"p"`
	Seqs     []seqRange `msgpack:"s"`
}

type sourceImage struct {
	Stream string     `msgpack:"s"`
	Node   string     `msgpack:"n"`
	Seqs   []seqRange `msgpack:"q"`
}

func (s *state) image() stateImage {
	img := stateImage{
		Unallocated:     s.unallocated,
		Batches:         s.batches,
		LastAllocated:   s.lastAllocated,
		LastCompleted:   s.lastCompleted,
		TruncatedBefore: s.truncatedBefore,
		Checkpoints:     s.checkpoints,
		Fingerprint:     s.fingerprint,
		Epoch:           s.epoch,
		Driver:          s.driver,
		Partitions:      s.partitions,
	}
	for p, set := range s.producers {
		img.Producers = append(img.Producers, producerImage{p, set})
	}
	sort.Slice(img.Producers, func(i, j int) bool { return img.Producers[i].Producer < img.Producers[j].Producer })
	for src, set := range s.blocks {
		img.Blocks = append(img.Blocks, sourceImage{src.Stream, src.Node, set})
	}
	sort.Slice(img.Blocks, func(i, j int) bool { return compareSource(img.Blocks[i], img.Blocks[j]) < 0 })
	return img
}

func compareSource(a, b sourceImage) int {
	if c := strings.Compare(a.Stream, b.Stream); c != 0 {
		return c
	}
	return strings.Compare(a.Node, b.Node)
}

// stateFromImage rebuilds a state, with empty slices made nil so a restored
// state is deeply equal to the one that was saved.
func stateFromImage(img stateImage) *state {
	s := newState()
	s.unallocated = canonEntries(img.Unallocated)
	for _, b := range img.Batches {
		b.Blocks = canonEntries(b.Blocks)
		s.batches = append(s.batches, b)
	}
	s.lastAllocated, s.lastCompleted, s.truncatedBefore = img.LastAllocated, img.LastCompleted, img.TruncatedBefore
	if len(img.Checkpoints) > 0 {
		s.checkpoints = img.Checkpoints
	}
	s.fingerprint = img.Fingerprint
	s.epoch, s.driver = img.Epoch, img.Driver
	if img.Partitions != nil {
		a := clonePartitions(*img.Partitions)
		s.partitions = &a
	}
	for _, p := range img.Producers {
		s.producers[p.Producer] = canonSeqs(p.Seqs)
	}
	for _, k := range img.Blocks {
		s.blocks[source{k.Stream, k.Node}] = canonSeqs(k.Seqs)
	}
	return s
}

func canonEntries(in []BlockEntry) []BlockEntry {
	if len(in) == 0 {
		return nil
	}
	for i := range in {
		if len(in[i].Skip) == 0 {
			in[i].Skip = nil
		}
		if len(in[i].Replicas) == 0 {
			in[i].Replicas = nil
		}
	}
	return in
}

func canonSeqs(in []seqRange) seqSet {
	if len(in) == 0 {
		return nil
	}
	return seqSet(in)
}

// check returns a description of the first broken invariant, or "".
// Restore refuses a snapshot whose state breaks one; the tests call it
// after every transition.
func (s *state) check() string {
	for i, b := range s.batches {
		switch {
		case b.Time > s.lastAllocated:
			return "batch after the last allocated time"
		case i > 0 && b.Time <= s.batches[i-1].Time:
			return "batches out of order"
		case b.Time < s.truncatedBefore:
			return "batch before the truncation point"
		case b.Completed && i > 0 && !s.batches[i-1].Completed:
			return "completed batch after a pending one"
		case b.Completed && b.Time > s.lastCompleted:
			return "completed batch after the last completed time"
		}
		if msg := s.checkKnown(b.Blocks); msg != "" {
			return msg
		}
	}
	if msg := s.checkKnown(s.unallocated); msg != "" {
		return msg
	}
	return checkSets(s.producers, s.blocks)
}

func (s *state) checkKnown(entries []BlockEntry) string {
	for _, e := range entries {
		if !s.blocks[source{e.Ref.Stream, e.Ref.Node}].contains(e.Ref.Seq) {
			return "block " + e.Ref.String() + " missing from the block table"
		}
	}
	return ""
}

func checkSets(producers map[string]seqSet, blocks map[source]seqSet) string {
	for p, set := range producers {
		if !set.valid() {
			return "bad sequence set of producer " + p
		}
	}
	for src, set := range blocks {
		if !set.valid() {
			return "bad block set of " + src.Stream + "/" + src.Node
		}
	}
	return ""
}
