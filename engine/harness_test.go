package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"
)

// harness runs a graph on a manual clock, one batch at a time, as Spark's
// TestSuiteBase does with its ManualClock: the test advances the clock by
// a batch duration and waits for the batch to complete.
type harness struct {
	t     testing.TB
	c     *Context
	clock *ManualClock
	done  chan BatchInfo
}

const testBatch = time.Second

func newHarness(t testing.TB, mod ...func(*Config)) *harness {
	t.Helper()
	clock := NewManualClock(time.UnixMilli(0))
	cfg := Config{
		AppName:       "test",
		BatchDuration: testBatch,
		Partitions:    2,
		Clock:         clock,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Stdout:        io.Discard,
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := NewContext(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, c: c, clock: clock, done: make(chan BatchInfo, 1024)}
	c.AddListener(h)
	return h
}

func (h *harness) OnBatchSubmitted(BatchInfo)   {}
func (h *harness) OnBatchStarted(BatchInfo)     {}
func (h *harness) OnBatchCompleted(b BatchInfo) { h.done <- b }

func (h *harness) start() {
	h.t.Helper()
	if err := h.c.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { h.c.Stop(context.Background(), false) })
}

// step advances the clock one batch and waits for that batch. It returns
// the batch's error, if it failed.
func (h *harness) step() BatchInfo {
	h.t.Helper()
	h.clock.Advance(h.c.cfg.BatchDuration)
	select {
	case b := <-h.done:
		return b
	case <-time.After(20 * time.Second):
		h.t.Fatalf("batch at %v did not complete", TimeOf(h.clock.Now()))
		return BatchInfo{}
	}
}

// run runs n batches and fails the test on a failed batch.
func (h *harness) run(n int) {
	h.t.Helper()
	for i := 0; i < n; i++ {
		if b := h.step(); b.Err != nil {
			h.t.Fatalf("batch %v: %v", b.Time, b.Err)
		}
	}
}

// recorder keeps every batch's output of a stream, in batch order.
type recorder[T any] struct {
	mu      sync.Mutex
	batches [][]T
	times   []Time
}

func record[T any](ds *DStream[T]) *recorder[T] {
	r := &recorder[T]{}
	ds.ForeachRDD(func(t Time, rdd RDD[T]) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.batches = append(r.batches, rdd.Collect())
		r.times = append(r.times, t)
		return nil
	})
	return r
}

func (r *recorder[T]) get() [][]T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

// testOperation is Spark's TestSuiteBase.testOperation: it feeds input,
// one slice per batch, through op and compares each batch's output with
// expected. With ordered false, each batch is compared as a multiset of
// printed records.
func testOperation[T, U any](t *testing.T, input [][]T, op func(*DStream[T]) *DStream[U], expected [][]U, ordered bool) {
	t.Helper()
	h := newHarness(t)
	out := record(op(QueueStream(h.c, NewQueue(input...), true)))
	h.start()
	h.run(len(expected))
	checkBatches(t, out.get(), expected, ordered)
}

func checkBatches[U any](t *testing.T, got, want [][]U, ordered bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d batches of output, want %d:\ngot  %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range want {
		g, w := printed(got[i]), printed(want[i])
		if !ordered {
			sort.Strings(g)
			sort.Strings(w)
		}
		if !slices.Equal(g, w) {
			t.Errorf("batch %d (time %d ms):\ngot  %v\nwant %v", i+1, (i+1)*1000, g, w)
		}
	}
}

func printed[T any](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprint(v)
	}
	return out
}
