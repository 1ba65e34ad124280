package engine

// Semantics of the stateful operators, ported from Spark Streaming's
// BasicOperationsSuite (updateStateByKey) and MapWithStateSuite, with the
// expected output and state written out per batch.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-stream/sluice/state"
)

// runningSum is Spark's updateFunc: Some(values.sum + state.getOrElse(0)).
func runningSum(vs []int, old int, _ bool) (int, bool) {
	for _, v := range vs {
		old += v
	}
	return old, true
}

// The input of Spark's updateStateByKey and mapWithState tests.
var stateInput = [][]string{{"a"}, {"a", "b"}, {"a", "b", "c"}, {"a", "b"}, {"a"}, {}}

// Spark "updateStateByKey": a running count per key; every key with state
// is in every batch's output, including batches without its records.
func TestUpdateStateByKey(t *testing.T) {
	testOperation(t, stateInput,
		func(ds *DStream[string]) *DStream[Pair[string, int]] {
			return UpdateStateByKey(MapToPair(ds, withOne), runningSum)
		},
		[][]Pair[string, int]{
			{kvs("a", 1)},
			{kvs("a", 2), kvs("b", 1)},
			{kvs("a", 3), kvs("b", 2), kvs("c", 1)},
			{kvs("a", 4), kvs("b", 3), kvs("c", 1)},
			{kvs("a", 5), kvs("b", 3), kvs("c", 1)},
			{kvs("a", 5), kvs("b", 3), kvs("c", 1)},
		}, false)
}

// Spark "updateStateByKey - simple with initial value RDD": keys start
// from the initial state; "c" is in the first batch's output though it
// has no record there.
func TestUpdateStateByKeyWithInitialState(t *testing.T) {
	testOperation(t, stateInput,
		func(ds *DStream[string]) *DStream[Pair[string, int]] {
			return UpdateStateByKey(MapToPair(ds, withOne), runningSum,
				WithInitialState([]Pair[string, int]{kvs("a", 1), kvs("c", 2)}))
		},
		[][]Pair[string, int]{
			{kvs("a", 2), kvs("c", 2)},
			{kvs("a", 3), kvs("b", 1), kvs("c", 2)},
			{kvs("a", 4), kvs("b", 2), kvs("c", 3)},
			{kvs("a", 5), kvs("b", 3), kvs("c", 3)},
			{kvs("a", 6), kvs("b", 3), kvs("c", 3)},
			{kvs("a", 6), kvs("b", 3), kvs("c", 3)},
		}, false)
}

// Spark "updateStateByKey - object lifecycle": the function removes a key
// seen twice in a row without new values. Spark's input has null (no RDD)
// where ours has an empty batch; the function is called with no values in
// both. On top of Spark's test, a call log checks that the function is
// called for every key with state, with empty values when the key has no
// record, and that a removed key comes back without state (exists false)
// when it gets a record again (batch 7).
func TestUpdateStateByKeyRemovesKey(t *testing.T) {
	type obj struct{ Counter, Expire int } // exported: state is stored
	var mu sync.Mutex
	var calls []string
	update := func(vs []int, st obj, exists bool) (obj, bool) {
		mu.Lock()
		calls = append(calls, fmt.Sprintf("values=%v exists=%v counter=%d", vs, exists, st.Counter))
		mu.Unlock()
		sum := 0
		for _, v := range vs {
			sum += v
		}
		if sum == 0 {
			st.Expire++
		} else {
			st.Counter += sum
			st.Expire = 0
		}
		return st, st.Expire != 2
	}
	h := newHarness(t)
	q := NewQueue([]string{"a", "b"}, nil, []string{"a", "c", "a"}, []string{"c"}, nil, nil, []string{"b"})
	pairs := MapToPair(QueueStream(h.c, q, true), withOne)
	out := record(MapValues(UpdateStateByKey(pairs, update), func(o obj) int { return o.Counter }))
	h.start()
	wantOut := [][]Pair[string, int]{
		{kvs("a", 1), kvs("b", 1)},
		{kvs("a", 1), kvs("b", 1)},
		{kvs("a", 3), kvs("c", 1)},
		{kvs("a", 3), kvs("c", 2)},
		{kvs("c", 2)},
		{},
		{kvs("b", 1)},
	}
	wantCalls := [][]string{
		{"values=[1] exists=false counter=0", "values=[1] exists=false counter=0"},
		{"values=[] exists=true counter=1", "values=[] exists=true counter=1"},
		{"values=[1 1] exists=true counter=1", "values=[] exists=true counter=1", "values=[1] exists=false counter=0"},
		{"values=[] exists=true counter=3", "values=[1] exists=true counter=1"},
		{"values=[] exists=true counter=3", "values=[] exists=true counter=2"},
		{"values=[] exists=true counter=2"},
		{"values=[1] exists=false counter=0"},
	}
	for i, want := range wantCalls {
		h.run(1)
		mu.Lock()
		got := calls
		calls = nil
		mu.Unlock()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("batch %d: update calls\ngot  %q\nwant %q", i+1, got, want)
		}
	}
	checkBatches(t, out.get(), wantOut, false)
}

// UpdateStateByKey hands the function a key's values in input order, from
// every input partition.
func TestUpdateStateByKeyValuesInInputOrder(t *testing.T) {
	testOperation(t, [][]string{{"a1", "b1", "a2", "a3"}, {"b2", "a4"}, {}},
		func(ds *DStream[string]) *DStream[Pair[string, string]] {
			pairs := MapToPair(ds, func(s string) (string, string) { return s[:1], s[1:] })
			return UpdateStateByKey(pairs, func(vs []string, old string, _ bool) (string, bool) {
				return old + strings.Join(vs, ""), true
			})
		},
		[][]Pair[string, string]{
			{KV("a", "123"), KV("b", "1")},
			{KV("a", "1234"), KV("b", "12")},
			{KV("a", "1234"), KV("b", "12")},
		}, false)
}

// testMapWithState is MapWithStateSuite.testOperation: the input words
// are mapped to (word, 1) and through MapWithState; the emitted records
// and the state snapshots of every batch are compared as sets, as Spark
// does.
func testMapWithState[S, M any](t *testing.T, input [][]string, spec StateSpec[string, int, S, M],
	wantOut [][]M, wantState [][]Pair[string, S]) {
	t.Helper()
	h := newHarness(t)
	ms := MapWithState(MapToPair(QueueStream(h.c, NewQueue(input...), true), withOne), spec)
	out, snaps := record(ms.DStream), record(ms.StateSnapshots())
	h.start()
	h.run(len(wantOut))
	checkBatches(t, out.get(), wantOut, false)
	checkBatches(t, snaps.get(), wantState, false)
}

// The input and state snapshots of Spark's basic mapWithState tests: the
// first batch is empty.
var (
	mwsInput = [][]string{{}, {"a"}, {"a", "b"}, {"a", "b", "c"}, {"a", "b"}, {"a"}, {}}
	mwsState = [][]Pair[string, int]{
		{},
		{kvs("a", 1)},
		{kvs("a", 2), kvs("b", 1)},
		{kvs("a", 3), kvs("b", 2), kvs("c", 1)},
		{kvs("a", 4), kvs("b", 3), kvs("c", 1)},
		{kvs("a", 5), kvs("b", 3), kvs("c", 1)},
		{kvs("a", 5), kvs("b", 3), kvs("c", 1)},
	}
)

// runningCount updates the state to the key's count and returns it.
func runningCount(v Option[int], st *State[int]) int {
	sum := v.Value + st.Option().Value
	st.Update(sum)
	return sum
}

// Spark "mapWithState - basic operations with simple API": the state is a
// running count and the function returns it. Only keys with records are
// touched: unlike UpdateStateByKey, the output holds one record per input
// record.
func TestMapWithStateBasic(t *testing.T) {
	testMapWithState(t, mwsInput, StateSpec[string, int, int, int]{
		Function: func(_ Time, _ string, v Option[int], st *State[int]) (int, bool) {
			return runningCount(v, st), true
		},
	}, [][]int{{}, {1}, {2, 1}, {3, 2, 1}, {4, 3}, {5}, {}}, mwsState)
}

// Spark "mapWithState - basic operations with advanced API": the function
// returns the key doubled.
func TestMapWithStateAdvanced(t *testing.T) {
	testMapWithState(t, mwsInput, StateSpec[string, int, int, string]{
		Function: func(_ Time, k string, v Option[int], st *State[int]) (string, bool) {
			runningCount(v, st)
			return k + k, true
		},
	}, [][]string{{}, {"aa"}, {"aa", "bb"}, {"aa", "bb", "cc"}, {"aa", "bb"}, {"aa"}, {}}, mwsState)
}

// Spark "mapWithState - states as mapped data": the function returns
// (key, new state).
func TestMapWithStateStatesAsMappedData(t *testing.T) {
	testMapWithState(t, mwsInput, StateSpec[string, int, int, Pair[string, int]]{
		Function: func(_ Time, k string, v Option[int], st *State[int]) (Pair[string, int], bool) {
			return KV(k, runningCount(v, st)), true
		},
	}, [][]Pair[string, int]{
		{},
		{kvs("a", 1)},
		{kvs("a", 2), kvs("b", 1)},
		{kvs("a", 3), kvs("b", 2), kvs("c", 1)},
		{kvs("a", 4), kvs("b", 3)},
		{kvs("a", 5)},
		{},
	}, mwsState)
}

// Spark "mapWithState - initial states, with nothing returned as from
// mapping function": keys start from InitialState, already in the first
// (empty) batch's snapshot; emit false (Spark's None) emits nothing.
func TestMapWithStateInitialState(t *testing.T) {
	testMapWithState(t, mwsInput, StateSpec[string, int, int, int]{
		Function: func(_ Time, _ string, v Option[int], st *State[int]) (int, bool) {
			runningCount(v, st)
			return 0, false
		},
		InitialState: []Pair[string, int]{kvs("a", 5), kvs("b", 10), kvs("c", -20), kvs("d", 0)},
	}, make([][]int, len(mwsInput)), [][]Pair[string, int]{
		{kvs("a", 5), kvs("b", 10), kvs("c", -20), kvs("d", 0)},
		{kvs("a", 6), kvs("b", 10), kvs("c", -20), kvs("d", 0)},
		{kvs("a", 7), kvs("b", 11), kvs("c", -20), kvs("d", 0)},
		{kvs("a", 8), kvs("b", 12), kvs("c", -19), kvs("d", 0)},
		{kvs("a", 9), kvs("b", 13), kvs("c", -19), kvs("d", 0)},
		{kvs("a", 10), kvs("b", 13), kvs("c", -19), kvs("d", 0)},
		{kvs("a", 10), kvs("b", 13), kvs("c", -19), kvs("d", 0)},
	})
}

// Spark "mapWithState - state removing": a key with state is removed
// (State.Remove) and its key emitted; a key without state gets one.
func TestMapWithStateRemove(t *testing.T) {
	testMapWithState(t,
		[][]string{{}, {"a"}, {"a", "b"}, {"a", "b", "c"}, {"a", "b", "c"}, {"a", "b"}, {"a"}, {}},
		StateSpec[string, int, int, string]{
			Function: func(_ Time, k string, v Option[int], st *State[int]) (string, bool) {
				if st.Exists() {
					st.Remove()
					return k, true
				}
				st.Update(v.Value)
				return "", false
			},
			Partitions: 1,
		},
		[][]string{{}, {}, {"a"}, {"b"}, {"a", "c"}, {"b"}, {"a"}, {}},
		[][]Pair[string, int]{
			{}, {kvs("a", 1)}, {kvs("b", 1)}, {kvs("a", 1), kvs("c", 1)}, {kvs("b", 1)}, {kvs("a", 1)}, {}, {},
		})
}

// The function is called once per record, in input order within a batch
// (across input partitions), each call seeing the state the previous one
// left. With one state partition the output is in input order too.
func TestMapWithStateUpdatesInInputOrder(t *testing.T) {
	h := newHarness(t)
	ms := MapWithState(MapToPair(QueueStream(h.c, NewQueue([]string{"a", "b", "a", "a"}, []string{"b", "a"}), true), withOne),
		StateSpec[string, int, int, string]{
			Function: func(_ Time, k string, v Option[int], st *State[int]) (string, bool) {
				return fmt.Sprintf("%s=%d", k, runningCount(v, st)), true
			},
			Partitions: 1,
		})
	out := record(ms.DStream)
	h.start()
	h.run(2)
	checkBatches(t, out.get(), [][]string{{"a=1", "b=1", "a=2", "a=3"}, {"b=2", "a=4"}}, true)
}

// Spark "mapWithState - state timing out", with exact batches. Spark only
// looks for idle keys at checkpoint batches, so its test checks only that
// b and c time out at some point; ours looks every batch: a key last
// updated at batch u times out at the first batch t with u < t - Timeout,
// here 4 batches after its last record with a 3s timeout. The timeout
// call has IsTimingOut true and value None, and sees the last state. A
// key with a record in a batch ("a" at 6000 ms) is refreshed before the
// batch looks for idle keys.
func TestMapWithStateTimeout(t *testing.T) {
	input := [][]string{{"a", "b", "c"}, {"a", "b"}, {"a"}, {}, {}, {"a"}, {}, {}, {}, {}, {}}
	testMapWithState(t, input, StateSpec[string, int, int, string]{
		Function: func(bt Time, k string, v Option[int], st *State[int]) (string, bool) {
			if !st.IsTimingOut() {
				runningCount(v, st)
				return "", false
			}
			return fmt.Sprintf("%s timed out at %v: value=%v state=%d", k, bt, v, st.Get()), true
		},
		Timeout: 3 * testBatch,
	}, [][]string{
		{}, {}, {}, {},
		{"c timed out at 5000 ms: value=None state=1"},
		{"b timed out at 6000 ms: value=None state=2"},
		{}, {}, {},
		{"a timed out at 10000 ms: value=None state=4"},
		{},
	}, [][]Pair[string, int]{
		{kvs("a", 1), kvs("b", 1), kvs("c", 1)},
		{kvs("a", 2), kvs("b", 2), kvs("c", 1)},
		{kvs("a", 3), kvs("b", 2), kvs("c", 1)},
		{kvs("a", 3), kvs("b", 2), kvs("c", 1)},
		{kvs("a", 3), kvs("b", 2)},
		{kvs("a", 4)},
		{kvs("a", 4)}, {kvs("a", 4)}, {kvs("a", 4)},
		{},
		{},
	})
}

// A record refreshes its key's idle time even when the function leaves
// the state as it was (Spark's MapWithStateRDDRecord does the same): "k"
// is updated once, at 1000 ms, but has records until 3000 ms, so with a 2s
// timeout it times out at 6000 ms, not 4000 ms.
func TestMapWithStateRecordRefreshesWithoutUpdate(t *testing.T) {
	testMapWithState(t, [][]string{{"k"}, {"k"}, {"k"}, {}, {}, {}},
		StateSpec[string, int, int, string]{
			Function: func(bt Time, k string, _ Option[int], st *State[int]) (string, bool) {
				if !st.Exists() {
					st.Update(7)
				}
				return fmt.Sprintf("%s %v", k, bt), st.IsTimingOut()
			},
			Timeout: 2 * testBatch,
		},
		[][]string{{}, {}, {}, {}, {}, {"k 6000 ms"}},
		[][]Pair[string, int]{{kvs("k", 7)}, {kvs("k", 7)}, {kvs("k", 7)}, {kvs("k", 7)}, {kvs("k", 7)}, {}})
}

// Updating a state that is timing out is a bug in the function (Spark
// throws IllegalArgumentException): the task panics and the batch fails
// with a *TaskError naming the operator and the key's partition.
func TestMapWithStateUpdateWhileTimingOutFailsBatch(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, func(c *Config) { c.DataDir = dir })
	ms := MapWithState(MapToPair(QueueStream(h.c, NewQueue([]string{"a"}), true), withOne),
		StateSpec[string, int, int, int]{
			Function: func(_ Time, _ string, v Option[int], st *State[int]) (int, bool) {
				st.Update(1) // even when timing out
				return 0, false
			},
			Timeout: testBatch,
		})
	record(ms.DStream)
	h.start()
	h.run(2) // "a" updated at 1000 ms times out at 3000 ms
	b := h.step()
	var te *TaskError
	if !errors.As(b.Err, &te) {
		t.Fatalf("batch %v: err %v, want a *TaskError", b.Time, b.Err)
	}
	wantPart := newPartitioner[string](2).of("a")
	if te.Time != 3000 || te.Operator != "#2 mapWithState" || te.Partition != wantPart ||
		!strings.Contains(fmt.Sprint(te.Panic), "timing out") {
		t.Errorf("got %+v, want time 3000 ms, operator #2 mapWithState, partition %d, a timing-out panic", te, wantPart)
	}
	if err := awaitTermination(t, h); !errors.As(err, &te) {
		t.Errorf("AwaitTermination = %v, want the *TaskError", err)
	}
	h.c.Stop(context.Background(), false)
	if got, want := committedState(t, dir, ms.stores), []string{"(a,1)"}; !slices.Equal(got, want) {
		t.Errorf("state after the failed batch %v, want that of the batch before, %v", got, want)
	}
}

// committedState returns every key's committed state in the state store
// of data directory dir, printed and sorted. Call it only once the
// context has stopped.
func committedState[K comparable, S any](t *testing.T, dir string, st *stateStores[K, S]) []string {
	t.Helper()
	store, err := state.Open(filepath.Join(dir, "state"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var out []string
	for p := range st.n {
		err := store.Scan(st.op.id, p, func(kb, vb []byte) error {
			k, err := st.keys.decode(kb)
			if err != nil {
				return err
			}
			e, err := decodeEntry[S](vb)
			out = append(out, fmt.Sprint(KV(k, e.val)))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(out)
	return out
}

// A batch that fails after a stateful operator has run leaves the state
// of the batch before (its writes never reach the store): a re-run
// of the batch must start from the same state. Here the output after
// UpdateStateByKey fails at 2000 ms.
func TestFailedBatchLeavesPreviousState(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, func(c *Config) { c.DataDir = dir })
	pairs := MapToPair(QueueStream(h.c, NewQueue([]string{"a", "b"}, []string{"a", "c"}), true), withOne)
	counts := UpdateStateByKey(pairs, runningSum)
	errSink := errors.New("sink unavailable")
	counts.ForeachRDD(func(bt Time, _ RDD[Pair[string, int]]) error {
		if bt == 2000 {
			return errSink
		}
		return nil
	})
	h.start()
	h.run(1)
	if b := h.step(); !errors.Is(b.Err, errSink) {
		t.Fatalf("batch %v: err %v, want %v", b.Time, b.Err, errSink)
	}
	if err := awaitTermination(t, h); !errors.Is(err, errSink) {
		t.Fatalf("AwaitTermination = %v, want %v", err, errSink)
	}
	h.c.Stop(context.Background(), false)
	st := counts.op.state.(*stateStores[string, int])
	if got, want := committedState(t, dir, st), []string{"(a,1)", "(b,1)"}; !slices.Equal(got, want) {
		t.Errorf("state after the failed batch %v, want that of batch 1000 ms, %v", got, want)
	}
}

// mustPanic reports whether fn panics.
func mustPanic(fn func()) (panicked bool) {
	defer func() { panicked = recover() != nil }()
	fn()
	return false
}

// Spark "state - get, exists, update, remove": State's accessors and the
// calls that are mistakes (Get without state, Update or Remove after
// Remove or while timing out).
func TestState(t *testing.T) {
	check := func(name string, st *State[int], want Option[int], timingOut, removed bool) {
		t.Helper()
		if st.Exists() != want.Valid || st.Option() != want || st.IsTimingOut() != timingOut {
			t.Errorf("%s: exists=%v option=%v timingOut=%v, want %v, timingOut=%v",
				name, st.Exists(), st.Option(), st.IsTimingOut(), want, timingOut)
		}
		if want.Valid && st.Get() != want.Value {
			t.Errorf("%s: Get() = %d, want %d", name, st.Get(), want.Value)
		}
		if !want.Valid && !mustPanic(func() { st.Get() }) {
			t.Errorf("%s: Get() without state did not panic", name)
		}
		if timingOut || removed {
			if !mustPanic(func() { st.Update(-1) }) || !mustPanic(func() { st.Remove() }) {
				t.Errorf("%s: Update or Remove did not panic", name)
			}
		}
	}
	st := &State[int]{}
	check("new", st, None[int](), false, false)
	st = &State[int]{value: 1, exists: true}
	check("wrapped", st, Some(1), false, false)
	st.Update(2)
	check("updated", st, Some(2), false, false)
	if !st.updated {
		t.Error("Update did not mark the state updated")
	}
	st = &State[int]{}
	st.Update(2)
	check("updated new", st, Some(2), false, false)
	st.Remove()
	check("removed", st, None[int](), false, true)
	st = &State[int]{value: 3, exists: true, timingOut: true}
	check("timing out", st, Some(3), true, false)
}
