package recovery

import (
	"errors"
	"reflect"
	"testing"
)

func TestEventRoundTrip(t *testing.T) {
	evs := []Event{
		BlockAdded{Block: BlockRef{"clicks", "node-1", 42}, Records: 7, Bytes: 700,
			Requests: []Request{{Producer: "p", Seq: 3, Offset: 0, Count: 4}, {Producer: "q", Seq: 1, Offset: 4, Count: 3}}},
		BlockAdded{Block: BlockRef{"lines", "node-2", 1}, Records: 3, Bytes: 30},
		BatchAllocated{Time: 1_700_000_000_000},
		BatchCompleted{Time: 1_700_000_000_000},
		Truncated{Before: 1_699_999_000_000},
		BlockAdded{Block: BlockRef{"lines", "n1", 2}, Records: 1, Bytes: 5, Replicas: []string{"n2"}},
		BatchAllocated{Time: 1_700_000_001_000, Epoch: 3},
		BatchCompleted{Time: 1_700_000_001_000, Epoch: 3, Checkpoint: &CheckpointRef{Time: 1, Name: "c", Sum: 9, Node: "n2"}},
		Truncated{Before: 1_700_000_000_000, Epoch: 3},
		DriverStarted{Epoch: 3, Node: "n2"},
	}
	for _, ev := range evs {
		b, err := EncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != eventVersion || EventType(b[1]) != ev.Type() {
			t.Fatalf("%s: header % x", ev.Type(), b[:2])
		}
		got, err := DecodeEvent(b)
		if err != nil || !reflect.DeepEqual(got, ev) {
			t.Fatalf("%s: decoded %#v, %v", ev.Type(), got, err)
		}
	}
}

// A pointer to an event encodes as the event (the Event method set
// includes pointers) and decodes as the value.
func TestEventPointer(t *testing.T) {
	b, err := EncodeEvent(&BatchAllocated{Time: 5})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeEvent(b); err != nil || got != (BatchAllocated{Time: 5}) {
		t.Fatalf("%#v, %v", got, err)
	}
}

// The type numbers are frozen: a test that fails here means the format
// changed.
func TestEventTypeNumbers(t *testing.T) {
	want := map[EventType]uint8{TypeBlockAdded: 1, TypeBatchAllocated: 2, TypeBatchCompleted: 3, TypeTruncated: 4,
		TypePartitionAssigned: 5, typeReceiverAssigned: 6, TypeFingerprintSet: 7, TypeDriverStarted: 8}
	for typ, n := range want {
		if uint8(typ) != n {
			t.Errorf("%s is %d, frozen as %d", typ, typ, n)
		}
	}
}

func TestDecodeEventRefuses(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		err  error
	}{
		{"unknown_event_type", []byte{1, 200, 0x80}, ErrUnknownEvent},
		{"reserved_receiver_type", []byte{1, 6, 0x80}, ErrUnknownEvent},
		{"zero_type", []byte{1, 0}, ErrUnknownEvent},
		{"version_0", []byte{0, 1, 0x80}, ErrEventVersion},
		{"one_byte", []byte{1}, ErrCorrupt},
		{"bad_payload", []byte{1, 1, 0xc1}, ErrCorrupt},
		{"wrong_payload_type", []byte{1, 2, 0xa1, 'x'}, ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := DecodeEvent(c.data); !errors.Is(err, c.err) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
		})
	}
	if _, err := EncodeEvent(nil); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("nil event: %v", err)
	}
}
