package engine

// The semantics of the window operators, ported from Spark Streaming's
// WindowOperationsSuite (streaming/src/test/scala/org/apache/spark/
// streaming/WindowOperationsSuite.scala), with a few cases from its
// JavaAPISuite and from PySpark's WindowFunctionTests (whose 0.5s batch is
// scaled to our 1s one). Inputs and expected outputs are Spark's, batch by
// batch; cases that are not Spark's say so and are worked out by the same
// rules. As in Spark's TestSuiteBase, a test runs len(expected) × slide /
// batch batches: the first batch is at 1000 ms, and a windowed stream
// produces an RDD only at its slide times (the first windows are partial,
// holding only the batches there are), each RDD holding the batches in
// (t - window, t]. The property test is in ops_window_property_test.go.

import (
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// testWindowOperation is TestSuiteBase.testOperation(input, operation,
// expectedOutput, numBatches, useSet) as WindowOperationsSuite calls it,
// with numBatches = len(expected) × slide / batch. It also checks that
// the output came exactly at the slide times. ordered false compares each
// output as a multiset (Spark's useSet).
func testWindowOperation[T, U any](t *testing.T, input [][]T, slide time.Duration,
	op func(*DStream[T]) *DStream[U], expected [][]U, ordered bool) {
	t.Helper()
	h := newHarness(t)
	out := record(op(QueueStream(h.c, NewQueue(input...), true)))
	h.start()
	h.run(len(expected) * int(slide/testBatch))
	checkWindowOutput(t, out, slide, expected, ordered)
}

// checkWindowOutput checks that rec holds one output per slide, at the
// slide times, each equal to expected's.
func checkWindowOutput[U any](t *testing.T, rec *recorder[U], slide time.Duration, expected [][]U, ordered bool) {
	t.Helper()
	got, times := recordedWithTimes(rec)
	if len(got) != len(expected) {
		t.Fatalf("got %d outputs at %v, want %d (one every %v):\ngot  %v\nwant %v",
			len(got), times, len(expected), slide, got, expected)
	}
	for i := range expected {
		at := Time(0).Add(time.Duration(i+1) * slide)
		if times[i] != at {
			t.Errorf("output %d is at %v, want %v (every slide of %v)", i+1, times[i], at, slide)
		}
		if g, w := sortedIf(!ordered, printed(got[i])), sortedIf(!ordered, printed(expected[i])); !slices.Equal(g, w) {
			t.Errorf("output at %v:\ngot  %v\nwant %v", at, g, w)
		}
	}
}

func recordedWithTimes[U any](rec *recorder[U]) ([][]U, []Time) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.batches), slices.Clone(rec.times)
}

func sortedIf(sorted bool, s []string) []string {
	if sorted {
		sort.Strings(s)
	}
	return s
}

func winAdd(a, b int) int { return a + b }
func winSub(a, b int) int { return a - b }

func nonZeroInt[K comparable](_ K, v int) bool { return v != 0 }

type kvi = Pair[string, int]

// seqOf is Scala's Seq(...) of ints.
func seqOf(vs ...int) []int { return vs }

// Spark's WindowOperationsSuite inputs and outputs.
var (
	largerSlideInput = [][]kvi{
		{KV("a", 1)},
		{KV("a", 2)}, // 1st window from here
		{KV("a", 3)},
		{KV("a", 4)}, // 2nd window from here
		{KV("a", 5)},
		{KV("a", 6)}, // 3rd window from here
		{},
		{}, // 4th window from here
	}
	largerSlideReduceOutput = [][]kvi{
		{KV("a", 3)},
		{KV("a", 10)},
		{KV("a", 18)},
		{KV("a", 11)},
	}
	bigInput = [][]kvi{
		{KV("a", 1)},
		{KV("a", 1), KV("b", 1)},
		{KV("a", 1), KV("b", 1), KV("c", 1)},
		{KV("a", 1), KV("b", 1)},
		{KV("a", 1)},
		{},
		{KV("a", 1)},
		{KV("a", 1), KV("b", 1)},
		{KV("a", 1), KV("b", 1), KV("c", 1)},
		{KV("a", 1), KV("b", 1)},
		{KV("a", 1)},
		{},
	}
	bigGroupByOutput = [][]Pair[string, []int]{
		{KV("a", seqOf(1))},
		{KV("a", seqOf(1, 1)), KV("b", seqOf(1))},
		{KV("a", seqOf(1, 1)), KV("b", seqOf(1, 1)), KV("c", seqOf(1))},
		{KV("a", seqOf(1, 1)), KV("b", seqOf(1, 1)), KV("c", seqOf(1))},
		{KV("a", seqOf(1, 1)), KV("b", seqOf(1))},
		{KV("a", seqOf(1))},
		{KV("a", seqOf(1))},
		{KV("a", seqOf(1, 1)), KV("b", seqOf(1))},
		{KV("a", seqOf(1, 1)), KV("b", seqOf(1, 1)), KV("c", seqOf(1))},
		{KV("a", seqOf(1, 1)), KV("b", seqOf(1, 1)), KV("c", seqOf(1))},
		{KV("a", seqOf(1, 1)), KV("b", seqOf(1))},
		{KV("a", seqOf(1))},
	}
	bigReduceOutput = [][]kvi{
		{KV("a", 1)},
		{KV("a", 2), KV("b", 1)},
		{KV("a", 2), KV("b", 2), KV("c", 1)},
		{KV("a", 2), KV("b", 2), KV("c", 1)},
		{KV("a", 2), KV("b", 1)},
		{KV("a", 1)},
		{KV("a", 1)},
		{KV("a", 2), KV("b", 1)},
		{KV("a", 2), KV("b", 2), KV("c", 1)},
		{KV("a", 2), KV("b", 2), KV("c", 1)},
		{KV("a", 2), KV("b", 1)},
		{KV("a", 1)},
	}
	// Spark: "The output of the reduceByKeyAndWindow with inverse function
	// but without a filter function will be different from the naive
	// reduceByKeyAndWindow, as no keys get eliminated from the
	// ReducedWindowedDStream even if the value of a key becomes 0."
	bigReduceInvOutput = [][]kvi{
		{KV("a", 1)},
		{KV("a", 2), KV("b", 1)},
		{KV("a", 2), KV("b", 2), KV("c", 1)},
		{KV("a", 2), KV("b", 2), KV("c", 1)},
		{KV("a", 2), KV("b", 1), KV("c", 0)},
		{KV("a", 1), KV("b", 0), KV("c", 0)},
		{KV("a", 1), KV("b", 0), KV("c", 0)},
		{KV("a", 2), KV("b", 1), KV("c", 0)},
		{KV("a", 2), KV("b", 2), KV("c", 1)},
		{KV("a", 2), KV("b", 2), KV("c", 1)},
		{KV("a", 2), KV("b", 1), KV("c", 0)},
		{KV("a", 1), KV("b", 0), KV("c", 0)},
	}
)

// seqInput is the input of Spark's window tests: Seq(0) ... Seq(5).
var seqInput = [][]int{{0}, {1}, {2}, {3}, {4}, {5}}

// TestWindow ports WindowOperationsSuite's testWindow cases (window 2s
// slide 1s, tumbling, larger window, non-overlapping) and adds the window
// and slide pairs Spark's suite does not have, worked out by the same
// rule: the window at t is the union of the batches in (t - window, t],
// oldest first, produced only every slide. Outputs after the input ends
// are empty windows, which Spark outputs too.
func TestWindow(t *testing.T) {
	cases := []struct {
		name          string
		window, slide time.Duration
		input, want   [][]int
	}{
		{"basic window", 2 * time.Second, time.Second, seqInput,
			[][]int{{0}, {0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}}},
		{"tumbling window", 2 * time.Second, 2 * time.Second, seqInput,
			[][]int{{0, 1}, {2, 3}, {4, 5}}},
		{"larger window", 4 * time.Second, 2 * time.Second, seqInput,
			[][]int{{0, 1}, {0, 1, 2, 3}, {2, 3, 4, 5}, {4, 5}}},
		{"non-overlapping window", 2 * time.Second, 3 * time.Second, seqInput,
			[][]int{{1, 2}, {4, 5}}},
		// Not in Spark's suite.
		{"window 3s slide 1s", 3 * time.Second, time.Second, seqInput,
			[][]int{{0}, {0, 1}, {0, 1, 2}, {1, 2, 3}, {2, 3, 4}, {3, 4, 5}, {4, 5}, {5}, {}}},
		{"window 3s slide 2s", 3 * time.Second, 2 * time.Second, seqInput,
			[][]int{{0, 1}, {1, 2, 3}, {3, 4, 5}, {5}}},
		{"window 3s slide 3s", 3 * time.Second, 3 * time.Second, seqInput,
			[][]int{{0, 1, 2}, {3, 4, 5}, {}}},
		{"window equal to the batch", time.Second, time.Second, seqInput,
			[][]int{{0}, {1}, {2}, {3}, {4}, {5}}},
		{"slide of two batches, window of one", time.Second, 2 * time.Second, seqInput,
			[][]int{{1}, {3}, {5}}},
		// Several records a batch (split over the harness's two
		// partitions) and empty batches: the window keeps records in
		// batch order, oldest batch first.
		{"several records a batch", 3 * time.Second, time.Second,
			[][]int{{1, 2, 3}, {4, 5}, {}, {6, 7, 8, 9}, {}},
			[][]int{{1, 2, 3}, {1, 2, 3, 4, 5}, {1, 2, 3, 4, 5}, {4, 5, 6, 7, 8, 9}, {6, 7, 8, 9}, {6, 7, 8, 9}, {}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			testWindowOperation(t, tc.input, tc.slide, func(ds *DStream[int]) *DStream[int] {
				return ds.Window(tc.window, tc.slide)
			}, tc.want, true)
		})
	}
}

// TestWindowJavaAPI ports JavaAPISuite's testWindow (window 2s, the
// default slide of one batch) and testWindowWithSlideDuration (window 4s,
// slide 2s), whose batches hold three records each.
func TestWindowJavaAPI(t *testing.T) {
	input := [][]int{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}
	testWindowOperation(t, input, time.Second, func(ds *DStream[int]) *DStream[int] {
		return ds.Window(2*time.Second, ds.SlideDuration())
	}, [][]int{{1, 2, 3}, {1, 2, 3, 4, 5, 6}, {4, 5, 6, 7, 8, 9}, {7, 8, 9}}, true)

	input = [][]int{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}, {13, 14, 15}, {16, 17, 18}}
	testWindowOperation(t, input, 2*time.Second, func(ds *DStream[int]) *DStream[int] {
		return ds.Window(4*time.Second, 2*time.Second)
	}, [][]int{
		{1, 2, 3, 4, 5, 6},
		{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		{7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18},
		{13, 14, 15, 16, 17, 18},
	}, true)
}

// TestWindowCount ports PySpark's test_window: window(1.5, 0.5).count()
// with a 0.5s batch, here window 3s over 1s batches. Count yields 0 for
// an empty window, as Spark's count does.
func TestWindowCount(t *testing.T) {
	input := [][]int{{0}, {0, 1}, {0, 1, 2}, {0, 1, 2, 3}, {0, 1, 2, 3, 4}}
	testWindowOperation(t, input, time.Second, func(ds *DStream[int]) *DStream[int64] {
		return ds.Window(3*time.Second, time.Second).Count()
	}, [][]int64{{1}, {3}, {6}, {9}, {12}, {9}, {5}, {0}}, true)
}

// TestCountByWindow ports WindowOperationsSuite's "countByWindow" and
// PySpark's test_count_by_window and test_count_by_window_large (window
// 1.5s and 2.5s over 0.5s batches, here 3s and 5s over 1s). Spark counts
// incrementally (reduceByWindow with an inverse), so a window that held
// records and emptied yields 0, not nothing; before the first record
// there is no output at all.
func TestCountByWindow(t *testing.T) {
	cases := []struct {
		name          string
		window, slide time.Duration
		input         [][]int
		want          [][]int64
	}{
		{"countByWindow", 2 * time.Second, time.Second,
			[][]int{{1}, {1}, {1, 2}, {0}, {}, {}},
			[][]int64{{1}, {2}, {3}, {3}, {1}, {0}}},
		{"pyspark count_by_window", 3 * time.Second, time.Second,
			[][]int{{0}, {0, 1}, {0, 1, 2}, {0, 1, 2, 3}, {0, 1, 2, 3, 4}},
			[][]int64{{1}, {3}, {6}, {9}, {12}, {9}, {5}}},
		{"pyspark count_by_window_large", 5 * time.Second, time.Second,
			[][]int{{0}, {0, 1}, {0, 1, 2}, {0, 1, 2, 3}, {0, 1, 2, 3, 4}, {0, 1, 2, 3, 4, 5}},
			[][]int64{{1}, {3}, {6}, {10}, {15}, {20}, {18}, {15}, {11}, {6}}},
		{"no output before the first record", 2 * time.Second, time.Second,
			[][]int{{}, {7}, {}, {}, {}},
			[][]int64{{}, {1}, {1}, {0}, {0}}},
		{"window 4s slide 2s", 4 * time.Second, 2 * time.Second,
			[][]int{{1}, {1, 1}, {1, 1, 1}, {}, {}, {1}},
			[][]int64{{3}, {6}, {4}, {1}}},
		// Windows of one batch every two: batches 2, 4, 6. Spark's
		// incremental count gives 3 at 2s (see slideLongerThanWindow).
		{"slide longer than window", time.Second, 2 * time.Second,
			[][]int{{1}, {1, 1}, {1}, {1, 1, 1}, {1}},
			[][]int64{{2}, {3}, {0}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			testWindowOperation(t, tc.input, tc.slide, func(ds *DStream[int]) *DStream[int64] {
				return ds.CountByWindow(tc.window, tc.slide)
			}, tc.want, true)
		})
	}
}

// TestReduceByWindow ports JavaAPISuite's testReduceByWindowWithInverse
// and testReduceByWindowWithoutInverse: the sums over a 2s window of
// batches 1+2+3, 4+5+6, 7+8+9. Both give the same answer while the
// window is not empty; they differ after it empties: without an inverse
// an empty window yields nothing (reduce of an empty RDD), with one it
// yields the neutral element, as Spark's reduceByKeyAndWindow on the
// single key does.
func TestReduceByWindow(t *testing.T) {
	input := [][]int{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {}, {}}
	spark := [][]int{{6}, {21}, {39}, {24}}
	t.Run("without inverse", func(t *testing.T) {
		testWindowOperation(t, input, time.Second, func(ds *DStream[int]) *DStream[int] {
			return ds.ReduceByWindow(winAdd, 2*time.Second, time.Second)
		}, append(slices.Clone(spark), []int{}), true)
	})
	t.Run("with inverse", func(t *testing.T) {
		testWindowOperation(t, input, time.Second, func(ds *DStream[int]) *DStream[int] {
			return ds.ReduceByWindowInv(winAdd, winSub, 2*time.Second, time.Second)
		}, append(slices.Clone(spark), []int{0}), true)
	})
	// Window 3s slide 2s: windows (-1s,2s], (1s,4s], (3s,6s].
	t.Run("window 3s slide 2s", func(t *testing.T) {
		in := [][]int{{1}, {2}, {3}, {4}, {5}, {}}
		want := [][]int{{3}, {9}, {9}}
		testWindowOperation(t, in, 2*time.Second, func(ds *DStream[int]) *DStream[int] {
			return ds.ReduceByWindow(winAdd, 3*time.Second, 2*time.Second)
		}, want, true)
		testWindowOperation(t, in, 2*time.Second, func(ds *DStream[int]) *DStream[int] {
			return ds.ReduceByWindowInv(winAdd, winSub, 3*time.Second, 2*time.Second)
		}, want, true)
	})
}

// keyedCase is one of WindowOperationsSuite's reduceByKeyAndWindow cases;
// window and slide default to 2s and 1s, as in Spark's helpers.
type keyedCase struct {
	name          string
	input, want   [][]kvi
	window, slide time.Duration
}

func (c keyedCase) durations() (time.Duration, time.Duration) {
	if c.window == 0 {
		return 2 * time.Second, time.Second
	}
	return c.window, c.slide
}

// slideLongerThanWindow is not in Spark's suite: a window of 1s every 2s
// sees only the even batches, so key a, only in odd batches, is never in
// a window. Spark's naive reduceByKeyAndWindow agrees; its incremental
// one does not: its ReducedWindowedDStream takes the odd batches, which
// lie between two windows, both as leaving and as entering the window,
// and so outputs (a,1) for a key missing from the previous window. Sluice
// gives every variant the naive answer.
var slideLongerThanWindow = keyedCase{name: "slide longer than window",
	input:  [][]kvi{{KV("a", 1)}, {KV("b", 1)}, {KV("a", 1)}, {KV("b", 2)}, {KV("a", 1)}, {}},
	want:   [][]kvi{{KV("b", 1)}, {KV("b", 2)}, {}},
	window: time.Second, slide: 2 * time.Second}

// TestReduceByKeyAndWindow ports WindowOperationsSuite's
// testReduceByKeyAndWindow cases: the naive reduceByKeyAndWindow, which
// reduces the whole window every slide, so a key leaves the output when
// it leaves the window.
func TestReduceByKeyAndWindow(t *testing.T) {
	cases := []keyedCase{
		{name: "basic reduction",
			input: [][]kvi{{KV("a", 1), KV("a", 3)}},
			want:  [][]kvi{{KV("a", 4)}}},
		{name: "key already in window and new value added into window",
			input: [][]kvi{{KV("a", 1)}, {KV("a", 1)}},
			want:  [][]kvi{{KV("a", 1)}, {KV("a", 2)}}},
		{name: "new key added into window",
			input: [][]kvi{{KV("a", 1)}, {KV("a", 1), KV("b", 1)}},
			want:  [][]kvi{{KV("a", 1)}, {KV("a", 2), KV("b", 1)}}},
		{name: "key removed from window",
			input: [][]kvi{{KV("a", 1)}, {KV("a", 1)}, {}, {}},
			want:  [][]kvi{{KV("a", 1)}, {KV("a", 2)}, {KV("a", 1)}, {}}},
		{name: "larger slide time", input: largerSlideInput, want: largerSlideReduceOutput,
			window: 4 * time.Second, slide: 2 * time.Second},
		{name: "big test", input: bigInput, want: bigReduceOutput},
		slideLongerThanWindow,
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			window, slide := tc.durations()
			testWindowOperation(t, tc.input, slide, func(ds *DStream[kvi]) *DStream[kvi] {
				return ReduceByKeyAndWindow(ds, winAdd, window, slide)
			}, tc.want, false)
		})
	}
}

// TestReduceByKeyAndWindowInv ports WindowOperationsSuite's
// testReduceByKeyAndWindowWithInverse cases: without a filter, a key
// whose window value returns to 0 stays in the output with 0 ("key
// removed from window" ends with (a,0), "big test" keeps b and c at 0).
func TestReduceByKeyAndWindowInv(t *testing.T) {
	cases := []keyedCase{
		{name: "basic reduction",
			input: [][]kvi{{KV("a", 1), KV("a", 3)}},
			want:  [][]kvi{{KV("a", 4)}}},
		{name: "key already in window and new value added into window",
			input: [][]kvi{{KV("a", 1)}, {KV("a", 1)}},
			want:  [][]kvi{{KV("a", 1)}, {KV("a", 2)}}},
		{name: "new key added into window",
			input: [][]kvi{{KV("a", 1)}, {KV("a", 1), KV("b", 1)}},
			want:  [][]kvi{{KV("a", 1)}, {KV("a", 2), KV("b", 1)}}},
		{name: "key removed from window",
			input: [][]kvi{{KV("a", 1)}, {KV("a", 1)}, {}, {}},
			want:  [][]kvi{{KV("a", 1)}, {KV("a", 2)}, {KV("a", 1)}, {KV("a", 0)}}},
		{name: "larger slide time", input: largerSlideInput, want: largerSlideReduceOutput,
			window: 4 * time.Second, slide: 2 * time.Second},
		{name: "big test", input: bigInput, want: bigReduceInvOutput},
		{name: slideLongerThanWindow.name, input: slideLongerThanWindow.input,
			want:   [][]kvi{{KV("b", 1)}, {KV("b", 2)}, {KV("b", 0)}},
			window: slideLongerThanWindow.window, slide: slideLongerThanWindow.slide},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			window, slide := tc.durations()
			testWindowOperation(t, tc.input, slide, func(ds *DStream[kvi]) *DStream[kvi] {
				return ReduceByKeyAndWindowInv(ds, winAdd, winSub, window, slide, nil)
			}, tc.want, false)
		})
	}
}

// TestReduceByKeyAndWindowInvFiltered ports WindowOperationsSuite's
// testReduceByKeyAndWindowWithFilteredInverse("big test"): with the
// filter "value != 0" the incremental window gives the naive one's
// output, bigReduceOutput. Also JavaAPISuite's
// testReduceByKeyAndWindowWithInverse.
func TestReduceByKeyAndWindowInvFiltered(t *testing.T) {
	t.Run("big test", func(t *testing.T) {
		testWindowOperation(t, bigInput, time.Second, func(ds *DStream[kvi]) *DStream[kvi] {
			return ReduceByKeyAndWindowInv(ds, winAdd, winSub, 2*time.Second, time.Second, nonZeroInt[string])
		}, bigReduceOutput, false)
	})
	t.Run("larger slide time", func(t *testing.T) {
		testWindowOperation(t, largerSlideInput, 2*time.Second, func(ds *DStream[kvi]) *DStream[kvi] {
			return ReduceByKeyAndWindowInv(ds, winAdd, winSub, 4*time.Second, 2*time.Second, nonZeroInt[string])
		}, largerSlideReduceOutput, false)
	})
	t.Run(slideLongerThanWindow.name, func(t *testing.T) {
		testWindowOperation(t, slideLongerThanWindow.input, 2*time.Second, func(ds *DStream[kvi]) *DStream[kvi] {
			return ReduceByKeyAndWindowInv(ds, winAdd, winSub, time.Second, 2*time.Second, nonZeroInt[string])
		}, slideLongerThanWindow.want, false)
	})
	t.Run("java api", func(t *testing.T) {
		input := [][]kvi{
			{KV("california", 1), KV("california", 3), KV("new york", 4), KV("new york", 1)},
			{KV("california", 5), KV("california", 5), KV("new york", 3), KV("new york", 1)},
		}
		want := [][]kvi{
			{KV("california", 4), KV("new york", 5)},
			{KV("california", 14), KV("new york", 9)},
			{KV("california", 10), KV("new york", 4)},
		}
		testWindowOperation(t, input, time.Second, func(ds *DStream[kvi]) *DStream[kvi] {
			return ReduceByKeyAndWindowInv(ds, winAdd, winSub, 2*time.Second, time.Second, nil)
		}, want, false)
		testWindowOperation(t, input, time.Second, func(ds *DStream[kvi]) *DStream[kvi] {
			return ReduceByKeyAndWindow(ds, winAdd, 2*time.Second, time.Second)
		}, want, false)
	})
}

// TestCountByValueAndWindow ports WindowOperationsSuite's
// "countByValueAndWindow", JavaAPISuite's testCountByValueAndWindow and
// PySpark's test_count_by_value_and_window (window 2.5s over 0.5s
// batches, here 5s over 1s). Counts that return to zero are dropped.
func TestCountByValueAndWindow(t *testing.T) {
	type kvl = Pair[string, int64]
	t.Run("countByValueAndWindow", func(t *testing.T) {
		input := [][]string{{"a"}, {"b", "b"}, {"a", "b"}}
		want := [][]kvl{{KV("a", int64(1))}, {KV("a", int64(1)), KV("b", int64(2))}, {KV("a", int64(1)), KV("b", int64(3))}}
		testWindowOperation(t, input, time.Second, func(ds *DStream[string]) *DStream[kvl] {
			return CountByValueAndWindow(ds, 2*time.Second, time.Second)
		}, want, false)
	})
	t.Run("java api", func(t *testing.T) {
		input := [][]string{{"hello", "world"}, {"hello", "moon"}, {"hello"}}
		want := [][]kvl{
			{KV("hello", int64(1)), KV("world", int64(1))},
			{KV("hello", int64(2)), KV("world", int64(1)), KV("moon", int64(1))},
			{KV("hello", int64(2)), KV("moon", int64(1))},
			{KV("hello", int64(1))},
			{},
		}
		testWindowOperation(t, input, time.Second, func(ds *DStream[string]) *DStream[kvl] {
			return CountByValueAndWindow(ds, 2*time.Second, time.Second)
		}, want, false)
	})
	t.Run("pyspark", func(t *testing.T) {
		type kll = Pair[int, int64]
		input := [][]int{{0}, {0, 1}, {0, 1, 2}, {0, 1, 2, 3}, {0, 1, 2, 3, 4}, {0, 1, 2, 3, 4, 5}}
		row := func(counts ...int64) []kll {
			var out []kll
			for v, n := range counts {
				out = append(out, KV(v, n))
			}
			return out
		}
		want := [][]kll{
			row(1),
			row(2, 1),
			row(3, 2, 1),
			row(4, 3, 2, 1),
			row(5, 4, 3, 2, 1),
			row(5, 5, 4, 3, 2, 1),
			row(4, 4, 4, 3, 2, 1),
			row(3, 3, 3, 3, 2, 1),
			row(2, 2, 2, 2, 2, 1),
			row(1, 1, 1, 1, 1, 1),
			{},
		}
		testWindowOperation(t, input, time.Second, func(ds *DStream[int]) *DStream[kll] {
			return CountByValueAndWindow(ds, 5*time.Second, time.Second)
		}, want, false)
	})
}

// TestGroupByKeyAndWindow ports WindowOperationsSuite's
// "groupByKeyAndWindow" (Spark compares the values as sets; we check the
// order too: oldest batch first, input order within a batch), PySpark's
// test_group_by_key_and_window (window 1.5s over 0.5s batches, here 3s
// over 1s, values in order) and JavaAPISuite's testGroupByKeyAndWindow.
func TestGroupByKeyAndWindow(t *testing.T) {
	type kvs = Pair[string, []int]
	t.Run("big test", func(t *testing.T) {
		testWindowOperation(t, bigInput, time.Second, func(ds *DStream[kvi]) *DStream[kvs] {
			return GroupByKeyAndWindow(ds, 2*time.Second, time.Second)
		}, bigGroupByOutput, false)
	})
	t.Run("pyspark", func(t *testing.T) {
		input := [][]kvi{{KV("a", 0)}, {KV("a", 1)}, {KV("a", 2)}, {KV("a", 3)}, {KV("a", 4)}}
		want := [][]kvs{
			{KV("a", seqOf(0))},
			{KV("a", seqOf(0, 1))},
			{KV("a", seqOf(0, 1, 2))},
			{KV("a", seqOf(1, 2, 3))},
			{KV("a", seqOf(2, 3, 4))},
			{KV("a", seqOf(3, 4))},
			{KV("a", seqOf(4))},
			{},
		}
		testWindowOperation(t, input, time.Second, func(ds *DStream[kvi]) *DStream[kvs] {
			return GroupByKeyAndWindow(ds, 3*time.Second, time.Second)
		}, want, false)
	})
	t.Run("java api", func(t *testing.T) {
		input := [][]kvi{
			{KV("california", 1), KV("california", 3), KV("new york", 4), KV("new york", 1)},
			{KV("california", 5), KV("california", 5), KV("new york", 3), KV("new york", 1)},
		}
		// Spark compares sets of values; in order, oldest batch first.
		want := [][]kvs{
			{KV("california", seqOf(1, 3)), KV("new york", seqOf(4, 1))},
			{KV("california", seqOf(1, 3, 5, 5)), KV("new york", seqOf(4, 1, 3, 1))},
			{KV("california", seqOf(5, 5)), KV("new york", seqOf(3, 1))},
		}
		testWindowOperation(t, input, time.Second, func(ds *DStream[kvi]) *DStream[kvs] {
			return GroupByKeyAndWindow(ds, 2*time.Second, time.Second)
		}, want, false)
	})
	t.Run("window 4s slide 2s", func(t *testing.T) {
		input := [][]kvi{{KV("a", 1)}, {KV("a", 2), KV("b", 1)}, {KV("a", 3)}, {}, {KV("b", 2)}, {}}
		want := [][]kvs{
			{KV("a", seqOf(1, 2)), KV("b", seqOf(1))},
			{KV("a", seqOf(1, 2, 3)), KV("b", seqOf(1))},
			{KV("a", seqOf(3)), KV("b", seqOf(2))},
			{KV("b", seqOf(2))},
		}
		testWindowOperation(t, input, 2*time.Second, func(ds *DStream[kvi]) *DStream[kvs] {
			return GroupByKeyAndWindow(ds, 4*time.Second, 2*time.Second)
		}, want, false)
	})
}

// TestWindowOfWindow checks windows over windowed streams. Spark's
// WindowedDStream slices its parent at the parent's own slide times, so
// a window over a sliding window sees a batch once for every parent
// window that held it.
func TestWindowOfWindow(t *testing.T) {
	t.Run("sliding then tumbling", func(t *testing.T) {
		// W1 = window 2s slide 1s; W2 at t = W1(t-1s) ∪ W1(t).
		testWindowOperation(t, seqInput, 2*time.Second, func(ds *DStream[int]) *DStream[int] {
			return ds.Window(2*time.Second, time.Second).Window(2*time.Second, 2*time.Second)
		}, [][]int{{0, 0, 1}, {1, 2, 2, 3}, {3, 4, 4, 5}, {5}}, true)
	})
	t.Run("tumbling then tumbling", func(t *testing.T) {
		// W1 = window 2s slide 2s; W2 at t = W1(t-2s) ∪ W1(t).
		testWindowOperation(t, seqInput, 4*time.Second, func(ds *DStream[int]) *DStream[int] {
			return ds.Window(2*time.Second, 2*time.Second).Window(4*time.Second, 4*time.Second)
		}, [][]int{{0, 1, 2, 3}, {4, 5}}, true)
	})
	t.Run("sliding over a slower window", func(t *testing.T) {
		// W1 = window 3s slide 2s, at 2s, 4s, 6s, 8s: {0,1} {1,2,3}
		// {3,4,5} {5}. W2 = window 4s slide 2s over W1: W1(t-2s) ∪ W1(t).
		testWindowOperation(t, seqInput, 2*time.Second, func(ds *DStream[int]) *DStream[int] {
			return ds.Window(3*time.Second, 2*time.Second).Window(4*time.Second, 2*time.Second)
		}, [][]int{{0, 1}, {0, 1, 1, 2, 3}, {1, 2, 3, 3, 4, 5}, {3, 4, 5, 5}, {5}}, true)
	})
	t.Run("incremental window over a tumbling window", func(t *testing.T) {
		// The tumbling window pairs batches up, (1,2) (3,4) (5,6)
		// (7,8); reduceByKeyAndWindow 4s/2s over it covers the same
		// batches as over the input: largerSlideReduceOutput.
		testWindowOperation(t, largerSlideInput, 2*time.Second, func(ds *DStream[kvi]) *DStream[kvi] {
			return ReduceByKeyAndWindowInv(ds.Window(2*time.Second, 2*time.Second), winAdd, winSub,
				4*time.Second, 2*time.Second, nonZeroInt[string])
		}, largerSlideReduceOutput, false)
	})
	t.Run("count of a window of counts", func(t *testing.T) {
		// CountByWindow 2s/1s gives 1,2,3,3,1,0; a 3s window of those.
		testWindowOperation(t, [][]int{{1}, {1}, {1, 2}, {0}, {}, {}}, time.Second, func(ds *DStream[int]) *DStream[int64] {
			return ds.CountByWindow(2*time.Second, time.Second).Window(3*time.Second, time.Second)
		}, [][]int64{{1}, {1, 2}, {1, 2, 3}, {2, 3, 3}, {3, 3, 1}, {3, 1, 0}}, true)
	})
}

// TestStateAfterWindow runs updateStateByKey and mapWithState over
// windowed streams. As Spark's StateDStream and MapWithStateDStream, a
// state operator takes its parent's slide: it runs only at the window's
// slide times and folds in each window's values; updateStateByKey keeps
// its state when a window is empty.
func TestStateAfterWindow(t *testing.T) {
	sum := func(vs []int, old int, _ bool) (int, bool) {
		for _, v := range vs {
			old += v
		}
		return old, true
	}
	t.Run("updateStateByKey", func(t *testing.T) {
		// Tumbling 2s windows of largerSlideInput: a3, a7, a11, nothing.
		testWindowOperation(t, largerSlideInput, 2*time.Second, func(ds *DStream[kvi]) *DStream[kvi] {
			return UpdateStateByKey(ReduceByKeyAndWindow(ds, winAdd, 2*time.Second, 2*time.Second), sum)
		}, [][]kvi{{KV("a", 3)}, {KV("a", 10)}, {KV("a", 21)}, {KV("a", 21)}}, false)
	})
	t.Run("updateStateByKey with initial state", func(t *testing.T) {
		// Spark loads the initial RDD at the state stream's first
		// batch, here 2s.
		initial := []kvi{KV("a", 100), KV("z", 1)}
		testWindowOperation(t, largerSlideInput, 2*time.Second, func(ds *DStream[kvi]) *DStream[kvi] {
			return UpdateStateByKey(ReduceByKeyAndWindow(ds, winAdd, 2*time.Second, 2*time.Second), sum,
				WithInitialState(initial))
		}, [][]kvi{
			{KV("a", 103), KV("z", 1)},
			{KV("a", 110), KV("z", 1)},
			{KV("a", 121), KV("z", 1)},
			{KV("a", 121), KV("z", 1)},
		}, false)
	})
	t.Run("mapWithState", func(t *testing.T) {
		// Running total per key over the windows' (key, count) records.
		spec := StateSpec[string, int64, int64, Pair[string, int64]]{
			Function: func(_ Time, k string, v Option[int64], st *State[int64]) (Pair[string, int64], bool) {
				var n int64
				if st.Exists() {
					n = st.Get()
				}
				n += v.Value
				st.Update(n)
				return KV(k, n), true
			},
		}
		input := [][]string{{"x"}, {"x", "y"}, {}, {"y"}, {"x"}, {}}
		testWindowOperation(t, input, 3*time.Second, func(ds *DStream[string]) *DStream[Pair[string, int64]] {
			return MapWithState(CountByValueAndWindow(ds, 3*time.Second, 3*time.Second), spec).DStream
		}, [][]Pair[string, int64]{
			{KV("x", int64(2)), KV("y", int64(1))},
			{KV("x", int64(3)), KV("y", int64(2))},
		}, false)
	})
}

// TestWindowBadDurations checks that a window or slide that is not a
// positive multiple of the parent's slide fails at Start, naming the
// operator and both durations (Spark's WindowedDStream and
// ReducedWindowedDStream fail with "must be multiple of the slide
// duration of parent DStream"). ReduceByKeyAndWindow, like Spark's, is a
// window between two reduceByKeys, so its error names the window.
func TestWindowBadDurations(t *testing.T) {
	const s, ms = time.Second, time.Millisecond
	cases := []struct {
		name  string
		build func(ds *DStream[kvi]) // ds is operator #0, slide 1s
		want  []string
	}{
		{"window not a multiple", func(ds *DStream[kvi]) { discardOutput(ds.Window(2500*ms, s)) },
			[]string{"engine: operator #1 window: window duration 2.5s must be a positive multiple of the parent's slide duration 1s"}},
		{"slide not a multiple", func(ds *DStream[kvi]) { discardOutput(ds.Window(2*s, 1500*ms)) },
			[]string{"engine: operator #1 window: slide duration 1.5s must be a positive multiple of the parent's slide duration 1s"}},
		{"zero window", func(ds *DStream[kvi]) { discardOutput(ds.Window(0, s)) },
			[]string{"engine: operator #1 window: window duration 0s must be a positive multiple of the parent's slide duration 1s"}},
		{"negative window", func(ds *DStream[kvi]) { discardOutput(ds.Window(-2*s, s)) },
			[]string{"engine: operator #1 window: window duration -2s must be a positive multiple of the parent's slide duration 1s"}},
		{"zero slide", func(ds *DStream[kvi]) { discardOutput(ds.Window(2*s, 0)) },
			[]string{"engine: operator #1 window: slide duration 0s must be a positive multiple of the parent's slide duration 1s"}},
		{"negative slide", func(ds *DStream[kvi]) { discardOutput(ds.Window(2*s, -s)) },
			[]string{"engine: operator #1 window: slide duration -1s must be a positive multiple of the parent's slide duration 1s"}},
		{"both bad", func(ds *DStream[kvi]) { discardOutput(ds.Window(500*ms, 0)) },
			[]string{
				"engine: operator #1 window: window duration 500ms must be a positive multiple of the parent's slide duration 1s",
				"engine: operator #1 window: slide duration 0s must be a positive multiple of the parent's slide duration 1s",
			}},
		{"window over a window", func(ds *DStream[kvi]) { discardOutput(ds.Window(2*s, 2*s).Window(3*s, 2*s)) },
			[]string{"engine: operator #2 window: window duration 3s must be a positive multiple of the parent's slide duration 2s"}},
		// #1 reduceByKey, #2 window, #3 reduceByKey.
		{"reduceByKeyAndWindow", func(ds *DStream[kvi]) { discardOutput(ReduceByKeyAndWindow(ds, winAdd, 2500*ms, s)) },
			[]string{"engine: operator #2 window: window duration 2.5s must be a positive multiple of the parent's slide duration 1s"}},
		{"reduceByKeyAndWindow slide", func(ds *DStream[kvi]) { discardOutput(ReduceByKeyAndWindow(ds, winAdd, 2*s, -s)) },
			[]string{"engine: operator #2 window: slide duration -1s must be a positive multiple of the parent's slide duration 1s"}},
		// #1 reduceByKey, #2 reduceByKeyAndWindow.
		{"reduceByKeyAndWindowInv", func(ds *DStream[kvi]) {
			discardOutput(ReduceByKeyAndWindowInv(ds, winAdd, winSub, 2500*ms, s, nil))
		}, []string{"engine: operator #2 reduceByKeyAndWindow: window duration 2.5s must be a positive multiple of the parent's slide duration 1s"}},
		{"reduceByKeyAndWindowInv zero slide", func(ds *DStream[kvi]) {
			discardOutput(ReduceByKeyAndWindowInv(ds, winAdd, winSub, 2*s, 0, nil))
		}, []string{"engine: operator #2 reduceByKeyAndWindow: slide duration 0s must be a positive multiple of the parent's slide duration 1s"}},
		// #1 map, #2 reduce, #3 reduceByWindow.
		{"reduceByWindowInv", func(ds *DStream[kvi]) {
			vs := Map(ds, func(kv kvi) int { return kv.Value })
			discardOutput(vs.ReduceByWindowInv(winAdd, winSub, 0, s))
		}, []string{"engine: operator #3 reduceByWindow: window duration 0s must be a positive multiple of the parent's slide duration 1s"}},
		// #1 map, #2 reduce, #3 reduceByWindow.
		{"countByWindow", func(ds *DStream[kvi]) { discardOutput(ds.CountByWindow(3*s, 1200*ms)) },
			[]string{"engine: operator #3 reduceByWindow: slide duration 1.2s must be a positive multiple of the parent's slide duration 1s"}},
		// #1 mapToPair, #2 reduceByKey, #3 reduceByKeyAndWindow.
		{"countByValueAndWindow", func(ds *DStream[kvi]) { discardOutput(CountByValueAndWindow(ds, -s, s)) },
			[]string{"engine: operator #3 reduceByKeyAndWindow: window duration -1s must be a positive multiple of the parent's slide duration 1s"}},
		// #1 groupByKey, #2 window, #3 combineByKey.
		{"groupByKeyAndWindow", func(ds *DStream[kvi]) { discardOutput(GroupByKeyAndWindow(ds, 2*s, 2500*ms)) },
			[]string{"engine: operator #2 window: slide duration 2.5s must be a positive multiple of the parent's slide duration 1s"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.build(QueueStream(h.c, NewQueue[kvi](), true))
			err := h.c.Start()
			if err == nil {
				h.c.Stop(t.Context(), false)
				t.Fatalf("Start succeeded, want %q", tc.want)
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, tc.want) {
				t.Errorf("Start error:\ngot  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// discardOutput registers an output operation, so that Start has one.
func discardOutput[T any](ds *DStream[T]) { ds.ForeachRDD(func(Time, RDD[T]) error { return nil }) }
