package wal

// Stats are counters since Open, and the failure state, for the UI and
// /metrics.
type Stats struct {
	Blocks  uint64 // blocks appended and synced
	Bytes   uint64 // value bytes (frames) of those blocks
	Deleted uint64 // block ids passed to Delete
	// Syncs counts fsyncs of Pebble's WAL files, Open's included. Under
	// concurrent Appends, Pebble's commit pipeline syncs once for every
	// commit queued behind a sync in progress (group commit), so Syncs
	// grows more slowly than Blocks.
	Syncs     uint64
	Failed    bool   // a write or sync failed; see ErrFailed
	LastError string // the failure, or the latest corruption found; "" if none
}
