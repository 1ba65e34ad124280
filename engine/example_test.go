package engine_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// A stateful word count over a queue of lines, driven by a manual clock so
// that the example runs its three batches at once.
func Example() {
	clock := engine.NewManualClock(time.UnixMilli(0))
	c, err := engine.NewContext(engine.Config{
		BatchDuration: time.Second,
		Partitions:    2,
		Clock:         clock,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	lines := engine.QueueStream(c, engine.NewQueue(
		[]string{"to be or not to be"},
		[]string{"that is the question"},
	), true)
	words := engine.FlatMap(lines, strings.Fields)
	pairs := engine.MapToPair(words, func(w string) (string, int) { return w, 1 })
	counts := engine.UpdateStateByKey(pairs, func(vals []int, total int, _ bool) (int, bool) {
		for _, v := range vals {
			total += v
		}
		return total, true
	})
	counts.Filter(func(p engine.Pair[string, int]) bool { return p.Value > 1 }).Print(10)

	done := make(chan struct{}, 8)
	c.AddListener(batchDone(done))
	if err := c.Start(); err != nil {
		panic(err)
	}
	for i := 0; i < 2; i++ {
		clock.Advance(time.Second)
		<-done
	}
	c.Stop(context.Background(), false)
	// Output:
	// -------------------------------------------
	// Time: 1000 ms
	// -------------------------------------------
	// (to,2)
	// (be,2)
	//
	// -------------------------------------------
	// Time: 2000 ms
	// -------------------------------------------
	// (be,2)
	// (to,2)
}

type batchDone chan struct{}

func (d batchDone) OnBatchSubmitted(engine.BatchInfo) {}
func (d batchDone) OnBatchStarted(engine.BatchInfo)   {}
func (d batchDone) OnBatchCompleted(engine.BatchInfo) { d <- struct{}{} }
