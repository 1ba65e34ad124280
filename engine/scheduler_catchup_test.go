package engine

import (
	"context"
	"testing"
	"time"
)

// A driver behind the clock (after an outage, or under load) allocates the
// batch times it missed as it gets to them, a few ahead of the batch it
// runs: a block registered meanwhile goes to a batch that runs soon. It
// once allocated every time already passed at once, so that such a block
// waited behind all of them; on the simulated cluster under the race
// detector the driver ran those empty batches slower than the clock and
// the block never ran (the cluster did not settle).
func TestDriverBehindClockAllocatesAsItRuns(t *testing.T) {
	h := newHarness(t)
	lines := IngestStream(h.c, "lines")
	blocked, release := make(chan struct{}), make(chan struct{})
	got := make(chan Time, 1)
	first := true
	lines.ForeachRDD(func(t Time, r RDD[string]) error {
		if first {
			first = false
			close(blocked)
			<-release
		}
		for _, l := range r.Collect() {
			if l == "late" {
				got <- t
			}
		}
		return nil
	})
	h.start()
	h.clock.Advance(testBatch)
	<-blocked // the first batch runs, held by its output
	t1 := TimeOf(h.clock.Now())
	h.clock.Advance(50 * testBatch)
	// Give a generator that does not wait for room the time to allocate
	// the 50 batch times passed: it needs a fraction of this.
	time.Sleep(300 * time.Millisecond)
	if last := Time(h.c.storage.meta.View().LastAllocated); last > t1.Add((maxQueued+1)*testBatch) {
		t.Errorf("with its first batch still running the driver allocated up to %v, %d batches ahead", last, last.Sub(t1)/testBatch)
	}
	if _, err := h.c.Ingest(context.Background(), "lines", "p", 1, []string{"late"}); err != nil {
		t.Fatal(err)
	}
	close(release)
	select {
	case at := <-got:
		if at > t1.Add((maxQueued+2)*testBatch) {
			t.Errorf("a block registered while the driver was behind ran in batch %v, %d batches after the one running", at, at.Sub(t1)/testBatch)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the late record never ran")
	}
}
