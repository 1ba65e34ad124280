package wal

// Fail-stop: the life cycle of a Log (open, failed, closed) and the
// classification of errors from Pebble and the filesystem.

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// enter admits a call that uses the Pebble store, or refuses it with
// ErrClosed or ErrFailed. The caller must call done when it leaves.
func (l *Log) enter() (done func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, ErrClosed
	}
	if l.mu.failed != nil {
		return nil, failedError(l.mu.failed)
	}
	l.ops.Add(1)
	return l.ops.Done, nil
}

// fail marks the log failed by cause, logs that once at error level, and
// returns the error a call reports. Only the first cause is kept: later
// ones are consequences of it.
func (l *Log) fail(cause error) error {
	l.mu.Lock()
	first := l.mu.failed == nil
	if first {
		l.mu.failed = cause
		l.mu.lastErr = cause.Error()
	}
	kept := l.mu.failed
	l.mu.Unlock()
	if first {
		l.logger.Error("wal failed: refusing every later write; restart to recover from disk", "err", cause)
	}
	return failedError(kept)
}

// failedError wraps ErrFailed and the cause of the failure.
func failedError(cause error) error {
	return fmt.Errorf("%w: %w", ErrFailed, cause)
}

// pebbleFatal is what Pebble's Logger.Fatalf panics with (logger.go):
// Pebble calls Fatalf when a WAL write or sync fails inside a commit, and
// expects it not to return.
type pebbleFatal struct {
	msg   string
	cause error // the first error among Fatalf's arguments, if any
}

func (f *pebbleFatal) Error() string { return f.msg }
func (f *pebbleFatal) Unwrap() error { return f.cause }

// recoverFailure turns a Pebble fatal error raised on the calling
// goroutine into the error the call returns; the log is already failed.
func (l *Log) recoverFailure(err *error) {
	if r := recover(); r != nil {
		f, ok := r.(*pebbleFatal)
		if !ok {
			panic(r)
		}
		*err = l.fail(f)
	}
}

// recoverFatal is recoverFailure for Open and Close.
func recoverFatal(err *error) {
	if r := recover(); r != nil {
		f, ok := r.(*pebbleFatal)
		if !ok {
			panic(r)
		}
		*err = failedError(f)
	}
}

// noteCorruption records a corruption for Stats and returns it.
func (l *Log) noteCorruption(c *CorruptionError) error {
	l.mu.Lock()
	l.mu.lastErr = c.Error()
	l.mu.Unlock()
	return c
}

// readError classifies an error Pebble returned for a read of id (zero
// for an iteration): Pebble's own checksums failing become a
// *CorruptionError.
func (l *Log) readError(id BlockID, key []byte, err error) error {
	if pebble.IsCorruptionError(err) {
		return l.noteCorruption(&CorruptionError{Block: id, Key: key, Reason: "pebble: " + err.Error(), Err: err})
	}
	if id == (BlockID{}) {
		return fmt.Errorf("wal: iterate: %w", err)
	}
	return fmt.Errorf("wal: read %s: %w", id, err)
}

// lockDir takes Pebble's LOCK file of dir, telling a lock held elsewhere
// apart from a directory this process may not write.
func lockDir(dir string, fsys vfs.FS) (*pebble.Lock, error) {
	lock, err := pebble.LockDirectory(dir, fsys)
	if err == nil {
		return lock, nil
	}
	if isLockConflict(err) {
		return nil, fmt.Errorf("%w (or another Log in this process): %s (%v); stop it, or use another directory", ErrLocked, dir, err)
	}
	return nil, openError(dir, err)
}

// isLockConflict reports whether err is a lock held by someone else:
// fcntl's EAGAIN or EACCES (a failure to create the file comes as a
// *fs.PathError instead), or Pebble's error for a lock this process holds.
func isLockConflict(err error) bool {
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return false
	}
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), "lock held by current process")
}

// openError says what went wrong opening dir, and what to do about it.
func openError(dir string, err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("wal: open %s: directory not writable by this user: %w; fix its owner or mode, or use another directory", dir, err)
	case pebble.IsCorruptionError(err):
		return fmt.Errorf("%w in pebble store %s: %w; move the directory aside (to %s.broken) and restart", ErrCorrupt, dir, err, dir)
	}
	return fmt.Errorf("wal: open %s: %w", dir, err)
}
