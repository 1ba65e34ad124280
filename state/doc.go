// Package state is the keyed state of Sluice's stateful operators
// (UpdateStateByKey, MapWithState) and the per-batch slices that windows
// still need, on Pebble, per (operator, partition).
//
// # The life of a batch's writes
//
// A batch t writes through a Batch: one Part per (operator, partition),
// each an overlay in memory that the batch's own reads see, over the state
// committed by the batch before. Nothing reaches the store's main keys
// until the metadata log says t completed:
//
//  1. WriteDelta: every change of t (puts, deletes, slices) is written as
//     t's delta, under its own key prefix, in one synced Pebble batch.
//     Writing the delta of t again (a re-run) first deletes the old one,
//     so a re-run replaces its writes and never adds twice.
//  2. The engine commits BatchCompleted{t} to the metadata log.
//  3. Apply: the changes are written to the main keys, the delta is
//     deleted and the applied batch time set to t, in one Pebble batch.
//     It need not be synced: until it is durable the delta is, and the
//     next batch's synced delta write carries it to disk (Pebble's WAL is
//     ordered).
//
// After a crash, Open leaves the store as the last Apply left it, and
// Recover (given the metadata log's last completed batch) redoes the
// deltas of completed batches and drops those of batches the log does not
// say completed. Readers therefore only ever see committed state: the
// main keys hold the state as of Applied(), which the log says completed.
//
// Memory is bounded by the keys one batch changes, not by the state: the
// state itself lives in Pebble, behind its block cache.
//
// # Concurrency
//
// One batch at a time. Different Parts of a batch may be used by different
// goroutines at once (one task per partition); one Part must not be. The
// read methods of Store (Get, Scan, Applied, Stats) are safe at any time
// and see committed state only. Scratch batches (Scratch) may be open at
// any time, alongside the open batch and a replica's ImportDelta and
// ApplyDelta: each reads a snapshot of the state as of its Base and is
// never written; Close releases it (Store.Close releases those left).
//
// This package imports no other package of Sluice: the engine encodes
// keys and values (msgpack) and gives the store bytes.
package state
