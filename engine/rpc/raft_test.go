package rpc

import (
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// countFSM records every applied command.
type countFSM struct {
	mu      sync.Mutex
	applied []string
}

func (f *countFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, string(l.Data))
	return len(f.applied)
}

func (f *countFSM) has(cmd string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.applied {
		if c == cmd {
			return true
		}
	}
	return false
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnapshot{}, nil }
func (f *countFSM) Restore(r io.ReadCloser) error       { return r.Close() }

type nopSnapshot struct{}

func (nopSnapshot) Persist(s raft.SnapshotSink) error { return s.Close() }
func (nopSnapshot) Release()                          {}

type raftNode struct {
	id  string
	r   *raft.Raft
	fsm *countFSM
}

// startRaft runs one raft node per endpoint, bootstrapped as one cluster,
// shut down at cleanup (before the endpoints close).
func startRaft(t *testing.T, eps []Endpoint) []*raftNode {
	t.Helper()
	var servers []raft.Server
	for _, ep := range eps {
		addr, ok := eps[0].RaftAddress(ep.ID())
		if !ok {
			t.Fatalf("no raft address for %s", ep.ID())
		}
		servers = append(servers, raft.Server{ID: raft.ServerID(ep.ID()), Address: addr})
	}
	nodes := make([]*raftNode, len(eps))
	for i, ep := range eps {
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(ep.ID())
		conf.HeartbeatTimeout = 100 * time.Millisecond
		conf.ElectionTimeout = 100 * time.Millisecond
		conf.LeaderLeaseTimeout = 100 * time.Millisecond
		conf.CommitTimeout = 5 * time.Millisecond
		conf.Logger = hclog.NewNullLogger()
		store := raft.NewInmemStore()
		fsm := &countFSM{}
		r, err := raft.NewRaft(conf, fsm, store, store, raft.NewInmemSnapshotStore(), ep.Raft())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Shutdown().Error() })
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			t.Fatal(err)
		}
		nodes[i] = &raftNode{id: ep.ID(), r: r, fsm: fsm}
	}
	return nodes
}

// eventually polls cond (raft's state is only observable by polling) and
// fails with what after the bound.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leaderAmong waits for exactly one of nodes to be leader and returns it.
func leaderAmong(t *testing.T, nodes ...*raftNode) *raftNode {
	t.Helper()
	var leader *raftNode
	eventually(t, "a leader", func() bool {
		leader = nil
		for _, n := range nodes {
			if n.r.State() == raft.Leader {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		return leader != nil
	})
	return leader
}

func applyAndReplicate(t *testing.T, leader *raftNode, cmd string, nodes ...*raftNode) {
	t.Helper()
	if err := leader.r.Apply([]byte(cmd), 5*time.Second).Error(); err != nil {
		t.Fatalf("apply %s on leader %s: %v", cmd, leader.id, err)
	}
	eventually(t, fmt.Sprintf("%s on every node", cmd), func() bool {
		for _, n := range nodes {
			if !n.fsm.has(cmd) {
				return false
			}
		}
		return true
	})
}

// TestRaftOverTCP: three raft nodes whose traffic shares each endpoint's
// one port with RPC elect a leader and replicate; RPC keeps working.
func TestRaftOverTCP(t *testing.T) {
	checkLeaks(t)
	tcps := newTCPCluster(t, 3, Options{})
	eps := []Endpoint{tcps[0], tcps[1], tcps[2]}
	nodes := startRaft(t, eps)
	leader := leaderAmong(t, nodes...)
	applyAndReplicate(t, leader, "x", nodes...)
	tcps[2].Handle("echo", echo)
	if err := tcps[0].Call(t.Context(), "n3", "echo", echoReq{Text: "beside raft"}, nil); err != nil {
		t.Fatalf("rpc beside raft: %v", err)
	}
}

func TestRaftOverMem(t *testing.T) {
	checkLeaks(t)
	_, mems := newMemCluster(t, Options{}, "a", "b", "c")
	nodes := startRaft(t, []Endpoint{mems[0], mems[1], mems[2]})
	applyAndReplicate(t, leaderAmong(t, nodes...), "x", nodes...)
}

// TestRaftMemPartitionLeader (Raft paper §5.2, §5.4): the isolated leader
// cannot commit; the majority elects a new leader and commits; after Heal
// the old leader follows and catches up.
func TestRaftMemPartitionLeader(t *testing.T) {
	checkLeaks(t)
	n, mems := newMemCluster(t, Options{}, "a", "b", "c")
	nodes := startRaft(t, []Endpoint{mems[0], mems[1], mems[2]})
	old := leaderAmong(t, nodes...)
	applyAndReplicate(t, old, "before", nodes...)

	n.Isolate(old.id)
	var rest []*raftNode
	for _, nd := range nodes {
		if nd != old {
			rest = append(rest, nd)
		}
	}
	if err := old.r.Apply([]byte("lost"), time.Second).Error(); err == nil {
		t.Fatal("isolated leader committed an entry")
	}
	leader := leaderAmong(t, rest...)
	applyAndReplicate(t, leader, "during", rest...)

	n.Heal()
	applyAndReplicate(t, leader, "after", nodes...)
	eventually(t, "old leader to follow", func() bool {
		return old.r.State() == raft.Follower && old.fsm.has("during")
	})
	for _, nd := range nodes {
		if nd.fsm.has("lost") {
			t.Fatalf("%s applied the entry the isolated leader could not commit", nd.id)
		}
	}
}
