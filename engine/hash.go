package engine

import (
	"fmt"
	"math"
	"unsafe"
)

// KeyHasher may be implemented by a key type to choose its own partition
// hash. The hash must depend only on the key's value: every node of a
// cluster must send a key to the same partition.
type KeyHasher interface {
	HashKey() uint64
}

// The partition hash is part of the on-disk and on-wire contract: state and
// shuffle output are placed by it, so it must not change between versions
// and must not depend on the process (Go's maphash seeds are random per
// process, so they cannot be used).
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

func fnvString(s string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

func mix64(x uint64) uint64 {
	// splitmix64's finaliser: spreads small integer keys over partitions.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// hasherFor returns a hash function for keys of type K that does not
// allocate for strings and integers. Other comparable types fall back to
// their printed form, which is stable for values without pointers.
func hasherFor[K comparable]() func(K) uint64 {
	var zero K
	switch any(zero).(type) {
	case string:
		return func(k K) uint64 { return fnvString(*(*string)(unsafe.Pointer(&k))) }
	case int:
		return func(k K) uint64 { return mix64(uint64(*(*int)(unsafe.Pointer(&k)))) }
	case int64:
		return func(k K) uint64 { return mix64(uint64(*(*int64)(unsafe.Pointer(&k)))) }
	case int32:
		return func(k K) uint64 { return mix64(uint64(*(*int32)(unsafe.Pointer(&k)))) }
	case uint64:
		return func(k K) uint64 { return mix64(*(*uint64)(unsafe.Pointer(&k))) }
	case uint32:
		return func(k K) uint64 { return mix64(uint64(*(*uint32)(unsafe.Pointer(&k)))) }
	case bool:
		return func(k K) uint64 {
			if *(*bool)(unsafe.Pointer(&k)) {
				return mix64(1)
			}
			return mix64(0)
		}
	case float64:
		return func(k K) uint64 { return mix64(math.Float64bits(*(*float64)(unsafe.Pointer(&k)))) }
	}
	if _, ok := any(zero).(KeyHasher); ok {
		return func(k K) uint64 { return any(k).(KeyHasher).HashKey() }
	}
	return func(k K) uint64 { return fnvString(fmt.Sprintf("%#v", k)) }
}

// partitioner maps keys to one of n partitions by the stable hash.
type partitioner[K comparable] struct {
	n    int
	hash func(K) uint64
}

func newPartitioner[K comparable](n int) partitioner[K] {
	return partitioner[K]{n: n, hash: hasherFor[K]()}
}

func (p partitioner[K]) of(k K) int {
	if p.n == 1 {
		return 0
	}
	return int(p.hash(k) % uint64(p.n))
}
