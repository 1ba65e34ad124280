// Command clickstream is a Sluice job written as a user writes one: a Go
// program that imports the engine, defines its own source and graph, and
// runs them as a node of its own, without the node binary.
//
// It counts page views of a simulated stream of clicks:
//
//   - the source is a Receiver of its own (clickGenerator): clicks
//     "user page" made from a seed, so that a run can be checked against a
//     recount of the same clicks;
//   - the graph counts views per page in every batch (ReduceByKey),
//     writes those counts with a FileSink under --out, exactly once per
//     batch even across crashes, and keeps the running totals per page as
//     state named "pages" (UpdateStateByKey);
//   - with --data-dir the node is durable: received clicks, positions,
//     state and checkpoints survive a restart, and the generator resumes
//     where the stored clicks end, so every click is counted once;
//   - SIGINT or SIGTERM stops it gracefully: the clicks received are
//     counted before it exits;
//   - a small HTTP endpoint serves the state from Go: GET /pages/{page}
//     (Context.QueryState) and GET /top?n=N (Context.TopState), as JSON.
//
// Run it with
//
//	go run ./examples/clickstream --data-dir clicks-data
//	curl localhost:4041/top?n=3
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
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2) // the flag package has said why
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, o, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "clickstream:", err)
		os.Exit(1)
	}
}

// options are the job's flags.
type options struct {
	dataDir     string        // durable state; "" keeps it in memory
	out         string        // where the FileSink writes each batch's page views
	httpAddr    string        // the state endpoint
	batch       time.Duration // the batch duration
	seed        uint64        // the click generator's seed
	clicks      uint64        // clicks to generate in all (0: no end)
	perTick     int           // clicks stored per tick of the generator
	tick        time.Duration // how often the generator stores clicks
	partitions  int           // partitions of the page counts (0: the engine's default)
	stopTimeout time.Duration // how long a graceful stop may take
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("clickstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.dataDir, "data-dir", "", "directory for the write-ahead log, metadata log, state and checkpoints (empty: in memory, lost when the job stops)")
	fs.StringVar(&o.out, "out", "", "directory for the page views of each batch (default DATA-DIR/pageviews, or ./pageviews without --data-dir)")
	fs.StringVar(&o.httpAddr, "http", "127.0.0.1:4041", "address of the state endpoint (GET /pages/{page}, GET /top?n=N)")
	fs.DurationVar(&o.batch, "batch", time.Second, "batch duration")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the simulated clicks")
	fs.Uint64Var(&o.clicks, "clicks", 0, "clicks to generate in all (0: no end)")
	fs.IntVar(&o.perTick, "clicks-per-tick", 20, "clicks stored per tick of the generator")
	fs.DurationVar(&o.tick, "tick", 100*time.Millisecond, "how often the generator stores clicks")
	fs.IntVar(&o.partitions, "partitions", 0, "partitions of the page counts (0: 2 × CPUs)")
	fs.DurationVar(&o.stopTimeout, "stop-timeout", 30*time.Second, "how long a graceful stop may take")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.out == "" {
		o.out = filepath.Join(o.dataDir, "pageviews") // ./pageviews when dataDir is ""
	}
	if o.perTick < 1 || o.tick <= 0 {
		err := fmt.Errorf("--clicks-per-tick %d and --tick %v must be positive", o.perTick, o.tick)
		fmt.Fprintln(stderr, err)
		return o, err
	}
	return o, nil
}

// run runs the job until ctx is done, then stops it gracefully.
func run(ctx context.Context, o options, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	c, err := newJob(o, engine.SystemClock{}, log)
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		c.Stop(context.Background(), false)
		return fmt.Errorf("--http %s: %w", o.httpAddr, err)
	}
	srv := &http.Server{Handler: stateAPI(c), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	log.Info("clickstream running", "state", "http://"+ln.Addr().String()+"/top?n=5", "out", o.out, "data_dir", o.dataDir)

	ended := make(chan error, 1)
	go func() { ended <- c.AwaitTermination(context.Background()) }()
	select {
	case err := <-ended: // a failed batch
		c.Stop(context.Background(), false)
		return err
	case <-ctx.Done():
	}
	log.Info("stopping gracefully: counting what was received")
	stopCtx, cancel := context.WithTimeout(context.Background(), o.stopTimeout)
	defer cancel()
	return errors.Join(c.Stop(stopCtx, true), <-ended)
}

// newJob returns a context with the job's graph built, to be started.
func newJob(o options, clock engine.Clock, log *slog.Logger) (*engine.Context, error) {
	cfg := engine.DefaultConfig()
	cfg.AppName, cfg.DataDir, cfg.BatchDuration, cfg.Clock, cfg.Logger = "clickstream", o.dataDir, o.batch, clock, log
	if o.partitions > 0 {
		cfg.Partitions = o.partitions
	}
	c, err := engine.NewContext(cfg)
	if err != nil {
		return nil, err
	}
	gen := &clickGenerator{seed: o.seed, total: o.clicks, perTick: o.perTick, tick: o.tick}
	buildGraph(engine.ReceiverStream(c, "clicks", gen), o.out)
	return c, nil
}

// buildGraph counts page views: per batch, written to out once per batch
// and partition by a FileSink, and in all, as the state named "pages".
func buildGraph(clicks *engine.DStream[string], out string) {
	views := engine.FlatMap(clicks, func(line string) []engine.Pair[string, int64] {
		_, page, ok := strings.Cut(line, " ")
		if !ok {
			return nil // not a click
		}
		return []engine.Pair[string, int64]{engine.KV(page, int64(1))}
	})
	perBatch := engine.ReduceByKey(views, func(a, b int64) int64 { return a + b })
	perBatch.ForeachSink(&engine.FileSink[engine.Pair[string, int64]]{
		Dir:    out,
		Format: func(p engine.Pair[string, int64]) string { return fmt.Sprintf("%s\t%d", p.Key, p.Value) },
	})
	engine.UpdateStateByKey(perBatch, func(vals []int64, total int64, _ bool) (int64, bool) {
		for _, v := range vals {
			total += v
		}
		return total, true
	}).Named("pages")
}
