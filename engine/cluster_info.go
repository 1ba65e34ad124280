package engine

import (
	"time"

	"github.com/sluice-stream/sluice/recovery"
)

// ClusterInfo is how this node sees the cluster that runs the context: the
// Raft group of the metadata log, whose leader is the driver. The Raft
// term is the driver's epoch. A single node is a one-voter group, its own
// leader once started.
type ClusterInfo struct {
	NodeID   string `json:"node_id"`
	LeaderID string `json:"leader_id"` // "" while no leader is known
	// State is Raft's state of this node: Leader, Follower, Candidate or
	// Shutdown; "Starting" before Start has opened the metadata log.
	State        string    `json:"state"`
	Term         uint64    `json:"term"`
	LastContact  time.Time `json:"last_contact,omitzero"` // last heard from the leader; zero on the leader
	CommitIndex  uint64    `json:"commit_index"`
	AppliedIndex uint64    `json:"applied_index"`
	LastIndex    uint64    `json:"last_index"`
	Voters       []string  `json:"voters"`
	Partitions   int       `json:"partitions"`
}

// StateStarting is ClusterInfo.State before the metadata log is open.
const StateStarting = "Starting"

// Leading reports whether this node is the leader, so the driver.
func (ci ClusterInfo) Leading() bool { return ci.LeaderID != "" && ci.LeaderID == ci.NodeID }

// CaughtUp reports whether this node has a leader and has applied every
// entry it knows to be committed.
func (ci ClusterInfo) CaughtUp() bool {
	return ci.LeaderID != "" && ci.State != "Shutdown" && ci.AppliedIndex >= ci.CommitIndex
}

// Cluster reports the cluster as this node sees it. It takes the context's
// lock, which Start holds while it opens the metadata log: a caller that
// must not wait for Start (a status page) calls it only after Start.
func (c *Context) Cluster() ClusterInfo {
	c.mu.Lock()
	st := c.storage
	c.mu.Unlock()
	ci := ClusterInfo{NodeID: c.cfg.NodeID, State: StateStarting, Partitions: c.cfg.Partitions}
	if st == nil {
		return ci
	}
	// Optional abilities of the metadata log: a test's log may have none.
	if r, ok := st.meta.(interface{ RaftInfo() recovery.RaftInfo }); ok {
		ri := r.RaftInfo()
		ci.LeaderID, ci.LastContact, ci.CommitIndex, ci.Voters = ri.LeaderID, ri.LastContact, ri.CommitIndex, ri.Voters
		ci.fromStats(ri.Stats)
		return ci
	}
	if s, ok := st.meta.(interface{ Stats() recovery.Stats }); ok {
		ci.fromStats(s.Stats())
		ci.CommitIndex = ci.AppliedIndex
		if ci.State == "Leader" {
			ci.LeaderID = ci.NodeID
		}
		return ci
	}
	// A log without Raft behind it is its own leader.
	ci.State, ci.LeaderID, ci.Voters = "Leader", ci.NodeID, []string{ci.NodeID}
	return ci
}

func (ci *ClusterInfo) fromStats(s recovery.Stats) {
	ci.State, ci.Term, ci.AppliedIndex, ci.LastIndex = s.State, s.Term, s.AppliedIndex, s.LastIndex
}
