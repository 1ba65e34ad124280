package state

import (
	"encoding/binary"
	"fmt"
)

// The on-disk format of the state store. Pebble owns the bytes on disk
// (its WAL, sstables, MANIFEST, each checksummed); this package owns the
// keys and values written into it. Integers are big-endian, so keys sort
// by operator, then partition, then key bytes.
//
// Main keys, the committed state (value: the engine's encoding):
//
//	+-----+-----------------+------------------+------------------+
//	| 'k' | operator uint32 | partition uint32 | key (bytes)      |
//	+-----+-----------------+------------------+------------------+
//
// Slices, a window's per-batch data (value: the engine's encoding):
//
//	+-----+-----------------+-----------------+------------------+
//	| 's' | operator uint32 | batch time u64  | partition uint32 |
//	+-----+-----------------+-----------------+------------------+
//
// Operator metadata (value: bytes): 'o' | operator uint32 | name.
// Key counts (value: u64): 'c' | operator uint32.
//
// Deltas, the changes of a batch not yet applied:
//
//	+-----+-----------------+--------------------------------------+
//	| 'd' | batch time u64  | main, slice or operator-metadata key |
//	+-----+-----------------+--------------------------------------+
//	value: 0x00 (delete the key) | 0x01 followed by the value to set
//
// Store metadata: 'm' | name. "applied" holds the batch time (u64) of the
// last applied batch.
//
// Every constant below is part of the on-disk format.
const (
	prefixMain   = 'k'
	prefixSlice  = 's'
	prefixOpMeta = 'o'
	prefixDelta  = 'd'
	prefixMeta   = 'm'
	prefixCount  = 'c' // 'c' | operator uint32 → the operator's key count, u64
	deltaDelete  = 0x00
	deltaSet     = 0x01
	// deltaMarker is the value of the delta's own key (its prefix, with no
	// state key after it): every written delta has one, so that a delta
	// with no change (a batch that changed nothing) is still found, redone
	// and replicated.
	deltaMarker   = 0x02
	partKeyHeader = 1 + 4 + 4
	deltaHeader   = 1 + 8
)

var keyApplied = []byte{prefixMeta, 'a', 'p', 'p', 'l', 'i', 'e', 'd'}

// partPrefix is the prefix of every main key of (op, part).
func partPrefix(op, part int) []byte {
	b := make([]byte, partKeyHeader, partKeyHeader+16)
	b[0] = prefixMain
	binary.BigEndian.PutUint32(b[1:], uint32(op))
	binary.BigEndian.PutUint32(b[5:], uint32(part))
	return b
}

func opPrefix(kind byte, op int) []byte {
	b := make([]byte, 5)
	b[0] = kind
	binary.BigEndian.PutUint32(b[1:], uint32(op))
	return b
}

func sliceKey(op int, t int64, part int) []byte {
	b := make([]byte, 1+4+8+4)
	b[0] = prefixSlice
	binary.BigEndian.PutUint32(b[1:], uint32(op))
	binary.BigEndian.PutUint64(b[5:], uint64(t))
	binary.BigEndian.PutUint32(b[13:], uint32(part))
	return b
}

func opMetaKey(op int, name string) []byte {
	return append(opPrefix(prefixOpMeta, op), name...)
}

func deltaPrefix(t int64) []byte {
	b := make([]byte, deltaHeader)
	b[0] = prefixDelta
	binary.BigEndian.PutUint64(b[1:], uint64(t))
	return b
}

func deltaKey(t int64, key []byte) []byte {
	return append(deltaPrefix(t), key...)
}

func encodeTime(t int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(t)) }

func decodeTime(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("batch time of %d bytes, want 8", len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// prefixEnd returns the first key after every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
