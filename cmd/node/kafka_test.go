package main

// Exactly-once from Kafka to Kafka across kill -9: the tests run a real
// Kafka protocol peer in the test process (franz-go's kfake cluster, on
// loopback), the node as a child process reading a topic with
// --source kafka://... and writing word counts with --kafka-out, kill it,
// restart it, and read the output topic with a read-committed consumer.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-stream/sluice/engine"
)

// kafkaWords is the vocabulary of the test's input.
var kafkaWords = strings.Fields("amber birch cedar delta ember fjord glade heron inlet juniper kestrel larch")

// kafkaInput returns n lines of 1 to 5 words drawn from a seed, and the
// count of each word.
func kafkaInput(seed uint64, n int) ([]string, map[string]int64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	lines, counts := make([]string, n), make(map[string]int64)
	for i := range lines {
		ws := make([]string, 1+rng.IntN(5))
		for j := range ws {
			ws[j] = kafkaWords[rng.IntN(len(kafkaWords))]
			counts[ws[j]]++
		}
		lines[i] = strings.Join(ws, " ")
	}
	return lines, counts
}

// produceLines sends lines to topic in chunks, pausing between them so
// that they spread over batches.
func produceLines(t *testing.T, brokers []string, topic string, lines []string, chunk int, pause time.Duration) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for lo := 0; lo < len(lines); lo += chunk {
		var recs []*kgo.Record
		for _, l := range lines[lo:min(lo+chunk, len(lines))] {
			recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(l)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return err
		}
		time.Sleep(pause)
	}
	return nil
}

// startKafkaNode runs wordcount from topic "lines" to topic "counts" on
// dataDir, with SLUICE_FAILPOINTS=failpoint unless it is "".
func startKafkaNode(t *testing.T, broker, dataDir, failpoint string) *child {
	t.Helper()
	return startChildEnv(t, failpointEnv(failpoint), "run", "--source", "kafka://"+broker+"/lines?start=earliest&group=sluice-test",
		"--kafka-out", "kafka://"+broker+"/counts", "--data-dir", dataDir,
		"--http", "127.0.0.1:0", "--batch", "100ms", "--partitions", "2", "--top", "3")
}

// waitKilled waits for c to die by SIGKILL.
func (c *child) waitKilled(what string) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(deathDeadline):
		c.t.Fatalf("the node did not die %s within %v; output:\n%s", what, deathDeadline, c.output())
	}
	c.cmd.Wait()
	if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		c.t.Fatalf("the node exited with %v, want killed by SIGKILL %s; output:\n%s", c.cmd.ProcessState, what, c.output())
	}
}

// stateCounts reads every word's committed count from the state API.
func stateCounts(t *testing.T, addr string) map[string]int64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/state/wordcount?top=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Top []engine.StateValue `json:"top"`
	}
	if resp.StatusCode != http.StatusOK {
		return nil // no batch completed yet
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]int64)
	for _, v := range doc.Top {
		n, _ := v.Value.(float64)
		out[fmt.Sprint(v.Key)] = int64(n)
	}
	return out
}

// outputRecord is one committed record of the output topic.
type outputRecord struct {
	word  string
	count int64
	batch string
}

// readOutput reads the output topic with a read-committed consumer until
// the last count of every word is want (or a deadline), then for a
// moment more, so that a late duplicate would show.
func readOutput(t *testing.T, brokers []string, want map[string]int64) []outputRecord {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("counts"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []outputRecord
	last := make(map[string]int64)
	matches := func() bool {
		for w, n := range want {
			if last[w] != n {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(drainDeadline)
	var quietSince time.Time
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		fetches := cl.PollFetches(ctx)
		cancel()
		got := 0
		fetches.EachRecord(func(r *kgo.Record) {
			got++
			n, _ := strconv.ParseInt(string(r.Value), 10, 64)
			rec := outputRecord{word: string(r.Key), count: n}
			for _, h := range r.Headers {
				if h.Key == "sluice-batch" {
					rec.batch = string(h.Value)
				}
			}
			out = append(out, rec)
			last[rec.word] = n
		})
		switch {
		case got > 0:
			quietSince = time.Time{}
		case quietSince.IsZero():
			quietSince = time.Now()
		case matches() && time.Since(quietSince) > 500*time.Millisecond:
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("the output's last counts %v are not the input's %v within %v", last, want, drainDeadline)
		}
	}
}

// TestKafkaExactlyOnceAcrossKillAndRestart reads a topic through word
// count into an output topic and kills the node twice with SIGKILL: once
// at the failpoint after a batch's outputs are written and before its
// completion is recorded (the restart re-runs that batch, and the Kafka
// sink must find its transactions committed), once at a moment of the
// test's choosing while input flows. The third life counts the rest.
// Then the state API must show every word's exact count, and the output
// topic, read committed, must hold each (word, batch) once, counts that
// never go backwards, and the exact count as each word's last value.
func TestKafkaExactlyOnceAcrossKillAndRestart(t *testing.T) {
	began := time.Now()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "lines"), kfake.SeedTopics(3, "counts"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	lines, want := kafkaInput(seed, 3000)
	dir := t.TempDir()
	if err := produceLines(t, brokers, "lines", lines[:1000], 250, 0); err != nil {
		t.Fatal(err)
	}

	// Life 1: dies after writing the outputs of its fourth batch.
	produced := make(chan error, 1)
	n := startKafkaNode(t, brokers[0], dir, engine.FailAfterOutputWritten+"@4")
	n.uiAddr()
	// Input flows through every batch, so the batch that dies has output.
	go func() { produced <- produceLines(t, brokers, "lines", lines[1000:2000], 20, 20*time.Millisecond) }()
	n.waitKilled("at " + engine.FailAfterOutputWritten)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}

	t.Logf("life 1 died at its failpoint after %v", time.Since(began))
	// Life 2: re-runs the batch, then is killed while input flows.
	n = startKafkaNode(t, brokers[0], dir, "")
	n.uiAddr()
	if m := rerunLine.FindStringSubmatch(n.output()); m == nil {
		n.waitLine(rerunLine.String())
	}
	go func() { produced <- produceLines(t, brokers, "lines", lines[2000:], 50, 10*time.Millisecond) }()
	time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.waitKilled("by the test")
	if err := <-produced; err != nil {
		t.Fatal(err)
	}

	t.Logf("life 2 killed after %v", time.Since(began))
	// Life 3: counts the rest.
	n = startKafkaNode(t, brokers[0], dir, "")
	addr := n.uiAddr()
	deadline := time.Now().Add(drainDeadline)
	for got := stateCounts(t, addr); !maps.Equal(got, want); got = stateCounts(t, addr) {
		if time.Now().After(deadline) {
			t.Fatalf("state counts %v, want %v; output:\n%s", got, want, n.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("life 3 counted every line after %v", time.Since(began))
	checkKafkaOutput(t, readOutput(t, brokers, want), want)
	if code := n.stop(); code != exitOK {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

// checkKafkaOutput checks the output topic's records, in the order a
// partition holds them (a word's records are in one partition).
func checkKafkaOutput(t *testing.T, out []outputRecord, want map[string]int64) {
	t.Helper()
	seen := make(map[[2]string]bool)
	last := make(map[string]outputRecord)
	for _, r := range out {
		key := [2]string{r.word, r.batch}
		if r.batch == "" {
			t.Errorf("record %+v has no sluice-batch header", r)
		}
		if seen[key] {
			t.Errorf("word %q of batch %s written twice", r.word, r.batch)
		}
		seen[key] = true
		if p, ok := last[r.word]; ok && (r.count <= p.count || r.batch <= p.batch) {
			t.Errorf("word %q: count %d at batch %s after %d at batch %s: want counts that only grow", r.word, r.count, r.batch, p.count, p.batch)
		}
		last[r.word] = r
	}
	for w, n := range want {
		if last[w].count != n {
			t.Errorf("word %q: last count written %d, want %d", w, last[w].count, n)
		}
	}
	t.Logf("%d committed output records over %d words", len(out), len(want))
}
