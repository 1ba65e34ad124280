package recovery

import (
	"math"
	"sort"
)

// seqRange is the inclusive range of sequence numbers [Lo, Hi]. Its msgpack
// tags are part of the snapshot format.
type seqRange struct {
	Lo uint64 `msgpack:"l"`
	Hi uint64 `msgpack:"h"`
}

// seqSet is a set of sequence numbers kept as sorted, disjoint and
// non-adjacent ranges, so a producer's contiguous sequences (the usual case)
// cost one range however many there are. add changes the set in place, so a
// View gets a clone.
type seqSet []seqRange

// find returns the index of the first range that contains x or ends just
// before it (so x would extend it), or len(s).
func (s seqSet) find(x uint64) int {
	return sort.Search(len(s), func(i int) bool {
		return s[i].Hi >= x || s[i].Hi+1 == x
	})
}

func (s seqSet) contains(x uint64) bool {
	i := s.find(x)
	return i < len(s) && s[i].Lo <= x && x <= s[i].Hi
}

// max returns the highest member, and false for an empty set.
func (s seqSet) max() (uint64, bool) {
	if len(s) == 0 {
		return 0, false
	}
	return s[len(s)-1].Hi, true
}

// add returns the set with x in it, changed in place where it can be.
func (s seqSet) add(x uint64) seqSet {
	i := s.find(x)
	if i < len(s) && s[i].Lo <= x && x <= s[i].Hi {
		return s
	}
	out := s
	switch {
	case i == len(out):
		return append(out, seqRange{x, x})
	case out[i].Hi != math.MaxUint64 && out[i].Hi+1 == x:
		out[i].Hi = x
		if i+1 < len(out) && x != math.MaxUint64 && out[i+1].Lo == x+1 {
			out[i].Hi = out[i+1].Hi
			out = append(out[:i+1], out[i+2:]...)
		}
		return out
	case out[i].Lo == x+1:
		out[i].Lo = x
		return out
	}
	out = append(out, seqRange{})
	copy(out[i+1:], out[i:])
	out[i] = seqRange{x, x}
	return out
}

func (s seqSet) clone() seqSet {
	if s == nil {
		return nil
	}
	return append(make(seqSet, 0, len(s)), s...)
}

// valid reports whether s is sorted, disjoint and non-adjacent.
func (s seqSet) valid() bool {
	for i, r := range s {
		if r.Lo > r.Hi || (i > 0 && (s[i-1].Hi == math.MaxUint64 || s[i-1].Hi+1 >= r.Lo)) {
			return false
		}
	}
	return true
}
