package main

// node bench --mode cluster3: three node processes of this binary on
// loopback, a cluster of three (replication 2), measured from outside as
// its users would: throughput through HTTP ingest spread over the nodes,
// the exact count on every node, ack and end-to-end latency at half the
// measured rate, the time from SIGKILL of the leader to the first batch a
// new driver completes, and each node's peak RSS.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// clusterBench is the cluster3 part of the report.
type clusterBench struct {
	Nodes         int       `json:"nodes"`
	Replication   int       `json:"replication"`
	LPS           float64   `json:"lines_per_s"`
	Ratio         float64   `json:"ratio"`
	LatencyRate   float64   `json:"latency_rate_lines_per_s"`
	AckP50MS      float64   `json:"ack_p50_ms"`
	AckP99MS      float64   `json:"ack_p99_ms"`
	E2EP50MS      float64   `json:"e2e_p50_ms"`
	E2EP99MS      float64   `json:"e2e_p99_ms"`
	FailoversMS   []float64 `json:"failovers_ms"`
	FailoverP50MS float64   `json:"failover_p50_ms"`
	FailoverMaxMS float64   `json:"failover_max_ms"`
	PeakRSSBytes  []int64   `json:"peak_rss_bytes"`
	Exact         bool      `json:"exact_count"`
	ExactMsg      string    `json:"exact_count_detail"`
}

// benchProc is one node process of the bench's cluster.
type benchProc struct {
	id, raft, dir, http string
	cmd                 *exec.Cmd
	peakRSS             int64
	exited              chan struct{}
}

type benchCluster struct {
	bin    string
	peers  string
	procs  []*benchProc
	client *http.Client
	seq    [benchProducers + 64]atomic.Uint64
	logMu  sync.Mutex // the nodes' errors are copied to logw from one goroutine each
	logw   io.Writer
}

var benchStatusLine = regexp.MustCompile(`Status page: http://(\S+)/`)

// benchNodeBinary is the node binary the cluster runs; "" is this
// process's own (tests set the binary they built).
var benchNodeBinary = ""

func startBenchCluster(root string, logw io.Writer) (*benchCluster, error) {
	bin := benchNodeBinary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	bc := &benchCluster{bin: bin, client: &http.Client{Timeout: 30 * time.Second}, logw: logw}
	addrs, err := freeLoopbackAddrs(3)
	if err != nil {
		return nil, err
	}
	var peers []string
	for i, addr := range addrs {
		id := fmt.Sprintf("n%d", i+1)
		peers = append(peers, id+"="+addr)
		bc.procs = append(bc.procs, &benchProc{id: id, raft: addr, dir: filepath.Join(root, id)})
	}
	bc.peers = strings.Join(peers, ",")
	for _, p := range bc.procs {
		if err := bc.start(p); err != nil {
			bc.stop()
			return nil, err
		}
	}
	if _, _, err := bc.awaitDriver(nil, 0, time.Minute); err != nil {
		bc.stop()
		return nil, err
	}
	return bc, nil
}

// freeLoopbackAddrs returns n distinct free addresses on 127.0.0.1: all
// are held until all are found, then released (free, not reserved).
func freeLoopbackAddrs(n int) ([]string, error) {
	var out []string
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// start runs p and waits for the HTTP address it prints.
func (bc *benchCluster) start(p *benchProc) error {
	p.cmd = exec.Command(bc.bin, "run", "--app", "wordcount", "--source", "ingest", "--id", p.id, "--peers", bc.peers,
		"--data-dir", p.dir, "--http", "127.0.0.1:0", "--batch", benchBatch.String(), "--top", "0", "--log-level", "warn")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return err
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		return err
	}
	p.exited = make(chan struct{})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := benchStatusLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			} else if strings.Contains(sc.Text(), "level=ERROR") && !strings.Contains(sc.Text(), "component=raft") {
				// Raft's own errors are its retries to a node the bench killed.
				bc.logMu.Lock()
				fmt.Fprintf(bc.logw, "  %s: %s\n", p.id, sc.Text())
				bc.logMu.Unlock()
			}
		}
	}()
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case p.http = <-addr:
		return nil
	case <-p.exited:
		return fmt.Errorf("node %s exited at start: %v", p.id, p.cmd.ProcessState)
	case <-time.After(time.Minute):
		return fmt.Errorf("node %s printed no address within a minute", p.id)
	}
}

// stop stops every node gracefully (SIGKILL after 30 s), reading its
// peak RSS first.
func (bc *benchCluster) stop() {
	for _, p := range bc.procs {
		if p.cmd == nil || p.cmd.Process == nil {
			continue
		}
		select {
		case <-p.exited:
			continue
		default:
		}
		p.peakRSS = max(p.peakRSS, procPeakRSS(p.cmd.Process.Pid))
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range bc.procs {
		if p.exited == nil {
			continue
		}
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
}

// procPeakRSS reads a process's peak resident set (VmHWM) on Linux; 0
// elsewhere.
func procPeakRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

type benchClusterDoc struct {
	Nodes []struct {
		ID            string `json:"id"`
		Self          bool   `json:"self"`
		Driving       bool   `json:"driving"`
		LastCompleted int64  `json:"last_completed_ms"`
	} `json:"nodes"`
}

// driver returns the node that drives and its last completed batch, as
// the nodes report themselves.
func (bc *benchCluster) driver(dead *benchProc) (*benchProc, int64) {
	for _, p := range bc.procs {
		if p == dead {
			continue
		}
		var d benchClusterDoc
		if err := bc.getJSON(p.http, "/api/cluster", &d); err != nil {
			continue
		}
		for _, n := range d.Nodes {
			if n.Self && n.Driving {
				return p, n.LastCompleted
			}
		}
	}
	return nil, 0
}

func (bc *benchCluster) awaitDriver(dead *benchProc, after int64, limit time.Duration) (*benchProc, time.Duration, error) {
	start := time.Now()
	for time.Since(start) < limit {
		if p, last := bc.driver(dead); p != nil && last > after {
			return p, time.Since(start), nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, 0, fmt.Errorf("no node drove a batch after %d within %v", after, limit)
}

func (bc *benchCluster) getJSON(addr, path string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	resp, err := bc.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return &httpStatusError{code: resp.StatusCode, msg: string(bytes.TrimSpace(b))}
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

type httpStatusError struct {
	code int
	msg  string
}

func (e *httpStatusError) Error() string { return fmt.Sprintf("%d %s", e.code, e.msg) }

// ingest sends lines as producer p's next request to node p mod 3,
// moving to the next node on a refusal or an error, with the same
// sequence number (a retry is a duplicate wherever it lands).
func (bc *benchCluster) ingest(p int, lines []string, dead func(*benchProc) bool) error {
	body := []byte(strings.Join(lines, "\n") + "\n")
	seq := bc.seq[p].Add(1)
	for try := 0; try < 1000; try++ {
		node := bc.procs[(p+try)%len(bc.procs)]
		if dead != nil && dead(node) {
			continue
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+node.http+"/api/ingest/"+benchStrm, bytes.NewReader(body))
		req.Header.Set(headerProducer, fmt.Sprintf("bench-%d", p))
		req.Header.Set(headerSequence, strconv.FormatUint(seq, 10))
		resp, err := bc.client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
				return fmt.Errorf("ingest on %s: %s", node.id, resp.Status)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("a request was refused by every node 1000 times")
}

// committed reports whether key is in the committed state, asking node.
func (bc *benchCluster) committed(node *benchProc, key string) (bool, error) {
	var v struct{}
	err := bc.getJSON(node.http, "/api/state/"+benchOp+"/"+key, &v)
	var he *httpStatusError
	if errors.As(err, &he) && he.code == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

// clusterProducers send the corpus to the cluster: four per node.
const clusterProducers = 12

// feed sends lines from clusterProducers producers and returns the time
// until the committed state, on the driver, holds a marker sent last.
func (bc *benchCluster) feed(lines []string) (time.Duration, error) {
	start := time.Now()
	send := func(p int, lines []string) error { return bc.ingest(p, lines, nil) }
	if err := sendAll(lines, clusterProducers, send); err != nil {
		return 0, err
	}
	marker := benchMarker + "done"
	if err := bc.ingest(0, []string{marker}, nil); err != nil {
		return 0, err
	}
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		d, _ := bc.driver(nil)
		if d == nil {
			continue
		}
		if ok, err := bc.committed(d, marker); err != nil {
			return 0, err
		} else if ok {
			return time.Since(start), nil
		}
	}
	return 0, errors.New("the last request was not in the committed state within 5 minutes")
}

// exact compares every node's committed counts with the hand count,
// waiting (bounded) for the replicas to apply the last batches.
func (bc *benchCluster) exact(want map[string]int64) (bool, string) {
	var last string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		last = ""
		for _, p := range bc.procs {
			if msg := bc.exactOn(p, want); msg != "" {
				last = msg
				break
			}
		}
		if last == "" {
			return true, fmt.Sprintf("all %d words equal on all %d nodes", len(want), len(bc.procs))
		}
	}
	return false, last
}

func (bc *benchCluster) exactOn(p *benchProc, want map[string]int64) string {
	var doc struct {
		Top []struct {
			Key   string `json:"key"`
			Value int64  `json:"value"`
		} `json:"top"`
	}
	if err := bc.getJSON(p.http, fmt.Sprintf("/api/state/%s?top=%d", benchOp, maxTopKeys), &doc); err != nil {
		return fmt.Sprintf("%s: %v", p.id, err)
	}
	got := make(map[string]int64, len(doc.Top))
	for _, kv := range doc.Top {
		if !strings.HasPrefix(kv.Key, benchMarker) {
			got[kv.Key] = kv.Value
		}
	}
	for w, c := range want {
		if got[w] != c {
			return fmt.Sprintf("%s: word %q: state %d, hand count %d", p.id, w, got[w], c)
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%s: the state has %d words, the hand count %d", p.id, len(got), len(want))
	}
	return ""
}

// latency sends requests at rate lines/s for d to the nodes in turn (see
// latencyProbe); the markers are looked up on the driver every 20 ms, so
// the end-to-end figure is up to 20 ms late.
func (bc *benchCluster) latency(lines []string, rate float64, d time.Duration, out *clusterBench) error {
	res, err := latencyProbe{
		send: func(w int, req []string) error { return bc.ingest(clusterProducers+w, req, nil) },
		visible: func(markers []string) []bool {
			seen := make([]bool, len(markers))
			driver, _ := bc.driver(nil)
			for i, m := range markers {
				if driver != nil {
					seen[i], _ = bc.committed(driver, m)
				}
			}
			return seen
		},
	}.run(lines, rate, d)
	if err != nil {
		return err
	}
	out.AckP50MS, out.AckP99MS = percentiles(res.acks)
	out.E2EP50MS, out.E2EP99MS = percentiles(res.e2es)
	return nil
}

// failovers kills the driving node n times, each time measuring the time
// to the first batch a new driver completes, then restarting the node.
func (bc *benchCluster) failovers(n int, out *clusterBench) error {
	var ds []time.Duration
	for range n {
		leader, last := bc.driver(nil)
		if leader == nil {
			return errors.New("no node drives")
		}
		leader.peakRSS = max(leader.peakRSS, procPeakRSS(leader.cmd.Process.Pid))
		leader.cmd.Process.Kill()
		<-leader.exited
		_, took, err := bc.awaitDriver(leader, last, time.Minute)
		if err != nil {
			return err
		}
		ds = append(ds, took)
		out.FailoversMS = append(out.FailoversMS, float64(took.Microseconds())/1000)
		if err := bc.start(leader); err != nil {
			return err
		}
		time.Sleep(2 * time.Second) // let it rejoin before the next kill
	}
	out.FailoverP50MS, _ = percentiles(slices.Clone(ds))
	slices.Sort(ds)
	out.FailoverMaxMS = float64(ds[len(ds)-1].Microseconds()) / 1000
	return nil
}

// benchCluster3 measures the cluster, after the hand count of lines
// (want, at handLPS lines/s).
func benchCluster3(lines []string, want map[string]int64, handLPS float64, latency time.Duration, kills int, progress io.Writer) (*clusterBench, error) {
	root, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	fmt.Fprintln(progress, "starting three node processes...")
	bc, err := startBenchCluster(root, progress)
	if err != nil {
		return nil, err
	}
	defer bc.stop()
	out := &clusterBench{Nodes: 3, Replication: 2}
	fmt.Fprintln(progress, "measuring the cluster through HTTP ingest on all three nodes...")
	d, err := bc.feed(lines)
	if err != nil {
		return nil, err
	}
	out.LPS = rate(len(lines), d)
	out.Ratio = out.LPS / handLPS
	out.Exact, out.ExactMsg = bc.exact(want)
	out.LatencyRate = out.LPS / 2
	fmt.Fprintf(progress, "measuring latency at %.0f lines/s for %v...\n", out.LatencyRate, latency)
	if err := bc.latency(lines, out.LatencyRate, latency, out); err != nil {
		return nil, fmt.Errorf("latency: %w", err)
	}
	fmt.Fprintf(progress, "killing the leader %d times...\n", kills)
	if err := bc.failovers(kills, out); err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	bc.stop()
	for _, p := range bc.procs {
		out.PeakRSSBytes = append(out.PeakRSSBytes, p.peakRSS)
	}
	return out, nil
}

func printClusterBench(w io.Writer, c *clusterBench, handLPS float64) {
	fmt.Fprintf(w, "\ncluster3: three node processes on this machine, replication %d, HTTP ingest from %d producers spread over the nodes\n", c.Replication, clusterProducers)
	fmt.Fprintf(w, "  throughput            %12.0f lines/s   %.3f × the one-goroutine limit (%.0f)\n", c.LPS, c.Ratio, handLPS)
	fmt.Fprintf(w, "  at %.0f lines/s: ack p50 %.1f ms, p99 %.1f ms; end-to-end p50 %.0f ms, p99 %.0f ms (batch %v)\n",
		c.LatencyRate, c.AckP50MS, c.AckP99MS, c.E2EP50MS, c.E2EP99MS, benchBatch)
	fmt.Fprintf(w, "  failover (SIGKILL of the leader to the first batch of the new driver): p50 %.0f ms, max %.0f ms over %d kills %v\n",
		c.FailoverP50MS, c.FailoverMaxMS, len(c.FailoversMS), c.FailoversMS)
	var rss []string
	for i, b := range c.PeakRSSBytes {
		rss = append(rss, fmt.Sprintf("n%d %d MiB", i+1, b>>20))
	}
	fmt.Fprintf(w, "  peak RSS: %s\n", strings.Join(rss, ", "))
	verdict := "exact"
	if !c.Exact {
		verdict = "WRONG"
	}
	fmt.Fprintf(w, "  count check: %s (%s)\n", verdict, c.ExactMsg)
}
