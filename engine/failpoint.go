package engine

import (
	"os"
	"strings"
	"syscall"
)

// Failpoints are named places on the commit path where a crash test can
// have the process kill itself with SIGKILL, to prove that what was
// acknowledged survives a crash at that instant. They are set by the
// environment variable SLUICE_FAILPOINTS, a comma-separated list of
// names, read once at start; when it is unset (always, outside crash
// tests) a failpoint costs one predictable branch.
//
// The names, in the order a record meets them:
const (
	// FailAfterWALWrite: the block is written to the WAL, not synced.
	FailAfterWALWrite = "after-wal-write-before-sync"
	// FailAfterWALSync: the block is synced, BlockAdded not committed.
	FailAfterWALSync = "after-wal-sync-before-block-added"
	// FailAfterBlockAdded: BlockAdded is committed, the source not yet
	// acknowledged (the ingest reply not sent).
	FailAfterBlockAdded = "after-block-added-before-ack"
	// FailAfterBatchAllocated: BatchAllocated is committed, the batch's
	// outputs not yet written.
	FailAfterBatchAllocated = "after-batch-allocated"
	// FailBeforeBatchCompleted: the batch's outputs are written,
	// BatchCompleted not committed.
	FailBeforeBatchCompleted = "before-batch-completed"
)

var failpoints = parseFailpoints(os.Getenv("SLUICE_FAILPOINTS"))

func parseFailpoints(s string) map[string]bool {
	if s == "" {
		return nil
	}
	m := make(map[string]bool)
	for _, name := range strings.Split(s, ",") {
		m[strings.TrimSpace(name)] = true
	}
	return m
}

// failpointSet reports whether name is set.
func failpointSet(name string) bool { return failpoints != nil && failpoints[name] }

// failpoint kills the process if name is set.
func failpoint(name string) {
	if !failpointSet(name) {
		return
	}
	os.Stderr.WriteString("sluice: failpoint " + name + ": killing the process\n")
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}
