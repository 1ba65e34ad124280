package engine

import (
	"testing"
	"time"
)

// TestClusterOfOneLeadsItself checks what a status page shows of a single
// node: "Starting" before Start, then a one-voter group led by itself,
// caught up, in a term of at least 1.
func TestClusterOfOneLeadsItself(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.NodeID = "solo" })
	QueueStream(h.c, NewQueue([]string{"a"}), true).Print(1)
	if ci := h.c.Cluster(); ci.State != StateStarting || ci.Leading() {
		t.Fatalf("before Start: %+v, want state %s and no leader", ci, StateStarting)
	}
	h.start()
	h.run(1)
	// The driver goes on allocating batches: an entry may be committed
	// and not yet applied at the instant of a look, so caught up is
	// awaited (bounded), not sampled once.
	ci := h.c.Cluster()
	for deadline := time.Now().Add(5 * time.Second); !ci.CaughtUp() && time.Now().Before(deadline); ci = h.c.Cluster() {
		time.Sleep(5 * time.Millisecond)
	}
	if ci.State != "Leader" || ci.LeaderID != "solo" || !ci.Leading() || !ci.CaughtUp() || ci.Term < 1 {
		t.Errorf("after Start: %+v, want the leader solo, caught up, term ≥ 1", ci)
	}
	if len(ci.Voters) != 1 || ci.Voters[0] != "solo" || ci.CommitIndex == 0 {
		t.Errorf("voters %v, commit index %d: want [solo] and entries committed", ci.Voters, ci.CommitIndex)
	}
}
