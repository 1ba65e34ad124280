package state

import (
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

const (
	benchBatchKeys = 100_000 // keys a batch changes
	benchParts     = 8
)

// benchKey spreads the keys i = 0, 1, 2... over the key space, as hashed
// keys are, so that writes are not appends.
func benchKey(i uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, i*0x9e3779b97f4a7c15)
}

func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "state"), Options{CreateIfMissing: true, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// fill writes keys [from, to) with 8-byte values, in batches of
// benchBatchKeys, each through Part.Set, WriteDelta and Apply.
func fill(b *testing.B, s *Store, bt *int64, from, to uint64) {
	val := make([]byte, 8)
	for lo := from; lo < to; lo += benchBatchKeys {
		*bt++
		batch, err := s.Begin(*bt)
		if err != nil {
			b.Fatal(err)
		}
		for i := lo; i < min(lo+benchBatchKeys, to); i++ {
			binary.BigEndian.PutUint64(val, i)
			batch.Part(opA, int(i%benchParts)).Set(benchKey(i), append([]byte(nil), val...), false)
		}
		if err := batch.WriteDelta(); err != nil {
			b.Fatal(err)
		}
		if err := batch.Apply(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStateUpdate writes b.N new keys with 8-byte values through
// Part.Set, in batches of 100k keys, each written as a synced delta and
// applied.
func BenchmarkStateUpdate(b *testing.B) {
	s := openBench(b)
	var bt int64
	b.ResetTimer()
	fill(b, s, &bt, 0, uint64(b.N))
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	if n := s.Keys(opA); n != int64(b.N) {
		b.Fatalf("Keys = %d after writing %d keys", n, b.N)
	}
}

// BenchmarkStateGet reads existing keys, at random, of a store of 1M keys.
func BenchmarkStateGet(b *testing.B) {
	const keys = 1_000_000
	s := openBench(b)
	var bt int64
	fill(b, s, &bt, 0, keys)
	rng := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for b.Loop() {
		i := rng.Uint64N(keys)
		v, ok, err := s.Get(opA, int(i%benchParts), benchKey(i))
		if err != nil || !ok || binary.BigEndian.Uint64(v) != i {
			b.Fatalf("Get of key %d = %x, %v, %v", i, v, ok, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
}
