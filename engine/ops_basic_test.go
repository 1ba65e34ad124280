package engine

// Semantics of the stateless operators, ported from Spark Streaming's
// BasicOperationsSuite: same inputs, same expected output per batch. The
// harness uses 2 partitions, as Spark's TestSuiteBase (numInputPartitions
// = 2), so a batch of 1..4 arrives as [1 2] [3 4].

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runOperation feeds input, one slice per batch, through op on a harness
// adjusted by mods, runs the given number of batches and returns each
// batch's output.
func runOperation[T, U any](t *testing.T, input [][]T, op func(*DStream[T]) *DStream[U], batches int, mods ...func(*Config)) [][]U {
	t.Helper()
	h := newHarness(t, mods...)
	out := record(op(QueueStream(h.c, NewQueue(input...), true)))
	h.start()
	h.run(batches)
	return out.get()
}

// testOperation2 is Spark's two-input testOperation: two queue streams in
// one context, each fed one slice per batch.
func testOperation2[T, U, V any](t *testing.T, in1 [][]T, in2 [][]U,
	op func(*DStream[T], *DStream[U]) *DStream[V], expected [][]V, ordered bool) {
	t.Helper()
	h := newHarness(t)
	s1 := QueueStream(h.c, NewQueue(in1...), true)
	s2 := QueueStream(h.c, NewQueue(in2...), true)
	out := record(op(s1, s2))
	h.start()
	h.run(len(expected))
	checkBatches(t, out.get(), expected, ordered)
}

func ints(lo, hi int) []int {
	var out []int
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

func withOne(s string) (string, int)        { return s, 1 }
func withX(s string) (string, string)       { return s, "x" }
func sumInt(a, b int) int                   { return a + b }
func kvs(k string, v int) Pair[string, int] { return KV(k, v) }

// Spark "map": r.map(_.toString).
func TestMap(t *testing.T) {
	testOperation(t, [][]int{ints(1, 4), ints(5, 8), ints(9, 12)},
		func(ds *DStream[int]) *DStream[string] { return Map(ds, strconv.Itoa) },
		[][]string{{"1", "2", "3", "4"}, {"5", "6", "7", "8"}, {"9", "10", "11", "12"}}, true)
}

// Spark "flatMap": r.flatMap(x => Seq(x, x * 2)), in record order.
func TestFlatMap(t *testing.T) {
	testOperation(t, [][]int{ints(1, 4), ints(5, 8), ints(9, 12)},
		func(ds *DStream[int]) *DStream[int] {
			return FlatMap(ds, func(x int) []int { return []int{x, x * 2} })
		},
		[][]int{{1, 2, 2, 4, 3, 6, 4, 8}, {5, 10, 6, 12, 7, 14, 8, 16}, {9, 18, 10, 20, 11, 22, 12, 24}}, true)
}

// FlatMapEmit is FlatMap with a push function: Spark's "flatMap" case
// again, and a record may emit nothing.
func TestFlatMapEmit(t *testing.T) {
	testOperation(t, [][]int{ints(1, 4), {}, {0, 5}},
		func(ds *DStream[int]) *DStream[int] {
			return FlatMapEmit(ds, func(x int, emit func(int)) {
				for i := 0; i < x%3; i++ {
					emit(x * 10)
				}
			})
		},
		[][]int{{10, 20, 20, 40}, {}, {50, 50}}, true)
}

// MapToPair is Spark's map(x => (x, f(x))) on a pair DStream.
func TestMapToPair(t *testing.T) {
	testOperation(t, [][]string{{"a", "bb", "ccc"}, {}, {""}},
		func(ds *DStream[string]) *DStream[Pair[string, int]] {
			return MapToPair(ds, func(s string) (string, int) { return s, len(s) })
		},
		[][]Pair[string, int]{{kvs("a", 1), kvs("bb", 2), kvs("ccc", 3)}, {}, {kvs("", 0)}}, true)
}

// Spark "filter": r.filter(x => x % 2 == 0).
func TestFilter(t *testing.T) {
	testOperation(t, [][]int{ints(1, 4), ints(5, 8), ints(9, 12)},
		func(ds *DStream[int]) *DStream[int] { return ds.Filter(func(x int) bool { return x%2 == 0 }) },
		[][]int{{2, 4}, {6, 8}, {10, 12}}, true)
}

// Spark "mapPartitions": the sum of each of the 2 input partitions.
func TestMapPartitions(t *testing.T) {
	testOperation(t, [][]int{ints(1, 4), ints(5, 8), ints(9, 12)},
		func(ds *DStream[int]) *DStream[int] {
			return MapPartitions(ds, func(xs []int) []int {
				sum := 0
				for _, x := range xs {
					sum += x
				}
				return []int{sum}
			})
		},
		[][]int{{3, 7}, {11, 15}, {19, 23}}, true)
}

// Spark "glom": one record per input partition, holding its records.
func TestGlom(t *testing.T) {
	testOperation(t, [][]int{ints(1, 4), ints(5, 8), ints(9, 12)},
		func(ds *DStream[int]) *DStream[[]int] { return Glom(ds) },
		[][][]int{{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}, {{9, 10}, {11, 12}}}, true)
}

// checkRepartition checks that every batch has the given partition sizes
// and, as Spark's test does, holds exactly the input's records.
func checkRepartition(t *testing.T, input [][]int, got [][][]int, sizes [][]int) {
	t.Helper()
	for i, parts := range got {
		var n []int
		var all []int
		for _, p := range parts {
			n = append(n, len(p))
			all = append(all, p...)
		}
		slices.Sort(all)
		if !slices.Equal(n, sizes[i]) {
			t.Errorf("batch %d: partition sizes %v, want %v", i+1, n, sizes[i])
		}
		if !slices.Equal(all, input[i]) {
			t.Errorf("batch %d: records %v, want %v", i+1, all, input[i])
		}
	}
}

// Spark "repartition (more partitions)": 2 input partitions into 5. Spark
// checks the partition count and the set of records; our round robin also
// fixes the sizes. A batch smaller than n (and an empty one) still has n
// partitions, some empty, as Spark's repartition always yields n.
func TestRepartitionMore(t *testing.T) {
	input := [][]int{ints(1, 100), ints(101, 200), ints(201, 300), {1, 2, 3}, nil}
	got := runOperation(t, input, func(ds *DStream[int]) *DStream[[]int] { return Glom(ds.Repartition(5)) }, len(input))
	checkRepartition(t, input, got, [][]int{
		{20, 20, 20, 20, 20}, {20, 20, 20, 20, 20}, {20, 20, 20, 20, 20}, {1, 1, 1, 0, 0}, {0, 0, 0, 0, 0}})
}

// Spark "repartition (fewer partitions)": 5 input partitions into 2.
func TestRepartitionFewer(t *testing.T) {
	input := [][]int{ints(1, 100), ints(101, 200), ints(201, 300)}
	got := runOperation(t, input, func(ds *DStream[int]) *DStream[[]int] { return Glom(ds.Repartition(2)) }, len(input),
		func(c *Config) { c.Partitions = 5 })
	checkRepartition(t, input, got, [][]int{{50, 50}, {50, 50}, {50, 50}})
}

// Spark "union": s.union(s.map(_ + 4)); the partitions of the first
// stream come first, so the records are in order.
func TestUnion(t *testing.T) {
	testOperation(t, [][]int{ints(1, 4), ints(101, 104), ints(201, 204)},
		func(ds *DStream[int]) *DStream[int] {
			return ds.Union(Map(ds, func(x int) int { return x + 4 }))
		},
		[][]int{ints(1, 8), ints(101, 108), ints(201, 208)}, true)
}

// Spark "StreamingContext.union": a union of 3 streams.
func TestUnionThree(t *testing.T) {
	testOperation(t, [][]int{ints(1, 4), ints(101, 104), ints(201, 204)},
		func(ds *DStream[int]) *DStream[int] {
			return ds.Union(Map(ds, func(x int) int { return x + 4 }), Map(ds, func(x int) int { return x + 8 }))
		},
		[][]int{ints(1, 12), ints(101, 112), ints(201, 212)}, true)
}

// Spark "count": one record per batch, 0 for an empty batch.
func TestCount(t *testing.T) {
	testOperation(t, [][]int{{}, ints(1, 1), ints(1, 2), ints(1, 3), ints(1, 4)},
		func(ds *DStream[int]) *DStream[int64] { return ds.Count() },
		[][]int64{{0}, {1}, {2}, {3}, {4}}, true)
}

// Spark "reduce": s.reduce(_ + _). An empty batch yields no record, as
// Spark's reduce over an empty RDD yields none.
func TestReduce(t *testing.T) {
	testOperation(t, [][]int{ints(1, 4), ints(5, 8), {}, ints(9, 12), {7}},
		func(ds *DStream[int]) *DStream[int] { return ds.Reduce(sumInt) },
		[][]int{{10}, {26}, {}, {42}, {7}}, true)
}

// Reduce merges partition results in partition order: a non-commutative
// f shows the order (string concatenation).
func TestReduceKeepsPartitionOrder(t *testing.T) {
	testOperation(t, [][]string{{"a", "b", "c", "d", "e"}},
		func(ds *DStream[string]) *DStream[string] {
			return ds.Reduce(func(a, b string) string { return a + b })
		},
		[][]string{{"abcde"}}, true)
}

// Spark "countByValue".
func TestCountByValue(t *testing.T) {
	testOperation(t, [][]int{ints(1, 1), {1, 1, 1}, ints(1, 2), {1, 1, 2, 2}},
		func(ds *DStream[int]) *DStream[Pair[int, int64]] { return CountByValue(ds) },
		[][]Pair[int, int64]{{KV(1, int64(1))}, {KV(1, int64(3))}, {KV(1, int64(1)), KV(2, int64(1))},
			{KV(2, int64(2)), KV(1, int64(2))}}, false)
}

// Spark "reduceByKey": s.map(x => (x, 1)).reduceByKey(_ + _).
func TestReduceByKey(t *testing.T) {
	testOperation(t, [][]string{{"a", "a", "b"}, {"", ""}, {}},
		func(ds *DStream[string]) *DStream[Pair[string, int]] {
			return ReduceByKey(MapToPair(ds, withOne), sumInt)
		},
		[][]Pair[string, int]{{kvs("a", 2), kvs("b", 1)}, {kvs("", 2)}, {}}, false)
}

// Spark "groupByKey": s.map(x => (x, 1)).groupByKey().
func TestGroupByKey(t *testing.T) {
	testOperation(t, [][]string{{"a", "a", "b"}, {"", ""}, {}},
		func(ds *DStream[string]) *DStream[Pair[string, []int]] {
			return GroupByKey(MapToPair(ds, withOne))
		},
		[][]Pair[string, []int]{{KV("a", []int{1, 1}), KV("b", []int{1})}, {KV("", []int{1, 1})}, {}}, false)
}

// GroupByKey keeps a key's values in input order, across input partitions
// and whatever the partition count (Spark does not promise an order; we
// do, so that a re-run of a batch produces the same bytes).
func TestGroupByKeyValuesInInputOrder(t *testing.T) {
	input := [][]string{{"a1", "b1", "a2", "c1", "a3", "b2", "a4", "c2", "a5"}}
	want := [][]Pair[string, []string]{{
		KV("a", []string{"a1", "a2", "a3", "a4", "a5"}), KV("b", []string{"b1", "b2"}), KV("c", []string{"c1", "c2"})}}
	for _, n := range []int{1, 2, 8} {
		t.Run(fmt.Sprintf("partitions=%d", n), func(t *testing.T) {
			got := runOperation(t, input, func(ds *DStream[string]) *DStream[Pair[string, []string]] {
				return GroupByKey(MapToPair(ds, func(s string) (string, string) { return s[:1], s }))
			}, len(want), func(c *Config) { c.Partitions = n })
			checkBatches(t, got, want, false)
		})
	}
}

// CombineByKey with Spark's three functions: a (sum, count) combiner.
// mergeCombiners must run, as "a" has values in both input partitions.
func TestCombineByKey(t *testing.T) {
	type sc struct{ sum, n int }
	testOperation(t, [][]string{{"a", "b", "a", "a"}, {}, {"c"}},
		func(ds *DStream[string]) *DStream[Pair[string, string]] {
			pairs := MapToPair(ds, func(s string) (string, int) { return s, len(s) * 10 })
			comb := CombineByKey(pairs,
				func(v int) sc { return sc{v, 1} },
				func(c sc, v int) sc { return sc{c.sum + v, c.n + 1} },
				func(c, d sc) sc { return sc{c.sum + d.sum, c.n + d.n} })
			return MapValues(comb, func(c sc) string { return fmt.Sprintf("%d/%d", c.sum, c.n) })
		},
		[][]Pair[string, string]{{KV("a", "30/3"), KV("b", "10/1")}, {}, {KV("c", "10/1")}}, false)
}

// Spark "mapValues": reduceByKey(_ + _).mapValues(_ + 10).
func TestMapValues(t *testing.T) {
	testOperation(t, [][]string{{"a", "a", "b"}, {"", ""}, {}},
		func(ds *DStream[string]) *DStream[Pair[string, int]] {
			return MapValues(ReduceByKey(MapToPair(ds, withOne), sumInt), func(v int) int { return v + 10 })
		},
		[][]Pair[string, int]{{kvs("a", 12), kvs("b", 11)}, {kvs("", 12)}, {}}, false)
}

// Spark "flatMapValues": reduceByKey(_ + _).flatMapValues(x => Seq(x, x + 10)).
func TestFlatMapValues(t *testing.T) {
	testOperation(t, [][]string{{"a", "a", "b"}, {"", ""}, {}},
		func(ds *DStream[string]) *DStream[Pair[string, int]] {
			return FlatMapValues(ReduceByKey(MapToPair(ds, withOne), sumInt), func(v int) []int { return []int{v, v + 10} })
		},
		[][]Pair[string, int]{{kvs("a", 2), kvs("a", 12), kvs("b", 1), kvs("b", 11)}, {kvs("", 2), kvs("", 12)}, {}}, false)
}

// Spark "cogroup": a key of either stream gets both sides' values, an
// empty list for the side without it.
func TestCogroup(t *testing.T) {
	type cg = Tuple2[[]int, []string]
	testOperation2(t,
		[][]string{{"a", "a", "b"}, {"a", ""}, {""}, {}},
		[][]string{{"a", "a", "b"}, {"b", ""}, {}, {}},
		func(s1, s2 *DStream[string]) *DStream[Pair[string, cg]] {
			return Cogroup(MapToPair(s1, withOne), MapToPair(s2, withX))
		},
		[][]Pair[string, cg]{
			{KV("a", cg{[]int{1, 1}, []string{"x", "x"}}), KV("b", cg{[]int{1}, []string{"x"}})},
			{KV("a", cg{[]int{1}, nil}), KV("b", cg{nil, []string{"x"}}), KV("", cg{[]int{1}, []string{"x"}})},
			{KV("", cg{[]int{1}, nil})},
			{},
		}, false)
}

// The inputs of Spark's join tests.
var (
	joinIn1 = [][]string{{"a", "b"}, {"a", ""}, {""}, {}}
	joinIn2 = [][]string{{"a", "b"}, {"b", ""}, {}, {""}}
)

// Spark "join".
func TestJoin(t *testing.T) {
	type j = Tuple2[int, string]
	testOperation2(t, joinIn1, joinIn2,
		func(s1, s2 *DStream[string]) *DStream[Pair[string, j]] {
			return Join(MapToPair(s1, withOne), MapToPair(s2, withX))
		},
		[][]Pair[string, j]{{KV("a", j{1, "x"}), KV("b", j{1, "x"})}, {KV("", j{1, "x"})}, {}, {}}, false)
}

// Join pairs every value of a key on one side with every value on the
// other (Spark's join is a cartesian product per key).
func TestJoinCrossProductPerKey(t *testing.T) {
	type j = Tuple2[int, string]
	testOperation2(t,
		[][]Pair[string, int]{{KV("k", 1), KV("k", 2), KV("z", 9)}},
		[][]Pair[string, string]{{KV("k", "x"), KV("k", "y")}},
		func(s1 *DStream[Pair[string, int]], s2 *DStream[Pair[string, string]]) *DStream[Pair[string, j]] {
			return Join(s1, s2)
		},
		[][]Pair[string, j]{{KV("k", j{1, "x"}), KV("k", j{1, "y"}), KV("k", j{2, "x"}), KV("k", j{2, "y"})}}, false)
}

// Spark "leftOuterJoin".
func TestLeftOuterJoin(t *testing.T) {
	type j = Tuple2[int, Option[string]]
	testOperation2(t, joinIn1, joinIn2,
		func(s1, s2 *DStream[string]) *DStream[Pair[string, j]] {
			return LeftOuterJoin(MapToPair(s1, withOne), MapToPair(s2, withX))
		},
		[][]Pair[string, j]{
			{KV("a", j{1, Some("x")}), KV("b", j{1, Some("x")})},
			{KV("", j{1, Some("x")}), KV("a", j{1, None[string]()})},
			{KV("", j{1, None[string]()})},
			{},
		}, false)
}

// Spark "rightOuterJoin".
func TestRightOuterJoin(t *testing.T) {
	type j = Tuple2[Option[int], string]
	testOperation2(t, joinIn1, joinIn2,
		func(s1, s2 *DStream[string]) *DStream[Pair[string, j]] {
			return RightOuterJoin(MapToPair(s1, withOne), MapToPair(s2, withX))
		},
		[][]Pair[string, j]{
			{KV("a", j{Some(1), "x"}), KV("b", j{Some(1), "x"})},
			{KV("", j{Some(1), "x"}), KV("b", j{None[int](), "x"})},
			{},
			{KV("", j{None[int](), "x"})},
		}, false)
}

// Spark "fullOuterJoin".
func TestFullOuterJoin(t *testing.T) {
	type j = Tuple2[Option[int], Option[string]]
	testOperation2(t, joinIn1, joinIn2,
		func(s1, s2 *DStream[string]) *DStream[Pair[string, j]] {
			return FullOuterJoin(MapToPair(s1, withOne), MapToPair(s2, withX))
		},
		[][]Pair[string, j]{
			{KV("a", j{Some(1), Some("x")}), KV("b", j{Some(1), Some("x")})},
			{KV("", j{Some(1), Some("x")}), KV("a", j{Some(1), None[string]()}), KV("b", j{None[int](), Some("x")})},
			{KV("", j{Some(1), None[string]()})},
			{KV("", j{None[int](), Some("x")})},
		}, false)
}

// Spark "transform": an RDD-level map to strings. The function also gets
// the batch time, which is the RDD's time.
func TestTransform(t *testing.T) {
	testOperation(t, [][]int{ints(1, 4), ints(5, 8), ints(9, 12)},
		func(ds *DStream[int]) *DStream[string] {
			return Transform(ds, func(bt Time, r RDD[int]) (RDD[string], error) {
				if r.Time() != bt {
					return RDD[string]{}, fmt.Errorf("rdd time %v, batch %v", r.Time(), bt)
				}
				parts := make([][]string, r.NumPartitions())
				for i := range parts {
					for _, v := range r.Partition(i) {
						parts[i] = append(parts[i], strconv.Itoa(v))
					}
				}
				return NewRDD(bt, parts...), nil
			})
		},
		[][]string{{"1", "2", "3", "4"}, {"5", "6", "7", "8"}, {"9", "10", "11", "12"}}, true)
}

// Spark "transformWith": an RDD join written in the function.
func TestTransformWith(t *testing.T) {
	type j = Tuple2[int, string]
	testOperation2(t, joinIn1, joinIn2,
		func(s1, s2 *DStream[string]) *DStream[Pair[string, j]] {
			return TransformWith(MapToPair(s1, withOne), MapToPair(s2, withX),
				func(bt Time, a RDD[Pair[string, int]], b RDD[Pair[string, string]]) (RDD[Pair[string, j]], error) {
					var out []Pair[string, j]
					for _, l := range a.Collect() {
						for _, r := range b.Collect() {
							if l.Key == r.Key {
								out = append(out, KV(l.Key, j{l.Value, r.Value}))
							}
						}
					}
					return NewRDD(bt, out), nil
				})
		},
		[][]Pair[string, j]{{KV("a", j{1, "x"}), KV("b", j{1, "x"})}, {KV("", j{1, "x"})}, {}, {}}, false)
}

// A word count gives the same counts whatever the partition count: the
// partition count decides where keys go, never what they sum to.
func TestWordCountSameForAnyPartitionCount(t *testing.T) {
	input := [][]string{
		{"a b c", "b c", "c"},
		{"the quick brown fox", "jumps over", "the lazy dog", "the end"},
		{},
		{"x x x x x x x x x x"},
	}
	want := [][]Pair[string, int]{
		{kvs("a", 1), kvs("b", 2), kvs("c", 3)},
		{kvs("the", 3), kvs("quick", 1), kvs("brown", 1), kvs("fox", 1), kvs("jumps", 1), kvs("over", 1),
			kvs("lazy", 1), kvs("dog", 1), kvs("end", 1)},
		{},
		{kvs("x", 10)},
	}
	for _, n := range []int{1, 2, 8} {
		t.Run(fmt.Sprintf("partitions=%d", n), func(t *testing.T) {
			got := runOperation(t, input, func(ds *DStream[string]) *DStream[Pair[string, int]] {
				return ReduceByKey(MapToPair(FlatMap(ds, strings.Fields), withOne), sumInt)
			}, len(want), func(c *Config) { c.Partitions = n })
			checkBatches(t, got, want, false)
		})
	}
}

// Mistakes in building the graph are reported by Start, each naming the
// operator ("#id kind") and the bad value, all at once.
func TestBuildErrors(t *testing.T) {
	words := func(c *Context) *DStream[string] { return QueueStream(c, NewQueue[string](), true) } // #0
	pairs := func(c *Context) *DStream[Pair[string, int]] { return MapToPair(words(c), withOne) }  // #0, #1
	nop := func(_ Time, _ string, _ Option[int], _ *State[int]) (int, bool) { return 0, false }
	for _, tc := range []struct {
		name  string
		build func(c *Context)
		want  []string
	}{
		{"ReduceByKey WithPartitions(-1)", func(c *Context) {
			record(ReduceByKey(pairs(c), sumInt, WithPartitions(-1)))
		}, []string{"engine: operator #2 reduceByKey: partition count -1 must be at least 1"}},
		{"GroupByKey WithPartitions(0)", func(c *Context) {
			record(GroupByKey(pairs(c), WithPartitions(0)))
		}, []string{"engine: operator #2 groupByKey: partition count 0 must be at least 1"}},
		{"Join WithPartitions(-1)", func(c *Context) {
			record(Join(pairs(c), pairs(c), WithPartitions(-1))) // #0-#1, #2-#3, join #4
		}, []string{"engine: operator #4 join: partition count -1 must be at least 1"}},
		{"Repartition(0)", func(c *Context) {
			record(words(c).Repartition(0))
		}, []string{"engine: operator #1 repartition: partition count 0 must be at least 1"}},
		{"UpdateStateByKey WithPartitions(-2)", func(c *Context) {
			record(UpdateStateByKey(pairs(c), runningSum, WithPartitions(-2)))
		}, []string{"engine: operator #2 updateStateByKey: partition count -2 must be at least 1"}},
		{"UpdateStateByKey initial state of the wrong type", func(c *Context) {
			record(UpdateStateByKey(pairs(c), runningSum, WithInitialState([]Pair[string, string]{KV("a", "b")})))
		}, []string{"engine: operator #2 updateStateByKey: initial state is []engine.Pair[string,string], want []engine.Pair[string,int]"}},
		{"MapWithState nil Function", func(c *Context) {
			record(MapWithState(pairs(c), StateSpec[string, int, int, int]{}).DStream)
		}, []string{"engine: operator #2 mapWithState: StateSpec.Function is nil"}},
		{"MapWithState Partitions -1", func(c *Context) {
			record(MapWithState(pairs(c), StateSpec[string, int, int, int]{Function: nop, Partitions: -1}).DStream)
		}, []string{"engine: operator #2 mapWithState: partition count -1 must be at least 1"}},
		{"MapWithState Timeout not a multiple of the batch", func(c *Context) {
			record(MapWithState(pairs(c), StateSpec[string, int, int, int]{Function: nop, Timeout: 1500 * time.Millisecond}).DStream)
		}, []string{"engine: operator #2 mapWithState: timeout 1.5s must be a positive multiple of the batch duration 1s"}},
		{"MapWithState negative Timeout", func(c *Context) {
			record(MapWithState(pairs(c), StateSpec[string, int, int, int]{Function: nop, Timeout: -time.Second}).DStream)
		}, []string{"engine: operator #2 mapWithState: timeout -1s must be a positive multiple of the batch duration 1s"}},
		{"Print(-1)", func(c *Context) {
			words(c).Print(-1)
		}, []string{"engine: operator #1 print: Print count -1 must not be negative"}},
		{"SaveAsTextFiles without prefix", func(c *Context) {
			words(c).SaveAsTextFiles("", "txt")
		}, []string{"engine: operator #1 saveAsTextFiles: SaveAsTextFiles needs a prefix"}},
		{"parent of another context", func(c *Context) {
			other, err := NewContext(c.Config())
			if err != nil {
				t.Fatal(err)
			}
			record(words(c).Union(words(other)))
		}, []string{"engine: operator #1 union: a parent belongs to another Context"}},
		{"every mistake at once", func(c *Context) {
			ds := words(c)
			record(ds.Repartition(-3))
			ds.Print(-2)
		}, []string{
			"engine: operator #1 repartition: partition count -3 must be at least 1",
			"engine: operator #3 print: Print count -2 must not be negative",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.build(h.c)
			err := h.c.Start()
			if err == nil {
				h.c.Stop(context.Background(), false)
				t.Fatalf("Start succeeded, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Start = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

// TestBuildErrorNamesNamedOperator checks that a build error names the
// operator by the name given with Named, even when Named comes after the
// mistake was recorded.
func TestBuildErrorNamesNamedOperator(t *testing.T) {
	h := newHarness(t)
	pairs := MapToPair(QueueStream(h.c, NewQueue[string](), true), func(s string) (string, int) { return s, 1 })
	ReduceByKey(pairs, func(a, b int) int { return a + b }, WithPartitions(-2)).Named("totals").Print(1)
	err := h.c.Start()
	if err == nil || !strings.Contains(err.Error(), `#2 reduceByKey "totals"`) || !strings.Contains(err.Error(), "-2") {
		t.Fatalf("Start() = %v, want an error naming #2 reduceByKey \"totals\" and -2", err)
	}
}
