package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sluice-stream/sluice/chaos"
)

// runChaos is `node chaos`: the chaos harness (package chaos) over nodes
// that are this binary run again (`node run`). Exit 0: every check
// passed; 1: a check failed (loss, duplication, a mismatch), or the
// cluster never settled or a node would not restart after a fault; 2:
// bad flags, or the harness could not run (a port in use, a node that
// would not start at all).
func runChaos(args []string, stdout, stderr io.Writer) int {
	cfg, faults, docker, err := parseChaosFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	} else if err != nil {
		fmt.Fprintln(stderr, "node chaos:", err)
		return exitUsage
	}
	if docker {
		fmt.Fprintln(stderr, "node chaos: --docker is not built yet: the harness runs node processes on loopback only (drop --docker)")
		return exitUsage
	}
	if cfg.Faults, err = chaos.ParseFaults(faults); err != nil {
		fmt.Fprintln(stderr, "node chaos:", err)
		return exitUsage
	}
	if cfg.Binary, err = os.Executable(); err != nil {
		fmt.Fprintln(stderr, "node chaos: finding this binary to start the nodes:", err)
		return exitUsage
	}
	cfg.Log = stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stderr, "node chaos: seed %d; replay with --seed %d\n", cfg.Seed, cfg.Seed)
	res, err := chaos.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "node chaos: could not run (seed %d): %v\n", cfg.Seed, err)
		return exitUsage
	}
	fmt.Fprint(stdout, res.Summary())
	fmt.Fprintf(stdout, "report: %s\n", res.Config.Dir)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "node chaos: interrupted; every node was killed")
		return exitUsage
	}
	if !res.Passed {
		return exitFailure
	}
	return exitOK
}

func parseChaosFlags(args []string, stderr io.Writer) (chaos.Config, string, bool, error) {
	cfg := chaos.DefaultConfig()
	fs := flag.NewFlagSet("node chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "nodes: 3, or 1 for single-node faults")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long the load runs; the faults stop 10s (at most a sixth) before its end")
	fs.IntVar(&cfg.Rate, "rate", cfg.Rate, "lines per second the producers send, over all of them")
	fs.IntVar(&cfg.Producers, "producers", cfg.Producers, "producers, each sending one request at a time")
	faults := fs.String("faults", "all", "comma-separated: kill, pause, partition, restart-all, clock (or all, none)")
	fs.Uint64Var(&cfg.Seed, "seed", uint64(time.Now().UnixNano()%1_000_000), "seed of the fault schedule and the load (printed; give it again to replay)")
	fs.StringVar(&cfg.Dir, "report", "", "directory for the report, the nodes' data and logs (default: a new temporary directory)")
	fs.DurationVar(&cfg.Batch, "batch", cfg.Batch, "every node's --batch")
	fs.DurationVar(&cfg.SettleTimeout, "settle-timeout", cfg.SettleTimeout, "how long the cluster may take to settle after the faults")
	docker := fs.Bool("docker", false, "run the nodes in containers (not built yet)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: node chaos [flags]\n\nStarts a cluster of local nodes, loads it through ingest, injects faults from the seed,\nthen checks every acknowledged line counted exactly once. Exit 0 pass, 1 a check failed, 2 could not run.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, "", false, err
	}
	if fs.NArg() > 0 {
		return cfg, "", false, fmt.Errorf("unexpected argument %q (see node chaos -h)", fs.Arg(0))
	}
	return cfg, *faults, *docker, nil
}
