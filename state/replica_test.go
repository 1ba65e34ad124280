package state

import (
	"errors"
	"maps"
	"testing"
)

// ship runs batch t on the primary and imports its delta on the replica,
// computed on top of prev; the batch completes (both apply) when complete.
func ship(t *testing.T, primary, replica *Store, bt, prev int64, complete bool, ws ...write) error {
	t.Helper()
	b, err := primary.Begin(bt)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, b, ws...)
	b.TruncateSlices(3, bt-10)
	if err := b.WriteDelta(); err != nil {
		t.Fatal(err)
	}
	data, err := b.Export()
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.ImportDelta(bt, prev, data); err != nil {
		b.Abort()
		return err
	}
	if !complete {
		b.Abort()
		return nil
	}
	if err := b.Apply(); err != nil {
		t.Fatal(err)
	}
	return replica.ApplyDelta(bt)
}

// A replica fed every delta holds the primary's state; one that missed a
// delta refuses the next with ErrBehind; a re-sent delta of a batch that
// did not complete replaces the first.
func TestReplicaFollowsThePrimary(t *testing.T) {
	primary, replica := openMem(t), openMem(t)
	if err := ship(t, primary, replica, 10, 0, true, set(1, 0, "a", "1"), set(1, 1, "b", "1")); err != nil {
		t.Fatal(err)
	}
	if err := ship(t, primary, replica, 20, 10, true, set(1, 0, "a", "2"), del(1, 1, "b")); err != nil {
		t.Fatal(err)
	}
	// Batch 30 is shipped, then its driver dies; the next driver re-runs
	// it with other writes (say, more input arrived... it cannot, but the
	// replacement must win whatever it holds).
	if err := ship(t, primary, replica, 30, 20, false, set(1, 0, "x", "lost")); err != nil {
		t.Fatal(err)
	}
	if p, ok, _ := replica.Pending(); !ok || p != 30 {
		t.Fatalf("pending %d %v, want 30", p, ok)
	}
	if err := ship(t, primary, replica, 30, 20, true, set(1, 0, "a", "3")); err != nil {
		t.Fatal(err)
	}
	for part := range 2 {
		if a, b := committed(t, primary, 1, part), committed(t, replica, 1, part); !maps.Equal(a, b) {
			t.Errorf("partition %d: primary %v, replica %v", part, a, b)
		}
	}
	if got := committed(t, replica, 1, 0); got["x"] != "" || got["a"] != "3" {
		t.Errorf("replica holds %v", got)
	}
	if _, ok, _ := replica.Pending(); ok {
		t.Error("a delta is still pending after ApplyDelta")
	}
	// A batch that changed nothing still moves the replica on.
	if err := ship(t, primary, replica, 35, 30, true); err != nil {
		t.Fatal(err)
	}
	if a, _ := replica.Applied(); a != 35 {
		t.Fatalf("replica applied %d after an empty delta, want 35", a)
	}
	// The replica misses batch 40; 50 is refused until it catches up.
	b, _ := primary.Begin(40)
	writeAll(t, b, set(1, 0, "a", "4"))
	b.WriteDelta()
	b.Apply()
	if err := ship(t, primary, replica, 50, 40, false, set(1, 0, "a", "5")); !errors.Is(err, ErrBehind) {
		t.Fatalf("delta over a gap: %v, want ErrBehind", err)
	}
	if err := replica.ImportDelta(30, 20, []byte{0x90}); !errors.Is(err, ErrBatch) {
		t.Fatalf("delta of an applied batch: %v, want ErrBatch", err)
	}
	if err := replica.ImportDelta(60, 35, []byte("garbage")); err == nil {
		t.Fatal("a delta that does not decode was imported")
	}
}
