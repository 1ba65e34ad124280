package engine

import (
	"context"
	"testing"
)

// TestWALLatencyCountsSyncedAppends checks that every block an ingest
// stores is timed, and that the histogram is cumulative and whole.
func TestWALLatencyCountsSyncedAppends(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DataDir = t.TempDir() })
	IngestStream(h.c, "lines").Print(1)
	if _, ok := h.c.WALLatency(); ok {
		t.Fatal("WALLatency before Start: ok, want not")
	}
	h.start()
	for seq := uint64(1); seq <= 3; seq++ {
		if _, err := h.c.Ingest(context.Background(), "lines", "p", seq, []string{"a", "b"}); err != nil {
			t.Fatal(err)
		}
	}
	l, ok := h.c.WALLatency()
	if !ok || l.Count != 3 || l.Sum <= 0 || l.Syncs == 0 {
		t.Fatalf("WALLatency = %+v, %v: want 3 timed appends and some syncs", l, ok)
	}
	for i := 1; i < len(l.Counts); i++ {
		if l.Counts[i] < l.Counts[i-1] {
			t.Fatalf("counts %v are not cumulative", l.Counts)
		}
	}
	if last := l.Counts[len(l.Counts)-1]; last > l.Count {
		t.Errorf("last bucket %d above the count %d", last, l.Count)
	}
}
