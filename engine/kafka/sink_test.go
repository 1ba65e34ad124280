package kafka

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-stream/sluice/engine"
)

func newTestSink(t *testing.T, brokers []string) *Sink[string] {
	t.Helper()
	s, err := NewSink(SinkConfig{Brokers: brokers, Topic: "out", App: "app", Name: "s", Timeout: 5 * time.Second},
		func(v string) ([]byte, []byte) { return nil, []byte(v) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// written is an output record as a reader sees it: value@batch/tid.
func readOutput(t *testing.T, brokers []string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var out []string
	err := readCommitted(ctx, []kgo.Opt{kgo.SeedBrokers(brokers...)}, "out", func(r *kgo.Record) {
		b, tid, _ := batchOf(r)
		out = append(out, fmt.Sprintf("%s@%d/%s", r.Value, int64(b), tid))
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func write(t *testing.T, s *Sink[string], batch engine.Time, p int, records ...string) {
	t.Helper()
	if err := s.Write(context.Background(), engine.SinkPartition{Time: batch, Partition: p, Partitions: 2}, records); err != nil {
		t.Fatalf("writing batch %d partition %d: %v", batch, p, err)
	}
}

// A batch re-run after a restart (a new Sink over the same topic) finds
// its partitions committed and writes nothing; later batches are written.
func TestSinkReRunOfACommittedBatchWritesNothing(t *testing.T) {
	brokers := newClusterOf(t, 1, "out")
	s1 := newTestSink(t, brokers)
	write(t, s1, 1000, 0, "a", "b")
	write(t, s1, 1000, 1, "c")
	write(t, s1, 1000, 0, "a", "b") // a repeat in the same process
	s1.Close()

	s2 := newTestSink(t, brokers)
	write(t, s2, 1000, 0, "a", "b")
	write(t, s2, 1000, 1, "c")
	write(t, s2, 2000, 0, "d")
	want := []string{"a@1000/sluice-app-s-p0", "b@1000/sluice-app-s-p0", "c@1000/sluice-app-s-p1", "d@2000/sluice-app-s-p0"}
	if got := readOutput(t, brokers); !slices.Equal(got, want) {
		t.Errorf("output %v, want %v", got, want)
	}
}

// A producer that died inside a transaction leaves it open; a new sink
// fences every partition's producer before it reads what was committed,
// so the open transaction of one partition neither hides a later commit
// of another (which would be written twice) nor reaches the output.
func TestSinkFencesEveryPartitionBeforeReadingWhatWasCommitted(t *testing.T) {
	brokers := newClusterOf(t, 1, "out")
	s1 := newTestSink(t, brokers)
	write(t, s1, 1000, 0, "a")

	zombie, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(s1.TransactionalID(1)),
		kgo.TransactionTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer zombie.Close()
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	rec := &kgo.Record{Topic: "out", Value: []byte("z"), Headers: []kgo.RecordHeader{
		{Key: headerBatch, Value: []byte("2000")}, {Key: headerTxn, Value: []byte(s1.TransactionalID(1))}}}
	if err := zombie.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	write(t, s1, 2000, 0, "y") // above the zombie's open transaction
	s1.Close()                 // the process dies; the zombie's transaction stays open

	start := time.Now()
	s2 := newTestSink(t, brokers)
	write(t, s2, 2000, 0, "y") // committed before: nothing
	write(t, s2, 2000, 1, "w") // never committed: written
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the restarted sink took %v: it waited for the open transaction to time out", d)
	}
	want := []string{"a@1000/sluice-app-s-p0", "y@2000/sluice-app-s-p0", "w@2000/sluice-app-s-p1"}
	if got := readOutput(t, brokers); !slices.Equal(got, want) {
		t.Errorf("output %v, want %v", got, want)
	}
}
