package kafka

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// Bad credentials are a receiver error, retried with backoff, with the
// node up and nothing stored; the same stream with the right credentials
// (given as franz-go options, Config.Opts) reads the topic.
func TestStreamBadCredentialsIsARetriedReceiverError(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "words"),
		kfake.EnableSASL(), kfake.Superuser("PLAIN", "sluice", "right"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()
	auth := func(pass string) kgo.Opt {
		return kgo.SASL(plain.Auth{User: "sluice", Pass: pass}.AsMechanism())
	}

	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topics, cfg.Timeout = brokers, []string{"words"}, 500*time.Millisecond
	cfg.Opts = []kgo.Opt{auth("wrong")}
	col := &collector{}
	c := startContext(t, t.TempDir(), cfg, col)
	waitFor(t, "two receiver errors (a retry)", func() bool { return receiverInfo(c).Errors >= 2 })
	if ri := receiverInfo(c); ri.Records != 0 || ri.Blocks != 0 || !ri.Running {
		t.Errorf("receiver %+v with bad credentials: want running, nothing stored", ri)
	}
	c.Stop(context.Background(), false)

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), auth("right"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "words", Partition: 0, Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cfg.Opts = []kgo.Opt{auth("right")}
	col2 := &collector{}
	startContext(t, t.TempDir(), cfg, col2)
	waitFor(t, "the record read with the right credentials", func() bool {
		got, _ := col2.snapshot()
		return slices.Contains(got, "hello")
	})
}
