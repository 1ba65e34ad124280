package engine

import (
	"strings"
	"testing"
)

func TestSmokeWordCount(t *testing.T) {
	input := [][]string{{"a b", "b c"}, {"c c"}, {}, {"a"}}
	testOperation(t, input, func(ds *DStream[string]) *DStream[Pair[string, int64]] {
		words := FlatMap(ds, strings.Fields)
		pairs := MapToPair(words, func(w string) (string, int64) { return w, 1 })
		return UpdateStateByKey(pairs, func(vs []int64, old int64, _ bool) (int64, bool) {
			for _, v := range vs {
				old += v
			}
			return old, true
		})
	}, [][]Pair[string, int64]{
		{KV("a", int64(1)), KV("b", int64(2)), KV("c", int64(1))},
		{KV("a", int64(1)), KV("b", int64(2)), KV("c", int64(3))},
		{KV("a", int64(1)), KV("b", int64(2)), KV("c", int64(3))},
		{KV("a", int64(2)), KV("b", int64(2)), KV("c", int64(3))},
	}, false)
}
