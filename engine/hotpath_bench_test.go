package engine

import (
	"testing"
)

// Benchmarks of the word count's hot path, one stage at a time, on the
// corpus of BenchmarkWordCount. They only report; nothing here asserts a
// time.

// BenchmarkTokenizeCount splits 100,000 lines into words and counts them
// in a map, as a map task of ReduceByKey does: the per-word cost that
// the whole word count is built on.
func BenchmarkTokenizeCount(b *testing.B) {
	lines := millionLines()[:100_000]
	counts := make(map[string]int64, 10_000)
	for b.Loop() {
		clear(counts)
		for _, l := range lines {
			Words(l, func(w string) { counts[w]++ })
		}
	}
	b.ReportMetric(float64(len(lines))*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkShuffle runs shuffleByKey over the (word, 1) pairs of 100,000
// lines in 25 input partitions (a batch of 25 blocks) into 4 partitions:
// combine, with map-side combining as ReduceByKey does; group, without,
// as GroupByKey does.
func BenchmarkShuffle(b *testing.B) {
	lines := millionLines()[:100_000]
	const inputs = 25
	var pairs [][]Pair[string, int64]
	for i := range inputs {
		var part []Pair[string, int64]
		for _, l := range lines[i*len(lines)/inputs : (i+1)*len(lines)/inputs] {
			Words(l, func(w string) { part = append(part, Pair[string, int64]{w, 1}) })
		}
		pairs = append(pairs, part)
	}
	in := materialized(pairs)
	run := &batchRun{exec: newExecutor(2)}
	for _, tc := range []struct {
		name    string
		mapSide bool
	}{{"combine", true}, {"group", false}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				out, err := shuffleByKey(run, "bench", in, 4,
					func(v int64) int64 { return v }, addInt64, addInt64, tc.mapSide)
				if err != nil || out.n != 4 {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(lines))*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// BenchmarkStateCodec encodes and decodes a word count's state value as
// stored (storedEntry[int64], msgpack): UpdateStateByKey does both for
// every key a batch touches.
func BenchmarkStateCodec(b *testing.B) {
	e := storedEntry[int64]{Updated: 1_700_000_000_000, Value: 12345}
	raw, err := encodeValue(e)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeValue(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeEntry[int64](raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
