// Command node runs a Sluice node. With no arguments it runs the built-in
// word count over a built-in sample text and serves a status page.
//
//	node                         word count over the sample, UI on 127.0.0.1:4040
//	node run [flags]             run an application (see node help)
//	node produce [flags] [FILE]  send lines to a node's ingest endpoint
//	node bench [flags]           measure word count against a hand-written one
//	node devcluster [flags]      a three-node cluster of local processes, for trying it out
//	node chaos [flags]           inject faults into a cluster of local nodes and check exactly-once
//	node help                    this help
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-stream/sluice/engine"
	"github.com/sluice-stream/sluice/engine/rpc"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the job failed while running
	exitUsage   = 2 // bad flags or arguments
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return runNode(args, stdout, stderr)
	}
	switch args[0] {
	case "run":
		return runNode(args[1:], stdout, stderr)
	case "produce":
		return runProduce(args[1:], os.Stdin, stderr)
	case "bench":
		return runBench(args[1:], stdout, stderr)
	case "devcluster":
		return runDevcluster(args[1:], os.Stdin, stdout, stderr)
	case "chaos":
		return runChaos(args[1:], stdout, stderr)
	case "help":
		usage(stderr)
		return exitOK
	}
	fmt.Fprintf(stderr, "node: unknown command %q; the commands are: run, produce, bench, devcluster, chaos, help\n", args[0])
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `Sluice: a fault-tolerant micro-batch stream processor.

Usage:
  node                 run word count over the built-in sample, UI at http://127.0.0.1:4040
  node run [flags]     run an application
  node produce [flags] [FILE|-]
                       send lines to a node's ingest endpoint, exactly once
  node bench [--lines N] [--seed S] [--mode local|cluster3] [--kills K] [--json FILE] [--pprof DIR]
                       measure word count (in-process, HTTP, latency, peak RSS;
                       cluster3: three node processes, failover) against a
                       hand-written count, and check every count
  node devcluster [--nodes 3] [--dir DIR] [--base-port 7001] [--http-base 4041]
                  [--app wordcount] [--source ingest] [-- flags of every node run]
                       start a cluster of local nodes (UIs at http://127.0.0.1:4041...),
                       show their logs, and stop them all at Ctrl-C
  node chaos [--nodes 3] [--duration 2m] [--rate 200] [--faults kill,pause,partition,restart-all,clock]
             [--seed S] [--report DIR]
                       kill, stop, partition and restart a cluster of local nodes under
                       load, then check every acknowledged line counted exactly once
                       (exit 0 pass, 1 a check failed, 2 could not run)
  node help            show this help

Applications (--app):
`)
	for _, name := range appNames() {
		fmt.Fprintf(w, "  %-12s %s\n", name, apps[name].describe)
	}
	fmt.Fprintf(w, "\nSources (--source):\n  %s\n\nFlags of run:\n", strings.Join(sourceSchemes, "\n  "))
	fs, _ := newFlags()
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// nodeFlags are the flags of `node run`.
type nodeFlags struct {
	app          string
	source       string
	batch        time.Duration
	partitions   int
	dataDir      string
	httpAddr     string
	top          int
	maxLineBytes int
	sampleRate   int
	logLevel     string
	logFormat    string
	pprof        bool
	stopTimeout  time.Duration
	nodeID       string
	maxRate      float64
	backpressure bool
	maxRequest   int64

	window             time.Duration
	sessionTimeout     time.Duration
	checkpointInterval time.Duration
	allowUpgrade       bool
	clock              string
	kafkaOut           string

	raftAddr    string
	peers       string
	replication int
}

func newFlags() (*flag.FlagSet, *nodeFlags) {
	f := &nodeFlags{}
	fs := flag.NewFlagSet("node run", flag.ContinueOnError)
	fs.StringVar(&f.app, "app", "wordcount", "the application to run: "+strings.Join(appNames(), ", "))
	fs.StringVar(&f.source, "source", "sample://", "where input comes from (sample://, ingest, socket://HOST:PORT, dir:///PATH, kafka://HOST:PORT/TOPIC, zmq+pull://HOST:PORT, zmq+sub://HOST:PORT?topic=T)")
	fs.DurationVar(&f.batch, "batch", time.Second, "batch duration, a whole number of milliseconds")
	fs.IntVar(&f.partitions, "partitions", 0, "partitions of keyed state and shuffles (0: 2 × CPUs)")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for the node's write-ahead log, metadata log, state and checkpoints (empty: kept in memory, lost with the process); the apps also save their results under DIR/output")
	fs.StringVar(&f.nodeID, "id", "n1", "this node's id")
	fs.Float64Var(&f.maxRate, "receiver-max-rate", 0, "records per second each receiver or ingest stream accepts (0: no limit)")
	fs.BoolVar(&f.backpressure, "backpressure", false, "lower receivers' rates when batches fall behind (a PID estimator, as Spark's)")
	fs.Int64Var(&f.maxRequest, "max-request-bytes", 16<<20, "largest ingest request body accepted (413 above)")
	fs.StringVar(&f.httpAddr, "http", "127.0.0.1:4040", "address of the status page and API")
	fs.IntVar(&f.top, "top", 10, "records printed per batch")
	fs.IntVar(&f.maxLineBytes, "max-line-bytes", 1<<20, "longest input line accepted; longer lines are dropped and counted")
	fs.IntVar(&f.sampleRate, "sample-rate", 100, "lines per second replayed by sample://")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug (a line per batch), info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text (for a terminal) or json (one object a line)")
	fs.BoolVar(&f.pprof, "pprof", false, "serve Go's profiler at /debug/pprof/ on the --http address")
	fs.DurationVar(&f.window, "window", 0, "windowed-top's window, a multiple of --batch (0: 3 batches)")
	fs.DurationVar(&f.sessionTimeout, "session-timeout", 0, "sessions' idle timeout, a multiple of --batch (0: 3 batches)")
	fs.DurationVar(&f.checkpointInterval, "checkpoint-interval", 0, "how often, in batch time, the state is checkpointed whole (0: every 10 batches)")
	fs.BoolVar(&f.allowUpgrade, "allow-compatible-upgrade", false, "start over a data directory written by a different graph when the change keeps the state layout (a new output, a changed print count)")
	fs.StringVar(&f.clock, "clock", "system", "where batch time comes from: system; for tests manual:START_MS (time then moves only by POST /debug/clock?advance=DURATION) or system+jumps (the system clock, shifted by POST /debug/clock?jump=DURATION)")
	fs.StringVar(&f.kafkaOut, "kafka-out", "", "kafka://HOST:PORT[,HOST:PORT]/TOPIC: wordcount also writes each batch's changed counts there (key the word, value the count), exactly once, in Kafka transactions")
	fs.DurationVar(&f.stopTimeout, "stop-timeout", 30*time.Second, "how long a graceful stop (SIGINT, SIGTERM) may take")
	fs.StringVar(&f.peers, "peers", "", "the cluster's nodes, this one included, as ID=HOST:PORT,... with each node's --raft address (empty: a single node)")
	fs.StringVar(&f.raftAddr, "raft", "", "address this node listens on for raft and the other nodes' calls, in a cluster (default: its own entry in --peers, which is where the others dial it; the two differ behind a proxy)")
	fs.IntVar(&f.replication, "replication", 0, "nodes holding each received block before it is acknowledged, this one included (0: 2 in a cluster)")
	return fs, f
}

// validate checks the flags that the engine does not check itself.
func (f *nodeFlags) validate() error {
	if _, ok := apps[f.app]; !ok {
		return fmt.Errorf("--app %q is not an application; the applications are: %s", f.app, strings.Join(appNames(), ", "))
	}
	if f.app == "archive" && f.dataDir == "" {
		return errors.New("--app archive keeps records under --data-dir: give one")
	}
	switch {
	case f.top < 0:
		return fmt.Errorf("--top %d must be 0 or more", f.top)
	case f.maxLineBytes < 1:
		return fmt.Errorf("--max-line-bytes %d must be at least 1", f.maxLineBytes)
	case f.maxRate < 0:
		return fmt.Errorf("--receiver-max-rate %v must be 0 (no limit) or more", f.maxRate)
	case f.maxRequest < 1:
		return fmt.Errorf("--max-request-bytes %d must be at least 1", f.maxRequest)
	case f.sampleRate < 0:
		return fmt.Errorf("--sample-rate %d must be 0 or more", f.sampleRate)
	case f.partitions < 0:
		return fmt.Errorf("--partitions %d must be at least 1 (or 0 for the default)", f.partitions)
	case f.batch <= 0 || f.batch%time.Millisecond != 0:
		return fmt.Errorf("--batch %v must be a positive whole number of milliseconds, such as 1s or 500ms", f.batch)
	case f.window < 0 || f.window%f.batch != 0:
		return fmt.Errorf("--window %v must be a multiple of --batch %v (0: 3 batches)", f.window, f.batch)
	case f.sessionTimeout < 0 || f.sessionTimeout%f.batch != 0:
		return fmt.Errorf("--session-timeout %v must be a multiple of --batch %v (0: 3 batches)", f.sessionTimeout, f.batch)
	case f.checkpointInterval < 0 || f.checkpointInterval%f.batch != 0:
		return fmt.Errorf("--checkpoint-interval %v must be a multiple of --batch %v (0: 10 batches)", f.checkpointInterval, f.batch)
	}
	if _, _, err := f.batchClock(); err != nil {
		return err
	}
	if _, err := f.cluster(); err != nil {
		return err
	}
	if f.kafkaOut != "" && f.app != "wordcount" {
		return fmt.Errorf("--kafka-out is written by --app wordcount only, not %s", f.app)
	}
	if _, err := kafkaSinkConfig(f.kafkaOut, f.app); err != nil {
		return err
	}
	return nil
}

func (f *nodeFlags) logger(stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", f.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", f.logFormat)
}

func runNode(args []string, stdout, stderr io.Writer) int {
	fs, f := newFlags()
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "node run: unexpected argument %q (flags only; see node help)\n", fs.Arg(0))
		return exitUsage
	}
	if err := f.validate(); err != nil {
		fmt.Fprintln(stderr, "node:", err)
		return exitUsage
	}
	log, err := f.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "node:", err)
		return exitUsage
	}
	n, err := startNode(f, log, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "node:", err)
		return exitUsage
	}
	fmt.Fprint(stderr, n.banner(f))
	return n.wait(f.stopTimeout)
}

// node is a running node: the streaming context and its web server.
type node struct {
	c       *engine.Context
	ep      *rpc.TCP // the cluster's network end; nil on a single node
	srv     *http.Server
	ln      net.Listener
	status  *status
	cluster *clusterWatch
	log     *slog.Logger
}

func startNode(f *nodeFlags, log *slog.Logger, stdout io.Writer) (*node, error) {
	cfg := engine.DefaultConfig()
	cfg.AppName, cfg.BatchDuration, cfg.Partitions = f.app, f.batch, f.partitions
	cfg.MaxLineBytes, cfg.Logger, cfg.Stdout = f.maxLineBytes, log, stdout
	cfg.DataDir, cfg.NodeID, cfg.ReceiverMaxRate, cfg.Backpressure = f.dataDir, f.nodeID, f.maxRate, f.backpressure
	cfg.CheckpointInterval, cfg.AllowCompatibleUpgrade = f.checkpointInterval, f.allowUpgrade
	clock, clockMover, err := f.batchClock()
	if err != nil {
		return nil, err
	}
	if clock != nil {
		cfg.Clock = clock
	}
	if f.partitions == 0 {
		cfg.Partitions = engine.DefaultConfig().Partitions
	}
	peers, err := f.cluster()
	if err != nil {
		return nil, err
	}
	var ep *rpc.TCP
	if peers != nil {
		if ep, err = listenCluster(f, peers, log); err != nil {
			return nil, err
		}
		cfg.Cluster = &engine.ClusterConfig{Network: ep, Peers: peers, Replication: f.replication}
	}
	c, err := engine.NewContext(cfg)
	if err != nil {
		closeEndpoint(ep)
		return nil, err
	}
	lines, err := openSource(c, f.source, f.sampleRate)
	if err != nil {
		return nil, err
	}
	o := appOptions{top: f.top, batch: f.batch, window: f.window, timeout: f.sessionTimeout}
	if o.kafkaOut, err = kafkaSinkConfig(f.kafkaOut, f.app); err != nil {
		return nil, err
	}
	if f.dataDir != "" {
		o.saveDir = f.dataDir + "/output"
	}
	apps[f.app].build(c, lines, o)
	n := &node{c: c, log: log, ep: ep}
	n.status = newStatus(c, f.app, f.source, newMetrics(), nil)
	n.cluster = newClusterWatch(c, log, &n.status.running)
	n.status.cluster = n.cluster
	c.AddListener(n.status)
	if n.ln, err = net.Listen("tcp", f.httpAddr); err != nil {
		return nil, fmt.Errorf("--http %s: %w (is another node running? pick another address with --http)", f.httpAddr, err)
	}
	mux := n.status.routes(f.pprof)
	mux.Handle("POST /api/ingest/{stream}", &ingestHandler{c: c, maxBody: f.maxRequest, maxLineBytes: f.maxLineBytes})
	stateRoutes(mux, c)
	n.status.stateSummary = stateSummary(c)
	if clockMover != nil {
		mux.Handle("POST /debug/clock", clockMover)
	}
	n.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	// The server answers while the context starts: the page then says
	// the node is starting.
	go n.srv.Serve(n.ln)
	if err := c.Start(); err != nil {
		n.srv.Close()
		n.cluster.stop()
		closeEndpoint(ep)
		return nil, err
	}
	n.status.running.Store(true)
	n.cluster.start()
	return n, nil
}

func (n *node) banner(f *nodeFlags) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Sluice is running %s over %s, a batch every %v.\n", f.app, f.source, f.batch)
	fmt.Fprintf(&b, "Status page: http://%s/ (JSON under /api/, Prometheus metrics at /metrics)\n", n.ln.Addr())
	if f.dataDir == "" {
		b.WriteString("No --data-dir: the logs and the state are in memory, and lost when the node stops.\n")
	}
	if strings.HasPrefix(f.source, "ingest") {
		fmt.Fprintf(&b, "Send lines with: go run ./cmd/node produce --to http://%s FILE\n", n.ln.Addr())
	}
	if strings.HasPrefix(f.source, "sample://") {
		b.WriteString("This is the built-in sample. To count real input, run `nc -lk 9999` in another terminal and\n" +
			"  go run ./cmd/node run --source socket://localhost:9999\n" +
			"or move files into a directory watched with --source dir:///path/to/dir\n")
	}
	b.WriteString("Stop with Ctrl-C: received data is processed before the node exits.\n")
	return b.String()
}

// wait runs until a signal or a failed batch. A signal stops the node
// gracefully; a failed batch exits with exitFailure.
func (n *node) wait(stopTimeout time.Duration) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ended := make(chan error, 1)
	go func() { ended <- n.c.AwaitTermination(context.Background()) }()
	code := exitOK
	select {
	case sig := <-sigs:
		n.log.Info("stopping gracefully", "signal", sig.String(), "timeout", stopTimeout)
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		if err := n.c.Stop(ctx, true); err != nil {
			n.log.Error("graceful stop", "err", err)
			code = exitFailure
		}
		cancel()
		if err := <-ended; err != nil {
			code = exitFailure
		}
	case err := <-ended:
		n.c.Stop(context.Background(), false)
		if err != nil {
			n.log.Error("the job failed; the node stops", "err", err)
			code = exitFailure
		}
	}
	n.cluster.stop()
	n.srv.Close()
	closeEndpoint(n.ep)
	return code
}
