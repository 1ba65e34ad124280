package recovery

import (
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// RaftInfo is how this node sees the raft group behind the log: who leads
// it, in which term, and how far the log has been committed. It is for
// status pages and metrics; nothing decides on it.
type RaftInfo struct {
	Stats
	NodeID      string
	LeaderID    string    // "" while no leader is known
	LastContact time.Time // when a leader was last heard from; zero on the leader itself and before any contact
	CommitIndex uint64
	Voters      []string // the voters of the latest configuration, in its order
}

// RaftInfo reports the group's leadership and progress as this node sees
// it. It is safe to call after Close (the state is then Shutdown).
func (l *Log) RaftInfo() RaftInfo {
	info := RaftInfo{Stats: l.Stats(), NodeID: l.cfg.NodeID, LastContact: l.raft.LastContact()}
	_, id := l.raft.LeaderWithID()
	info.LeaderID = string(id)
	info.CommitIndex, _ = strconv.ParseUint(l.raft.Stats()["commit_index"], 10, 64)
	if f := l.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				info.Voters = append(info.Voters, string(s.ID))
			}
		}
	}
	return info
}
