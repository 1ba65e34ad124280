package recovery

import (
	"errors"
	"fmt"
)

// The errors of this package. Every error it returns wraps one of these, so
// callers test with errors.Is; corruption is also a *CorruptionError (use
// errors.As, or IsCorruption) that says where it was found.
var (
	// ErrNotLeader: this node cannot accept the event now, because it is not
	// the leader or lost leadership while the event was in flight. In the
	// second case the event may or may not be committed: retry it (events
	// are idempotent) on the new leader. raft's own error stays in the chain.
	ErrNotLeader = errors.New("recovery: not the leader")

	// ErrClosed: the log was closed (or raft shut down) before the event
	// was applied.
	ErrClosed = errors.New("recovery: log closed")

	// ErrTimeout: raft did not accept the event before the caller's
	// deadline (the context's error is in the chain too).
	ErrTimeout = errors.New("recovery: apply timed out")

	// ErrUnknownEvent: an entry holds an event type this release does not
	// know (written by a newer release, or garbage). The FSM leaves its
	// state unchanged for that entry.
	ErrUnknownEvent = errors.New("recovery: unknown event type")

	// ErrEventVersion: an entry's envelope has a version this release does
	// not read.
	ErrEventVersion = errors.New("recovery: unsupported event envelope version")

	// ErrInvalidEvent: an event breaks a rule that does not depend on the
	// state (an empty stream name, a request outside its block, ...).
	ErrInvalidEvent = errors.New("recovery: invalid event")

	// ErrBatchOrder: a batch event is out of order (allocating at or before
	// the last allocated time, or behind the truncation point; completing a
	// batch while an earlier one is pending).
	ErrBatchOrder = errors.New("recovery: batch out of order")

	// ErrUnknownBatch: BatchCompleted names a batch that is not allocated
	// (or was already truncated).
	ErrUnknownBatch = errors.New("recovery: unknown batch")

	// ErrFenced: a batch event or DriverStarted carries an epoch older
	// than the driver recorded in the log: its driver was deposed.
	ErrFenced = errors.New("recovery: fenced: a newer driver has started")

	// ErrTruncatePending: Truncated would drop a batch that is not completed.
	ErrTruncatePending = errors.New("recovery: truncation would drop a pending batch")

	// ErrSnapshotVersion: an FSM snapshot was written by a release with a
	// newer format; upgrade this binary to read it.
	ErrSnapshotVersion = errors.New("recovery: unsupported snapshot version")

	// ErrCorrupt is the class of all corruption: a checksum mismatch, a
	// bad magic number, a record that does not decode.
	ErrCorrupt = errors.New("recovery: corrupt data")

	// ErrInvalidConfig: a Config field is out of range; the message names it.
	ErrInvalidConfig = errors.New("recovery: invalid config")

	// ErrKeyNotFound is what the StableStore returns for a missing key. Its
	// text is exactly "not found", without the package prefix, because
	// hashicorp/raft compares err.Error() with that string (NewRaft,
	// HasExistingState) to tell a fresh store from a broken one.
	ErrKeyNotFound = errors.New("not found")
)

// CorruptionError says where corrupt data was found. It wraps ErrCorrupt
// and, when there is one, the lower-level cause.
type CorruptionError struct {
	Path   string // the file or directory (a snapshot's, a store's); "" if in memory
	Index  uint64 // the raft log index, when the corruption is in an entry
	Offset int64  // the byte offset inside Path, -1 when not known
	Reason string
	Err    error // the cause, may be nil
}

func (e *CorruptionError) Error() string {
	msg := "recovery: corrupt data"
	if e.Path != "" {
		msg += " in " + e.Path
	}
	if e.Index != 0 {
		msg += fmt.Sprintf(" at log index %d", e.Index)
	}
	if e.Offset >= 0 {
		msg += fmt.Sprintf(" at offset %d", e.Offset)
	}
	msg += ": " + e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap lets errors.Is match both ErrCorrupt and the cause.
func (e *CorruptionError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrCorrupt}
	}
	return []error{ErrCorrupt, e.Err}
}

// IsCorruption reports whether err is, or wraps, corruption.
func IsCorruption(err error) bool { return errors.Is(err, ErrCorrupt) }
