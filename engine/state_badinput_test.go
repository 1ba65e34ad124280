package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Tests of state and window data the engine cannot store faithfully
// (codec.go): a type that cannot be stored is refused when the graph is
// built, and a value that turns out not to be encodable at run time fails
// its batch, naming the operator and the key, with nothing of the batch
// committed.

// unencodable returns a value msgpack cannot encode: a func, or a map
// holding a channel.
func unencodable(kind string) any {
	if kind == "func" {
		return func() {}
	}
	return map[string]any{"c": make(chan int)}
}

// TestStateValueNotEncodableFailsBatch gives stateful operators whose
// state type is an interface (accepted when the graph is built) a value
// msgpack cannot encode for the key "bad": a func, or a map holding a
// channel. The batch must fail with an error naming the operator and the
// key; the context stops; no state of the batch is committed, not even
// the other keys'.
func TestStateValueNotEncodableFailsBatch(t *testing.T) {
	// The value of a word is -1 for "bad", 1 for any other.
	pairs := func(lines *DStream[string]) *DStream[Pair[string, int64]] {
		return MapToPair(lines, func(w string) (string, int64) {
			if w == "bad" {
				return w, -1
			}
			return w, 1
		})
	}
	updateState := func(kind string) func(*DStream[string]) {
		return func(lines *DStream[string]) {
			UpdateStateByKey(pairs(lines), func(vs []int64, old any, _ bool) (any, bool) {
				if len(vs) > 0 && vs[0] < 0 {
					return unencodable(kind), true
				}
				n, _ := old.(int64)
				return n + int64(len(vs)), true
			}).Named("bad-state").ForeachRDD(func(Time, RDD[Pair[string, any]]) error { return nil })
		}
	}
	mapWithState := func(kind string) func(*DStream[string]) {
		return func(lines *DStream[string]) {
			MapWithState(pairs(lines), StateSpec[string, int64, any, string]{
				Function: func(_ Time, k string, _ Option[int64], s *State[any]) (string, bool) {
					if k == "bad" {
						s.Update(unencodable(kind))
					} else {
						s.Update(int64(1))
					}
					return k, true
				},
			}).Named("bad-state").ForeachRDD(func(Time, RDD[string]) error { return nil })
		}
	}
	cases := []struct {
		name  string
		build func(*DStream[string])
	}{
		{"UpdateStateByKey, a func in an any", updateState("func")},
		{"UpdateStateByKey, a map holding a chan in an any", updateState("chan")},
		{"MapWithState, a func in an any", mapWithState("func")},
		{"MapWithState, a map holding a chan in an any", mapWithState("chan")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.build(QueueStream(h.c, NewQueue([]string{"ok", "bad", "fine"}), true))
			h.start()
			b := h.step()
			if b.Err == nil {
				t.Fatal("the batch storing an unencodable state succeeded")
			}
			for _, want := range []string{`"bad-state"`, "key bad", "encoding"} {
				if !strings.Contains(b.Err.Error(), want) {
					t.Errorf("the batch's error does not name %q:\n%v", want, b.Err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := h.c.AwaitTermination(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("AwaitTermination: %v, want the batch's failure: a batch that cannot commit stops the context", err)
			}
			for _, k := range []string{"ok", "fine"} {
				if sv, err := h.c.QueryState("bad-state", k); !errors.Is(err, ErrUnknownKey) {
					t.Errorf("QueryState(%q) after the failed batch: %+v, %v; want ErrUnknownKey: nothing of the batch commits", k, sv, err)
				}
			}
		})
	}
}

// hiddenState keeps its count in an unexported field, which msgpack
// would silently not store.
type hiddenState struct {
	Word  string
	count int //lint:ignore U1000 the field under test is never read
}

// hiddenKey is a key type with an unexported field.
type hiddenKey struct{ id int }

// funcState holds a func, which msgpack cannot encode.
type funcState struct {
	Count int
	Merge func(int, int) int
}

// nestedHidden hides the unexported field one level down.
type nestedHidden struct {
	Inner []hiddenState
}

// stampedState holds a time.Time, whose fields are unexported but which
// encodes itself (encoding.BinaryMarshaler): storable.
type stampedState struct {
	Count int
	Seen  time.Time
}

// TestStateTypeNotStorableRefusedAtStart checks the build-time check of
// key and state types: a type with an unexported field, or with a func,
// at any depth, is refused by Start with a message naming the operator,
// the type and the field and saying what to do; a type that encodes
// itself is accepted.
func TestStateTypeNotStorableRefusedAtStart(t *testing.T) {
	pairsOf := func(lines *DStream[string]) *DStream[Pair[string, int]] {
		return MapToPair(lines, func(w string) (string, int) { return w, 1 })
	}
	cases := []struct {
		name  string
		build func(*DStream[string])
		want  []string // in Start's error; nil: Start succeeds
	}{
		{name: "UpdateStateByKey state with an unexported field",
			build: func(lines *DStream[string]) {
				UpdateStateByKey(pairsOf(lines), func(vs []int, s hiddenState, _ bool) (hiddenState, bool) {
					return s, true
				}).Named("hidden").ForeachRDD(func(Time, RDD[Pair[string, hiddenState]]) error { return nil })
			},
			want: []string{`"hidden"`, "state type", "hiddenState", "unexported field count", "export the fields"}},
		{name: "MapWithState key with an unexported field",
			build: func(lines *DStream[string]) {
				keyed := MapToPair(lines, func(w string) (hiddenKey, int) { return hiddenKey{len(w)}, 1 })
				MapWithState(keyed, StateSpec[hiddenKey, int, int, int]{
					Function: func(_ Time, _ hiddenKey, v Option[int], s *State[int]) (int, bool) { return v.Value, true },
				}).Named("hidden-key").ForeachRDD(func(Time, RDD[int]) error { return nil })
			},
			want: []string{`"hidden-key"`, "key type", "hiddenKey", "unexported field id"}},
		{name: "UpdateStateByKey state with a func field",
			build: func(lines *DStream[string]) {
				UpdateStateByKey(pairsOf(lines), func(vs []int, s funcState, _ bool) (funcState, bool) {
					return s, true
				}).Named("with-func").ForeachRDD(func(Time, RDD[Pair[string, funcState]]) error { return nil })
			},
			want: []string{`"with-func"`, "state type", "is a func"}},
		{name: "UpdateStateByKey state with an unexported field one level down",
			build: func(lines *DStream[string]) {
				UpdateStateByKey(pairsOf(lines), func(vs []int, s nestedHidden, _ bool) (nestedHidden, bool) {
					return s, true
				}).Named("nested").ForeachRDD(func(Time, RDD[Pair[string, nestedHidden]]) error { return nil })
			},
			want: []string{`"nested"`, "state type", "hiddenState", "unexported field count"}},
		{name: "UpdateStateByKey state with a time.Time is accepted",
			build: func(lines *DStream[string]) {
				UpdateStateByKey(pairsOf(lines), func(vs []int, s stampedState, _ bool) (stampedState, bool) {
					return s, true
				}).Named("stamped").ForeachRDD(func(Time, RDD[Pair[string, stampedState]]) error { return nil })
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.build(QueueStream(h.c, NewQueue[string](), true))
			err := h.c.Start()
			if err == nil {
				h.c.Stop(context.Background(), false)
			}
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Start: %v, want it to accept the type", err)
			case tc.want == nil:
				return
			case err == nil:
				t.Fatal("Start accepted a type that cannot be stored faithfully")
			}
			for _, w := range append([]string{"cannot be stored"}, tc.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Start's error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

// hiddenWord is a window's record type with an unexported field.
type hiddenWord struct {
	word string
	N    int
}

// TestWindowRecordTypeNotStorable checks windows the way the state types
// are checked: a window keeps the records of the batches it spans with
// the state (saveSlice), encoded like state, so a record type with an
// unexported field would come back without it after a restart. Start
// must refuse it as it refuses such a state type. If it does not, the
// test shows what a restart does to the window.
func TestWindowRecordTypeNotStorable(t *testing.T) {
	dir := t.TempDir()
	out := newOutLog()
	build := func(c *Context) {
		recs := Map(IngestStream(c, "lines"), func(s string) hiddenWord { return hiddenWord{word: s, N: 1} })
		recordTo(out, "window", Map(recs.Window(3*testBatch, testBatch), func(h hiddenWord) string {
			return fmt.Sprintf("%s/%d", h.word, h.N)
		}))
	}
	h := newDurableHarness(t, dir)
	build(h.c)
	err := h.c.Start()
	if err != nil {
		for _, w := range []string{"cannot be stored", "hiddenWord", "unexported field word"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Start's error does not say %q:\n%v", w, err)
			}
		}
		return
	}
	h.t.Cleanup(func() { h.c.Stop(context.Background(), false) })
	for i := 1; i <= 2; i++ {
		mustIngest(t, h.c, "p", uint64(i), fmt.Sprint("w", i))
		h.run(1)
	}
	stopContext(t, h.c, false)
	h2 := newDurableHarness(t, dir)
	h2.clock.Set(time.UnixMilli(2 * testBatch.Milliseconds()))
	build(h2.c)
	h2.start()
	mustIngest(t, h2.c, "p", 3, "w3")
	h2.run(1)
	got := out.batches("window")[batchTime(3)]
	t.Errorf("Start accepted a window over %T, whose field word is not stored: after a restart the window at %v holds %q, want [w1/1 w2/1 w3/1]",
		hiddenWord{}, batchTime(3), got)
}
