package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// logReceiver reads a fixed log of records in chunks, storing each chunk
// at the position after it and resuming at the stored position, as a
// Kafka or file source does.
type logReceiver struct {
	log   []string
	chunk int
	mu    sync.Mutex
	dups  int
	calls int
}

func (r *logReceiver) Receive(ctx context.Context, out *ReceiverOutput) error {
	pos, _ := out.Position("log")
	for i := int(pos); i < len(r.log); i += r.chunk {
		end := min(i+r.chunk, len(r.log))
		dup, err := out.StoreAt(ctx, "log", uint64(end), r.log[i:end]...)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.calls++
		if dup {
			r.dups++
		}
		r.mu.Unlock()
	}
	<-ctx.Done()
	return nil
}

// A source stored through StoreAt is read exactly once across a restart:
// the new receiver resumes at Position, and a position stored before is a
// duplicate that stores nothing.
func TestStoreAtResumesAtThePosition(t *testing.T) {
	dir := t.TempDir()
	var log []string
	for i := range 20 {
		log = append(log, fmt.Sprint("r", i))
	}
	var mu sync.Mutex
	var got []string
	run := func(n int) *harness {
		h := newDurableHarness(t, dir)
		recv := &logReceiver{log: log[:n], chunk: 3}
		ReceiverStream(h.c, "log", recv).ForeachRDD(func(_ Time, r RDD[string]) error {
			mu.Lock()
			got = append(got, r.Collect()...)
			mu.Unlock()
			return nil
		})
		h.start()
		return h
	}
	h := run(10)
	waitFor(t, "10 records stored", func() bool { return storedRecords(h.c) == 10 })
	h.run(1)
	h.c.Stop(context.Background(), false)

	h2 := run(20) // the log has grown; the receiver resumes after r9
	h2.clock.Set(h.clock.Now())
	waitFor(t, "10 more records stored", func() bool { return storedRecords(h2.c) == 10 })
	h2.run(1)
	out := &ReceiverOutput{s: h2.c.inputs[0].(*receiverStream)}
	if dup, err := out.StoreAt(context.Background(), "log", 13, "again"); err != nil || !dup {
		t.Errorf("StoreAt of a stored position = %v, %v; want a duplicate", dup, err)
	}
	if _, err := out.StoreAt(context.Background(), "log", 11, "older"); !errors.Is(err, ErrSequenceRejected) {
		t.Errorf("StoreAt of an older position never stored = %v; want ErrSequenceRejected", err)
	}
	if pos, ok := out.Position("log"); !ok || pos != 20 {
		t.Errorf("Position = %d, %v; want 20", pos, ok)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, log) {
		t.Errorf("records %v, want each of %v once, in order", got, log)
	}
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
