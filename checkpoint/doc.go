// Package checkpoint writes, checks, restores and retires checkpoints: full,
// consistent copies of a node's keyed-state store (a Pebble DB) at a batch
// time. Once a checkpoint at batch time t is referenced by the metadata log,
// the state deltas and write-ahead-log blocks that only served to rebuild
// the state up to t can be deleted; recovery restores the newest referenced
// checkpoint and replays from t.
//
// A Dir is one directory, the root, holding one subdirectory per
// checkpoint: the copy in data/ and a descriptor, CHECKPOINT, listing every
// file of the copy with its size and CRC-32C. The layout and the descriptor
// format are drawn at the top of descriptor.go. This package imports
// nothing else of the module: the engine passes its state store in as a
// Source, and stores the Ref Write returns in the metadata log itself.
//
// # Invariants
//
//  1. Atomic: Write builds a checkpoint in root/<name>.tmp, fsyncs every
//     file and directory in it, renames it to root/<name> and fsyncs the
//     root. After a crash a checkpoint is there whole or not at all; Open
//     removes the temporary directories a crash left behind.
//  2. Checksummed: the descriptor is framed (magic, version, length,
//     CRC-32C of its msgpack payload), and lists a CRC-32C per file. Verify
//     reads every byte and reports any difference, a missing file or an
//     extra one as a *CorruptionError (ErrCorrupt) naming the checkpoint
//     and the file.
//  3. Trusted only when referenced: the Ref the metadata log stores carries
//     the CRC-32C of the whole descriptor, and Verify and Restore check it,
//     so a checkpoint the log does not point at (an unfinished Write, one
//     replaced by a later Write of the same batch time) is never taken for
//     one it does. The caller verifies against a Ref read from the log, not
//     against List.
//  4. Retention: Retain removes every checkpoint not in the list it is
//     given, which should be those the metadata log still references, plus
//     one just written and not yet referenced. Nothing else is deleted by
//     this package: a checkpoint that fails Verify is moved aside as
//     <name>.broken-<unix seconds> (MoveAside) for an operator to inspect,
//     and the node falls back to an older referenced checkpoint.
//  5. Errors are classified: ErrNotFound (no such checkpoint), ErrCorrupt
//     (untrustworthy bytes; also ErrSumMismatch and ErrVersion, which are
//     inside a *CorruptionError), ErrMismatch (sound, but another
//     application, graph or batch time). An fsync error fails the call; the
//     checkpoint is then not referenced, and nothing is retried.
//
// # Concurrency
//
// A Dir is safe for concurrent use. Write, Retain and MoveAside, which
// change the root, run one at a time. Verify, Restore, List, Path and
// DiskUsage take no lock: the caller must not Retain or MoveAside a
// checkpoint it is verifying or restoring at the same time.
package checkpoint
