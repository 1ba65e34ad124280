package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
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
	cfg, faults, err := parseChaosFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	} else if err != nil {
		fmt.Fprintln(stderr, "node chaos:", err)
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
	if cfg.Docker {
		if err := chaos.CheckDocker(ctx); err != nil {
			fmt.Fprintln(stderr, "node chaos:", strings.TrimPrefix(err.Error(), "chaos: "))
			return exitUsage
		}
	}
	if cfg.Docker && cfg.DockerImage == "" {
		bin, cleanup, err := staticNodeBinary(ctx, cfg.Binary, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "node chaos:", err)
			return exitUsage
		}
		defer cleanup()
		cfg.Binary = bin
	}
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

func parseChaosFlags(args []string, stderr io.Writer) (chaos.Config, string, error) {
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
	fs.BoolVar(&cfg.Docker, "docker", false, "run the nodes as containers of the local Docker engine: an image FROM scratch of this binary (static), or of one built with CGO_ENABLED=0 from the source tree")
	fs.StringVar(&cfg.DockerImage, "docker-image", "", "with --docker: run this image (built with `make image`) instead of building one; it is left in place")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: node chaos [flags]\n\nStarts a cluster of local nodes, loads it through ingest, injects faults from the seed,\nthen checks every acknowledged line counted exactly once. Exit 0 pass, 1 a check failed, 2 could not run.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	if fs.NArg() > 0 {
		return cfg, "", fmt.Errorf("unexpected argument %q (see node chaos -h)", fs.Arg(0))
	}
	return cfg, *faults, nil
}

// staticNodeBinary is a node binary an image FROM scratch can run: bin
// itself when it is static, else one built with CGO_ENABLED=0 from the
// source tree the current directory is in (as `go run ./cmd/node` and
// the tests are), into a temporary directory that cleanup removes.
func staticNodeBinary(ctx context.Context, bin string, log io.Writer) (string, func(), error) {
	if static, err := chaos.IsStatic(bin); err == nil && static {
		return bin, func() {}, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", nil, fmt.Errorf("--docker: %s is not static and %v: build the node with CGO_ENABLED=0 go build ./cmd/node, or give --docker-image (make image)", bin, err)
	}
	dir, err := os.MkdirTemp("", "sluice-chaos-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	out := filepath.Join(dir, "node")
	fmt.Fprintf(log, "node chaos: building a static node binary from %s (CGO_ENABLED=0)\n", root)
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./cmd/node")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := build.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("--docker: building a static node binary in %s: %v\n%s", root, err, msg)
	}
	return out, cleanup, nil
}

// moduleRoot is the directory of Sluice's go.mod at or above the
// current directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/sluice-stream/sluice\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the current directory is not in Sluice's source tree")
		}
		dir = parent
	}
}
