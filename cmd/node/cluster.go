package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// clusterWatch follows the metadata log's Raft group as this node sees
// it, polling Context.Cluster, and keeps its changes of leader: on a
// single node, its election at every start; in a cluster, the failovers.
// One goroutine, started by start and ended by stop.
type clusterWatch struct {
	c       *engine.Context
	log     *slog.Logger
	every   time.Duration
	running *atomic.Bool // set once Context.Start has returned

	quit     chan struct{}
	done     chan struct{}
	launched bool       // only the owner's start and stop touch it
	pollMu   sync.Mutex // one poll at a time, so changes are seen in order

	mu struct {
		sync.Mutex
		last    engine.ClusterInfo
		changes []leaderChange     // oldest first, at most keepChanges
		replays map[uint64][]int64 // epoch → batch times replayed in it
		total   int64              // changes seen, also those no longer kept
	}
}

// leaderChange is one change of leader: a new driver and its epoch.
type leaderChange struct {
	At   time.Time `json:"at"`
	Term uint64    `json:"term"`
	From string    `json:"from"` // "" when no leader was known before
	To   string    `json:"to"`
	// Replayed lists the batches (times in ms) this driver re-ran because
	// an earlier one had allocated them and not completed them.
	Replayed []int64 `json:"replayed_batches"`
}

const keepChanges = 50

func newClusterWatch(c *engine.Context, log *slog.Logger, running *atomic.Bool) *clusterWatch {
	w := &clusterWatch{c: c, log: log, every: 250 * time.Millisecond, running: running,
		quit: make(chan struct{}), done: make(chan struct{})}
	w.mu.replays = make(map[uint64][]int64)
	w.mu.last = engine.ClusterInfo{NodeID: c.Config().NodeID, State: engine.StateStarting}
	return w
}

func (w *clusterWatch) start() {
	w.poll()
	w.launched = true
	go w.run()
}

func (w *clusterWatch) run() {
	defer close(w.done)
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			w.poll()
		case <-w.quit:
			return
		}
	}
}

// stop ends the goroutine; safe to call when start never was.
func (w *clusterWatch) stop() {
	close(w.quit)
	if w.launched {
		<-w.done
	}
}

// poll reads the cluster and records a change of leader or of term.
func (w *clusterWatch) poll() {
	if !w.running.Load() {
		return
	}
	w.pollMu.Lock()
	defer w.pollMu.Unlock()
	ci := w.c.Cluster()
	w.mu.Lock()
	prev := w.mu.last
	w.mu.last = ci
	changed := ci.LeaderID != "" && (ci.LeaderID != prev.LeaderID || ci.Term != prev.Term)
	if changed {
		w.mu.total++
		w.mu.changes = append(w.mu.changes, leaderChange{At: time.Now(), Term: ci.Term, From: prev.LeaderID, To: ci.LeaderID})
		if len(w.mu.changes) > keepChanges {
			w.mu.changes = w.mu.changes[1:]
		}
	}
	w.mu.Unlock()
	switch {
	case changed && prev.LeaderID == "":
		w.log.Info("leader elected", "leader", ci.LeaderID, "term", ci.Term, "self", ci.Leading())
	case changed:
		w.log.Info("failover: the leader changed", "from", prev.LeaderID, "to", ci.LeaderID, "term", ci.Term, "self", ci.Leading())
	case prev.LeaderID != "" && ci.LeaderID == "":
		w.log.Warn("the cluster has no leader", "last_leader", prev.LeaderID, "term", ci.Term, "state", ci.State)
	}
}

// noteReplay records that batch t was replayed by the driver of epoch.
func (w *clusterWatch) noteReplay(epoch uint64, t int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mu.replays[epoch] = append(w.mu.replays[epoch], t)
}

// info returns the latest view of the cluster, polling it first so that a
// request sees the present, and the changes of leader, newest first.
func (w *clusterWatch) info() (engine.ClusterInfo, []leaderChange, int64) {
	w.poll()
	w.mu.Lock()
	defer w.mu.Unlock()
	changes := make([]leaderChange, 0, len(w.mu.changes))
	for i := len(w.mu.changes) - 1; i >= 0; i-- {
		ch := w.mu.changes[i]
		ch.Replayed = append([]int64{}, w.mu.replays[ch.Term]...)
		changes = append(changes, ch)
	}
	return w.mu.last, changes, w.mu.total
}

// clusterDoc is the body of /api/cluster. Nodes lists every voter of the
// metadata log; on a single node, one.
type clusterDoc struct {
	NodeID        string         `json:"node_id"` // the node answering
	Leader        *string        `json:"leader"`  // the leader's id; null while none is known
	LeaderID      string         `json:"leader_id"`
	Term          uint64         `json:"term"`
	Ready         bool           `json:"ready"`
	Message       string         `json:"message,omitempty"` // why not ready
	Nodes         []clusterNode  `json:"nodes"`
	LeaderChanges []leaderChange `json:"leader_changes"`
}

// clusterNode is one voter. Fields this node cannot know of another node
// (its indexes, its last contact) are left out for it.
type clusterNode struct {
	ID                 string     `json:"id"`
	Self               bool       `json:"self"`
	Role               string     `json:"role"` // Leader, Follower, Candidate, Shutdown, Starting
	Term               uint64     `json:"term"`
	LastContact        *time.Time `json:"last_contact,omitempty"` // when it last heard from the leader; absent on the leader
	CommitIndex        uint64     `json:"commit_index,omitempty"`
	AppliedIndex       uint64     `json:"applied_index,omitempty"`
	PartitionsLed      int        `json:"partitions_led"`
	PartitionsBackedUp int        `json:"partitions_backed_up"`
	// In a cluster, as each node reports itself (GET /api/cluster asks
	// every node): whether it drives, the epoch it knows, the batch its
	// state replica is as of, and why it cannot be reached.
	Driving        bool   `json:"driving"`
	Epoch          uint64 `json:"epoch,omitempty"`
	LastCompleted  int64  `json:"last_completed_ms,omitempty"`
	StateAppliedMs int64  `json:"state_applied_ms,omitempty"`
	Error          string `json:"error,omitempty"`
}

// doc is GET /api/cluster: with local set, this node's view of itself
// alone, without asking the other nodes (which takes up to half a second
// when one of them is stopped).
func (w *clusterWatch) doc(local bool) clusterDoc {
	ci, changes, _ := w.info()
	d := clusterDoc{NodeID: ci.NodeID, LeaderID: ci.LeaderID, Term: ci.Term, LeaderChanges: changes}
	if ci.LeaderID != "" {
		d.Leader = &ci.LeaderID
	}
	d.Ready, d.Message = readiness(ci)
	if w.c.Config().Cluster != nil && w.running.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		statuses := []engine.NodeStatus{w.c.NodeStatus()}
		if !local {
			statuses = w.c.ClusterStatus(ctx)
		}
		for _, st := range statuses {
			n := clusterNode{ID: st.ID, Self: st.ID == ci.NodeID, Role: st.Role, Term: st.Term, AppliedIndex: st.AppliedIndex,
				Driving: st.Driving, Epoch: st.Epoch, LastCompleted: int64(st.LastCompleted), StateAppliedMs: int64(st.StateApplied), Error: st.Error}
			if !st.LastContact.IsZero() {
				lc := st.LastContact
				n.LastContact = &lc
			}
			if led, backed, ok := w.c.PartitionRoles(st.ID); ok {
				n.PartitionsLed, n.PartitionsBackedUp = led, backed
			} else if st.Driving {
				n.PartitionsLed = ci.Partitions
			}
			d.Nodes = append(d.Nodes, n)
		}
		return d
	}
	self := clusterNode{ID: ci.NodeID, Self: true, Role: ci.State, Term: ci.Term, CommitIndex: ci.CommitIndex, AppliedIndex: ci.AppliedIndex}
	if !ci.LastContact.IsZero() && !ci.Leading() {
		lc := ci.LastContact
		self.LastContact = &lc
	}
	// Until partitions are assigned through the log (the cluster), the
	// leader holds every partition and no node backs one up.
	if ci.Leading() {
		self.PartitionsLed = ci.Partitions
	}
	d.Nodes = append(d.Nodes, self)
	for _, v := range ci.Voters {
		if v == ci.NodeID {
			continue
		}
		n := clusterNode{ID: v, Role: "Follower", Term: ci.Term}
		if v == ci.LeaderID {
			n.Role, n.PartitionsLed = "Leader", ci.Partitions
		}
		d.Nodes = append(d.Nodes, n)
	}
	return d
}

// readiness says whether the node can serve: it has a leader and has
// applied what is committed. The message says why not.
func readiness(ci engine.ClusterInfo) (bool, string) {
	switch {
	case ci.State == engine.StateStarting:
		return false, "the node is starting: its metadata log is not open yet"
	case ci.State == "Shutdown":
		return false, "the node is stopping: its metadata log is shut down"
	case ci.LeaderID == "":
		return false, "the cluster has no leader (state " + ci.State + "): waiting for an election"
	case !ci.CaughtUp():
		return false, "catching up with the metadata log"
	}
	return true, ""
}
