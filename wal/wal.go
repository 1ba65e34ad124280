package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// The on-disk format of the receiver write-ahead log.
//
// Blocks live in one Pebble store, one Pebble key per block. Pebble owns the
// bytes on disk (its own WAL, memtables, sstables and MANIFEST, each with its
// own checksums); this package owns the key and the value written into it.
//
// Key (key.go): sorts by stream, then node, then numeric sequence, because
// 0x00 sorts before every other byte and the sequence is big-endian.
//
//	+------+----------------+------+--------------+------+----------------------+
//	| 'b'  | stream (bytes) | 0x00 | node (bytes) | 0x00 | seq (uint64, BE, 8B) |
//	+------+----------------+------+--------------+------+----------------------+
//	  1B     1..n, no 0x00           1..n, no 0x00
//
// Value (frame.go), a frame around the msgpack encoding of the Block
// (block.go). Integers are big-endian.
//
//	 0        4         5          9          13
//	+--------+---------+----------+----------+-----------------------------+
//	| magic  | version | length   | crc32c   | payload (length bytes)      |
//	| 4B     | 1B      | uint32   | uint32   | msgpack Block:              |
//	| "SLWB" | 1       | of       | of       | {"id": {"stream","node",    |
//	|        |         | payload  | payload  |  "seq"}, "records": [...]}  |
//	+--------+---------+----------+----------+-----------------------------+
//
// The checksum is CRC-32C (Castagnoli) of the payload alone; magic, version
// and length are checked by value. The payload repeats the block id, and a
// read checks it against the key, so a value stored under the wrong key is
// caught too. A frame must be exactly headerLen+length bytes long.
//
// Every constant below is part of the on-disk format: changing one makes
// existing logs unreadable. A new format gets a new formatVersion, and
// readers keep decoding every older version.

const (
	// keyPrefix starts every block key. Part of the on-disk format. Other
	// prefixes are free for future record kinds (for instance a format
	// marker) without disturbing the key order of blocks.
	keyPrefix = 'b'
	// deletedPrefix starts the key of a (stream, node)'s deletion mark:
	// 'd' | stream | 0x00 | node | 0x00, valued with the highest sequence
	// of it ever deleted (uint64, big-endian). Part of the on-disk format.
	deletedPrefix = 'd'
	// keySep ends the stream and the node names in a key. Part of the
	// on-disk format.
	keySep = 0x00
	// seqLen is the length of the big-endian sequence number ending a key.
	// Part of the on-disk format.
	seqLen = 8

	// frameMagic opens every value: "SLWB", Sluice WAL Block. Part of the
	// on-disk format.
	frameMagic uint32 = 0x534c5742
	// formatVersion is the frame version this code writes, and the newest
	// it reads. Part of the on-disk format.
	formatVersion byte = 1
	// headerLen is the size of the frame header: magic, version, length,
	// checksum. Part of the on-disk format.
	headerLen = 4 + 1 + 4 + 4
)

// Log is the receiver write-ahead log of one node: durable blocks in a
// Pebble store in one directory. See doc.go for its contract.
type Log struct {
	dir        string
	db         *pebble.DB
	lock       *pebble.Lock
	logger     *slog.Logger
	syncs      *syncCounter
	high       highWater
	afterWrite func() // Options.AfterWrite

	blocks  atomic.Uint64
	bytes   atomic.Uint64
	deleted atomic.Uint64

	// ops counts calls using db, so that Close waits for them to leave
	// before closing Pebble (which panics when used after Close).
	ops sync.WaitGroup
	mu  struct {
		sync.Mutex
		closed  bool
		failed  error // the first write or sync error; never cleared
		lastErr string
	}
}

// Open opens the log in dir, creating it if needed. It fails with ErrLocked
// when another process (or another open Log) holds the directory.
func Open(dir string, opts Options) (_ *Log, err error) {
	opts = opts.withDefaults()
	l := &Log{dir: dir, logger: opts.Logger.With("component", "wal", "dir", dir), afterWrite: opts.AfterWrite}
	defer func() {
		if err != nil && l.lock != nil {
			_ = l.lock.Close()
		}
	}()
	defer recoverFatal(&err)
	if err := opts.FS.MkdirAll(dir, 0o755); err != nil {
		return nil, openError(dir, err)
	}
	if l.lock, err = lockDir(dir, opts.FS); err != nil {
		return nil, err
	}
	if l.db, err = pebble.Open(dir, l.pebbleOptions(opts)); err != nil {
		return nil, openError(dir, err)
	}
	if err := l.rotateWAL(); err != nil {
		_ = l.db.Close()
		return nil, openError(dir, err)
	}
	return l, nil
}

// write sets key to value durably: one synced commit, or, with the
// AfterWrite hook, an unsynced commit, the hook, then a sync of the WAL.
func (l *Log) write(key, value []byte) error {
	if l.afterWrite == nil {
		return l.db.Set(key, value, pebble.Sync)
	}
	if err := l.db.Set(key, value, pebble.NoSync); err != nil {
		return err
	}
	l.afterWrite()
	return l.db.LogData(nil, pebble.Sync)
}

// rotateWAL starts a new Pebble WAL file. Pebble creates the WAL of a new
// store (or of one it is about to upgrade) before it raises the store to
// diskFormat, so that first WAL lacks sync offsets, and a damaged record in
// it reads as a torn tail: recovery would silently stop there and drop the
// synced records after it. A Flush makes Pebble write every later record
// to a WAL in diskFormat, where such damage fails Open instead.
func (l *Log) rotateWAL() error {
	if err := l.db.Flush(); err != nil {
		return fmt.Errorf("rotate the pebble WAL: %w", err)
	}
	return nil
}

// Append writes b and syncs it; it returns nil only once b is durable.
// Concurrent Appends share fsyncs. After a write or sync error the log is
// failed: this and every later call returns an error wrapping ErrFailed.
// Appending an id that exists is a no-op if the records are the same, and
// ErrExists if they differ: a block is immutable once written.
func (l *Log) Append(b Block) (err error) {
	key, err := blockKey(b.ID)
	if err != nil {
		return fmt.Errorf("wal: append %s: %w", b.ID, err)
	}
	enc := getBlockEncoder()
	defer enc.release() // after the write: Pebble has copied value by then
	value, err := enc.encode(b)
	if err != nil {
		return fmt.Errorf("wal: append %s: %w", b.ID, err)
	}
	done, err := l.enter()
	if err != nil {
		return err
	}
	defer done()
	defer l.recoverFailure(&err)
	if stored, err := l.checkNew(b.ID, key, value); err != nil || stored {
		return err
	}
	if err := l.write(key, value); err != nil {
		return l.fail(fmt.Errorf("append %s: %w", b.ID, err))
	}
	l.high.raise(b.ID)
	l.blocks.Add(1)
	l.bytes.Add(uint64(len(value)))
	return nil
}

// Read returns the block id. It fails with ErrNotFound if the log has no
// such block, and with a *CorruptionError if the stored bytes fail a check;
// it never returns data that failed a check.
func (l *Log) Read(id BlockID) (b Block, err error) {
	key, err := blockKey(id)
	if err != nil {
		return Block{}, fmt.Errorf("wal: read %s: %w", id, err)
	}
	done, err := l.enter()
	if err != nil {
		return Block{}, err
	}
	defer done()
	defer l.recoverFailure(&err)
	value, closer, err := l.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return Block{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Block{}, l.readError(id, key, err)
	}
	defer closer.Close()
	b, cerr := decodeBlock(id, key, value)
	if cerr != nil {
		return Block{}, l.noteCorruption(cerr)
	}
	return b, nil
}

// Iterate calls fn with every block, in key order: by stream, then node,
// then sequence. It stops at the first error, from fn or from a block that
// fails a check (a *CorruptionError), and returns it. fn may call Append,
// Read and Delete, but not Close.
func (l *Log) Iterate(fn func(Block) error) (err error) {
	done, err := l.enter()
	if err != nil {
		return err
	}
	defer done()
	defer l.recoverFailure(&err)
	it, err := l.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{keyPrefix},
		UpperBound: []byte{keyPrefix + 1},
	})
	if err != nil {
		return fmt.Errorf("wal: iterate: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		b, err := l.decodeAt(it)
		if err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return l.readError(BlockID{}, nil, err)
	}
	return nil
}

// decodeAt decodes the block under the iterator's current key.
func (l *Log) decodeAt(it *pebble.Iterator) (Block, error) {
	key := it.Key()
	id, cerr := parseBlockKey(key)
	if cerr != nil {
		return Block{}, l.noteCorruption(cerr)
	}
	value, err := it.ValueAndErr()
	if err != nil {
		return Block{}, l.readError(id, key, err)
	}
	b, cerr := decodeBlock(id, key, value)
	if cerr != nil {
		return Block{}, l.noteCorruption(cerr)
	}
	return b, nil
}

// Delete removes the blocks ids in one Pebble batch. It does not sync: a
// deleted block that reappears after a crash is deleted again by the next
// truncation. Deleting an absent block is not an error.
func (l *Log) Delete(ids []BlockID) (err error) {
	keys, err := blockKeys(ids)
	if err != nil {
		return err
	}
	done, err := l.enter()
	if err != nil {
		return err
	}
	defer done()
	defer l.recoverFailure(&err)
	batch := l.db.NewBatch()
	defer batch.Close()
	for _, key := range keys {
		_ = batch.Delete(key, nil)
	}
	// The highest sequence deleted per (stream, node), in the same batch:
	// LastSeq goes on counting it, so that a node whose newest blocks
	// were truncated never numbers a new block with a used sequence.
	highest := make(map[streamNode]uint64)
	for _, id := range ids {
		sn := streamNode{id.Stream, id.Node}
		highest[sn] = max(highest[sn], id.Seq)
	}
	for sn, seq := range highest {
		cur, _, err := deletedMark(l.db, sn.stream, sn.node)
		if err != nil {
			return err
		}
		if seq > cur {
			_ = batch.Set(deletedKey(sn.stream, sn.node), binary.BigEndian.AppendUint64(nil, seq), nil)
		}
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		return l.fail(fmt.Errorf("delete %d blocks: %w", len(ids), err))
	}
	l.deleted.Add(uint64(len(ids)))
	return nil
}

// LastSeq returns the highest sequence ever stored for (stream, node),
// deleted blocks included, so that a restarted receiver can continue after
// it; ok is false if there was none.
func (l *Log) LastSeq(stream, node string) (seq uint64, ok bool, err error) {
	if err := checkNames(stream, node); err != nil {
		return 0, false, fmt.Errorf("wal: last seq of %s/%s: %w", stream, node, err)
	}
	done, err := l.enter()
	if err != nil {
		return 0, false, err
	}
	defer done()
	defer l.recoverFailure(&err)
	seq, ok, err = lastSeq(l.db, stream, node)
	if c := (*CorruptionError)(nil); errors.As(err, &c) {
		return 0, false, l.noteCorruption(c)
	}
	return seq, ok, err
}

// Close waits for calls in progress, then closes Pebble and releases the
// directory lock. Later calls return ErrClosed. Closing a failed log
// releases it all the same, and may report the failure's cause again.
func (l *Log) Close() (err error) {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.mu.closed = true
	l.mu.Unlock()
	l.ops.Wait()
	defer func() { err = errors.Join(err, l.lock.Close()) }()
	defer recoverFatal(&err)
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("wal: close %s: %w", l.dir, err)
	}
	return nil
}

// Stats returns counters since Open and the failure state.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{
		Blocks:    l.blocks.Load(),
		Bytes:     l.bytes.Load(),
		Deleted:   l.deleted.Load(),
		Syncs:     l.syncs.load(),
		Failed:    l.mu.failed != nil,
		LastError: l.mu.lastErr,
	}
}
