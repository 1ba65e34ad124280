package recovery

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

// memSink is a raft.SnapshotSink into memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string     { return "mem" }
func (s *memSink) Close() error   { s.closed = true; return nil }
func (s *memSink) Cancel() error  { s.cancelled = true; return nil }
func (s *memSink) String() string { return "memSink" }

var _ raft.SnapshotSink = (*memSink)(nil)

// snapshotOf persists f's snapshot into memory.
func snapshotOf(t *testing.T, f *fsm) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil || !sink.closed {
		t.Fatalf("persist: %v (closed %v)", err, sink.closed)
	}
	return sink.Bytes()
}

// Snapshot then Restore gives back the same state: equal views, equal
// bytes, and the same answers to later events.
func TestSnapshotRoundTrip(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		evs := randomLog(seed, 400)
		f := newFSM(discardLogger())
		f.ApplyBatch(entries(t, evs[:300]))
		g := newFSM(discardLogger())
		if err := g.Restore(readCloser(snapshotOf(t, f))); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(f.view(), g.view()) {
			t.Fatalf("seed %d: restored view differs:\n got %+v\nwant %+v", seed, g.view(), f.view())
		}
		rest := entries(t, evs[300:])
		if a, b := f.ApplyBatch(rest), g.ApplyBatch(rest); !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: results after restore differ", seed)
		}
		sameState(t, f.mu.st, g.mu.st)
	}
}

// A snapshot that is not exactly what was written is refused, and the FSM
// keeps the state it had.
func TestSnapshotRefused(t *testing.T) {
	f := newFSM(discardLogger())
	f.ApplyBatch(entries(t, randomLog(3, 100)))
	good := snapshotOf(t, f)
	edit := func(fn func(b []byte) []byte) []byte { return fn(append([]byte(nil), good...)) }
	cases := []struct {
		name string
		data []byte
		err  error
	}{
		{"bad_magic", edit(func(b []byte) []byte { b[0] = 'X'; return b }), ErrCorrupt},
		{"newer_version", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 2); return b }), ErrSnapshotVersion},
		{"flipped_payload_byte", edit(func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }), ErrCorrupt},
		{"flipped_checksum_byte", edit(func(b []byte) []byte { b[17] ^= 1; return b }), ErrCorrupt},
		{"torn_header", good[:10], ErrCorrupt},
		{"torn_payload", good[:len(good)-3], ErrCorrupt},
		{"trailing_bytes", append(append([]byte(nil), good...), 0), ErrCorrupt},
		{"huge_length", edit(func(b []byte) []byte { binary.BigEndian.PutUint64(b[8:], 1<<60); return b }), ErrCorrupt},
		{"empty", nil, ErrCorrupt},
		{"breaks_an_invariant", brokenSnapshot(t), ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newFSM(discardLogger())
			g.ApplyBatch(entries(t, randomLog(4, 50)))
			before := encoded(t, g.mu.st)
			err := g.Restore(readCloser(c.data))
			if !errors.Is(err, c.err) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			sameStateBytes(t, g.mu.st, before)
		})
	}
}

// brokenSnapshot is a well-formed envelope around a state whose batches are
// out of order.
func brokenSnapshot(t *testing.T) []byte {
	s := newState()
	applyOK(t, s, BatchAllocated{Time: 10}, BatchAllocated{Time: 20})
	s.batches[0], s.batches[1] = s.batches[1], s.batches[0]
	return encoded(t, s)
}

func TestSnapshotHeaderLayout(t *testing.T) {
	b := encoded(t, newState())
	if string(b[:4]) != "SLFS" || binary.BigEndian.Uint32(b[4:]) != 1 ||
		binary.BigEndian.Uint64(b[8:]) != uint64(len(b)-20) {
		t.Fatalf("header % x", b[:20])
	}
}
