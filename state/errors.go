package state

import (
	"errors"
	"fmt"
)

// The errors of this package. Every error returned wraps at most one of
// them and says which store or key is concerned.
var (
	// ErrCorrupt: stored bytes failed a check (a key or value of the wrong
	// shape, or Pebble's checksums). The store cannot be trusted: restore
	// it from a checkpoint the metadata log references.
	ErrCorrupt = errors.New("state: corrupt data")
	// ErrAhead: the store has applied a batch the metadata log does not
	// say completed. The store belongs to another metadata log, or the
	// log lost entries; it cannot be used with this log.
	ErrAhead = errors.New("state: store is ahead of the metadata log")
	// ErrBatch: a batch was used out of turn (a second open batch, a
	// Part used after WriteDelta, Apply before WriteDelta).
	ErrBatch = errors.New("state: batch used out of order")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("state: store closed")
	// ErrFailed: a write or sync failed earlier; nothing written since is
	// known to be durable, so the store refuses every later write.
	// Restart the process to recover from what is on disk.
	ErrFailed = errors.New("state: store failed after a write error; restart to recover from disk")
)

// CorruptionError says where corrupt bytes were found.
type CorruptionError struct {
	Dir    string
	Key    []byte
	Reason string
	Err    error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("state: corrupt data in %s at key %q: %s; restore the store from a checkpoint (the node does so at start) or move %s aside",
		e.Dir, e.Key, e.Reason, e.Dir)
}

// Is makes errors.Is(err, ErrCorrupt) hold.
func (e *CorruptionError) Is(target error) bool { return target == ErrCorrupt }

func (e *CorruptionError) Unwrap() error { return e.Err }
