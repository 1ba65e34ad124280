package main

// A soak test: word count over reliable ingest at a steady rate for a long
// while, the node restarted every minute (by SIGKILL and SIGTERM in turn)
// on the same data directory. It checks that the node counts exactly what
// the producer was told it stored, and that the disk it keeps (write-ahead
// log, state, checkpoints, metadata log) stays bounded while the distinct
// keys do not grow. It is long, so it runs only when asked:
//
//	go test ./cmd/node -run TestSoak -soak=10m -timeout 30m -v

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"
)

var (
	soakFor     = flag.Duration("soak", 0, "run TestSoak for this long (0: skip it)")
	soakRate    = flag.Int("soak.rate", 2000, "lines per second TestSoak's producer sends (10 words each)")
	soakRestart = flag.Duration("soak.restart", time.Minute, "how often TestSoak restarts the node")
)

const (
	soakVocabulary   = 1000                   // distinct words: the state's keys
	soakWordsPerLine = 10                     // words per line
	soakTick         = 100 * time.Millisecond // one request per tick
	soakSampleEvery  = 10 * time.Second
	soakDrain        = 60 * time.Second // until the state counts every acknowledged word
)

// soakDirs are the parts of the data directory sampled, in table order;
// output grows by design (every batch's counts) and is reported only.
var soakDirs = []string{"wal", "state", "checkpoints", "meta", "output"}

// soakBounded are the parts that must stay bounded.
var soakBounded = []string{"wal", "state", "checkpoints", "meta"}

// TestSoak runs word count over ingest for -soak, restarting the node
// every -soak.restart, with a producer sending -soak.rate lines a second
// of words from a fixed vocabulary, and checks:
//
//   - exactly once: the counts in the state sum to the words of the
//     acknowledged requests, no more, no less;
//   - bounded disk: no part of the data directory but output is, in the
//     last third of the run, above 1.5× its maximum in the middle third
//     (plus 1 MiB, so that small directories may wobble).
func TestSoak(t *testing.T) {
	if *soakFor <= 0 {
		t.Skip("a soak test; run it with -soak=DURATION, e.g. go test ./cmd/node -run TestSoak -soak=10m -timeout 30m -v")
	}
	if dl, ok := t.Deadline(); ok && time.Until(dl) < *soakFor+3*time.Minute {
		t.Fatalf("-soak=%v needs a -timeout of at least %v more than the soak", *soakFor, 3*time.Minute)
	}
	dir := t.TempDir()
	s := &soak{t: t, dir: dir, start: time.Now()}
	p := newSoakProducer(t, *soakRate)
	ep := newNodeEndpoint()
	n := s.startNode()
	ep.set(n.addr)

	ctx, cancel := context.WithCancel(context.Background())
	stop, finished := make(chan struct{}), make(chan struct{})
	var runErr error
	go func() { defer close(finished); runErr = p.run(ctx, ep, stop) }()
	t.Cleanup(func() { cancel(); <-finished })

	// Samples fall between restarts, which take their own sample before
	// the node stops.
	sample := time.NewTicker(soakSampleEvery)
	defer sample.Stop()
	<-time.After(soakSampleEvery / 2)
	sample.Reset(soakSampleEvery)
	restart := time.NewTicker(*soakRestart - soakSampleEvery/2)
	first := true
	defer restart.Stop()
	end := time.After(*soakFor)
	kills := 0
loop:
	for {
		select {
		case <-sample.C:
			s.sample(n)
		case <-restart.C:
			if first {
				restart.Reset(*soakRestart)
				first = false
			}
			kill := kills%2 == 0
			kills++
			n = s.restart(n, kill)
			ep.set(n.addr)
		case <-finished:
			t.Fatalf("the producer stopped: %v", runErr)
		case <-end:
			break loop
		}
	}
	close(stop)
	select {
	case <-finished:
		if runErr != nil {
			t.Fatalf("producer: %v", runErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the producer did not get its last request acknowledged in 30s")
	}
	acked := p.ackedLines()
	got := s.waitCounted(n.addr, acked*soakWordsPerLine)
	s.sample(n)
	n.stopGracefully(t)
	s.sample(nil)

	t.Logf("producer: %s", p.summary())
	t.Logf("restarts: %d (SIGKILL and SIGTERM in turn); samples every %v:\n%s", kills, soakSampleEvery, s.table())
	if want := acked * soakWordsPerLine; got != want {
		t.Errorf("exactly once: the state counts %d words, the producer had %d lines (%d words) acknowledged: %+d",
			got, acked, want, got-want)
	} else {
		t.Logf("exactly once: the state counts %d words, %d per acknowledged line of %d", got, soakWordsPerLine, acked)
	}
	s.checkBounded()
}

// soak is the state of one soak run: the data directory and the samples.
type soak struct {
	t     *testing.T
	dir   string
	start time.Time

	mu      sync.Mutex
	samples []soakSample
}

type soakSample struct {
	at    time.Duration // since the start
	bytes map[string]int64
	files map[string]int
	// unique is the bytes of the bounded parts with each file once: a
	// checkpoint hard-links the state's tables.
	unique int64
	rss    int64 // of the node, 0 when none runs
	hwm    int64 // its peak RSS so far
	event  string
}

func (s *soak) startNode() *crashNode {
	s.t.Helper()
	c := &crashNode{child: startChildEnv(s.t, nil, "run", "--app", "wordcount", "--source", "ingest", "--data-dir", s.dir,
		"--http", "127.0.0.1:0", "--batch", "500ms", "--top", "1")}
	if err := c.awaitAddr(); err != nil {
		s.t.Fatal(err)
	}
	return c
}

// restart stops n, by SIGKILL when kill is set, else gracefully, and
// starts a node on the same directory.
func (s *soak) restart(n *crashNode, kill bool) *crashNode {
	s.t.Helper()
	s.sample(n)
	how := "SIGTERM"
	if kill {
		how = "SIGKILL"
		n.kill(s.t)
	} else {
		n.stopGracefully(s.t)
	}
	s.mu.Lock()
	s.samples[len(s.samples)-1].event = how
	s.mu.Unlock()
	s.t.Logf("%v: restarted the node after %s", time.Since(s.start).Round(time.Second), how)
	return s.startNode()
}

// sample records the size of every part of the data directory and the
// node's RSS (n nil: no node runs).
func (s *soak) sample(n *crashNode) {
	sm := soakSample{at: time.Since(s.start), bytes: map[string]int64{}, files: map[string]int{}}
	seen := map[uint64]bool{}
	for _, d := range soakDirs {
		sm.bytes[d], sm.files[d] = dirUsage(filepath.Join(s.dir, d), nil)
		if slices.Contains(soakBounded, d) {
			u, _ := dirUsage(filepath.Join(s.dir, d), seen)
			sm.unique += u
		}
	}
	if n != nil {
		sm.rss, sm.hwm = procMemory(n.cmd.Process.Pid)
	}
	s.mu.Lock()
	s.samples = append(s.samples, sm)
	s.mu.Unlock()
}

// dirUsage sums the sizes of the regular files under dir; with seen, a
// file with several links is counted once over the calls sharing seen.
// Files may vanish while it walks (compactions, truncation): those are
// skipped.
func dirUsage(dir string, seen map[uint64]bool) (bytes int64, files int) {
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && seen != nil {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		bytes += info.Size()
		files++
		return nil
	})
	return bytes, files
}

// procMemory reads VmRSS and VmHWM of a process, in bytes (0 if unknown).
func procMemory(pid int) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm
}

// waitCounted polls the word counts in the node's state until they sum to
// want, and returns the last sum.
func (s *soak) waitCounted(addr string, want int64) int64 {
	s.t.Helper()
	deadline := time.Now().Add(soakDrain)
	var got int64
	var err error
	for {
		got, err = stateTotal(addr)
		if err == nil && got == want || time.Now().After(deadline) {
			break
		}
		<-time.After(200 * time.Millisecond)
	}
	if err != nil {
		s.t.Errorf("the last read of the state failed: %v", err)
	}
	return got
}

// stateTotal sums every count of the wordcount state (the vocabulary is
// well under the 10,000 keys one request returns).
func stateTotal(addr string) (int64, error) {
	resp, err := http.Get("http://" + addr + "/api/state/wordcount?top=10000")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /api/state/wordcount: %s", resp.Status)
	}
	var doc struct {
		Top []struct {
			Key   string `json:"key"`
			Value int64  `json:"value"`
		} `json:"top"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return 0, err
	}
	if len(doc.Top) > soakVocabulary {
		return 0, fmt.Errorf("the state has %d words, the vocabulary %d", len(doc.Top), soakVocabulary)
	}
	var sum int64
	for _, kv := range doc.Top {
		sum += kv.Value
	}
	return sum, nil
}

// table prints the samples: time, the bytes (and files) of each part of
// the data directory, the node's RSS and peak RSS, and restarts.
func (s *soak) table() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(w, "time\t")
	for _, d := range soakDirs {
		fmt.Fprintf(w, "%s\t", d)
	}
	fmt.Fprint(w, "disk\trss\tpeak rss\tevent\t\n")
	for _, sm := range s.samples {
		at := sm.at.Round(time.Second)
		fmt.Fprintf(w, "%d:%02d\t", int(at.Minutes()), int(at.Seconds())%60)
		for _, d := range soakDirs {
			fmt.Fprintf(w, "%s (%d)\t", mib(sm.bytes[d]), sm.files[d])
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t\n", mib(sm.unique), mib(sm.rss), mib(sm.hwm), sm.event)
	}
	w.Flush()
	return b.String()
}

func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
}

// checkBounded compares, for each bounded part of the data directory and
// their sum, the maximum of the last third of the run with that of the
// middle third.
func (s *soak) checkBounded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	third := *soakFor / 3
	maxIn := func(part string, from, to time.Duration) int64 {
		var m int64
		for _, sm := range s.samples {
			if sm.at >= from && sm.at < to {
				v := sm.bytes[part]
				if part == "" {
					v = sm.unique
				}
				m = max(m, v)
			}
		}
		return m
	}
	for _, part := range append([]string{""}, soakBounded...) {
		mid, last := maxIn(part, third, 2*third), maxIn(part, 2*third, 1<<62)
		name := part
		if name == "" {
			name = "disk (" + strings.Join(soakBounded, "+") + ", each file once)"
		}
		limit := mid*3/2 + 1<<20
		verdict := "bounded"
		if last > limit {
			verdict = "GROWS"
			s.t.Errorf("%s: %s at most in the last third of the run, over 1.5× the %s of the middle third (+1 MiB)", name, mib(last), mib(mid))
		}
		s.t.Logf("%s: max %s in the middle third, %s in the last: %s", name, mib(mid), mib(last), verdict)
	}
	out := s.samples[len(s.samples)-1]
	s.t.Logf("output (grows by design, not checked): %s in %d files", mib(out.bytes["output"]), out.files["output"])
}

// soakProducer sends lines of words from a fixed vocabulary at a steady
// rate, one request per tick, each retried under its sequence number until
// acknowledged (through tokenProducer.post). Only acknowledged lines
// count. A tick missed while a request is retried is skipped, not caught
// up.
type soakProducer struct {
	tp    *tokenProducer
	rng   *rand.Rand
	lines int // per request

	mu     sync.Mutex
	seq    uint64
	acked  int64 // lines
	counts [3]int
	dups   int
}

func newSoakProducer(t *testing.T, rate int) *soakProducer {
	perTick := max(1, rate*int(soakTick)/int(time.Second))
	return &soakProducer{tp: newTokenProducer(t, "soak", 1), rng: rand.New(rand.NewPCG(1, 2)), lines: perTick}
}

func (p *soakProducer) request() *producerRequest {
	p.mu.Lock()
	p.seq++
	r := &producerRequest{seq: p.seq}
	p.mu.Unlock()
	var b strings.Builder
	for range p.lines {
		b.Reset()
		for w := range soakWordsPerLine {
			if w > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "w%d", p.rng.IntN(soakVocabulary))
		}
		r.tokens = append(r.tokens, b.String())
	}
	return r
}

// run sends until stop is closed (and the request then pending is
// acknowledged) or ctx ends. It fails on a refusal no retry can cure.
func (p *soakProducer) run(ctx context.Context, ep *nodeEndpoint, stop <-chan struct{}) error {
	tick := time.NewTicker(soakTick)
	defer tick.Stop()
	for {
		if err := p.deliver(ctx, ep, p.request()); err != nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// deliver sends r until it is acknowledged.
func (p *soakProducer) deliver(ctx context.Context, ep *nodeEndpoint, r *producerRequest) error {
	for {
		addr, changed := ep.get()
		a := p.tp.post(ctx, addr, r)
		if ctx.Err() != nil {
			return nil
		}
		p.mu.Lock()
		p.counts[a.outcome]++
		if a.outcome == attemptAcked {
			p.acked += int64(len(r.tokens))
			if a.duplicate {
				p.dups++
			}
		}
		p.mu.Unlock()
		switch {
		case a.outcome == attemptAcked:
			return nil
		case a.outcome == attemptRefused && !a.retryable:
			return fmt.Errorf("request %d refused: %d %s", r.seq, a.status, a.err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (p *soakProducer) ackedLines() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}

func (p *soakProducer) summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%d requests of %d lines, %d lines acknowledged; attempts: %d acknowledged (%d as duplicates), %d refused, %d without a reply",
		p.seq, p.lines, p.acked, p.counts[attemptAcked], p.dups, p.counts[attemptRefused], p.counts[attemptIndeterminate])
}
