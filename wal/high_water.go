package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// highWater remembers, per (stream, node), the highest sequence known to
// be stored, so that Append can skip the existence check (a Pebble Get,
// tens of microseconds once sstables pile up) for the usual block: one
// numbered above every block before it.
type highWater struct {
	mu    sync.Mutex
	marks map[streamNode]mark
}

type streamNode struct{ stream, node string }

type mark struct {
	seq uint64
	any bool // false: no block of (stream, node) is stored
}

// above reports whether id.Seq is above every sequence of its (stream,
// node) stored in db, reading the highest one from db the first time.
func (h *highWater) above(db *pebble.DB, id BlockID) (bool, error) {
	sn := streamNode{id.Stream, id.Node}
	h.mu.Lock()
	m, ok := h.marks[sn]
	h.mu.Unlock()
	if !ok {
		seq, found, err := lastSeq(db, id.Stream, id.Node)
		if err != nil {
			return false, err
		}
		m = h.learn(sn, mark{seq: seq, any: found})
	}
	return !m.any || id.Seq > m.seq, nil
}

// learn records m, read from disk, as the mark of sn unless a mark is
// known already, and returns the mark.
func (h *highWater) learn(sn streamNode, m mark) mark {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur, ok := h.marks[sn]; ok {
		return cur
	}
	if h.marks == nil {
		h.marks = make(map[streamNode]mark)
	}
	h.marks[sn] = m
	return m
}

// raise records that block id is stored. above has learned its mark.
func (h *highWater) raise(id BlockID) {
	sn := streamNode{id.Stream, id.Node}
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur, ok := h.marks[sn]; ok && (!cur.any || id.Seq > cur.seq) {
		h.marks[sn] = mark{seq: id.Seq, any: true}
	}
}

// lastSeq returns the highest sequence of (stream, node) ever stored in
// db: of the blocks there, and of those deleted (deletedMark).
func lastSeq(db *pebble.DB, stream, node string) (seq uint64, ok bool, err error) {
	seq, ok, err = lastStoredSeq(db, stream, node)
	if err != nil {
		return 0, false, err
	}
	gone, was, err := deletedMark(db, stream, node)
	if err != nil {
		return 0, false, err
	}
	return max(seq, gone), ok || was, nil
}

// deletedKey is the key of (stream, node)'s deletion mark (wal.go).
func deletedKey(stream, node string) []byte {
	key := make([]byte, 0, 1+len(stream)+1+len(node)+1)
	key = append(key, deletedPrefix)
	key = append(key, stream...)
	key = append(key, keySep)
	key = append(key, node...)
	return append(key, keySep)
}

// deletedMark returns the highest sequence of (stream, node) deleted from
// db; ok is false if none was.
func deletedMark(db *pebble.DB, stream, node string) (seq uint64, ok bool, err error) {
	val, closer, err := db.Get(deletedKey(stream, node))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer closer.Close()
	if len(val) != 8 {
		return 0, false, &CorruptionError{Key: deletedKey(stream, node), Reason: fmt.Sprintf("deletion mark of %d bytes, want 8", len(val))}
	}
	return binary.BigEndian.Uint64(val), true, nil
}

// lastStoredSeq returns the highest sequence of (stream, node) stored in
// db.
func lastStoredSeq(db *pebble.DB, stream, node string) (seq uint64, ok bool, err error) {
	lo, hi, err := seqRange(stream, node)
	if err != nil {
		return 0, false, err
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, false, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, false, it.Error()
	}
	id, cerr := parseBlockKey(it.Key())
	if cerr != nil {
		return 0, false, cerr
	}
	return id.Seq, true, nil
}

// checkNew fails with ErrExists if id is stored with a value other than
// value, and reports whether it is stored with value already.
func (l *Log) checkNew(id BlockID, key, value []byte) (stored bool, err error) {
	above, err := l.high.above(l.db, id)
	if err != nil {
		return false, fmt.Errorf("wal: append %s: %w", id, err)
	}
	if above {
		return false, nil
	}
	return l.sameAsStored(id, key, value)
}

// sameAsStored reports whether the value for key is already value, and
// fails with ErrExists if another value is stored under it.
func (l *Log) sameAsStored(id BlockID, key, value []byte) (bool, error) {
	stored, closer, err := l.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, l.readError(id, key, err)
	}
	defer closer.Close()
	if bytes.Equal(stored, value) {
		return true, nil
	}
	return false, fmt.Errorf("%w: %s holds other records; a block is immutable once written", ErrExists, id)
}
