package engine

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Failpoints are named places on the commit path where a crash test can
// have the process kill itself with SIGKILL, to prove that what was
// acknowledged survives a crash at that instant. They are set by the
// environment variable SLUICE_FAILPOINTS, a comma-separated list of
// names, read once at start; when it is unset (always, outside crash
// tests) a failpoint costs one predictable branch. NAME@N kills at the
// Nth time the process passes NAME (default the first), so that a crash
// test can choose the batch it dies in.
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
	// FailAfterOutputWritten: the batch's outputs are written, its state
	// delta not yet.
	FailAfterOutputWritten = "after-output-written"
	// FailAfterStateDelta: the batch's state delta is written and synced,
	// no checkpoint written, BatchCompleted not committed.
	FailAfterStateDelta = "after-state-delta-written"
	// FailAfterCheckpointRenamed: a checkpoint is in place (renamed and
	// synced) but not referenced by the metadata log.
	FailAfterCheckpointRenamed = "after-checkpoint-renamed"
	// FailBeforeBatchCompleted: outputs, delta and checkpoint are
	// written, BatchCompleted not committed.
	FailBeforeBatchCompleted = "before-batch-completed"
	// FailAfterBatchCompleted: BatchCompleted is committed, the state
	// delta not yet applied to the committed state.
	FailAfterBatchCompleted = "after-batch-completed"
)

// Failpoints lists every failpoint name, in the order a batch meets them.
var Failpoints = []string{FailAfterWALWrite, FailAfterWALSync, FailAfterBlockAdded, FailAfterBatchAllocated,
	FailAfterOutputWritten, FailAfterStateDelta, FailAfterCheckpointRenamed, FailBeforeBatchCompleted, FailAfterBatchCompleted}

var failpoints = parseFailpoints(os.Getenv("SLUICE_FAILPOINTS"))

// failpointHits counts down to the hit that kills.
type failpointHits struct{ left atomic.Int64 }

func parseFailpoints(s string) map[string]*failpointHits {
	if s == "" {
		return nil
	}
	m := make(map[string]*failpointHits)
	for _, spec := range strings.Split(s, ",") {
		name, nth, _ := strings.Cut(strings.TrimSpace(spec), "@")
		n, err := strconv.Atoi(nth)
		if err != nil || n < 1 {
			n = 1
		}
		h := &failpointHits{}
		h.left.Store(int64(n))
		m[name] = h
	}
	return m
}

// failpointSet reports whether name is set.
func failpointSet(name string) bool { return failpoints != nil && failpoints[name] != nil }

// failpoint kills the process if name is set and this is its hit.
func failpoint(name string) {
	if !failpointSet(name) || failpoints[name].left.Add(-1) != 0 {
		return
	}
	os.Stderr.WriteString("sluice: failpoint " + name + ": killing the process\n")
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}
