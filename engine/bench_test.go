package engine

import (
	"sync"
	"testing"

	"github.com/sluice-stream/sluice/engine/corpus"
)

var (
	corpusOnce sync.Once
	corpus1M   []string
)

func millionLines() []string {
	corpusOnce.Do(func() { corpus1M = corpus.Lines(1_000_000, 1) })
	return corpus1M
}

// BenchmarkWordCount runs a stateful word count (FlatMapEmit, MapToPair,
// UpdateStateByKey) over 1,000,000 lines in one batch, and reports
// lines/s; corpus generation is not timed.
func BenchmarkWordCount(b *testing.B) {
	b.Run("state", func(b *testing.B) { benchWordCount(b, false) })
	b.Run("reduce+state", func(b *testing.B) { benchWordCount(b, true) })
}

// benchWordCount counts words with UpdateStateByKey, after a ReduceByKey
// (map-side combining) when combine is set.
func benchWordCount(b *testing.B, combine bool) {
	lines := millionLines()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := newHarness(b, func(c *Config) { c.Partitions = 0; c.Parallelism = 0 })
		words := FlatMapEmit(QueueStream(h.c, NewQueue(lines), true), Words)
		pairs := MapToPair(words, func(w string) (string, int64) { return w, 1 })
		if combine {
			pairs = ReduceByKey(pairs, addInt64)
		}
		var keys int64
		UpdateStateByKey(pairs, func(vs []int64, old int64, _ bool) (int64, bool) {
			for _, v := range vs {
				old += v
			}
			return old, true
		}).ForeachRDD(func(_ Time, r RDD[Pair[string, int64]]) error {
			keys = r.Count()
			return nil
		})
		h.start()
		h.run(1)
		if keys == 0 {
			b.Fatal("no words counted")
		}
	}
	b.ReportMetric(float64(len(lines))*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkWords measures the tokenizer alone.
func BenchmarkWords(b *testing.B) {
	lines := millionLines()[:100_000]
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		for _, l := range lines {
			Words(l, func(string) { n++ })
		}
	}
	b.ReportMetric(float64(len(lines))*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkHandWrittenWordCount is the reference a word count is measured
// against: one goroutine splitting the same corpus on white space and
// counting in a Go map, nothing else.
func BenchmarkHandWrittenWordCount(b *testing.B) {
	lines := millionLines()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		counts := make(map[string]int64, 10000)
		for _, l := range lines {
			Words(l, func(w string) { counts[w]++ })
		}
		if len(counts) == 0 {
			b.Fatal("no words counted")
		}
	}
	b.ReportMetric(float64(len(lines))*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
