package engine

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// batchTimes records the time of every batch a context completes.
type batchTimes struct {
	NopListener
	ch chan Time
}

func (b batchTimes) OnBatchCompleted(i BatchInfo) { b.ch <- i.Time }

// TestJumpClockBackwardNeverReusesABatchTime: the driver's clock jumps
// back by ten batches, then forward by twenty; every batch time is still
// the one after the previous, never one allocated before (the FSM would
// hand back the old batch for a time at or before its last allocated, and
// the batch would run twice), and the batches skipped by the forward jump
// are generated, empty, so windows stay aligned.
func TestJumpClockBackwardNeverReusesABatchTime(t *testing.T) {
	const d = 50 * time.Millisecond
	clock := NewJumpClock()
	c, err := NewContext(Config{AppName: "jump", BatchDuration: d, Partitions: 1, Clock: clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	QueueStream(c, NewQueue([]string{"a"}), true).ForeachRDD(func(Time, RDD[string]) error { return nil })
	times := batchTimes{ch: make(chan Time, 1024)}
	c.AddListener(times)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background(), false)
	var got []Time
	next := func(n int) {
		for range n {
			select {
			case bt := <-times.ch:
				got = append(got, bt)
			case <-time.After(10 * time.Second):
				t.Fatalf("no batch within 10s after %v", got)
			}
		}
	}
	next(3)
	clock.Jump(-10 * d)
	next(3) // generated once the clock has come back: 10 batches late
	clock.Jump(20 * d)
	next(25)
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1].Add(d) {
			t.Fatalf("batch %d at %v after %v: want %v (all: %v)", i, got[i], got[i-1], got[i-1].Add(d), got)
		}
	}
}

// TestJumpClockWakesWaiters: a waiter for a time an hour away returns as
// soon as the clock jumps past it.
func TestJumpClockWakesWaiters(t *testing.T) {
	clock := NewJumpClock()
	done := make(chan error)
	go func() { done <- clock.WaitUntil(context.Background(), clock.Now().Add(time.Hour)) }()
	time.Sleep(10 * time.Millisecond)
	clock.Jump(2 * time.Hour)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not wake at the jump")
	}
}
