package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/sluice-stream/sluice/engine/rpc"
	"github.com/sluice-stream/sluice/recovery"
	"github.com/sluice-stream/sluice/wal"
)

// startSoloCluster starts a one-node cluster (its own leader) on net.
func startSoloCluster(t *testing.T, net *rpc.MemNetwork) *Context {
	t.Helper()
	c, err := NewContext(Config{AppName: "solo", BatchDuration: 50 * time.Millisecond, DataDir: "/d", FS: vfs.NewMem(), NodeID: "n1",
		Logger: slog.New(slog.DiscardHandler), Stdout: nopWriter{},
		Cluster: &ClusterConfig{Network: net.Endpoint("n1"), Peers: []recovery.Peer{{ID: "n1", Address: "n1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	lines := IngestStream(c, "lines")
	lines.ForeachRDD(func(Time, RDD[string]) error { return nil })
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background(), false) })
	deadline := time.Now().Add(10 * time.Second)
	for !c.node.driving() || !c.node.ready() {
		if time.Now().After(deadline) {
			t.Fatal("the solo node never drove")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

// soloClusterAndIntruder starts a one-node cluster and a peer endpoint on
// its network that is no node of it, with a context for its calls; the
// test's cleanup closes both.
func soloClusterAndIntruder(t *testing.T) (*Context, *rpc.MemEndpoint, context.Context) {
	t.Helper()
	net := rpc.NewMemNetwork()
	c := startSoloCluster(t, net)
	peer := net.Endpoint("intruder")
	t.Cleanup(func() { peer.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c, peer, ctx
}

// Messages from a peer that do not decode, ask for what is not served,
// or come from a deposed driver are refused with a code; the node keeps
// running and ingest still works.
func TestClusterRefusesBadPeerMessages(t *testing.T) {
	c, peer, ctx := soloClusterAndIntruder(t)
	batchDone, _ := recovery.EncodeEvent(recovery.BatchCompleted{Time: 1})
	cases := []struct {
		name, method string
		req          any
		code         string
	}{
		{"apply_garbage", methodApply, []byte{0xff, 0x01}, codeRefused},
		{"apply_not_a_block", methodApply, batchDone, codeRefused},
		{"apply_not_bytes", methodApply, 42, codeRefused},
		{"block_put_garbage", methodBlockPut, "not a block", codeRefused},
		{"block_get_missing", methodBlockGet, &blockMsg{ID: wal.BlockID{Stream: "lines", Node: "n9", Seq: 1}}, codeNotFound},
		{"block_get_empty_id", methodBlockGet, &blockMsg{}, codeRefused},
		{"delta_garbage", methodDelta, []int{1, 2}, codeRefused},
		{"delta_old_epoch", methodDelta, &deltaMsg{Epoch: 0, Time: 5, Prev: 0}, codeFenced},
		{"ckpt_read_too_much", methodCkptRead, &ckptReadMsg{N: 1 << 30}, codeRefused},
		{"ckpt_files_unknown", methodCkptFiles, map[string]any{"t": 1, "n": "ckpt-1", "s": 3}, codeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := peer.Call(ctx, "n1", tc.method, tc.req, nil)
			if !rpc.IsCode(err, tc.code) {
				t.Fatalf("err %v, want code %s", err, tc.code)
			}
		})
	}
	if err := peer.Call(ctx, "n1", "no.such.method", nil, nil); err == nil {
		t.Fatal("an unknown method answered")
	}
	res, err := c.Ingest(ctx, "lines", "p", 1, []string{"still", "running"})
	if err != nil || res.Duplicate {
		t.Fatalf("ingest after the bad messages: %+v, %v", res, err)
	}
}

// startCluster starts nodes n1..nk on net, each with an ingest stream,
// and returns them once one drives and every one admits ingest.
func startCluster(t *testing.T, net *rpc.MemNetwork, k int, cc ClusterConfig) []*Context {
	t.Helper()
	var peers []recovery.Peer
	for i := 1; i <= k; i++ {
		id := fmt.Sprintf("n%d", i)
		peers = append(peers, recovery.Peer{ID: id, Address: id})
	}
	var cs []*Context
	for _, p := range peers {
		cfg := cc
		cfg.Network, cfg.Peers = net.Endpoint(p.ID), peers
		c, err := NewContext(Config{AppName: "cluster", BatchDuration: 50 * time.Millisecond, DataDir: "/d", FS: vfs.NewMem(),
			NodeID: p.ID, Logger: slog.New(slog.DiscardHandler), Stdout: nopWriter{}, Cluster: &cfg})
		if err != nil {
			t.Fatal(err)
		}
		IngestStream(c, "lines").ForeachRDD(func(Time, RDD[string]) error { return nil })
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Stop(context.Background(), false) })
		cs = append(cs, c)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		driving, ready := 0, 0
		for _, c := range cs {
			if c.node.driving() {
				driving++
			}
			if c.node.ready() {
				ready++
			}
		}
		if driving == 1 && ready == k {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster never got a driver and every node ready (%d driving, %d ready)", driving, ready)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A node cut off from the others while an ingest request is being stored
// (its BlockAdded retried against a leader it cannot reach, for up to a
// minute) stops promptly when the stop is not graceful: the request is
// abandoned, unacknowledged, for its producer to retry elsewhere. Stop
// once waited the storage's minute out, and a crashed node of the
// simulation held its restart (and the cluster's load) for that minute.
func TestClusterStopAbandonsIngestBeingStored(t *testing.T) {
	net := rpc.NewMemNetwork()
	cs := startCluster(t, net, 3, ClusterConfig{Replication: 1})
	var leader *Context
	for _, c := range cs {
		if c.node.driving() {
			leader = c
		}
	}
	net.Isolate(leader.cfg.NodeID)
	s := leader.ingest["lines"]
	errc := make(chan error, 1)
	go func() {
		_, err := leader.Ingest(context.Background(), "lines", "p", 1, []string{"stranded"})
		errc <- err
	}()
	for storing := 0; storing == 0; {
		s.group.mu.Lock()
		storing = s.group.mu.storing
		s.group.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	leader.Stop(ctx, false)
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Stop took %v with an ingest request being stored", took)
	}
	if err := <-errc; !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("the stranded request: %v, want ErrStorageFailed", err)
	}
}

// A follower whose context is stopping (Stop waits for ingest requests
// first, its replica loop still running) leaves its state replica alone:
// the store it answers while stopping is none, and it once took that for
// a missing replica and restored the newest checkpoint over it every
// second until the stop ended.
func TestClusterStoppingFollowerKeepsItsReplica(t *testing.T) {
	net := rpc.NewMemNetwork()
	cs := startCluster(t, net, 3, ClusterConfig{})
	var f *Context
	for _, c := range cs {
		if !c.node.driving() {
			f = c
		}
	}
	if _, err := f.Ingest(context.Background(), "lines", "p", 1, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		refs := f.node.meta().Checkpoints()
		if n := len(refs); n > 0 {
			f.node.mu.Lock()
			have := f.node.mu.installed[refs[n-1].Name]
			f.node.mu.Unlock()
			if have {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the follower never copied a checkpoint")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.mu.Lock()
	f.state = stopped // as Stop's first step does
	before := f.storage.state
	f.mu.Unlock()
	f.node.restoreIfBehind()
	f.mu.Lock()
	after := f.storage.state
	f.state = active
	f.mu.Unlock()
	if after != before {
		t.Fatal("a stopping follower replaced its state replica with a checkpoint")
	}
}
