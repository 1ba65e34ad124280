package engine

// The property test of the window operators: random inputs, every
// incremental and naive window operator, and a recount of each window
// from the raw input. Its hand-written counterpart is ops_window_test.go.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var windowSeed = flag.Uint64("window.seed", 0, "seed of TestWindowProperty (0: from the clock)")

// windowShape is a window and slide duration pair.
type windowShape struct{ window, slide time.Duration }

// TestWindowProperty checks, over random inputs, that for positive
// values the incremental ReduceByKeyAndWindowInv with the filter
// "v != 0" equals the naive ReduceByKeyAndWindow as a multiset, and that
// both equal a recount of the window from the raw input; without the
// filter, it equals the recount plus keys at 0. Positive values matter:
// Spark's filter is exact only when a key's window value is 0 just when
// the key is not in the window. It checks Window, GroupByKeyAndWindow
// and CountByWindow against the same recount. Shapes include windows
// shorter than the slide, which skip batches.
func TestWindowProperty(t *testing.T) {
	seed := *windowSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	shapes := []windowShape{
		{1 * time.Second, 1 * time.Second},
		{2 * time.Second, 1 * time.Second},
		{3 * time.Second, 1 * time.Second},
		{2 * time.Second, 2 * time.Second},
		{3 * time.Second, 2 * time.Second},
		{4 * time.Second, 2 * time.Second},
		{3 * time.Second, 3 * time.Second},
		{5 * time.Second, 3 * time.Second},
		{1 * time.Second, 2 * time.Second},
		{2 * time.Second, 3 * time.Second},
	}
	const trials = 40
	for trial := range trials {
		rng := rand.New(rand.NewPCG(seed, uint64(trial)))
		input := randomKeyedInput(rng)
		partitions := 1 + rng.IntN(3)
		if err := checkWindowProperty(t, input, partitions, shapes); err != nil {
			t.Fatalf("seed %d, trial %d (replay with -run TestWindowProperty -window.seed=%d):\n"+
				"partitions %d, input %v:\n%v", seed, trial, seed, partitions, input, err)
		}
	}
}

// randomKeyedInput returns 4 to 16 batches of up to 5 records over six
// keys with values 1 to 3; about one batch in four is empty.
func randomKeyedInput(rng *rand.Rand) [][]kvi {
	input := make([][]kvi, 4+rng.IntN(13))
	for i := range input {
		if rng.IntN(4) == 0 {
			continue
		}
		for range 1 + rng.IntN(5) {
			input[i] = append(input[i], KV(string(rune('a'+rng.IntN(6))), 1+rng.IntN(3)))
		}
	}
	return input
}

// windowCheck is one stream of the property test: its outputs, printed,
// and what its output at a time must be.
type windowCheck struct {
	name    string
	shape   windowShape
	ordered bool
	got     func() ([][]string, []Time)
	want    func(at Time) []string
}

func newWindowCheck[U any](name string, sh windowShape, ordered bool, rec *recorder[U],
	show func([]U) []string, want func(Time) []string) windowCheck {
	return windowCheck{name: name, shape: sh, ordered: ordered, want: want, got: func() ([][]string, []Time) {
		batches, times := recordedWithTimes(rec)
		out := make([][]string, len(batches))
		for i, b := range batches {
			out[i] = show(b)
		}
		return out, times
	}}
}

// checkWindowProperty runs every shape over input in one context and
// compares each stream's outputs with the recount.
func checkWindowProperty(t *testing.T, input [][]kvi, partitions int, shapes []windowShape) error {
	h := newHarness(t)
	defer h.c.Stop(context.Background(), false)
	ds := QueueStream(h.c, NewQueue(input...), true)
	p := WithPartitions(partitions)
	var checks []windowCheck
	for _, sh := range shapes {
		w, s := sh.window, sh.slide
		in := func(at Time) []kvi { return windowRecords(input, at, w) }
		sums := func(at Time) []string { return printed(sumByKey(in(at))) }
		checks = append(checks,
			newWindowCheck("ReduceByKeyAndWindow", sh, false,
				record(ReduceByKeyAndWindow(ds, winAdd, w, s, p)), printed[kvi], sums),
			newWindowCheck("ReduceByKeyAndWindowInv with filter", sh, false,
				record(ReduceByKeyAndWindowInv(ds, winAdd, winSub, w, s, nonZeroInt[string], p)), printed[kvi], sums),
			newWindowCheck("ReduceByKeyAndWindowInv without filter, zeros dropped", sh, false,
				record(ReduceByKeyAndWindowInv(ds, winAdd, winSub, w, s, nil, p)), withoutZeros, sums),
			newWindowCheck("Window", sh, true, record(ds.Window(w, s)), printed[kvi],
				func(at Time) []string { return printed(in(at)) }),
			newWindowCheck("GroupByKeyAndWindow", sh, false, record(GroupByKeyAndWindow(ds, w, s, p)),
				printed[Pair[string, []int]], func(at Time) []string { return printed(groupInOrder(in(at))) }),
			newWindowCheck("CountByWindow", sh, true, record(ds.CountByWindow(w, s)), printed[int64],
				func(at Time) []string { return incrementalCount(input, at, sh) }),
		)
	}
	h.start()
	batches := len(input) + 6 // and then empty ones, to drain every window
	h.run(batches)
	var errs []error
	for _, c := range checks {
		got, times := c.got()
		wantN := batches / int(c.shape.slide/testBatch)
		if len(got) != wantN {
			errs = append(errs, fmt.Errorf("window %v slide %v: %s: %d outputs, want %d",
				c.shape.window, c.shape.slide, c.name, len(got), wantN))
			continue
		}
		for j := range got {
			at := Time(0).Add(time.Duration(j+1) * c.shape.slide)
			g, w := sortedIf(!c.ordered, got[j]), sortedIf(!c.ordered, c.want(at))
			if times[j] != at || !slices.Equal(g, w) {
				errs = append(errs, fmt.Errorf("window %v slide %v: %s at %v (want at %v):\ngot  %v\nwant %v",
					c.shape.window, c.shape.slide, c.name, times[j], at, g, w))
			}
		}
	}
	return errors.Join(errs...)
}

// windowRecords is the raw input in (at - window, at], oldest batch
// first (batch i is at (i+1) s).
func windowRecords(input [][]kvi, at Time, window time.Duration) []kvi {
	var out []kvi
	for i, batch := range input {
		if bt := Time(0).Add(time.Duration(i+1) * testBatch); bt > at.Add(-window) && bt <= at {
			out = append(out, batch...)
		}
	}
	return out
}

func sumByKey(records []kvi) []kvi {
	var out []kvi
	idx := map[string]int{}
	for _, kv := range records {
		i, ok := idx[kv.Key]
		if !ok {
			i = len(out)
			idx[kv.Key] = i
			out = append(out, KV(kv.Key, 0))
		}
		out[i].Value += kv.Value
	}
	return out
}

// groupInOrder groups the values of each key in record order.
func groupInOrder(records []kvi) []Pair[string, []int] {
	var out []Pair[string, []int]
	idx := map[string]int{}
	for _, kv := range records {
		i, ok := idx[kv.Key]
		if !ok {
			i = len(out)
			idx[kv.Key] = i
			out = append(out, KV(kv.Key, []int(nil)))
		}
		out[i].Value = append(out[i].Value, kv.Value)
	}
	return out
}

// incrementalCount is what Spark's countByWindow outputs at at: nothing
// until a window has held a record, then the count, 0 included.
func incrementalCount(input [][]kvi, at Time, sh windowShape) []string {
	held := false
	for t := Time(0).Add(sh.slide); t <= at; t = t.Add(sh.slide) {
		held = held || len(windowRecords(input, t, sh.window)) > 0
	}
	if !held {
		return nil
	}
	return []string{fmt.Sprint(len(windowRecords(input, at, sh.window)))}
}

// withoutZeros prints the records whose value is not 0, and any key
// that appears twice.
func withoutZeros(kvs []kvi) []string {
	var out []string
	seen := map[string]bool{}
	for _, kv := range kvs {
		if seen[kv.Key] {
			out = append(out, "duplicate "+kv.String())
		}
		seen[kv.Key] = true
		if kv.Value != 0 {
			out = append(out, kv.String())
		}
	}
	return out
}
