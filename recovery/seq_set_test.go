package recovery

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// seqSet against a map, on random inserts from a small range (so ranges
// meet, merge and split often).
func TestSeqSetMatchesModel(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		var s seqSet
		model := map[uint64]bool{}
		var hi uint64
		for range 200 {
			x := rng.Uint64N(120)
			s = s.add(x)
			model[x] = true
			hi = max(hi, x)
			if !s.valid() {
				t.Fatalf("seed %d: invalid after add(%d): %v", seed, x, s)
			}
		}
		for x := uint64(0); x < 130; x++ {
			if s.contains(x) != model[x] {
				t.Fatalf("seed %d: contains(%d) = %v", seed, x, s.contains(x))
			}
		}
		if m, _ := s.max(); m != hi {
			t.Fatalf("seed %d: max %d, want %d", seed, m, hi)
		}
	}
}

func TestSeqSetCompact(t *testing.T) {
	var s seqSet
	for x := uint64(1); x <= 10000; x++ {
		s = s.add(x)
	}
	if len(s) != 1 {
		t.Fatalf("contiguous sequences take %d ranges", len(s))
	}
	s = s.add(10002).add(10001)
	if !reflect.DeepEqual(s, seqSet{{1, 10002}}) {
		t.Fatalf("filled gap not merged: %v", s)
	}
}

func TestSeqSetEdges(t *testing.T) {
	s := seqSet{}.add(math.MaxUint64).add(math.MaxUint64 - 1).add(0)
	if !reflect.DeepEqual(s, seqSet{{0, 0}, {math.MaxUint64 - 1, math.MaxUint64}}) || !s.valid() {
		t.Fatalf("%v", s)
	}
	if _, ok := seqSet(nil).max(); ok || seqSet(nil).contains(0) {
		t.Fatal("empty set has members")
	}
	if (seqSet{{5, 3}}).valid() || (seqSet{{1, 2}, {3, 4}}).valid() || (seqSet{{1, math.MaxUint64}, {0, 0}}).valid() {
		t.Fatal("valid accepts a bad set")
	}
}
