package state

import (
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// deltaOnly runs batch t up to WriteDelta and drops it, leaving its delta
// on disk as a crash between WriteDelta and Apply does.
func deltaOnly(t *testing.T, s *Store, bt int64, ws ...write) {
	t.Helper()
	b, err := s.Begin(bt)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, b, ws...)
	if err := b.WriteDelta(); err != nil {
		t.Fatal(err)
	}
	b.Abort()
}

// TestRecover checks that Recover, given the metadata log's last
// completed batch, redoes the deltas of completed batches in time order
// and drops the others, and that it is idempotent.
func TestRecover(t *testing.T) {
	// Batch 1 is applied; deltas of 2 and 3 are on disk; 3 changes what
	// 2 wrote, so the order of redo shows.
	base := map[string]string{"a": "1", "b": "1"}
	after2 := map[string]string{"a": "2", "c": "2"}
	after3 := map[string]string{"a": "3", "c": "2", "d": "3"}
	cases := []struct {
		name        string
		last        int64
		wantRedone  []int64
		wantDropped []int64
		wantApplied int64
		want        map[string]string
	}{
		{name: "log says nothing after the applied batch", last: 1, wantDropped: []int64{2, 3}, wantApplied: 1, want: base},
		{name: "log says 2 completed", last: 2, wantRedone: []int64{2}, wantDropped: []int64{3}, wantApplied: 2, want: after2},
		{name: "log says 3 completed", last: 3, wantRedone: []int64{2, 3}, wantApplied: 3, want: after3},
		{name: "log is past every delta", last: 9, wantRedone: []int64{2, 3}, wantApplied: 3, want: after3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			s := openFS(t, fs)
			commit(t, s, 1, set(opA, 0, "a", "1"), set(opA, 0, "b", "1"))
			deltaOnly(t, s, 2, set(opA, 0, "a", "2"), del(opA, 0, "b"), set(opA, 0, "c", "2"))
			// Batch 3 overwrites a key batch 2 wrote: the redo order shows.
			b3, err := s.Begin(3)
			if err != nil {
				t.Fatal(err)
			}
			p := b3.Part(opA, 0)
			p.Set([]byte("a"), []byte("3"), true)
			p.Set([]byte("d"), []byte("3"), false)
			if err := b3.WriteDelta(); err != nil {
				t.Fatal(err)
			}
			b3.Abort()
			s.Close()

			s = openFS(t, fs)
			if applied, _ := s.Applied(); applied != 1 {
				t.Fatalf("Applied after reopen = %d, want 1", applied)
			}
			checkCommitted(t, s, opA, 0, base)
			res, err := s.Recover(tc.last)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Redone, tc.wantRedone) || !slices.Equal(res.Dropped, tc.wantDropped) || res.Applied != tc.wantApplied {
				t.Fatalf("Recover(%d) = %+v; want redone %v, dropped %v, applied %d", tc.last, res, tc.wantRedone, tc.wantDropped, tc.wantApplied)
			}
			if applied, _ := s.Applied(); applied != tc.wantApplied {
				t.Fatalf("Applied = %d, want %d", applied, tc.wantApplied)
			}
			checkCommitted(t, s, opA, 0, tc.want)
			if n := s.Keys(opA); n != int64(len(tc.want)) {
				t.Errorf("Keys(opA) = %d, want %d", n, len(tc.want))
			}
			// A second Recover finds no delta left.
			res, err = s.Recover(tc.last)
			if err != nil || len(res.Redone)+len(res.Dropped) != 0 || res.Applied != tc.wantApplied {
				t.Fatalf("second Recover(%d) = %+v, %v; want nothing to do", tc.last, res, err)
			}
			checkCommitted(t, s, opA, 0, tc.want)
		})
	}
}

// TestRecoverAhead checks that a store that applied a batch the metadata
// log does not say completed is refused with ErrAhead, and left alone.
func TestRecoverAhead(t *testing.T) {
	s := openMem(t)
	commit(t, s, 1, set(opA, 0, "a", "1"))
	commit(t, s, 2, set(opA, 0, "a", "2"))
	deltaOnly(t, s, 3, set(opA, 0, "a", "3"))
	for _, last := range []int64{1, 0} {
		_, err := s.Recover(last)
		wantErr(t, "Recover behind the applied batch", err, ErrAhead)
	}
	if applied, _ := s.Applied(); applied != 2 {
		t.Fatalf("Applied = %d after a refused Recover, want 2", applied)
	}
	checkCommitted(t, s, opA, 0, map[string]string{"a": "2"})
	res, err := s.Recover(3)
	if err != nil || !slices.Equal(res.Redone, []int64{3}) {
		t.Fatalf("Recover(3) = %+v, %v; want batch 3's delta kept by the refused Recover and redone", res, err)
	}
	checkCommitted(t, s, opA, 0, map[string]string{"a": "3"})
}

// TestRecoverDropsStaleDelta checks that a delta of a batch at or before
// the applied one is dropped, not redone over later state: batch 2 wrote
// its delta and failed; batch 3 ran and was applied.
func TestRecoverDropsStaleDelta(t *testing.T) {
	cases := []struct {
		name  string
		stale int64
	}{
		{name: "delta before the applied batch", stale: 2},
		{name: "delta at the applied batch", stale: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openMem(t)
			commit(t, s, 1, set(opA, 0, "a", "1"))
			if tc.stale == 3 {
				commit(t, s, 3, set(opA, 0, "a", "3"))
				// Only a Begin of an applied batch leaves such a delta;
				// TestApplyOfOldBatchFails says it should be refused.
				b, err := s.Begin(3)
				if err != nil {
					t.Skipf("Begin of the applied batch refused (%v): no stale delta at the applied batch can be made", err)
				}
				writeAll(t, b, set(opA, 0, "a", "stale"), set(opA, 0, "s", "stale"))
				if err := b.WriteDelta(); err != nil {
					t.Skipf("WriteDelta of the applied batch refused (%v)", err)
				}
				b.Abort()
			} else {
				deltaOnly(t, s, 2, set(opA, 0, "a", "stale"), set(opA, 0, "s", "stale"))
				commit(t, s, 3, set(opA, 0, "a", "3"))
			}
			res, err := s.Recover(3)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Dropped, []int64{tc.stale}) || len(res.Redone) != 0 || res.Applied != 3 {
				t.Fatalf("Recover(3) = %+v; want batch %d dropped, nothing redone, applied 3", res, tc.stale)
			}
			checkCommitted(t, s, opA, 0, map[string]string{"a": "3"})
			if n := s.Keys(opA); n != 1 {
				t.Errorf("Keys(opA) = %d, want 1", n)
			}
		})
	}
}
