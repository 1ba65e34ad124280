package checkpoint

import (
	"errors"
	"fmt"
)

// The errors of this package. Callers test for them with errors.Is; every
// error returned wraps at most one of them (a *CorruptionError may add a
// more precise cause, see below) and names the checkpoint concerned.
var (
	// ErrCorrupt: a checkpoint failed a check: the descriptor's magic,
	// version, length or checksum, a data file of the wrong size or CRC, a
	// file the descriptor lists that is missing, or a file under data/ it
	// does not list. Always inside a *CorruptionError that names the
	// checkpoint and the file. The checkpoint cannot be trusted: the node
	// falls back to an older one the metadata log references, and moves
	// this one aside (Dir.MoveAside).
	ErrCorrupt = errors.New("checkpoint: corrupt")
	// ErrNotFound: the referenced checkpoint directory or its descriptor
	// does not exist (never written, removed by Retain, or lost in a crash
	// before it was referenced), or the name is not one a checkpoint can
	// have.
	ErrNotFound = errors.New("checkpoint: not found")
	// ErrMismatch: the checkpoint is sound but was written for another
	// application, another graph fingerprint, or another batch time than
	// the one asked for. The message names both values. Nothing is wrong
	// with the bytes: do not move it aside, it belongs to someone else.
	ErrMismatch = errors.New("checkpoint: belongs to another application or graph")
	// ErrSumMismatch: the descriptor on disk is well formed but is not the
	// one the metadata log references (its CRC-32C differs from Ref.Sum),
	// for instance because a later Write for the same batch time replaced
	// it. Always inside a *CorruptionError, so errors.Is(err, ErrCorrupt)
	// holds too: a checkpoint the log does not reference is never trusted.
	ErrSumMismatch = errors.New("checkpoint: descriptor differs from the one the metadata log references")
	// ErrVersion: the descriptor was written by a newer version of sluice.
	// Always inside a *CorruptionError; upgrade this binary to read it.
	ErrVersion = errors.New("checkpoint: descriptor written by a newer version of sluice; upgrade this binary")
)

// CorruptionError reports a checkpoint that failed a check: which one,
// which file, and what is wrong. errors.Is(err, ErrCorrupt) holds for every
// CorruptionError, and errors.Is(err, ErrSumMismatch) or ErrVersion when
// Err is one of those.
type CorruptionError struct {
	Name   string // the checkpoint's directory name, e.g. "ckpt-00000001764064800000"
	Path   string // the file found wrong (or missing, or unexpected)
	Reason string // what is wrong, for instance "size 10 bytes, the descriptor says 12"
	Err    error  // a more precise cause (ErrSumMismatch, ErrVersion), or nil
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("checkpoint: corrupt checkpoint %s: %s: %s; the node will fall back to an older checkpoint the metadata log references; move it aside or delete the data directory's checkpoints/%s",
		e.Name, e.Path, e.Reason, e.Name)
}

// Unwrap returns ErrCorrupt, so that errors.Is(err, ErrCorrupt) holds.
func (e *CorruptionError) Unwrap() error { return ErrCorrupt }

// Is reports whether target is the more precise cause, if any.
func (e *CorruptionError) Is(target error) bool { return e.Err != nil && errors.Is(e.Err, target) }
