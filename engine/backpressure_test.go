package engine

import (
	"fmt"
	"testing"
	"time"
)

// TestBackpressureLowersTheRate feeds 5,000 records a second to batches
// that take twice their interval (the output advances the manual clock by
// two seconds each batch), and checks that the PID estimator limits the
// ingest stream to at most the rate the batches process (2,500/s), as
// Spark's backpressure does. (What ingest gets over a limit is tested
// with ReceiverMaxRate in durable_test.go.)
func TestBackpressureLowersTheRate(t *testing.T) {
	h := newDurableHarness(t, t.TempDir(), func(c *Config) { c.Backpressure = true })
	processed := make(chan struct{}, 16)
	IngestStream(h.c, "lines").ForeachRDD(func(_ Time, r RDD[string]) error {
		if r.Count() > 0 {
			h.clock.Advance(2 * testBatch) // processing takes 2s of a 1s batch
			processed <- struct{}{}
		}
		return nil
	})
	h.start()
	const perBatch = 5000
	records := make([]string, perBatch)
	for i := range records {
		records[i] = fmt.Sprint(i)
	}
	// Each batch's rate is set after its output; by the fourth batch's
	// output, those of the second and third (the estimator needs two) are.
	for seq := uint64(1); seq <= 4; seq++ {
		mustIngest(t, h.c, "p", seq, records...)
		h.clock.Advance(testBatch)
		select {
		case <-processed:
		case <-time.After(waitTimeout):
			t.Fatalf("the batch of request %d did not run", seq)
		}
	}
	rate := h.c.Receivers()[0].RateLimit
	processing := float64(perBatch) / (2 * testBatch).Seconds()
	if rate <= 0 || rate > processing {
		t.Fatalf("rate limit %v records/s; want one set at or below the processing rate %v (records arrived at %v/s)",
			rate, processing, float64(perBatch)/testBatch.Seconds())
	}
}
