package recovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// memCluster is three logs on raft's in-memory transport, each over its
// own in-memory filesystem.
type memCluster struct {
	t      *testing.T
	peers  []Peer
	fs     map[string]vfs.FS
	trans  map[string]*raft.InmemTransport
	logs   map[string]*Log
	mu     sync.Mutex
	truncs map[string][]BlockRef
}

func newMemCluster(t *testing.T, ids ...string) *memCluster {
	c := &memCluster{t: t, fs: map[string]vfs.FS{}, trans: map[string]*raft.InmemTransport{}, logs: map[string]*Log{}, truncs: map[string][]BlockRef{}}
	for _, id := range ids {
		c.peers = append(c.peers, Peer{ID: id, Address: id})
		c.fs[id] = vfs.NewMem()
	}
	for _, id := range ids {
		c.start(id)
	}
	t.Cleanup(func() {
		for _, l := range c.logs {
			l.Close()
		}
	})
	return c
}

func (c *memCluster) start(id string) {
	_, tr := raft.NewInmemTransport(raft.ServerAddress(id))
	for other, o := range c.trans {
		if other != id {
			tr.Connect(raft.ServerAddress(other), o)
			o.Connect(raft.ServerAddress(id), tr)
		}
	}
	c.trans[id] = tr
	l, err := Open(context.Background(), Config{Dir: "meta", NodeID: id, FS: c.fs[id], Transport: tr, Peers: c.peers,
		Snapshots: raft.NewInmemSnapshotStore(), HeartbeatTimeout: 20 * time.Millisecond, ElectionTimeout: 20 * time.Millisecond,
		OnTruncate: func(refs []BlockRef) {
			c.mu.Lock()
			c.truncs[id] = append(c.truncs[id], refs...)
			c.mu.Unlock()
		}})
	if err != nil {
		c.t.Fatal(err)
	}
	c.logs[id] = l
}

// leader waits for one log to lead and returns it.
func (c *memCluster) leader(except string) *Log {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for id, l := range c.logs {
			if id != except && l.IsLeader() {
				return l
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatal("no leader within 10s")
	return nil
}

// A three-voter group elects a leader, commits on it, refuses applies on
// followers, and every follower's FSM sees the entries and the
// truncations.
func TestClusterOfThree(t *testing.T) {
	c := newMemCluster(t, "n1", "n2", "n3")
	ctx := context.Background()
	l := c.leader("")
	id, _ := l.Leader()
	if _, err := l.Apply(ctx, DriverStarted{Epoch: l.Term(), Node: id}); err != nil {
		t.Fatal(err)
	}
	epoch := l.Term()
	for i := uint64(1); i <= 3; i++ {
		ev := BlockAdded{Block: BlockRef{Stream: "s", Node: id, Seq: i}, Records: 1, Bytes: 1, Replicas: []string{"x"}}
		if _, err := l.Apply(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Apply(ctx, BatchAllocated{Time: int64(i), Epoch: epoch}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Apply(ctx, BatchCompleted{Time: int64(i), Epoch: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Apply(ctx, Truncated{Before: 3, Epoch: epoch}); err != nil {
		t.Fatal(err)
	}
	for fid, f := range c.logs {
		if f == l {
			continue
		}
		if _, err := f.Apply(ctx, BatchAllocated{Time: 9}); !errors.Is(err, ErrNotLeader) {
			t.Errorf("apply on follower %s: %v, want ErrNotLeader", fid, err)
		}
		waitFor(t, func() bool { return f.View().TruncatedBefore == 3 })
		if e, d := f.Epoch(); e != epoch || d != id {
			t.Errorf("follower %s: epoch %d driver %s, want %d %s", fid, e, d, epoch, id)
		}
		v := f.View()
		if len(v.Batches) != 1 || !slices.Equal(v.Batches[0].Blocks[0].Replicas, []string{"x"}) {
			t.Errorf("follower %s: batches %+v", fid, v.Batches)
		}
	}
	for fid := range c.logs {
		waitFor(t, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return len(c.truncs[fid]) == 2
		})
	}
}

// The leader's loss: the two others elect a new leader in a higher term,
// whose DriverStarted fences the old epoch.
func TestClusterLeaderLossFencesTheOldEpoch(t *testing.T) {
	c := newMemCluster(t, "n1", "n2", "n3")
	ctx := context.Background()
	old := c.leader("")
	oldID, _ := old.Leader()
	oldEpoch := old.Term()
	if _, err := old.Apply(ctx, DriverStarted{Epoch: oldEpoch, Node: oldID}); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Apply(ctx, BatchAllocated{Time: 1, Epoch: oldEpoch}); err != nil {
		t.Fatal(err)
	}
	old.Close()
	delete(c.logs, oldID)
	l := c.leader(oldID)
	newID, _ := l.Leader()
	if l.Term() <= oldEpoch {
		t.Fatalf("new term %d ≤ old %d", l.Term(), oldEpoch)
	}
	if err := l.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx, DriverStarted{Epoch: l.Term(), Node: newID}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx, BatchCompleted{Time: 1, Epoch: oldEpoch}); !errors.Is(err, ErrFenced) {
		t.Fatalf("old epoch's completion: %v, want ErrFenced", err)
	}
	if _, err := l.Apply(ctx, BatchCompleted{Time: 1, Epoch: l.Term()}); err != nil {
		t.Fatal(err)
	}
}

func TestClusterPeersRefused(t *testing.T) {
	base := Config{Dir: "meta", NodeID: "n1", FS: vfs.NewMem()}
	cases := []struct {
		name  string
		peers []Peer
	}{
		{"duplicate_id", []Peer{{"n1", "a:1"}, {"n1", "a:2"}}},
		{"duplicate_address", []Peer{{"n1", "a:1"}, {"n2", "a:1"}}},
		{"self_missing", []Peer{{"n2", "a:1"}, {"n3", "a:2"}}},
		{"empty_address", []Peer{{"n1", ""}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.Peers = tc.peers
			if _, err := Open(context.Background(), cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// A node restarted with peers that differ from the stored cluster is
// refused with both lists; restarted with the same peers it rejoins.
func TestClusterStoredPeersMismatch(t *testing.T) {
	c := newMemCluster(t, "n1", "n2", "n3")
	c.leader("")
	c.logs["n3"].Close()
	delete(c.logs, "n3")
	_, tr := raft.NewInmemTransport("n3")
	cfg := Config{Dir: "meta", NodeID: "n3", FS: c.fs["n3"], Transport: tr, Snapshots: raft.NewInmemSnapshotStore(),
		Peers: []Peer{{"n1", "n1"}, {"n3", "n3"}, {"n4", "n4"}}}
	_, err := Open(context.Background(), cfg)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err %v, want ErrInvalidConfig", err)
	}
	t.Log(err)
	want := fmt.Sprintf("(%s)", "n1=n1,n2=n2,n3=n3")
	if msg := err.Error(); !strings.Contains(msg, want) {
		t.Errorf("error %q does not name the stored peers %s", msg, want)
	}
	c.start("n3")
	waitFor(t, func() bool { id, _ := c.logs["n3"].Leader(); return id != "" })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
