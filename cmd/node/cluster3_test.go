package main

// A three-process cluster on loopback: three node binaries form a raft
// group, producers send through every node, and the leader is killed with
// SIGKILL during the ingest, twice. A new leader's driver must resume
// within seconds, the killed node rejoins, and at the end every node's
// state answers exactly the counts of the lines sent (every request is
// retried, with its sequence number, until a node acknowledges it).

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
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
	"time"
)

type clusterProc struct {
	id, raft string
	dir      string
	node     *crashNode
}

// clusterDocTest is the part of GET /api/cluster the test reads.
type clusterDocTest struct {
	Leader *string `json:"leader"`
	Nodes  []struct {
		ID            string `json:"id"`
		Role          string `json:"role"`
		Driving       bool   `json:"driving"`
		Epoch         uint64 `json:"epoch"`
		LastCompleted int64  `json:"last_completed_ms"`
		StateApplied  int64  `json:"state_applied_ms"`
	} `json:"nodes"`
}

func testLoopbackAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs, err := freeLoopbackAddrs(n)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

type testCluster struct {
	t     *testing.T
	peers string
	procs []*clusterProc
}

func startTestCluster(t *testing.T, extra ...string) *testCluster {
	t.Helper()
	addrs := testLoopbackAddrs(t, 3)
	tc := &testCluster{t: t}
	var peers []string
	for i, a := range addrs {
		id := "n" + strconv.Itoa(i+1)
		peers = append(peers, id+"="+a)
		tc.procs = append(tc.procs, &clusterProc{id: id, raft: a, dir: filepath.Join(t.TempDir(), id)})
	}
	tc.peers = strings.Join(peers, ",")
	for _, p := range tc.procs {
		tc.start(p, extra...)
	}
	return tc
}

func (tc *testCluster) start(p *clusterProc, extra ...string) {
	tc.t.Helper()
	args := append([]string{"run", "--app", "wordcount", "--source", "ingest", "--id", p.id, "--peers", tc.peers,
		"--data-dir", p.dir, "--http", "127.0.0.1:0", "--batch", "200ms", "--top", "0"}, extra...)
	p.node = &crashNode{child: startChildEnv(tc.t, failpointEnv(""), args...)}
	if err := p.node.awaitAddr(); err != nil {
		tc.t.Fatalf("%s: %v", p.id, err)
	}
}

func fetchJSON(ctx context.Context, url string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// driver returns the process that drives and its last completed batch,
// as the live nodes report it.
func (tc *testCluster) driver(dead *clusterProc) (*clusterProc, int64) {
	for _, p := range tc.procs {
		if p == dead {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		var d clusterDocTest
		err := fetchJSON(ctx, "http://"+p.node.addr+"/api/cluster", &d)
		cancel()
		if err != nil {
			continue
		}
		for _, n := range d.Nodes {
			if n.ID == p.id && n.Driving {
				return p, n.LastCompleted
			}
		}
	}
	return nil, 0
}

func (tc *testCluster) awaitDriver(d time.Duration, dead *clusterProc, after int64) (*clusterProc, time.Duration) {
	tc.t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if p, last := tc.driver(dead); p != nil && last > after {
			return p, time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var tails []string
	for _, p := range tc.procs {
		if p != dead {
			out := strings.Split(p.node.output(), "\n")
			tails = append(tails, fmt.Sprintf("--- %s:\n%s", p.id, strings.Join(out[max(0, len(out)-15):], "\n")))
		}
	}
	for _, p := range tc.procs {
		os.WriteFile(filepath.Join(os.TempDir(), "sluice-cluster-"+p.id+".log"), []byte(p.node.output()), 0o644)
	}
	tc.t.Fatalf("no driver completed a batch after %d within %v; the live nodes' last lines:\n%s", after, d, strings.Join(tails, "\n"))
	return nil, 0
}

// clusterLoad is producers that send numbered requests of words to random
// live nodes, retrying each on any node until one acknowledges it.
type clusterLoad struct {
	tc    *testCluster
	mu    sync.Mutex
	dead  *clusterProc
	want  map[string]int64
	acked int
}

// startLoad starts producers sending to tc's live nodes (not dead); the
// func returned stops them and waits for them, once.
func startLoad(tc *testCluster, dead *clusterProc, producers int) (*clusterLoad, func()) {
	load := &clusterLoad{tc: tc, want: map[string]int64{}, dead: dead}
	stop := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for i := range producers {
		wg.Add(1)
		go load.run(i, stop, &wg)
	}
	return load, func() {
		once.Do(func() { close(stop) })
		wg.Wait()
	}
}

func (l *clusterLoad) setDead(p *clusterProc) {
	l.mu.Lock()
	l.dead = p
	l.mu.Unlock()
}

func (l *clusterLoad) run(id int, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	rng := rand.New(rand.NewPCG(uint64(id), 99))
	client := &http.Client{Timeout: 3 * time.Second}
	producer := fmt.Sprintf("load-%d", id)
	for seq := 1; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		var lines []string
		counts := map[string]int64{}
		for range 5 {
			var ws []string
			for range 3 {
				w := fmt.Sprintf("w%02d", rng.IntN(20))
				ws = append(ws, w)
				counts[w]++
			}
			lines = append(lines, strings.Join(ws, " "))
		}
		body := strings.Join(lines, "\n") + "\n"
		for try := 0; ; try++ {
			if try > 200 {
				l.tc.t.Errorf("producer %s: request %d not acknowledged after 200 tries", producer, seq)
				return
			}
			l.mu.Lock()
			live := slices.DeleteFunc(slices.Clone(l.tc.procs), func(p *clusterProc) bool { return p == l.dead })
			l.mu.Unlock()
			p := live[rng.IntN(len(live))]
			req, _ := http.NewRequest(http.MethodPost, "http://"+p.node.addr+"/api/ingest/lines", strings.NewReader(body))
			req.Header.Set(headerProducer, producer)
			req.Header.Set(headerSequence, strconv.Itoa(seq))
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(10)) * time.Millisecond)
		l.mu.Lock()
		for w, c := range counts {
			l.want[w] += c
		}
		l.acked++
		l.mu.Unlock()
	}
}

var clusterKills = flag.Int("cluster.kills", 2, "leader kills in TestClusterKillLeaderDuringIngest (the failover figures use 10 or more)")

// TestClusterKillLeaderDuringIngest: SIGKILL the leader (-cluster.kills
// times, default 2) while three producers send requests through the
// nodes; every count comes out exact on every node. It logs the time
// from each kill to the first batch a new driver completed.
func TestClusterKillLeaderDuringIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three node processes")
	}
	tc := startTestCluster(t)
	first, _ := tc.awaitDriver(20*time.Second, nil, 0)
	t.Logf("first driver: %s", first.id)
	load, stopLoad := startLoad(tc, nil, 3)
	defer stopLoad() // also when the test fails: no producer outlives it
	var failovers []time.Duration
	for range *clusterKills {
		time.Sleep(1500 * time.Millisecond)
		leader, last := tc.driver(nil)
		if leader == nil {
			t.Fatal("no driver before the kill")
		}
		load.setDead(leader)
		leader.node.kill(t)
		next, took := tc.awaitDriver(20*time.Second, leader, last)
		failovers = append(failovers, took)
		t.Logf("killed %s (driving, last completed %d); %s drove a new batch %v later; it says: %s", leader.id, last, next.id,
			took.Round(time.Millisecond), takeoverLines(next.node.output()))
		tc.start(leader)
		load.setDead(nil)
	}
	time.Sleep(time.Second)
	stopLoad()
	tc.awaitCounts(load.want, 60*time.Second)
	slices.Sort(failovers)
	t.Logf("%d requests acknowledged; failover from kill to a new driver's first batch: p50 %v, max %v, all %v",
		load.acked, failovers[len(failovers)/2].Round(time.Millisecond), failovers[len(failovers)-1].Round(time.Millisecond), failovers)
}

// TestClusterPausedLeaderIsFenced: SIGSTOP the leader for longer than
// the election timeout while the load goes on, then SIGCONT it. The others
// elect a new leader; the old one, resumed, must commit nothing of its
// own (its epoch is fenced) and follow; counts are exact everywhere.
func TestClusterPausedLeaderIsFenced(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three node processes")
	}
	tc := startTestCluster(t)
	tc.awaitDriver(20*time.Second, nil, 0)
	load, stopLoad := startLoad(tc, nil, 3)
	defer stopLoad() // also when the test fails: no producer outlives it
	time.Sleep(time.Second)
	leader, last := tc.driver(nil)
	if leader == nil {
		t.Fatal("no driver")
	}
	load.setDead(leader)
	if err := leader.node.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	next, took := tc.awaitDriver(20*time.Second, leader, last)
	t.Logf("paused %s; %s drove a new batch %v later", leader.id, next.id, took.Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	if err := leader.node.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	load.setDead(nil)
	time.Sleep(2 * time.Second)
	stopLoad()
	tc.awaitCounts(load.want, 60*time.Second)
	out := leader.node.output()
	if !strings.Contains(out, "lost the leadership") && !strings.Contains(out, "driver stopped") {
		t.Errorf("the resumed old leader never said its driver stopped; output:\n%s", out)
	}
	t.Logf("%d requests acknowledged", load.acked)
}

// takeoverLines picks the lines of a node's log about its last takeover.
func takeoverLines(out string) string {
	var picked []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "taking over as the driver") || strings.Contains(l, "completed its first batch") ||
			strings.Contains(l, "re-running") {
			picked = append(picked, l)
		}
	}
	return strings.Join(picked[max(0, len(picked)-3):], " | ")
}

// awaitCounts waits until every node answers want for every word.
func (tc *testCluster) awaitCounts(want map[string]int64, d time.Duration) {
	tc.t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		last = tc.countDiff(want)
		if last == "" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	tc.t.Fatalf("counts not exact after %v: %s", d, last)
}

func (tc *testCluster) countDiff(want map[string]int64) string {
	for _, p := range tc.procs {
		for w, c := range want {
			var v struct {
				Value int64 `json:"value"`
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := fetchJSON(ctx, "http://"+p.node.addr+"/api/state/wordcount/"+w, &v)
			cancel()
			if err != nil || v.Value != c {
				return fmt.Sprintf("%s: %s = %d (%v), want %d", p.id, w, v.Value, err, c)
			}
		}
	}
	return ""
}

// Bad cluster flags are refused before anything starts, saying what to
// give instead.
func TestClusterFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"duplicate_id", []string{"--id", "n1", "--peers", "n1=127.0.0.1:1,n1=127.0.0.1:2", "--data-dir", dir}, "listed twice"},
		{"duplicate_address", []string{"--id", "n1", "--peers", "n1=127.0.0.1:1,n2=127.0.0.1:1", "--data-dir", dir}, "listed twice"},
		{"self_missing", []string{"--id", "n9", "--peers", "n1=127.0.0.1:1,n2=127.0.0.1:2", "--data-dir", dir}, "does not list this node"},
		{"not_id_eq_addr", []string{"--id", "n1", "--peers", "n1=127.0.0.1:1,n2", "--data-dir", dir}, "not ID=HOST:PORT"},
		{"bad_address", []string{"--id", "n1", "--peers", "n1=nowhere", "--data-dir", dir}, "address"},
		{"no_data_dir", []string{"--id", "n1", "--peers", "n1=127.0.0.1:1,n2=127.0.0.1:2"}, "needs --data-dir"},
		// --raft may differ from the --peers entry (a proxy in front), but
		// must be an address.
		{"raft_not_an_address", []string{"--id", "n1", "--raft", "nowhere", "--peers", "n1=127.0.0.1:1,n2=127.0.0.1:2", "--data-dir", dir}, "not HOST:PORT"},
		{"replication_too_high", []string{"--id", "n1", "--replication", "3", "--peers", "n1=127.0.0.1:1,n2=127.0.0.1:2", "--data-dir", dir}, "--replication"},
		{"raft_without_peers", []string{"--raft", "127.0.0.1:9"}, "give --peers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb strings.Builder
			code := run(append([]string{"run"}, c.args...), &out, &errb)
			if code != exitUsage || !strings.Contains(errb.String(), c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d saying %q", code, errb.String(), exitUsage, c.want)
			}
		})
	}
}

// A node restarted with --peers that disagree with the cluster it
// belongs to, or with another application over its data directory, is
// refused with a message saying why; the other two go on without it.
func TestClusterRefusesAMismatchedNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three node processes")
	}
	tc := startTestCluster(t)
	tc.awaitDriver(20*time.Second, nil, 0)
	var victim *clusterProc
	if d, _ := tc.driver(nil); d != nil {
		for _, p := range tc.procs {
			if p != d {
				victim = p
				break
			}
		}
	}
	victim.node.stopGracefully(t)

	otherPeers := strings.Replace(tc.peers, victim.raft, testLoopbackAddrs(t, 1)[0], 1)
	bad := startChildEnv(t, failpointEnv(""), "run", "--app", "wordcount", "--source", "ingest", "--id", victim.id,
		"--peers", otherPeers, "--data-dir", victim.dir, "--http", "127.0.0.1:0")
	if ws, ok := (&crashNode{child: bad}).waitExit(stopDeadline); !ok || ws.ExitStatus() != exitUsage ||
		!strings.Contains(bad.output(), "differ from the cluster stored") {
		t.Fatalf("a node with other peers: exit %v; output:\n%s", ws, bad.output())
	}

	other := &crashNode{child: startChildEnv(t, failpointEnv(""), "run", "--app", "windowed-top", "--source", "ingest", "--id", victim.id,
		"--peers", tc.peers, "--data-dir", victim.dir, "--http", "127.0.0.1:0")}
	if ws, ok := other.waitExit(30 * time.Second); !ok || ws.ExitStatus() != exitFailure ||
		!strings.Contains(other.output(), "graph differs") {
		t.Fatalf("a node running another application: exit %v; output:\n%s", ws, other.output())
	}

	// The two others still ingest and count.
	load, stopLoad := startLoad(tc, victim, 1)
	defer stopLoad()
	time.Sleep(time.Second)
	stopLoad()
	live := &testCluster{t: t, procs: slices.DeleteFunc(slices.Clone(tc.procs), func(p *clusterProc) bool { return p == victim })}
	live.awaitCounts(load.want, 30*time.Second)
	if load.acked == 0 {
		t.Fatal("nothing was acknowledged by the two remaining nodes")
	}
}
