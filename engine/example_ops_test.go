package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// exampleContext returns a context for an example: batches of a second on
// a manual clock that reads 0, one partition so that output order is
// plain to see, logs discarded.
func exampleContext() (*engine.Context, *engine.ManualClock) {
	clock := engine.NewManualClock(time.UnixMilli(0))
	c, err := engine.NewContext(engine.Config{
		BatchDuration: time.Second,
		Partitions:    1,
		Clock:         clock,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	return c, clock
}

// runBatches starts c, runs n batches by moving the clock a batch at a
// time and waiting for each to complete, then stops c.
func runBatches(c *engine.Context, clock *engine.ManualClock, n int) {
	done := make(chan struct{}, n)
	c.AddListener(batchDone(done))
	if err := c.Start(); err != nil {
		panic(err)
	}
	for range n {
		clock.Advance(c.Config().BatchDuration)
		<-done
	}
	if err := c.Stop(context.Background(), false); err != nil {
		panic(err)
	}
}

// QueueStream feeds a graph from memory, one slice a batch, which is how
// tests drive an application: no receiver, no timing to wait for. An
// empty queue gives an empty batch. Slices may be pushed while the
// context runs.
func ExampleQueueStream() {
	c, clock := exampleContext()
	q := engine.NewQueue([]int{1, 2, 3}, []int{}, []int{10})
	sums := engine.QueueStream(c, q, true).Reduce(func(a, b int) int { return a + b })
	sums.ForeachRDD(func(t engine.Time, r engine.RDD[int]) error {
		fmt.Println(t, r.Collect())
		return nil
	})
	runBatches(c, clock, 3)
	// Output:
	// 1000 ms [6]
	// 2000 ms []
	// 3000 ms [10]
}

// Word counts over a sliding window of 3 batches, computed incrementally:
// each window is the last one plus the batch that entered it (added with
// the first function) less the batch that left it (removed with the
// inverse). The filter drops a word once its count falls back to 0;
// without it the word would stay, with count 0, as in Spark.
func ExampleReduceByKeyAndWindowInv() {
	c, clock := exampleContext()
	lines := engine.QueueStream(c, engine.NewQueue(
		[]string{"a b"}, // 1000 ms
		[]string{"a"},   // 2000 ms
		[]string{"c"},   // 3000 ms
		[]string{},      // 4000 ms: the first batch leaves the window
		[]string{},      // 5000 ms: the second leaves; a falls to 0
	), true)
	pairs := engine.MapToPair(engine.FlatMap(lines, strings.Fields),
		func(w string) (string, int) { return w, 1 })
	counts := engine.ReduceByKeyAndWindowInv(pairs,
		func(a, b int) int { return a + b }, // a batch enters the window
		func(a, b int) int { return a - b }, // a batch leaves it
		3*time.Second, time.Second,
		func(_ string, n int) bool { return n != 0 })
	counts.ForeachRDD(func(t engine.Time, r engine.RDD[engine.Pair[string, int]]) error {
		fmt.Println(t, r.Collect())
		return nil
	})
	runBatches(c, clock, 5)
	// Output:
	// 1000 ms [(a,1) (b,1)]
	// 2000 ms [(a,2) (b,1)]
	// 3000 ms [(a,2) (b,1) (c,1)]
	// 4000 ms [(a,1) (c,1)]
	// 5000 ms [(c,1)]
}

// Sessions of clicks with MapWithState: a user's clicks are counted in
// the key's state, and a session ends when the user has not clicked for
// the timeout, measured in batch time (never the wall clock, so a re-run
// batch times out the same keys). A key updated at batch u times out at
// the first batch t with u < t - Timeout: with a 2s timeout, alice's
// last click at 1000 ms ends her session at 4000 ms.
func ExampleMapWithState() {
	c, clock := exampleContext()
	clicks := engine.QueueStream(c, engine.NewQueue(
		[]engine.Pair[string, string]{{Key: "alice", Value: "/"}, {Key: "bob", Value: "/"}}, // 1000 ms
		[]engine.Pair[string, string]{{Key: "bob", Value: "/cart"}},                         // 2000 ms
		nil, // 3000 ms
		nil, // 4000 ms: alice idle since 1000 ms
		nil, // 5000 ms: bob idle since 2000 ms
	), true)
	ended := engine.MapWithState(clicks, engine.StateSpec[string, string, int, string]{
		Function: func(t engine.Time, user string, page engine.Option[string], clicks *engine.State[int]) (string, bool) {
			if clicks.IsTimingOut() {
				return fmt.Sprintf("%v: %s's session ended after %d clicks", t, user, clicks.Get()), true
			}
			n := 0
			if clicks.Exists() {
				n = clicks.Get()
			}
			clicks.Update(n + 1)
			return "", false // nothing to emit while the session goes on
		},
		Timeout: 2 * time.Second,
	})
	ended.ForeachRDD(func(_ engine.Time, r engine.RDD[string]) error {
		for _, s := range r.Collect() {
			fmt.Println(s)
		}
		return nil
	})
	runBatches(c, clock, 5)
	// Output:
	// 4000 ms: alice's session ended after 1 clicks
	// 5000 ms: bob's session ended after 2 clicks
}

// A sink receives each batch partition by partition, with the batch time
// and partition in SinkPartition: the identity under which it commits
// the records once (see Sink). SinkFunc makes a function a Sink. To
// write files, use FileSink, which commits DIR/batch-<ms>/part-NNNNN by
// linking a synced temporary file into place.
func ExampleDStream_ForeachSink() {
	c, clock := exampleContext()
	words := engine.QueueStream(c, engine.NewQueue([]string{"x", "y"}, []string{"z"}), true)
	words.ForeachSink(engine.SinkFunc[string](func(_ context.Context, part engine.SinkPartition, records []string) error {
		// A real sink would write records and part in one transaction,
		// and return nil for a part it had committed before.
		fmt.Println(part, records)
		return nil
	}))
	runBatches(c, clock, 2)
	// Output:
	// batch 1000 ms partition 0/1 [x y]
	// batch 2000 ms partition 0/1 [z]
}

// FileSink writes each batch partition once, as DIR/batch-<ms>/part-NNNNN:
// a batch re-run after a crash finds its files and writes nothing.
func ExampleFileSink() {
	dir, err := os.MkdirTemp("", "sluice-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	c, clock := exampleContext()
	counts := engine.QueueStream(c, engine.NewQueue([]engine.Pair[string, int]{{Key: "a", Value: 1}, {Key: "b", Value: 2}}), true)
	counts.ForeachSink(&engine.FileSink[engine.Pair[string, int]]{
		Dir:    dir,
		Format: func(p engine.Pair[string, int]) string { return fmt.Sprintf("%s\t%d", p.Key, p.Value) },
	})
	runBatches(c, clock, 1)
	data, err := os.ReadFile(filepath.Join(dir, "batch-1000", "part-00000"))
	if err != nil {
		panic(err)
	}
	fmt.Print(string(data))
	// Output:
	// a	1
	// b	2
}
