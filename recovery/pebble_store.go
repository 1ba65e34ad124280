package recovery

// PebbleStore is raft's LogStore and StableStore on one Pebble database
// (Dir/raft). Keys and values are part of the on-disk format:
//
//	log entry:    key   'l' | index (uint64, big-endian)            9 bytes
//	              value version (1 byte = 1) | msgpack of logRecord
//	stable value: key   's' | the key raft gives
//	              value the bytes raft gives (SetUint64: uint64, big-endian)
//
// Big-endian indexes make Pebble's key order the log order, so First and
// Last of an iterator bounded to the 'l' prefix are FirstIndex and
// LastIndex. Every write is synced (raft acknowledges an entry once it is
// stored); StoreLogs writes all its entries in one synced batch, so a crash
// keeps all of them or none. Pebble checksums its WAL records and sstable
// blocks; this store adds none of its own.
//
// With a vfs.NewMem (or vfs.NewCrashableMem) FS it is the in-memory version
// of itself.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"
)

// Part of the on-disk format.
const (
	logPrefix       = 'l'
	stablePrefix    = 's'
	logValueVersion = 1
)

// logRecord is a raft.Log as stored. Its msgpack tags are part of the
// on-disk format. AppendedAt is kept as Unix nanoseconds (0: unset).
type logRecord struct {
	Index      uint64 `msgpack:"i"`
	Term       uint64 `msgpack:"t"`
	Type       uint8  `msgpack:"y"`
	Data       []byte `msgpack:"d"`
	Extensions []byte `msgpack:"e,omitempty"`
	AppendedAt int64  `msgpack:"a,omitempty"`
}

// PebbleStore implements raft.LogStore and raft.StableStore. It is safe for
// concurrent use (Pebble is).
type PebbleStore struct {
	db     *pebble.DB
	dir    string
	closed atomic.Bool
}

var (
	_ raft.LogStore    = (*PebbleStore)(nil)
	_ raft.StableStore = (*PebbleStore)(nil)
)

// OpenPebbleStore opens (creating if needed) the store in dir on fs (nil:
// the real disk). Pebble's log lines go to logger.
func OpenPebbleStore(dir string, fs vfs.FS, logger *slog.Logger) (*PebbleStore, error) {
	if fs == nil {
		fs = vfs.Default
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db, err := pebble.Open(dir, &pebble.Options{FS: fs, Logger: pebbleLogger{logger}})
	if err != nil {
		if pebble.IsCorruptionError(err) {
			return nil, &CorruptionError{Path: dir, Offset: -1, Reason: "the raft log store does not open", Err: err}
		}
		return nil, fmt.Errorf("recovery: open raft log store %s: %w", dir, err)
	}
	return &PebbleStore{db: db, dir: dir}, nil
}

// Close closes the database; later calls do nothing.
func (s *PebbleStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("recovery: close raft log store %s: %w", s.dir, err)
	}
	return nil
}

func logKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = logPrefix
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

func stableKey(key []byte) []byte {
	return append([]byte{stablePrefix}, key...)
}

// FirstIndex returns the first index stored, 0 for none.
func (s *PebbleStore) FirstIndex() (uint64, error) {
	return s.edgeIndex((*pebble.Iterator).First)
}

// LastIndex returns the last index stored, 0 for none.
func (s *PebbleStore) LastIndex() (uint64, error) {
	return s.edgeIndex((*pebble.Iterator).Last)
}

func (s *PebbleStore) edgeIndex(seek func(*pebble.Iterator) bool) (uint64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{logPrefix}, UpperBound: []byte{logPrefix + 1}})
	if err != nil {
		return 0, fmt.Errorf("recovery: raft log store: %w", err)
	}
	var idx uint64
	if seek(it) {
		idx = binary.BigEndian.Uint64(it.Key()[1:])
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("recovery: raft log store: %w", err)
	}
	return idx, nil
}

// GetLog reads the entry at index; raft.ErrLogNotFound if there is none.
func (s *PebbleStore) GetLog(index uint64, log *raft.Log) error {
	val, closer, err := s.db.Get(logKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("recovery: raft log store: read index %d: %w", index, err)
	}
	defer closer.Close()
	return s.decodeLog(index, val, log)
}

func (s *PebbleStore) decodeLog(index uint64, val []byte, log *raft.Log) error {
	if len(val) == 0 || val[0] != logValueVersion {
		return &CorruptionError{Path: s.dir, Index: index, Offset: -1, Reason: "log entry has an unknown value version"}
	}
	var rec logRecord
	if err := msgpack.Unmarshal(val[1:], &rec); err != nil {
		return &CorruptionError{Path: s.dir, Index: index, Offset: -1, Reason: "log entry does not decode", Err: err}
	}
	*log = raft.Log{Index: rec.Index, Term: rec.Term, Type: raft.LogType(rec.Type), Data: rec.Data, Extensions: rec.Extensions}
	if rec.AppendedAt != 0 {
		log.AppendedAt = time.Unix(0, rec.AppendedAt)
	}
	return nil
}

// StoreLog stores one entry, synced.
func (s *PebbleStore) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores the entries in one synced batch: all or none.
func (s *PebbleStore) StoreLogs(logs []*raft.Log) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, l := range logs {
		val, err := encodeLog(l)
		if err != nil {
			return err
		}
		if err := b.Set(logKey(l.Index), val, nil); err != nil {
			return fmt.Errorf("recovery: raft log store: %w", err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("recovery: raft log store: write %d entries: %w", len(logs), err)
	}
	return nil
}

func encodeLog(l *raft.Log) ([]byte, error) {
	rec := logRecord{Index: l.Index, Term: l.Term, Type: uint8(l.Type), Data: l.Data, Extensions: l.Extensions}
	if !l.AppendedAt.IsZero() {
		rec.AppendedAt = l.AppendedAt.UnixNano()
	}
	val, err := msgpack.Marshal(&rec)
	if err != nil {
		return nil, fmt.Errorf("recovery: raft log store: encode index %d: %w", l.Index, err)
	}
	return append([]byte{logValueVersion}, val...), nil
}

// DeleteRange deletes the entries min..max, inclusive, synced.
func (s *PebbleStore) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	end := []byte{logPrefix + 1}
	if max != math.MaxUint64 {
		end = logKey(max + 1)
	}
	if err := s.db.DeleteRange(logKey(min), end, pebble.Sync); err != nil {
		return fmt.Errorf("recovery: raft log store: delete %d..%d: %w", min, max, err)
	}
	return nil
}

// Set stores a stable value, synced.
func (s *PebbleStore) Set(key, val []byte) error {
	if err := s.db.Set(stableKey(key), val, pebble.Sync); err != nil {
		return fmt.Errorf("recovery: stable store: set %q: %w", key, err)
	}
	return nil
}

// Get returns a stable value, or ErrKeyNotFound.
func (s *PebbleStore) Get(key []byte) ([]byte, error) {
	val, closer, err := s.db.Get(stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("recovery: stable store: get %q: %w", key, err)
	}
	defer closer.Close()
	return append([]byte(nil), val...), nil
}

// SetUint64 stores a stable number, synced.
func (s *PebbleStore) SetUint64(key []byte, val uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], val)
	return s.Set(key, b[:])
}

// GetUint64 returns a stable number, or ErrKeyNotFound.
func (s *PebbleStore) GetUint64(key []byte) (uint64, error) {
	val, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(val) != 8 {
		return 0, &CorruptionError{Path: s.dir, Offset: -1, Reason: fmt.Sprintf("stable value %q has %d bytes, want 8", key, len(val))}
	}
	return binary.BigEndian.Uint64(val), nil
}
