package recovery

// An event is one raft log entry's command. Its encoding is part of the
// on-disk format (the raft log is stored, and replayed by later releases):
//
//	 0         1         2
//	+---------+---------+--------------------------------------+
//	| version | type    | payload: msgpack of the event struct |
//	| 1 byte  | 1 byte  | (a map keyed by the msgpack tags)    |
//	+---------+---------+--------------------------------------+
//
// version is eventVersion (1). type is one of the EventType constants
// below; their numbers are frozen, new kinds take new numbers. The payload
// is a msgpack map keyed by the short field tags, so a later release may add
// fields (a reader ignores keys it does not know, and a missing key decodes
// as the zero value). There is no checksum here: the entry is stored inside
// Pebble (whose WAL and sstables are checksummed) and carried by raft.
//
// Decoding an unknown type is ErrUnknownEvent, never a panic: the kind of
// a later release (ReceiverAssigned) has its number reserved already.

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// eventVersion is the envelope version written by this release. Part of the
// on-disk format.
const eventVersion = 1

// EventType is the 1-byte kind of an event. Part of the on-disk format.
type EventType uint8

// The event kinds. Part of the on-disk format: never renumber.
const (
	TypeBlockAdded        EventType = 1
	TypeBatchAllocated    EventType = 2
	TypeBatchCompleted    EventType = 3
	TypeTruncated         EventType = 4
	TypePartitionAssigned EventType = 5
	TypeFingerprintSet    EventType = 7
	TypeDriverStarted     EventType = 8

	// Reserved for a later release; unknown to this one.
	typeReceiverAssigned EventType = 6
)

func (t EventType) String() string {
	switch t {
	case TypeBlockAdded:
		return "BlockAdded"
	case TypeBatchAllocated:
		return "BatchAllocated"
	case TypeBatchCompleted:
		return "BatchCompleted"
	case TypeTruncated:
		return "Truncated"
	case TypeFingerprintSet:
		return "FingerprintSet"
	case TypeDriverStarted:
		return "DriverStarted"
	case TypePartitionAssigned:
		return "PartitionAssigned"
	case typeReceiverAssigned:
		return fmt.Sprintf("reserved(%d)", uint8(t))
	}
	return fmt.Sprintf("unknown(%d)", uint8(t))
}

// Event is one command of the metadata log. It is implemented by exactly
// BlockAdded, BatchAllocated, BatchCompleted, Truncated and FingerprintSet.
type Event interface {
	Type() EventType
	sealed()
}

// BlockRef names a block: the stream it belongs to, the node whose receiver
// cut it, and that receiver's sequence number for it.
type BlockRef struct {
	Stream string `msgpack:"s"`
	Node   string `msgpack:"n"`
	Seq    uint64 `msgpack:"q"`
}

func (r BlockRef) String() string { return fmt.Sprintf("%s/%s/%d", r.Stream, r.Node, r.Seq) }

// Request is one ingest request inside a block: the producer's records
// [Offset, Offset+Count) of the block, sent with the producer's sequence
// number Seq.
type Request struct {
	Producer string `msgpack:"p"`
	Seq      uint64 `msgpack:"q"`
	Offset   int    `msgpack:"o"`
	Count    int    `msgpack:"c"`
}

// BlockAdded registers a block that is durable in the WAL. Requests is
// empty for sources without producers.
type BlockAdded struct {
	Block    BlockRef  `msgpack:"b"`
	Records  int       `msgpack:"r"`
	Bytes    int64     `msgpack:"y"`
	Requests []Request `msgpack:"rq,omitempty"`
	// Replicas are the nodes other than Block.Node whose WAL holds a copy,
	// synced before the event was sent. Empty on a single node.
	Replicas []string `msgpack:"rp,omitempty"`
}

// BatchAllocated fixes the blocks of the batch at Time (ms).
type BatchAllocated struct {
	Time  int64  `msgpack:"t"`
	Epoch uint64 `msgpack:"e,omitempty"` // the driver's epoch (see DriverStarted); 0: unfenced
}

// BatchCompleted marks the batch at Time (ms) done. Checkpoint, when
// set, references a checkpoint of the state written before the batch
// completed (of the state as of an earlier batch, Checkpoint.Time).
type BatchCompleted struct {
	Time       int64          `msgpack:"t"`
	Checkpoint *CheckpointRef `msgpack:"c,omitempty"`
	Epoch      uint64         `msgpack:"e,omitempty"` // the driver's epoch; 0: unfenced
}

// CheckpointRef references a checkpoint: the batch time whose state it
// holds, its name (directory) and the checksum of its descriptor. A
// checkpoint that no reference in the log names is never trusted.
type CheckpointRef struct {
	Time int64  `msgpack:"t"`
	Name string `msgpack:"n"`
	Sum  uint32 `msgpack:"s"`
	// Node wrote the checkpoint; other nodes fetch a copy from it. Empty
	// in logs written before clusters: the local node.
	Node string `msgpack:"nd,omitempty"`
}

// FingerprintSet records the application's graph: its name, the
// fingerprint hash and one line per operator, so that a node built from
// other code can say which operators changed.
type FingerprintSet struct {
	App       string   `msgpack:"a"`
	Hash      string   `msgpack:"h"`
	Operators []string `msgpack:"o"`
}

// Truncated forgets completed batches with Time < Before (ms).
type Truncated struct {
	Before int64  `msgpack:"b"`
	Epoch  uint64 `msgpack:"e,omitempty"` // the driver's epoch; 0: unfenced
}

// DriverStarted fences every earlier driver: a node that won leadership
// in raft term Epoch records that it now drives. Batch events with a
// non-zero epoch lower than the recorded one are refused (ErrFenced), so
// a deposed driver that has not noticed yet commits nothing, even through
// a later leadership of its own node.
type DriverStarted struct {
	Epoch uint64 `msgpack:"e"`
	Node  string `msgpack:"n"`
}

// PartitionAssigned records which node is each state partition's primary
// (it runs the partition's state tasks) and which its backup (it holds
// the partition's state too, ready to take over), committed by the driver
// of Epoch when it starts and whenever the nodes it reaches change:
// Primaries[p] and Backups[p] for partition p. A backup is "" where one
// node is left. Batch times are not involved: it replaces the previous
// assignment as a whole.
type PartitionAssigned struct {
	Epoch     uint64   `msgpack:"e"`
	Primaries []string `msgpack:"p"`
	Backups   []string `msgpack:"b"`
}

func (BlockAdded) Type() EventType     { return TypeBlockAdded }
func (BatchAllocated) Type() EventType { return TypeBatchAllocated }
func (BatchCompleted) Type() EventType { return TypeBatchCompleted }
func (Truncated) Type() EventType      { return TypeTruncated }
func (FingerprintSet) Type() EventType { return TypeFingerprintSet }
func (DriverStarted) Type() EventType  { return TypeDriverStarted }
func (PartitionAssigned) Type() EventType {
	return TypePartitionAssigned
}

func (BlockAdded) sealed()        {}
func (BatchAllocated) sealed()    {}
func (BatchCompleted) sealed()    {}
func (Truncated) sealed()         {}
func (FingerprintSet) sealed()    {}
func (DriverStarted) sealed()     {}
func (PartitionAssigned) sealed() {}

// EncodeEvent returns the entry bytes of ev (see the layout above).
func EncodeEvent(ev Event) ([]byte, error) {
	if ev == nil {
		return nil, fmt.Errorf("%w: nil event", ErrInvalidEvent)
	}
	payload, err := msgpack.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("recovery: encode %s: %w", ev.Type(), err)
	}
	buf := make([]byte, 2, 2+len(payload))
	buf[0], buf[1] = eventVersion, byte(ev.Type())
	return append(buf, payload...), nil
}

// DecodeEvent parses entry bytes written by EncodeEvent. It returns
// ErrEventVersion, ErrUnknownEvent, or a *CorruptionError for a payload that
// does not decode.
func DecodeEvent(data []byte) (Event, error) {
	if len(data) < 2 {
		return nil, &CorruptionError{Offset: 0, Reason: fmt.Sprintf("event entry of %d bytes is shorter than its 2-byte header", len(data))}
	}
	if data[0] != eventVersion {
		return nil, fmt.Errorf("%w: %d (this release reads %d)", ErrEventVersion, data[0], eventVersion)
	}
	ev, err := decodePayload(EventType(data[1]), data[2:])
	if err != nil {
		return nil, err
	}
	return ev, nil
}

func decodePayload(t EventType, payload []byte) (Event, error) {
	var err error
	switch t {
	case TypeBlockAdded:
		var e BlockAdded
		if err = msgpack.Unmarshal(payload, &e); err == nil {
			return e, nil
		}
	case TypeBatchAllocated:
		var e BatchAllocated
		if err = msgpack.Unmarshal(payload, &e); err == nil {
			return e, nil
		}
	case TypeBatchCompleted:
		var e BatchCompleted
		if err = msgpack.Unmarshal(payload, &e); err == nil {
			return e, nil
		}
	case TypeTruncated:
		var e Truncated
		if err = msgpack.Unmarshal(payload, &e); err == nil {
			return e, nil
		}
	case TypeFingerprintSet:
		var e FingerprintSet
		if err = msgpack.Unmarshal(payload, &e); err == nil {
			return e, nil
		}
	case TypeDriverStarted:
		var e DriverStarted
		if err = msgpack.Unmarshal(payload, &e); err == nil {
			return e, nil
		}
	case TypePartitionAssigned:
		var e PartitionAssigned
		if err = msgpack.Unmarshal(payload, &e); err == nil {
			return e, nil
		}
	default:
		return nil, fmt.Errorf("%w: %s: this release knows types 1-5, 7 and 8; was the log written by a newer release?", ErrUnknownEvent, t)
	}
	return nil, &CorruptionError{Offset: 2, Reason: "payload of " + t.String() + " does not decode", Err: err}
}
