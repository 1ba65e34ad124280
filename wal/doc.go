// Package wal is the receiver write-ahead log: the blocks of records a
// receiver cuts from its input streams, written to local disk and synced
// before the source is acknowledged (ARCHITECTURE.md §5, step 2), read back
// by block id when a batch runs or is replayed, and deleted once no batch
// or window needs them (truncation by batch horizon).
//
// Blocks live in a Pebble store, one key per block; the key and value
// format is drawn at the top of wal.go. This package imports nothing else
// of the module.
//
// # Invariants
//
//  1. Durable before acknowledged: Append returns nil only after the block
//     is in Pebble's WAL and that WAL has been fsynced. A crash at any
//     point after Append returned keeps the block.
//  2. Immutable: a block id is written at most once. Appending it again
//     with the same records is a no-op; with other records it is refused
//     (ErrExists). The check is not atomic with the write: two concurrent
//     Appends of one new id race, so each (stream, node) has one appender.
//  3. Checked on every read: a value carries magic, version, length and a
//     CRC-32C of its payload, and its payload repeats its id. Read and
//     Iterate return a *CorruptionError, naming the block and what is
//     wrong, rather than data that failed a check.
//  4. Fail-stop: after any write or sync error (fsyncgate) the log is
//     failed. The failing call and every later one but Stats and Close
//     return an error wrapping ErrFailed and the cause, and nothing is
//     retried: what a failed fsync left on disk is unknown, and Pebble's
//     commit pipeline is unusable. Reads are refused too, since the
//     memtable may hold writes that never became durable. Recovery is a
//     restart: Open replays what is on disk. Pebble reacts to a failed WAL
//     in two ways: through Logger.Fatalf, which the log turns into
//     ErrFailed, or, for a commit that races the first failure, with a bare
//     panic inside its commit pipeline while holding the pipeline's lock.
//     The log lets that panic end the process: recovering from it would
//     leave every later commit waiting on the lock forever. Either way no
//     Append is acknowledged after the failure.
//  5. Deletes are not synced. A deleted block may reappear after a crash;
//     the caller deletes by batch horizon, so it deletes it again.
//  6. One owner: Pebble's LOCK file keeps a second process (or a second
//     Log in this process) out of the directory; Open fails with ErrLocked.
//
// # After a crash
//
// Open replays Pebble's own WAL. What Pebble v2.1.7 does with damage there
// (corruption_test.go pins each case down):
//
//   - A torn tail, the end of a write in progress at the crash (cut short,
//     zeroed, or garbage), lies past the last sync. Pebble reads it as the
//     end of the log: Open succeeds with every synced block, and the block
//     being written is there whole or not at all.
//   - Damage to a synced record with a later 32 KiB WAL block after it:
//     the sync offsets in that later block prove the damaged record had
//     been synced, so Open fails with an error wrapping ErrCorrupt that
//     says to move the directory aside. Open rotates Pebble's WAL once
//     (rotateWAL), because the first WAL of a new store lacks those sync
//     offsets and would read such damage as a torn tail.
//   - Damage to a synced record in the last 32 KiB block of the newest
//     WAL cannot be told from a torn tail: Open succeeds, and the blocks
//     written after the damaged one are gone. The caller must therefore
//     take ErrNotFound for a block its metadata log references as a lost
//     block, and read it from a replica.
//
// # Concurrency
//
// A Log is safe for concurrent use. Concurrent Appends share fsyncs:
// Pebble's commit pipeline writes every commit queued while a sync is in
// progress to the WAL, then syncs once for all of them (group commit), so
// throughput grows with the number of appenders while each Append still
// returns only once its block is durable. Stats.Syncs counts the fsyncs.
// Close waits for the calls in progress and refuses later ones with
// ErrClosed; an Iterate callback must therefore not call Close.
package wal
