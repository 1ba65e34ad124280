// Package recovery is Sluice's metadata log (ARCHITECTURE.md §4): the
// replicated record of which blocks exist, which batch each block belongs
// to, which batches completed, and which producer requests were stored. A
// driver that starts (a restarted single node, or a new Raft leader) reads
// it to know exactly what to re-run; nothing else decides what a batch
// holds.
//
// # What it is made of
//
//  1. Events (events.go): BlockAdded, BatchAllocated, BatchCompleted,
//     Truncated, each a 1-byte type and a msgpack payload in a versioned
//     envelope. Unknown types are an error, never a panic.
//  2. A pure state machine (fsm.go, state.go): the rules, documented one by
//     one in fsm.go, are deterministic and idempotent, because raft applies
//     the entries after the newest snapshot again on every start.
//  3. hashicorp/raft around it (log.go): Open, Apply, View, Stats, Close.
//     This release runs a one-voter group on an in-memory transport; the
//     Transport field is the seam for the three-voter release.
//  4. Storage: raft's log and stable store on one Pebble database in
//     Dir/raft (pebble_store.go), raft's FileSnapshotStore in
//     Dir/snapshots holding the FSM snapshot envelope (snapshot.go).
//
// # Invariants
//
//   - A block is added at most once, ever (block sequences are remembered
//     per (stream, node) after truncation), and is in at most one batch.
//   - A batch's blocks are fixed when it is allocated; blocks go to the
//     first batch allocated after them, in add order.
//   - Batches complete in time order, so the completed batches are a prefix
//     and View.Pending is what is left to run.
//   - A (producer, seq) is Stored at most once; its retries are Duplicate
//     and their records are in the block's Skip, so they are never counted.
//   - Open serves the state of the log as stored, or a prefix of it, or
//     fails naming the damaged file; never another state (see below).
//
// # Faults, and what Open does
//
//   - A torn Pebble WAL (the newest file in Dir/raft): Pebble replays it up
//     to the last whole record, so the log is a prefix of what was written
//     and the FSM state is exactly the state after that prefix of events.
//   - A torn or damaged sstable or MANIFEST: Pebble refuses to open; the
//     error names the file.
//   - A corrupt snapshot (raft's CRC-64, our CRC-32C envelope, or an
//     unreadable meta.json): if the log still holds every entry after an
//     older snapshot, that one is used and the corrupt one is moved to
//     Dir/snapshots.broken; otherwise Open fails with a *CorruptionError
//     naming the snapshot file (snapshot_check.go).
//   - A snapshot of a newer format version: Open fails with
//     ErrSnapshotVersion (upgrade the binary); it is not treated as corrupt.
//   - An entry of an unknown type or envelope version: the FSM logs it and
//     leaves its state unchanged, at Apply and at every replay.
//
// # Concurrency
//
// A Log is safe for concurrent use. Raft's FSM goroutine is the only writer
// of the state; View takes a read lock and returns a deep copy, so a View
// never changes and applies never wait for a reader for long. Apply blocks
// until the entry is applied (or ctx ends: the entry may still commit).
// Concurrent Applies are batched by raft into one synced Pebble write.
// Close waits for every raft future still in flight, then shuts raft down
// and closes the store: no goroutine of the package outlives Close.
package recovery
