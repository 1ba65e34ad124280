package chaos

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Fault kinds, as --faults names them.
const (
	FaultKill       = "kill"        // SIGKILL the leader or a random node, restart it after a delay
	FaultPause      = "pause"       // SIGSTOP a node past the election timeout, then SIGCONT
	FaultPartition  = "partition"   // cut links through the proxies: isolate the leader, one-way, flapping
	FaultRestartAll = "restart-all" // SIGKILL every node, start them all again
	FaultClock      = "clock"       // jump a node's batch clock forward or back, then back again
)

// AllFaults lists every fault kind.
var AllFaults = []string{FaultKill, FaultPause, FaultPartition, FaultRestartAll, FaultClock}

// Config is one chaos run.
type Config struct {
	// Binary is the node executable; Args come before the harness's own
	// flags (usually {"run"}).
	Binary string
	Args   []string
	Nodes  int           // 1 or 3
	Batch  time.Duration // every node's --batch
	// Duration is the whole load phase; the faults stop Cooldown before
	// its end, and everything is healed then.
	Duration time.Duration
	Cooldown time.Duration
	Warmup   time.Duration // load without faults at the start
	Rate     int           // lines per second over all producers
	// Producers send requests of LinesPerRequest lines each, one at a time.
	Producers       int
	LinesPerRequest int
	// ResendFraction of acknowledged requests are sent once more, to
	// another node, as a producer that lost the reply would: they must be
	// answered as duplicates and counted once.
	ResendFraction float64
	Faults         []string
	Seed           uint64
	// Dir holds each node's data directory and log, and the report.
	Dir string
	// SettleTimeout bounds the wait for the cluster to settle after the
	// faults (every node up, one leader, every acknowledged request's
	// batch completed and applied on every node).
	SettleTimeout time.Duration
	// StartTimeout bounds the wait for a node to serve HTTP, and for the
	// cluster's first batch.
	StartTimeout time.Duration
	Log          io.Writer // progress lines; nil: discarded
	// Docker runs the nodes as containers of a Docker engine (docker.go)
	// instead of local processes: an image FROM scratch holding Binary,
	// which must be static, or DockerImage, an image already built (its
	// entrypoint the node binary), which the run leaves in place.
	Docker      bool
	DockerImage string
}

// DefaultConfig is a two-minute run of three nodes with every fault.
func DefaultConfig() Config {
	return Config{Args: []string{"run"}, Nodes: 3, Batch: 500 * time.Millisecond, Duration: 2 * time.Minute,
		Rate: 200, Producers: 4, LinesPerRequest: 5, ResendFraction: 0.03, Faults: slices.Clone(AllFaults),
		Seed: 1, SettleTimeout: 60 * time.Second, StartTimeout: 30 * time.Second}
}

// ErrConfig is the class of a Config that cannot run.
var ErrConfig = errors.New("chaos: bad configuration")

// Validate reports the first bad field, naming its flag.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case c.Binary == "" && c.DockerImage == "":
		return bad("no node binary")
	case c.DockerImage != "" && !c.Docker:
		return bad("--docker-image %s needs --docker", c.DockerImage)
	case c.Nodes != 1 && c.Nodes != 3:
		return bad("--nodes %d: 1 (single-node faults) or 3", c.Nodes)
	case c.Batch < 100*time.Millisecond || c.Batch%time.Millisecond != 0:
		return bad("--batch %v: at least 100ms, a whole number of milliseconds", c.Batch)
	case c.Duration < 10*time.Second:
		return bad("--duration %v: at least 10s", c.Duration)
	case c.Rate < 1 || c.Rate > 100_000:
		return bad("--rate %d: lines per second, 1 to 100000", c.Rate)
	case c.Producers < 1 || c.LinesPerRequest < 1:
		return bad("producers %d and lines per request %d must be at least 1", c.Producers, c.LinesPerRequest)
	case c.ResendFraction < 0 || c.ResendFraction > 1:
		return bad("resend fraction %v: 0 to 1", c.ResendFraction)
	case c.SettleTimeout <= 0 || c.StartTimeout <= 0:
		return bad("--settle-timeout and the start timeout must be positive")
	}
	for _, f := range c.Faults {
		if !slices.Contains(AllFaults, f) {
			return bad("--faults: unknown fault %q (known: %s)", f, strings.Join(AllFaults, ","))
		}
	}
	if c.Docker && c.DockerImage == "" {
		if static, err := IsStatic(c.Binary); err != nil || !static {
			return bad("--docker: the node binary %s is not a static executable (%v), and an image FROM scratch has no dynamic loader: build it with CGO_ENABLED=0, or give --docker-image", c.Binary, err)
		}
	}
	if c.Nodes == 1 && slices.Contains(c.Faults, FaultPartition) {
		return bad("--faults partition needs --nodes 3: one node has no link to cut")
	}
	return nil
}

// ParseFaults splits a --faults list; "all" is every kind, "none" none.
func ParseFaults(s string) ([]string, error) {
	switch strings.TrimSpace(s) {
	case "all":
		return slices.Clone(AllFaults), nil
	case "", "none":
		return nil, nil
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(AllFaults, f) {
			return nil, fmt.Errorf("%w: --faults: unknown fault %q (known: %s, or all, none)", ErrConfig, f, strings.Join(AllFaults, ","))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// withDefaults fills the derived durations.
func (c Config) withDefaults() Config {
	if c.Warmup == 0 {
		c.Warmup = min(8*time.Second, c.Duration/8)
	}
	if c.Cooldown == 0 {
		c.Cooldown = min(10*time.Second, c.Duration/6)
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return c
}
