package state

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	// FS is the filesystem the store lives on; nil means vfs.Default.
	FS vfs.FS
	// Logger receives the store's messages; nil means slog.Default().
	Logger *slog.Logger
	// CacheBytes is Pebble's block cache; 0 means 64 MiB. Memory use is
	// about this plus two memtables, whatever the number of keys.
	CacheBytes int64
	// CreateIfMissing allows Open to create a store; without it a missing
	// store is ErrNotExist, so that a lost directory is never silently
	// replaced by an empty one.
	CreateIfMissing bool
}

// ErrNotExist is returned by Open for a store that does not exist, when
// Options.CreateIfMissing is not set.
var ErrNotExist = errors.New("state: store does not exist")

// diskFormat pins the Pebble format a new store is created at. Part of
// the on-disk format.
const diskFormat = pebble.FormatTableFormatV6

// Store is the keyed state of one node. See the package documentation for
// the life of a batch.
type Store struct {
	dir string
	db  *pebble.DB
	log *slog.Logger

	mu struct {
		sync.Mutex
		open   *Batch // the batch between Begin and Apply or Abort
		closed bool
		failed error
	}
	// closeMu is held shared by every read of db and exclusively by
	// Close, so that a read after Close is ErrClosed, not Pebble's panic.
	closeMu struct {
		sync.RWMutex
		closed bool
	}
	scratch scratches // the snapshots of open scratch batches (scratch.go)
}

// reading admits a read of db until the returned func is called.
func (s *Store) reading() (func(), error) {
	s.closeMu.RLock()
	if s.closeMu.closed {
		s.closeMu.RUnlock()
		return nil, ErrClosed
	}
	return s.closeMu.RUnlock, nil
}

// Open opens the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = 64 << 20
	}
	s := &Store{dir: dir, log: opts.Logger.With("component", "state", "dir", dir)}
	cache := pebble.NewCache(opts.CacheBytes)
	defer cache.Unref()
	po := &pebble.Options{
		FS:                 opts.FS,
		Cache:              cache,
		FormatMajorVersion: diskFormat,
		ErrorIfNotExists:   !opts.CreateIfMissing,
		Logger:             pebbleLogger{s.log.With("from", "pebble")},
	}
	// MapWithState looks up every key of a batch; most new keys are
	// absent, which a Bloom filter answers without reading blocks.
	po.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	po.EventListener = &pebble.EventListener{
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			s.log.Error("pebble found corrupt data in the state store", "info", info.String())
		},
	}
	_, statErr := opts.FS.Stat(dir)
	db, err := pebble.Open(dir, po)
	switch {
	case err != nil && !opts.CreateIfMissing && errors.Is(err, pebble.ErrDBDoesNotExist):
		if errors.Is(statErr, fs.ErrNotExist) {
			// Pebble made the directory and its LOCK before finding no
			// store: leave nothing behind, so a restore can put one there.
			_ = opts.FS.RemoveAll(dir)
		}
		return nil, fmt.Errorf("%w: %s", ErrNotExist, dir)
	case err != nil && isDamaged(err):
		return nil, &CorruptionError{Dir: dir, Reason: "pebble could not open the store", Err: err}
	case err != nil:
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	s.db = db
	if _, err := s.Applied(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// isDamaged: Pebble found corrupt bytes, or a file its MANIFEST lists is
// missing or of another size (Pebble does not mark the latter as
// corruption).
func isDamaged(err error) bool {
	return pebble.IsCorruptionError(err) || errors.Is(err, fs.ErrNotExist) ||
		strings.Contains(err.Error(), "object size mismatch")
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Close closes the store. An open batch is dropped.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return nil
	}
	s.mu.closed = true
	s.mu.open = nil
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	s.closeMu.closed = true
	s.closeScratches()
	return s.db.Close()
}

// Sync makes every applied batch durable.
func (s *Store) Sync() error {
	if err := s.enter(nil); err != nil {
		if errors.Is(err, ErrClosed) {
			return nil
		}
		return err
	}
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return s.fail(fmt.Errorf("state: sync of %s: %w", s.dir, err))
	}
	return nil
}

// Applied returns the batch time of the last applied batch (0 if none):
// the main keys hold the state as of that batch.
func (s *Store) Applied() (int64, error) {
	return s.appliedIn(s.db)
}

func (s *Store) appliedIn(r pebble.Reader) (int64, error) {
	done, err := s.reading()
	if err != nil {
		return 0, err
	}
	defer done()
	v, closer, err := r.Get(keyApplied)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, s.readError(keyApplied, err)
	}
	defer closer.Close()
	t, err := decodeTime(v)
	if err != nil {
		return 0, &CorruptionError{Dir: s.dir, Key: keyApplied, Reason: err.Error()}
	}
	return t, nil
}

func (s *Store) readError(key []byte, err error) error {
	if pebble.IsCorruptionError(err) {
		return &CorruptionError{Dir: s.dir, Key: key, Reason: "pebble checksum", Err: err}
	}
	return fmt.Errorf("state: read %q in %s: %w", key, s.dir, err)
}

// Get returns the committed value of key in (op, part).
func (s *Store) Get(op, part int, key []byte) ([]byte, bool, error) {
	return s.get(s.db, append(partPrefix(op, part), key...))
}

func (s *Store) get(r pebble.Reader, k []byte) ([]byte, bool, error) {
	done, err := s.reading()
	if err != nil {
		return nil, false, err
	}
	defer done()
	v, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, s.readError(k, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), true, nil
}

// View is a consistent read of the committed state: every call sees the
// store as of one applied batch, Time.
type View struct {
	s    *Store
	snap *pebble.Snapshot
	Time int64
}

// View opens a consistent read of the committed state; Close it.
func (s *Store) View() (*View, error) {
	snap := s.db.NewSnapshot()
	t, err := s.appliedIn(snap)
	if err != nil {
		snap.Close()
		return nil, err
	}
	return &View{s: s, snap: snap, Time: t}, nil
}

// Close releases the view.
func (v *View) Close() error { return v.snap.Close() }

// Get returns the value of key in (op, part) as of v.Time.
func (v *View) Get(op, part int, key []byte) ([]byte, bool, error) {
	return v.s.get(v.snap, append(partPrefix(op, part), key...))
}

// Scan calls fn for every key of (op, part) as of v.Time, in key order.
// The slices are valid only during the call.
func (v *View) Scan(op, part int, fn func(key, value []byte) error) error {
	return v.s.scan(v.snap, partPrefix(op, part), fn)
}

// Scan calls fn for every committed key of (op, part), in key order. The
// slices are valid only during the call.
func (s *Store) Scan(op, part int, fn func(key, value []byte) error) error {
	return s.scan(s.db, partPrefix(op, part), fn)
}

func (s *Store) scan(r pebble.Reader, prefix []byte, fn func(key, value []byte) error) error {
	done, err := s.reading()
	if err != nil {
		return err
	}
	defer done()
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("state: scan %s: %w", s.dir, err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return s.readError(it.Key(), err)
		}
		if err := fn(it.Key()[len(prefix):], v); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return s.readError(prefix, err)
	}
	return nil
}

// Slice returns a window's data of operator op at batch time t, partition
// part, as committed.
func (s *Store) Slice(op int, t int64, part int) ([]byte, bool, error) {
	return s.get(s.db, sliceKey(op, t, part))
}

// OpMeta returns the committed metadata name of operator op.
func (s *Store) OpMeta(op int, name string) ([]byte, bool, error) {
	return s.get(s.db, opMetaKey(op, name))
}

// Checkpoint writes a consistent copy of the store into destDir, which
// must not exist, hard-linking the sstables where the filesystem allows.
func (s *Store) Checkpoint(destDir string) error {
	if err := s.db.Checkpoint(destDir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("state: checkpoint of %s into %s: %w", s.dir, destDir, err)
	}
	return nil
}

// Stats describes the store.
type Stats struct {
	Applied   int64 // the last applied batch time
	DiskBytes int64 // the store's files on disk
}

// Stats returns the store's figures.
func (s *Store) Stats() Stats {
	applied, err := s.Applied()
	if err != nil {
		return Stats{}
	}
	done, err := s.reading()
	if err != nil {
		return Stats{}
	}
	defer done()
	return Stats{Applied: applied, DiskBytes: int64(s.db.Metrics().DiskSpaceUsage())}
}

// OpDiskBytes estimates the bytes on disk of operator op's state.
func (s *Store) OpDiskBytes(op int) int64 {
	done, err := s.reading()
	if err != nil {
		return 0
	}
	defer done()
	p := opPrefix(prefixMain, op)
	n, err := s.db.EstimateDiskUsage(p, prefixEnd(p))
	if err != nil {
		return 0
	}
	return int64(n)
}

// Keys returns the number of committed keys of operator op, as counted
// by the batches that changed them.
func (s *Store) Keys(op int) int64 {
	n, _ := s.keyCount(op)
	return n
}

// keyCount is Keys with the error that a batch must not ignore: a count
// read wrong would be written back wrong.
func (s *Store) keyCount(op int) (int64, error) {
	key := opPrefix(prefixCount, op)
	v, ok, err := s.get(s.db, key)
	if err != nil || !ok {
		return 0, err
	}
	n, err := decodeTime(v)
	if err != nil {
		return 0, &CorruptionError{Dir: s.dir, Key: key, Reason: "key count: " + err.Error()}
	}
	return n, nil
}

type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Fatalf(format string, args ...any) {
	// Pebble calls Fatalf when a WAL write or sync fails and expects it
	// not to return. The store is then unusable: nothing written since
	// the last sync is known to be on disk (fsyncgate).
	panic(fmt.Errorf("%w: pebble: %s", ErrFailed, fmt.Sprintf(format, args...)))
}
