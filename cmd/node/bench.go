package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-stream/sluice/engine"
	"github.com/sluice-stream/sluice/engine/corpus"
)

// `node bench` measures, in one run and on one corpus, what a word count
// costs in Sluice against what the machine can do by hand:
//
//  1. the limit: a hand-written count over the corpus in memory, on one
//     goroutine and on one goroutine per core;
//  2. Sluice in-process: Context.Ingest by concurrent producers, WAL
//     synced and state committed every batch, until the committed state
//     holds every line;
//  3. the same through the HTTP ingest endpoint on loopback;
//  4. ack and end-to-end latency at half the HTTP maximum rate;
//  5. the peak RSS of the process;
//  6. the exact count: every word's committed count equals the hand count.
const (
	benchRequestLines = 1000
	benchProducers    = 4
	// benchBatch is the batch duration of the measured contexts. Half a
	// second keeps the fixed costs of a batch (a synced state commit, a
	// metadata log entry, the scheduling) spread over enough records for
	// throughput, while end-to-end latency stays under a second or so:
	// a record waits on average half a batch and then one batch's work.
	benchBatch = 500 * time.Millisecond
	benchOp    = "wordcount"
	benchStrm  = "lines"
)

type benchFlags struct {
	lines   int
	seed    uint64
	mode    string
	json    string
	latency time.Duration
	pprof   string
	kills   int
}

// benchReport is the result of a run, printed as a table and written
// with --json.
type benchReport struct {
	Lines         int     `json:"lines"`
	Seed          uint64  `json:"seed"`
	Mode          string  `json:"mode"`
	CPUs          int     `json:"cpus"`
	BatchMS       int64   `json:"batch_ms"`
	RequestLines  int     `json:"request_lines"`
	Producers     int     `json:"producers"`
	HandOneLPS    float64 `json:"hand_one_goroutine_lines_per_s"`
	HandShardLPS  float64 `json:"hand_sharded_lines_per_s"`
	LocalLPS      float64 `json:"sluice_local_lines_per_s"`
	LocalRatio    float64 `json:"sluice_local_ratio"`
	HTTPLPS       float64 `json:"sluice_http_lines_per_s"`
	HTTPRatio     float64 `json:"sluice_http_ratio"`
	LatencyRate   float64 `json:"latency_rate_lines_per_s"`
	LatencySecs   float64 `json:"latency_seconds"`
	LatencyReqs   int     `json:"latency_requests"`
	LatencySent   float64 `json:"latency_sent_lines_per_s"`
	AckP50MS      float64 `json:"ack_p50_ms"`
	AckP99MS      float64 `json:"ack_p99_ms"`
	E2EP50MS      float64 `json:"e2e_p50_ms"`
	E2EP99MS      float64 `json:"e2e_p99_ms"`
	PeakRSSBytes  int64   `json:"peak_rss_bytes"`
	ExactLocal    bool    `json:"exact_count_local"`
	ExactHTTP     bool    `json:"exact_count_http"`
	ExactCountMsg string  `json:"exact_count_detail"`
	// Cluster is the cluster3 mode's measurement (bench_cluster.go).
	Cluster *clusterBench `json:"cluster3,omitempty"`
}

func runBench(args []string, stdout, stderr io.Writer) int {
	f := &benchFlags{}
	fs := flag.NewFlagSet("node bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.lines, "lines", 1_000_000, "lines of the corpus (10 words a line, a skewed 10,000-word vocabulary)")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the corpus")
	fs.StringVar(&f.mode, "mode", "local", "local (one node in this process) or cluster3 (three node processes of this binary on loopback)")
	fs.IntVar(&f.kills, "kills", 5, "cluster3: how many times the leader is killed to measure failover")
	fs.StringVar(&f.json, "json", "", "also write the results as JSON to this file")
	fs.DurationVar(&f.latency, "latency", 10*time.Second, "how long latency is measured at half the HTTP maximum rate")
	fs.StringVar(&f.pprof, "pprof", "", "write CPU, allocation, mutex and block profiles and a trace of the latency phase to this directory")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "node bench: unexpected argument %q (flags only)\n", fs.Arg(0))
		return exitUsage
	case f.mode != "local" && f.mode != "cluster3":
		fmt.Fprintf(stderr, "node bench: --mode %q: use local or cluster3\n", f.mode)
		return exitUsage
	case f.kills < 1:
		fmt.Fprintf(stderr, "node bench: --kills %d must be at least 1\n", f.kills)
		return exitUsage
	case f.lines < benchRequestLines:
		fmt.Fprintf(stderr, "node bench: --lines %d must be at least %d\n", f.lines, benchRequestLines)
		return exitUsage
	case f.latency <= 0:
		fmt.Fprintf(stderr, "node bench: --latency %v must be positive\n", f.latency)
		return exitUsage
	}
	prof, err := startProfiles(f.pprof)
	if err != nil {
		fmt.Fprintln(stderr, "node bench:", err)
		return exitFailure
	}
	rep, err := bench(f, prof, stderr)
	if perr := prof.stop(); perr != nil && err == nil {
		err = fmt.Errorf("--pprof: %w", perr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "node bench:", err)
		return exitFailure
	}
	printBench(stdout, rep)
	if f.json != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(f.json, append(data, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "node bench: --json:", err)
			return exitFailure
		}
	}
	if rep.Cluster != nil {
		if !rep.Cluster.Exact {
			fmt.Fprintln(stderr, "node bench: the exact-count check FAILED:", rep.Cluster.ExactMsg)
			return exitFailure
		}
		return exitOK
	}
	if !rep.ExactLocal || !rep.ExactHTTP {
		fmt.Fprintln(stderr, "node bench: the exact-count check FAILED:", rep.ExactCountMsg)
		return exitFailure
	}
	return exitOK
}

func bench(f *benchFlags, prof *benchProfiles, progress io.Writer) (*benchReport, error) {
	rep := &benchReport{Lines: f.lines, Seed: f.seed, Mode: f.mode, CPUs: runtime.GOMAXPROCS(0),
		BatchMS: benchBatch.Milliseconds(), RequestLines: benchRequestLines, Producers: benchProducers}
	fmt.Fprintf(progress, "generating %d lines (seed %d)...\n", f.lines, f.seed)
	lines := corpus.Lines(f.lines, f.seed)
	data := []byte(strings.Join(lines, "\n"))

	fmt.Fprintln(progress, "measuring the hand-written count...")
	start := time.Now()
	want := handCount(data)
	rep.HandOneLPS = rate(f.lines, time.Since(start))
	start = time.Now()
	sharded := handCountSharded(data, runtime.GOMAXPROCS(0))
	rep.HandShardLPS = rate(f.lines, time.Since(start))
	if !maps.Equal(want, sharded) {
		return nil, errors.New("the sharded hand count differs from the one-goroutine count")
	}
	if f.mode == "cluster3" {
		rep.Producers = clusterProducers
		var err error
		rep.Cluster, err = benchCluster3(lines, want, rep.HandOneLPS, f.latency, f.kills, progress)
		return rep, err
	}

	fmt.Fprintln(progress, "measuring Sluice in-process (Context.Ingest)...")
	local, err := newBenchNode(false)
	if err != nil {
		return nil, err
	}
	d, err := local.feed(lines, local.ingestLocal)
	if err == nil {
		rep.LocalLPS, rep.LocalRatio = rate(f.lines, d), rate(f.lines, d)/rep.HandOneLPS
		rep.ExactLocal, rep.ExactCountMsg = local.exact(want)
	}
	local.close()
	if err != nil {
		return nil, fmt.Errorf("in-process ingest: %w", err)
	}

	fmt.Fprintln(progress, "measuring Sluice through HTTP...")
	remote, err := newBenchNode(true)
	if err != nil {
		return nil, err
	}
	defer remote.close()
	if d, err = remote.feed(lines, remote.ingestHTTP); err != nil {
		return nil, fmt.Errorf("HTTP ingest: %w", err)
	}
	rep.HTTPLPS, rep.HTTPRatio = rate(f.lines, d), rate(f.lines, d)/rep.HandOneLPS
	var msg string
	rep.ExactHTTP, msg = remote.exact(want)
	rep.ExactCountMsg = "local: " + rep.ExactCountMsg + "; http: " + msg

	rep.LatencyRate, rep.LatencySecs = rep.HTTPLPS/2, f.latency.Seconds()
	fmt.Fprintf(progress, "measuring latency at %.0f lines/s for %v...\n", rep.LatencyRate, f.latency)
	if err := prof.startTrace(); err != nil {
		return nil, err
	}
	if err := remote.latency(lines, rep, f.latency); err != nil {
		return nil, fmt.Errorf("latency: %w", err)
	}
	rep.PeakRSSBytes = peakRSS()
	return rep, nil
}

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// handCount is the limit: split bytes on ASCII white space, as
// engine.Words does, and count in a map. The conversion in m[string(b)]
// does not allocate on a lookup; only a new word's key is allocated.
func handCount(data []byte) map[string]int64 {
	m := make(map[string]int64, corpus.Vocabulary)
	start := -1
	for i, c := range data {
		if c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f' {
			if start >= 0 {
				m[string(data[start:i])]++
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		m[string(data[start:])]++
	}
	return m
}

// handCountSharded counts on one goroutine per core, each over its own
// range of lines into its own map, and merges the maps (timed as well).
func handCountSharded(data []byte, n int) map[string]int64 {
	parts := make([]map[string]int64, n)
	var wg sync.WaitGroup
	from := 0
	for i := range n {
		to := len(data)
		if i < n-1 {
			to = max(from, len(data)*(i+1)/n)
			for to < len(data) && data[to] != '\n' {
				to++
			}
		}
		part := data[from:to]
		wg.Go(func() { parts[i] = handCount(part) })
		from = to
	}
	wg.Wait()
	out := parts[0]
	for _, p := range parts[1:] {
		for w, c := range p {
			out[w] += c
		}
	}
	return out
}

// benchNode is one node in this process: the wordcount graph over an
// ingest stream on a temporary data directory, and, for HTTP, the node's
// ingest and state routes on a loopback port.
type benchNode struct {
	c      *engine.Context
	dir    string
	srv    *http.Server
	url    string
	client *http.Client
	seq    []atomic.Uint64 // the last sequence of each producer
}

func newBenchNode(withHTTP bool) (*benchNode, error) {
	dir, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return nil, err
	}
	cfg := engine.DefaultConfig()
	cfg.AppName, cfg.DataDir, cfg.BatchDuration = "bench", dir, benchBatch
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.Stdout = io.Discard
	c, err := engine.NewContext(cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	words := engine.FlatMapEmit(engine.IngestStream(c, benchStrm), engine.Words)
	pairs := engine.MapToPair(words, func(w string) (string, int64) { return w, 1 })
	batch := engine.ReduceByKey(pairs, func(a, b int64) int64 { return a + b })
	engine.UpdateStateByKey(batch, sumCounts).Named(benchOp).
		ForeachRDD(func(engine.Time, engine.RDD[engine.Pair[string, int64]]) error { return nil })
	if err := c.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	n := &benchNode{c: c, dir: dir, seq: make([]atomic.Uint64, 64)}
	if withHTTP {
		if err := n.serve(); err != nil {
			n.close()
			return nil, err
		}
	}
	return n, nil
}

func (n *benchNode) serve() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /api/ingest/{stream}", &ingestHandler{c: n.c, maxBody: 16 << 20, maxLineBytes: 1 << 20})
	stateRoutes(mux, n.c)
	n.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go n.srv.Serve(ln)
	n.url = "http://" + ln.Addr().String()
	n.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: time.Minute}
	return nil
}

func (n *benchNode) close() {
	if n.srv != nil {
		n.srv.Close()
		n.client.CloseIdleConnections()
	}
	n.c.Stop(context.Background(), false)
	os.RemoveAll(n.dir)
}

// ingestFunc sends one request of producer p and returns once it is
// acknowledged.
type ingestFunc func(p int, lines []string) error

func (n *benchNode) ingestLocal(p int, lines []string) error {
	seq := n.seq[p].Add(1)
	for {
		_, err := n.c.Ingest(context.Background(), benchStrm, fmt.Sprintf("bench-%d", p), seq, lines)
		if !errors.Is(err, engine.ErrStorageFailed) {
			return err
		}
		time.Sleep(10 * time.Millisecond) // a retry is safe: it is acknowledged as a duplicate
	}
}

func (n *benchNode) ingestHTTP(p int, lines []string) error {
	body := []byte(strings.Join(lines, "\n") + "\n")
	seq := n.seq[p].Add(1)
	for {
		req, _ := http.NewRequest(http.MethodPost, n.url+"/api/ingest/"+benchStrm, bytes.NewReader(body))
		req.Header.Set(headerProducer, fmt.Sprintf("bench-%d", p))
		req.Header.Set(headerSequence, strconv.FormatUint(seq, 10))
		resp, err := n.client.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			return nil
		case resp.StatusCode != http.StatusServiceUnavailable:
			return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// feed sends lines in requests of benchRequestLines from benchProducers
// concurrent producers, and returns the time from the first request to
// the committed state counting every word of every line.
func (n *benchNode) feed(lines []string, send ingestFunc) (time.Duration, error) {
	start := time.Now()
	if err := sendAll(lines, benchProducers, send); err != nil {
		return 0, err
	}
	// Requests acknowledged before another is sent are in the same batch
	// or an earlier one, so once a last request's marker is in the
	// committed state, every line before it is.
	marker := benchMarker + "done"
	if err := send(0, []string{marker}); err != nil {
		return 0, err
	}
	if _, err := n.await(marker, 5*time.Minute); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// sendAll sends lines in requests of benchRequestLines from producers
// concurrent producers, each taking the next request when its last is
// acknowledged; it returns the first error.
func sendAll(lines []string, producers int, send ingestFunc) error {
	var next atomic.Int64
	errs := make(chan error, producers)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)-1) * benchRequestLines
				if i >= len(lines) {
					return
				}
				if err := send(p, lines[i:min(i+benchRequestLines, len(lines))]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// benchMarker starts the words the bench adds to find its requests in
// the state; the corpus's words start with "w".
const benchMarker = "bench-marker-"

// await polls the committed state until key is in it, and returns when.
func (n *benchNode) await(key string, limit time.Duration) (time.Time, error) {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if _, err := n.c.QueryState(benchOp, key); err == nil {
			return time.Now(), nil
		} else if !errors.Is(err, engine.ErrUnknownKey) {
			return time.Time{}, err
		}
	}
	return time.Time{}, fmt.Errorf("%q was not in the committed state within %v", key, limit)
}

// counted returns the committed count of every word but the markers.
func (n *benchNode) counted() (map[string]int64, error) {
	top, _, err := n.c.TopState(benchOp, corpus.Vocabulary+1)
	if err != nil {
		return nil, err
	}
	m := make(map[string]int64, len(top))
	for _, v := range top {
		if w := fmt.Sprint(v.Key); !strings.HasPrefix(w, benchMarker) {
			m[w], _ = v.Value.(int64)
		}
	}
	return m, nil
}

// exact compares the committed count of every word with the hand count.
func (n *benchNode) exact(want map[string]int64) (bool, string) {
	got, err := n.counted()
	if err != nil {
		return false, err.Error()
	}
	for w, c := range want {
		if got[w] != c {
			return false, fmt.Sprintf("word %q: state %d, hand count %d", w, got[w], c)
		}
	}
	if len(got) != len(want) {
		return false, fmt.Sprintf("the state has %d words, the hand count %d", len(got), len(want))
	}
	return true, fmt.Sprintf("all %d words equal", len(want))
}

// latency sends requests through HTTP at rep.LatencyRate for d (see
// latencyProbe) and records their ack and end-to-end latencies.
func (n *benchNode) latency(lines []string, rep *benchReport, d time.Duration) error {
	res, err := latencyProbe{
		send: func(w int, req []string) error { return n.ingestHTTP(benchProducers+w, req) },
		visible: func(markers []string) []bool {
			seen := make([]bool, len(markers))
			for i, m := range markers {
				_, err := n.c.QueryState(benchOp, m)
				seen[i] = err == nil
			}
			return seen
		},
		wake: n.batchCompletions(),
	}.run(lines, rep.LatencyRate, d)
	if err != nil {
		return err
	}
	rep.LatencyReqs, rep.LatencySent = len(res.acks), res.sentLPS
	rep.AckP50MS, rep.AckP99MS = percentiles(res.acks)
	rep.E2EP50MS, rep.E2EP99MS = percentiles(res.e2es)
	return nil
}

// batchCompletions returns a channel that receives after every batch the
// node completes. The committed state changes only when a batch completes
// (its state is committed before the listener hears of it), so the latency
// poller queries its markers then, rather than every pending marker every
// few milliseconds: that polling took a quarter of the CPU the node was
// being measured on, and lengthened the very ack latency it measured.
func (n *benchNode) batchCompletions() <-chan struct{} {
	ch := make(chan struct{}, 1)
	n.c.AddListener(completionListener(ch))
	return ch
}

type completionListener chan struct{}

func (completionListener) OnBatchSubmitted(engine.BatchInfo) {}
func (completionListener) OnBatchStarted(engine.BatchInfo)   {}
func (l completionListener) OnBatchCompleted(engine.BatchInfo) {
	select {
	case l <- struct{}{}:
	default:
	}
}

// percentiles returns the p50 and p99 of ds, in milliseconds.
func percentiles(ds []time.Duration) (float64, float64) {
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return ms(ds[len(ds)/2]), ms(ds[len(ds)*99/100])
}

func printBench(w io.Writer, r *benchReport) {
	check := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "FAILED"
	}
	fmt.Fprintf(w, "\nSluice word count, %d lines (10 words each, Zipf over 10,000 words, seed %d), %d CPUs, mode %s\n",
		r.Lines, r.Seed, r.CPUs, r.Mode)
	fmt.Fprintf(w, "batch %dms, WAL synced, state committed every batch; %d producers, %d lines a request\n\n",
		r.BatchMS, r.Producers, r.RequestLines)
	fmt.Fprintf(w, "%-44s %14s %10s\n", "what", "lines/s", "ratio")
	fmt.Fprintf(w, "%-44s %14.0f %10s\n", "hand-written, one goroutine (the limit)", r.HandOneLPS, "1")
	fmt.Fprintf(w, "%-44s %14.0f %10.3f\n", fmt.Sprintf("hand-written, %d goroutines, sharded maps", r.CPUs), r.HandShardLPS, r.HandShardLPS/r.HandOneLPS)
	if r.Cluster != nil {
		printClusterBench(w, r.Cluster, r.HandOneLPS)
		return
	}
	fmt.Fprintf(w, "%-44s %14.0f %10.3f\n", "Sluice, in-process Context.Ingest", r.LocalLPS, r.LocalRatio)
	fmt.Fprintf(w, "%-44s %14.0f %10.3f\n\n", "Sluice, HTTP ingest on loopback", r.HTTPLPS, r.HTTPRatio)
	fmt.Fprintf(w, "latency at %.0f lines/s (half the HTTP maximum; %.0f lines/s sent), %.0fs, %d requests:\n",
		r.LatencyRate, r.LatencySent, r.LatencySecs, r.LatencyReqs)
	fmt.Fprintf(w, "  ack         p50 %8.1f ms   p99 %8.1f ms\n", r.AckP50MS, r.AckP99MS)
	fmt.Fprintf(w, "  end to end  p50 %8.1f ms   p99 %8.1f ms   (ack to the count in the committed state)\n\n", r.E2EP50MS, r.E2EP99MS)
	fmt.Fprintf(w, "peak RSS          %.1f MiB\n", float64(r.PeakRSSBytes)/(1<<20))
	fmt.Fprintf(w, "exact count       local %s, http %s (%s)\n", check(r.ExactLocal), check(r.ExactHTTP), r.ExactCountMsg)
}
