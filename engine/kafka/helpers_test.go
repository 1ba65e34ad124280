package kafka

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-stream/sluice/engine"
)

const waitTimeout = 15 * time.Second

// newCluster starts a one-broker fake Kafka cluster on loopback in the
// test process, with topics of two partitions each.
func newCluster(t *testing.T, topics ...string) []string {
	t.Helper()
	return newClusterOf(t, 2, topics...)
}

// newClusterOf is newCluster with topics of n partitions.
func newClusterOf(t *testing.T, n int32, topics ...string) []string {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(n, topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// produce writes lines to topic, line i to partition i%2, and returns
// once they are acknowledged.
func produce(t *testing.T, brokers []string, topic string, lines ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(lines))
	for i, l := range lines {
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte(l)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// createTopic creates a topic of two partitions.
func createTopic(t *testing.T, brokers []string, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 2, 1
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := req.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
}

func lines(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%04d", prefix, i))
	}
	return out
}

// collector keeps what a stream's batches held, in batch order.
type collector struct {
	mu  sync.Mutex
	got []string
	n   int // batches seen
}

func (c *collector) add(_ engine.Time, r engine.RDD[string]) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, r.Collect()...)
	c.n++
	return nil
}

func (c *collector) snapshot() ([]string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got), c.n
}

// startContext runs a Kafka stream over dataDir into col.
func startContext(t *testing.T, dataDir string, cfg Config, col *collector) *engine.Context {
	t.Helper()
	ec := engine.DefaultConfig()
	ec.BatchDuration, ec.Partitions, ec.DataDir = 50*time.Millisecond, 2, dataDir
	ec.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := engine.NewContext(ec)
	if err != nil {
		t.Fatal(err)
	}
	Stream(c, cfg).ForeachRDD(col.add)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background(), false) })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// inOrderOnce checks that got holds each of want exactly once and that
// the lines of each input partition (i%2) keep their order.
func inOrderOnce(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	sorted := slices.Sorted(slices.Values(got))
	if !slices.Equal(sorted, slices.Sorted(slices.Values(want))) {
		t.Fatalf("records differ from the input:\n got %v\nwant %v", got, want)
	}
	pos := make(map[string]int)
	for i, w := range want {
		pos[w] = i
	}
	last := map[int]int{0: -1, 1: -1}
	for _, g := range got {
		i := pos[g]
		if i <= last[i%2] {
			t.Fatalf("%s came after line %d of its partition: out of order in %v", g, last[i%2], got)
		}
		last[i%2] = i
	}
}

// receiverInfo returns the context's one receiver.
func receiverInfo(c *engine.Context) engine.ReceiverInfo {
	rs := c.Receivers()
	if len(rs) != 1 {
		return engine.ReceiverInfo{}
	}
	return rs[0]
}
