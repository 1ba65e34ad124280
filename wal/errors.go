package wal

import (
	"errors"
	"fmt"
)

// The errors of this package. Callers test for them with errors.Is; every
// error returned wraps at most one of them and names the block or the
// directory concerned.
var (
	// ErrNotFound: the log holds no block with that id (never written, or
	// deleted).
	ErrNotFound = errors.New("wal: block not found")
	// ErrCorrupt: stored bytes failed a check. Read and Iterate return it
	// as a *CorruptionError that says which block and what is wrong: the
	// block cannot be trusted and must be fetched from a replica. Open
	// wraps it when Pebble finds its own files damaged.
	ErrCorrupt = errors.New("wal: corrupt data")
	// ErrVersion: a block was written by a newer version of sluice. Always
	// inside a *CorruptionError; upgrade this binary to read it.
	ErrVersion = errors.New("wal: block written by a newer version of sluice; upgrade this binary")
	// ErrFailed: a write or sync failed earlier, so nothing written since is
	// known to be durable (fsyncgate). The log refuses every later call but
	// Stats and Close; restart the process to recover from what is on disk.
	ErrFailed = errors.New("wal: log failed after a write or sync error; restart to recover from disk")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("wal: log closed")
	// ErrLocked: another process, or another open Log in this process,
	// holds the directory.
	ErrLocked = errors.New("wal: another process holds the directory")
	// ErrInvalidID: a block id the key format cannot hold (an empty name,
	// or a name containing 0x00).
	ErrInvalidID = errors.New("wal: invalid block id")
	// ErrExists: a block with that id exists with other records.
	ErrExists = errors.New("wal: block exists")
)

// CorruptionError reports stored bytes that failed a check: where (the
// block, and the Pebble key it was read from) and what is wrong.
// errors.Is(err, ErrCorrupt) holds for every CorruptionError.
type CorruptionError struct {
	Block  BlockID // zero if the key itself could not be parsed
	Key    []byte  // the Pebble key the value was read from
	Reason string  // what is wrong, for instance "checksum mismatch (...)"
	Err    error   // the underlying cause, if any (ErrVersion, a Pebble error)
}

func (e *CorruptionError) Error() string {
	switch {
	case e.Block != (BlockID{}):
		return fmt.Sprintf("wal: corrupt block %s (key %q): %s", e.Block, e.Key, e.Reason)
	case e.Key != nil:
		return fmt.Sprintf("wal: corrupt record at key %q: %s", e.Key, e.Reason)
	}
	return "wal: corrupt data: " + e.Reason
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptionError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the underlying cause, if any.
func (e *CorruptionError) Unwrap() error { return e.Err }
