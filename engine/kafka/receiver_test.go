package kafka

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Every record of every partition is in exactly one batch, and the
// records of a partition keep their order.
func TestStreamConsumesEachRecordOnceInOrder(t *testing.T) {
	brokers := newCluster(t, "words")
	want := lines("w", 0, 500)
	produce(t, brokers, "words", want[:200]...)
	col := &collector{}
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topics = brokers, []string{"words"}
	startContext(t, t.TempDir(), cfg, col)
	produce(t, brokers, "words", want[200:]...) // while it runs
	waitFor(t, "500 records", func() bool { got, _ := col.snapshot(); return len(got) >= len(want) })
	time.Sleep(200 * time.Millisecond) // a few more batches: a repeat would show
	got, _ := col.snapshot()
	inOrderOnce(t, got, want)
}

// A stream stopped and started again over the same data directory
// resumes at the offsets stored with its blocks: it skips nothing that
// was produced meanwhile and repeats nothing it had read.
func TestStreamRestartResumesAtTheStoredPosition(t *testing.T) {
	brokers := newCluster(t, "words")
	dir := t.TempDir()
	want := lines("w", 0, 300)
	produce(t, brokers, "words", want[:100]...)
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topics = brokers, []string{"words"}
	col := &collector{}
	c := startContext(t, dir, cfg, col)
	waitFor(t, "the first 100 records", func() bool { got, _ := col.snapshot(); return len(got) >= 100 })
	if err := c.Stop(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	produce(t, brokers, "words", want[100:200]...) // while it is down
	startContext(t, dir, cfg, col)
	produce(t, brokers, "words", want[200:]...)
	waitFor(t, "300 records", func() bool { got, _ := col.snapshot(); return len(got) >= len(want) })
	time.Sleep(200 * time.Millisecond)
	got, _ := col.snapshot()
	inOrderOnce(t, got, want)
}

// An unreachable cluster is a receiver error: reported, retried with a
// backoff, nothing stored, and the context keeps running batches.
func TestStreamUnreachableBrokerIsARetriedReceiverError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a port where nothing listens
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topics, cfg.Timeout = []string{addr}, []string{"words"}, 200*time.Millisecond
	col := &collector{}
	c := startContext(t, t.TempDir(), cfg, col)
	waitFor(t, "two receiver errors (a retry)", func() bool { return receiverInfo(c).Errors >= 2 })
	_, before := col.snapshot()
	waitFor(t, "more batches", func() bool { _, n := col.snapshot(); return n > before+2 })
	ri := receiverInfo(c)
	if ri.Records != 0 || ri.Blocks != 0 || !ri.Running {
		t.Errorf("receiver %+v: want running, nothing stored", ri)
	}
	if !strings.Contains(ri.LastError, "kafka:") || !strings.Contains(ri.LastError, "restarting in") {
		t.Errorf("last error %q does not say what failed and that it is retried", ri.LastError)
	}
}

// A missing topic is a receiver error until the topic exists; nothing is
// stored or committed to the group meanwhile, and once it exists the
// retry reads it and commits the stored offsets to the group.
func TestStreamMissingTopicIsRetriedUntilItExists(t *testing.T) {
	brokers := newCluster(t)
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topics, cfg.Group, cfg.Timeout = brokers, []string{"later"}, "watchers", time.Second
	col := &collector{}
	c := startContext(t, t.TempDir(), cfg, col)
	waitFor(t, "a receiver error", func() bool { return receiverInfo(c).Errors >= 1 })
	if ri := receiverInfo(c); !strings.Contains(ri.LastError, "later") || ri.Records != 0 {
		t.Errorf("receiver %+v: want an error naming the topic, nothing stored", ri)
	}
	if got := groupOffsets(t, brokers, "watchers", "later"); len(got) != 0 {
		t.Errorf("group offsets %v before anything was stored; want none", got)
	}
	createTopic(t, brokers, "later")
	want := lines("l", 0, 50)
	produce(t, brokers, "later", want...)
	waitFor(t, "50 records after the retry", func() bool { got, _ := col.snapshot(); return len(got) >= 50 })
	waitFor(t, "the group's offsets", func() bool {
		got := groupOffsets(t, brokers, "watchers", "later")
		return got[0] == 25 && got[1] == 25
	})
	got, _ := col.snapshot()
	inOrderOnce(t, got, want)
}

// groupOffsets fetches a group's committed offsets of topic.
func groupOffsets(t *testing.T, brokers []string, group, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, ids, err := topicPartitions(ctx, cl, []string{topic}, waitTimeout)
	if err != nil {
		return nil // no topic, no offsets
	}
	req := kmsg.NewPtrOffsetFetchRequest()
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	rt := kmsg.NewOffsetFetchRequestGroupTopic()
	rt.Topic, rt.TopicID, rt.Partitions = topic, ids[topic], []int32{0, 1}
	rg.Topics = append(rg.Topics, rt)
	req.Groups = append(req.Groups, rg)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[int32]int64)
	for _, g := range resp.Groups {
		for _, rt := range g.Topics {
			for _, p := range rt.Partitions {
				if p.Offset >= 0 {
					out[p.Partition] = p.Offset
				}
			}
		}
	}
	return out
}
