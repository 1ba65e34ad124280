package corpus

import (
	"slices"
	"strings"
	"testing"
)

// The corpus is a function of (lines, seed): the same twice, another for
// another seed, WordsPerLine words a line from the vocabulary, skewed.
func TestLines(t *testing.T) {
	a, b, other := Lines(2000, 7), Lines(2000, 7), Lines(2000, 8)
	if !slices.Equal(a, b) {
		t.Fatal("two corpora of one seed differ")
	}
	if slices.Equal(a, other) {
		t.Fatal("corpora of seeds 7 and 8 are equal")
	}
	counts := map[string]int{}
	for _, l := range a {
		ws := strings.Fields(l)
		if len(ws) != WordsPerLine {
			t.Fatalf("line %q has %d words, want %d", l, len(ws), WordsPerLine)
		}
		for _, w := range ws {
			counts[w]++
		}
	}
	if counts["w0"] < 10*counts["w100"] || len(counts) > Vocabulary {
		t.Errorf("w0 %d times, w100 %d times, %d distinct words: want a Zipf skew within %d words",
			counts["w0"], counts["w100"], len(counts), Vocabulary)
	}
}
