// Package corpus makes the deterministic text that Sluice's benchmarks
// and load generators count: lines of WordsPerLine words drawn from a
// Vocabulary-word vocabulary ("w0", "w1", ...) with a Zipf skew, so a few
// words are very frequent and most are rare, as in natural text. The
// same (lines, seed) always gives the same lines, so a benchmark's count
// can be checked exactly against an offline count of the same corpus.
//
// It imports nothing of Sluice.
package corpus

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

const (
	// Vocabulary is the number of distinct words.
	Vocabulary = 10000
	// WordsPerLine is the number of words in every line.
	WordsPerLine = 10
)

// Lines returns n lines of the corpus of seed.
func Lines(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, seed))
	zipf := rand.NewZipf(r, 1.1, 1, Vocabulary-1)
	vocab := make([]string, Vocabulary)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%d", i)
	}
	out := make([]string, n)
	var sb strings.Builder
	for i := range out {
		sb.Reset()
		for w := 0; w < WordsPerLine; w++ {
			if w > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(vocab[zipf.Uint64()])
		}
		out[i] = sb.String()
	}
	return out
}
