package engine

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/sluice-stream/sluice/engine/rpc"
	"github.com/sluice-stream/sluice/recovery"
)

// The simulated cluster (ARCHITECTURE.md §7, layer 3): three nodes in one
// process, on the in-memory network and Pebble's crashable in-memory
// filesystem, fed through ingest on every node while faults drawn from a
// seed hit them: a node crashed (its unsynced writes lost) and restarted,
// the leader partitioned away and healed, a node paused (its calls held
// and delivered late, rpc.MemNetwork.Pause). After the faults the cluster
// must settle, and then:
//
//   - every acknowledged request's records are counted, each in exactly
//     one batch, and nothing that was never sent is;
//   - the word counts (UpdateStateByKey) equal an offline recount of the
//     lines counted, on every node's state replica;
//   - each batch's windowed counts (ReduceByKeyAndWindow, 3 batches)
//     equal the recount of the lines of the batches in its window;
//   - a batch run twice (re-run by a new driver) output exactly what it
//     output the first time.
//
// go test ./engine -run TestSimulatedCluster -sim.seeds=20 runs more
// seeds; a failure prints its seed, and -sim.seed=S replays that
// schedule of faults (batch timing is the real clock's, so a replay is
// close, not identical).

var (
	simSeeds = flag.Int("sim.seeds", 2, "seeds of the simulated cluster test")
	simSeed  = flag.Uint64("sim.seed", 0, "replay one seed of the simulated cluster test")
)

func TestSimulatedCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("the simulated cluster takes seconds per seed")
	}
	seeds := []uint64{}
	if *simSeed != 0 {
		seeds = append(seeds, *simSeed)
	} else {
		for i := range *simSeeds {
			seeds = append(seeds, uint64(1000+i))
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			sim := newSim(t, seed)
			defer sim.close()
			sim.run()
			if t.Failed() {
				t.Logf("replay with: go test ./engine -run TestSimulatedCluster -sim.seed=%d -v", seed)
			}
		})
	}
}

const (
	simBatch  = 100 * time.Millisecond
	simWindow = 3 * simBatch
)

var simVocab = []string{"ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen"}

// simNode is one node: its filesystem survives a crash as CrashClone
// leaves it.
type simNode struct {
	id   string
	fs   *vfs.MemFS
	ctx  *Context
	ep   rpc.Endpoint
	live bool
}

type sim struct {
	t     *testing.T
	seed  uint64
	rng   *rand.Rand
	net   *rpc.MemNetwork
	peers []recovery.Peer
	nodes []*simNode
	log   *slog.Logger

	mu       sync.Mutex
	acked    map[string]string // token → line
	sent     map[string]string // every token sent → line
	batches  map[Time][]string // batch → tokens it counted (sorted)
	windows  map[Time]map[string]int64
	conflict []string
	// counts: every run's output of the word counts (the whole state
	// after the batch), with the node that ran it.
	counts map[Time][]simCounts
}

// simCounts is one run of a batch's state output.
type simCounts struct {
	node   string
	counts map[string]int64
}

func newSim(t *testing.T, seed uint64) *sim {
	s := &sim{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 7)), net: rpc.NewMemNetwork(),
		acked: map[string]string{}, sent: map[string]string{}, batches: map[Time][]string{}, windows: map[Time]map[string]int64{},
		counts: map[Time][]simCounts{}}
	level := slog.LevelError
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	if os.Getenv("SIM_DEBUG") != "" {
		level = slog.LevelDebug
	}
	s.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	for i := 1; i <= 3; i++ {
		id := "n" + strconv.Itoa(i)
		s.peers = append(s.peers, recovery.Peer{ID: id, Address: id})
		s.nodes = append(s.nodes, &simNode{id: id, fs: vfs.NewCrashableMem()})
	}
	for _, n := range s.nodes {
		s.start(n)
	}
	return s
}

// graph builds the application on c, node's, logging what every batch
// outputs.
func (s *sim) graph(c *Context, node string) {
	lines := IngestStream(c, "lines")
	lines.ForeachRDD(func(t Time, r RDD[string]) error {
		var toks []string
		for _, l := range r.Collect() {
			toks = append(toks, strings.Fields(l)[0])
		}
		slices.Sort(toks)
		s.record(t, toks, nil)
		return nil
	})
	words := FlatMap(lines, func(l string) []string { return strings.Fields(l)[1:] })
	pairs := MapToPair(words, func(w string) (string, int64) { return w, 1 })
	UpdateStateByKey(pairs, func(vs []int64, old int64, ok bool) (int64, bool) {
		for _, v := range vs {
			old += v
		}
		return old, true
	}).Named("counts").ForeachRDD(func(t Time, r RDD[Pair[string, int64]]) error {
		m := map[string]int64{}
		for _, p := range r.Collect() {
			m[p.Key] = p.Value
		}
		s.mu.Lock()
		s.counts[t] = append(s.counts[t], simCounts{node: node, counts: m})
		s.mu.Unlock()
		return nil
	})
	win := ReduceByKeyAndWindow(pairs, func(a, b int64) int64 { return a + b }, simWindow, simBatch)
	win.ForeachRDD(func(t Time, r RDD[Pair[string, int64]]) error {
		m := map[string]int64{}
		for _, p := range r.Collect() {
			m[p.Key] = p.Value
		}
		s.record(t, nil, m)
		return nil
	})
}

// record keeps batch t's output; a second run of t must output the same.
func (s *sim) record(t Time, toks []string, win map[string]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if win != nil {
		if old, ok := s.windows[t]; ok && !maps.Equal(old, win) {
			s.conflict = append(s.conflict, fmt.Sprintf("batch %v window: first %v, then %v", t, old, win))
		}
		s.windows[t] = win
		return
	}
	if old, ok := s.batches[t]; ok && !slices.Equal(old, toks) {
		s.conflict = append(s.conflict, fmt.Sprintf("batch %v lines: first %v, then %v", t, old, toks))
	}
	s.batches[t] = toks
}

func (s *sim) start(n *simNode) {
	s.t.Helper()
	n.ep = s.net.Endpoint(n.id)
	c, err := NewContext(Config{AppName: "sim", BatchDuration: simBatch, BlockInterval: 20 * time.Millisecond,
		Partitions: 3, CheckpointInterval: 5 * simBatch, DataDir: "/data", FS: n.fs, NodeID: n.id,
		Logger: s.log.With("node", n.id), Stdout: nopWriter{},
		Cluster: &ClusterConfig{Network: n.ep, Peers: s.peers}})
	if err != nil {
		s.t.Fatal(err)
	}
	s.graph(c, n.id)
	if err := c.Start(); err != nil {
		s.t.Fatalf("start %s: %v", n.id, err)
	}
	s.mu.Lock() // the producers read them
	n.ctx, n.live = c, true
	s.mu.Unlock()
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// crash cuts n off, keeps only what it synced, and stops what is left of
// it.
func (s *sim) crash(n *simNode) {
	s.mu.Lock()
	n.live = false
	s.mu.Unlock()
	n.ep.Close()
	crashed := n.fs.CrashClone(vfs.CrashCloneCfg{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.ctx.Stop(ctx, false)
	n.fs = crashed
}

func (s *sim) leader() *simNode {
	for _, n := range s.nodes {
		if n.live && n.ctx.node.driving() {
			return n
		}
	}
	return nil
}

func (s *sim) close() {
	for _, n := range s.nodes {
		if n.live {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			n.ctx.Stop(ctx, false)
			cancel()
			n.ep.Close()
		}
	}
}

// produce sends requests from one producer to random live nodes until
// stop closes, retrying a request on another node until it is
// acknowledged (a bounded number of tries, then the next request).
func (s *sim) produce(id int, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	rng := rand.New(rand.NewPCG(s.seed, uint64(id)))
	producer := fmt.Sprintf("p%d", id)
	for seq := uint64(1); ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		var lines []string
		for k := range 1 + rng.IntN(3) {
			tok := fmt.Sprintf("%s-%d-%d", producer, seq, k)
			words := []string{tok}
			for range 1 + rng.IntN(4) {
				words = append(words, simVocab[rng.IntN(len(simVocab))])
			}
			lines = append(lines, strings.Join(words, " "))
		}
		s.mu.Lock()
		for _, l := range lines {
			s.sent[strings.Fields(l)[0]] = l
		}
		s.mu.Unlock()
		for try := 0; try < 50; try++ {
			n := s.nodes[rng.IntN(len(s.nodes))]
			s.mu.Lock()
			c, live := n.ctx, n.live
			s.mu.Unlock()
			if !live {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := c.Ingest(ctx, "lines", producer, seq, lines)
			cancel()
			if err != nil && strings.Contains(err.Error(), "was already added") {
				// A node numbered a new block with a used sequence.
				s.t.Errorf("%s: request %s/%d refused: %v", n.id, producer, seq, err)
			}
			if err == nil {
				s.mu.Lock()
				for _, l := range lines {
					s.acked[strings.Fields(l)[0]] = l
				}
				s.mu.Unlock()
				if rng.IntN(8) == 0 {
					s.resend(rng, producer, seq, lines)
				}
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond)
	}
}

// resend sends an acknowledged request again to some live node, as a
// producer whose acknowledgement was lost would: it must be a duplicate
// wherever it lands.
func (s *sim) resend(rng *rand.Rand, producer string, seq uint64, lines []string) {
	n := s.nodes[rng.IntN(len(s.nodes))]
	s.mu.Lock()
	c, live := n.ctx, n.live
	s.mu.Unlock()
	if !live {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if res, err := c.Ingest(ctx, "lines", producer, seq, lines); err == nil && !res.Duplicate {
		s.t.Errorf("%s: request %s/%d sent again was not a duplicate", n.id, producer, seq)
	}
}

// run drives load through faults, settles the cluster and checks it.
func (s *sim) run() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := range 3 {
		wg.Add(1)
		go s.produce(p, stop, &wg)
	}
	steps := 3 + s.rng.IntN(3)
	for range steps {
		time.Sleep(time.Duration(300+s.rng.IntN(500)) * time.Millisecond)
		s.fault()
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	s.net.Heal()
	for _, n := range s.nodes {
		if !n.live {
			s.start(n)
		}
	}
	s.settle()
	s.check()
}

// fault injects one fault from the seed.
func (s *sim) fault() {
	switch k := s.rng.IntN(5); k {
	case 0, 1: // crash the leader, or a random node, and restart it later
		n := s.leader()
		if k == 1 || n == nil {
			n = s.nodes[s.rng.IntN(len(s.nodes))]
		}
		if !n.live {
			s.start(n)
			return
		}
		s.t.Logf("fault: crash %s", n.id)
		s.crash(n)
		if s.rng.IntN(2) == 0 {
			time.Sleep(time.Duration(200+s.rng.IntN(800)) * time.Millisecond)
			s.t.Logf("fault: restart %s", n.id)
			s.start(n)
		}
	case 2: // partition the leader away, then heal
		n := s.leader()
		if n == nil {
			return
		}
		s.t.Logf("fault: isolate %s", n.id)
		s.net.Isolate(n.id)
		time.Sleep(time.Duration(500+s.rng.IntN(1500)) * time.Millisecond)
		s.net.Heal()
		s.t.Logf("fault: heal")
	case 3: // restart a crashed node, if any
		for _, n := range s.nodes {
			if !n.live {
				s.t.Logf("fault: restart %s", n.id)
				s.start(n)
				return
			}
		}
	case 4: // pause the leader, or a random node, past the election timeout
		n := s.leader()
		if n == nil || s.rng.IntN(2) == 0 {
			n = s.nodes[s.rng.IntN(len(s.nodes))]
		}
		d := time.Duration(300+s.rng.IntN(1200)) * time.Millisecond
		s.t.Logf("fault: pause %s for %v", n.id, d)
		s.net.Pause(n.id)
		time.Sleep(d)
		s.net.Resume(n.id)
		s.t.Logf("fault: resume %s", n.id)
	}
}

// settle waits until every token sent is either in a completed batch or
// never will be: the leader has allocated and completed everything, and
// every node's replica answers the same counts.
func (s *sim) settle() {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if s.settled() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.mu.Lock()
	conflicts := slices.Clone(s.conflict)
	s.mu.Unlock()
	s.t.Fatalf("the cluster did not settle within 60s: %s; batches that output something else when run again: %q; %s",
		s.describe(), conflicts, s.stateDivergence())
}

// stateDivergence names the first batch whose state output, on some run,
// differs from the recount of the lines of the batches up to it: where
// (and on which node) a count was lost or added. "" when none does.
func (s *sim) stateDivergence() string {
	perBatch := s.perBatch()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range slices.Sorted(maps.Keys(s.counts)) {
		want := recount(perBatch, t)
		for i, run := range s.counts[t] {
			if diff := countDiff(run.counts, want); diff != "" {
				var nodes []string
				for _, r := range s.counts[t] {
					nodes = append(nodes, r.node)
				}
				return fmt.Sprintf("the state output of batch %v, run %d of %v (on %s), differs from the recount: %s; that batch counted %v",
					t, i+1, nodes, run.node, diff, perBatch[t])
			}
		}
	}
	return ""
}

// countDiff lists the words whose count got differs from want.
func countDiff(got, want map[string]int64) string {
	var out []string
	for _, w := range simVocab {
		if got[w] != want[w] {
			out = append(out, fmt.Sprintf("%s %d, want %d", w, got[w], want[w]))
		}
	}
	return strings.Join(out, ", ")
}

func (s *sim) settled() bool {
	l := s.leader()
	if l == nil {
		return false
	}
	v := l.ctx.storage.meta.View()
	if len(v.Unallocated) > 0 || v.LastCompleted == 0 {
		return false
	}
	// Empty batches may still be queued (a slow machine, the race
	// detector): only those holding blocks must have completed.
	for _, b := range v.Pending() {
		if len(b.Blocks) > 0 {
			return false
		}
	}
	want := s.expected()
	for _, n := range s.nodes {
		if n.ctx.node.status().StateApplied < Time(v.LastCompleted) {
			return false
		}
		for w, c := range want {
			got, err := n.ctx.QueryState("counts", w)
			if err != nil || got.Value != any(c) {
				return false
			}
		}
	}
	return true
}

func (s *sim) describe() string {
	var b strings.Builder
	perBatch := s.perBatch()
	all := recount(perBatch, Time(1<<62))
	for _, n := range s.nodes {
		b.WriteString(s.judge(n, perBatch, all))
	}
	for _, n := range s.nodes {
		st := n.ctx.node.status()
		fmt.Fprintf(&b, "%s: role %s driving %v epoch %d completed %v state %v err %q; ", n.id, st.Role, st.Driving, st.Epoch, st.LastCompleted, st.StateApplied, st.Error)
	}
	return b.String()
}

// judge compares node n's counts with the recount of the lines output,
// telling a node that is only behind (its state, as of the batch it has
// applied, is the recount through that batch: the outputs recorded go on
// to batches run and not yet completed, or not yet applied there) from
// one that lost or added a count. The outputs of a batch are recorded as
// its jobs run, before it completes, so while the driver is still running
// batches every node looks short of the outputs by the batch in flight;
// a settle that timed out once reported that as an undercount.
func (s *sim) judge(n *simNode, perBatch map[Time]map[string]int64, all map[string]int64) string {
	before := n.ctx.node.status().StateApplied
	got := map[string]int64{}
	for _, w := range simVocab {
		v, err := n.ctx.QueryState("counts", w)
		if err == nil {
			got[w], _ = v.Value.(int64)
		}
	}
	after := n.ctx.node.status().StateApplied
	if countDiff(got, all) == "" {
		return ""
	}
	at := recount(perBatch, before)
	if before == after && countDiff(got, at) == "" {
		return fmt.Sprintf("%s is behind, not wrong: its counts are the recount through batch %v, the batch it has applied; ", n.id, before)
	}
	diff := map[string]int64{}
	for _, w := range simVocab {
		if d := at[w] - got[w]; d != 0 {
			diff[w] = d
		}
	}
	var match []Time
	for t, m := range perBatch {
		if maps.Equal(m, diff) {
			match = append(match, t)
		}
	}
	slices.Sort(match)
	return fmt.Sprintf("%s's counts, as of batch %v (%v after reading them), differ from the recount through it: %s; short by %v, the counts of batches %v; ",
		n.id, before, after, countDiff(got, at), diff, match)
}

// perBatch recounts the words of the lines each batch output.
func (s *sim) perBatch() map[Time]map[string]int64 {
	counted := s.counted()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[Time]map[string]int64{}
	for tok, t := range counted {
		if out[t] == nil {
			out[t] = map[string]int64{}
		}
		for _, w := range strings.Fields(s.sent[tok])[1:] {
			out[t][w]++
		}
	}
	return out
}

// recount sums the counts of the batches up to upto.
func recount(perBatch map[Time]map[string]int64, upto Time) map[string]int64 {
	out := map[string]int64{}
	for t, m := range perBatch {
		if t <= upto {
			for w, c := range m {
				out[w] += c
			}
		}
	}
	return out
}

// counted returns the tokens the batches counted, and fails on one
// counted twice.
func (s *sim) counted() map[string]Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Time{}
	for t, toks := range s.batches {
		for _, tok := range toks {
			if prev, ok := out[tok]; ok {
				s.t.Errorf("token %s counted in batch %v and in batch %v", tok, prev, t)
			}
			out[tok] = t
		}
	}
	return out
}

// expected recounts the words of the lines counted.
func (s *sim) expected() map[string]int64 {
	counted := s.counted()
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]int64{}
	for tok := range counted {
		for _, w := range strings.Fields(s.sent[tok])[1:] {
			want[w]++
		}
	}
	return want
}

func (s *sim) check() {
	counted := s.counted()
	s.mu.Lock()
	for tok := range s.acked {
		if _, ok := counted[tok]; !ok {
			s.t.Errorf("acknowledged token %s was never counted", tok)
		}
	}
	for tok := range counted {
		if _, ok := s.sent[tok]; !ok {
			s.t.Errorf("token %s counted but never sent", tok)
		}
	}
	for _, c := range s.conflict {
		s.t.Errorf("a re-run batch output something else: %s", c)
	}
	// Windowed counts: the recount of the batches in each window.
	perBatch := map[Time]map[string]int64{}
	for tok, t := range counted {
		if perBatch[t] == nil {
			perBatch[t] = map[string]int64{}
		}
		for _, w := range strings.Fields(s.sent[tok])[1:] {
			perBatch[t][w]++
		}
	}
	windows := maps.Clone(s.windows)
	acked, sent, batches := len(s.acked), len(s.sent), len(s.batches)
	s.mu.Unlock()
	for t, got := range windows {
		want := map[string]int64{}
		for k := range int(simWindow / simBatch) {
			for w, c := range perBatch[t.Add(-time.Duration(k)*simBatch)] {
				want[w] += c
			}
		}
		if !maps.Equal(got, want) {
			s.t.Errorf("window at %v: got %v, want %v", t, got, want)
		}
	}
	want := s.expected()
	for _, n := range s.nodes {
		for w, c := range want {
			got, err := n.ctx.QueryState("counts", w)
			if err != nil || got.Value != any(c) {
				s.t.Errorf("node %s: count of %s = %v (%v), want %d", n.id, w, got.Value, err, c)
			}
		}
	}
	// Every run of a batch, committed or not, computed its state from the
	// state of the batch before: its counts are the recount so far.
	if d := s.stateDivergence(); d != "" {
		s.t.Error(d)
	}
	s.t.Logf("seed %d: %d lines sent, %d acknowledged, %d counted, %d batches, %d windows", s.seed, sent, acked, len(counted), batches, len(windows))
	if acked == 0 {
		s.t.Error("nothing was acknowledged: the load never got through")
	}
}
