package engine

import (
	"context"
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

// Messages from a peer that do not decode, ask for what is not served,
// or come from a deposed driver are refused with a code; the node keeps
// running and ingest still works.
func TestClusterRefusesBadPeerMessages(t *testing.T) {
	net := rpc.NewMemNetwork()
	c := startSoloCluster(t, net)
	peer := net.Endpoint("intruder")
	defer peer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
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
