package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ErrNeverSettled: after the faults the cluster did not come back to one
// leader with every acknowledged request's batch completed and applied
// on every node within Config.SettleTimeout.
var ErrNeverSettled = errors.New("chaos: the cluster never settled")

// Result is a run's verdict and figures; report.go writes it out.
type Result struct {
	Config    Config
	Passed    bool
	Verdict   string
	Plan      []Fault
	Events    []Event
	Checks    *Checks // nil when the run stopped before the checks
	Requests  map[string]int
	Resends   int
	ResendBad []string
	Refusals  []string // the 4xx answers that failed requests, the first few
	Failovers []failover
	Twice     []string // batch times completed by two drivers
	Start     time.Time
	LoadEnd   time.Time
	Settled   time.Time
	End       time.Time
	AckedPerS map[int64]int
	Batches   []batchRow
	Err       error // what stopped the run early, if anything
}

// runner is one run's parts.
type runner struct {
	cfg  Config
	c    *cluster
	mon  *monitor
	load *load
	nem  *nemesis
	res  *Result
}

// Run starts the cluster, loads it, injects the planned faults, checks
// the outcome and writes the report under cfg.Dir. Every process it
// starts is dead when it returns. An error is a run that could not be
// made (a bad config, a port in use, a node that does not start); a
// finished run's verdict is in the Result (Passed), also when the
// cluster never settled or a node would not restart.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "sluice-chaos-")
		if err != nil {
			return nil, err
		}
		cfg.Dir = dir
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: the report directory: %v", ErrConfig, err)
	}
	r := &runner{cfg: cfg, res: &Result{Config: cfg, Plan: plan(cfg), Start: time.Now()}}
	c, err := newCluster(ctx, cfg, r.logf)
	if err != nil {
		return nil, err
	}
	r.c = c
	defer c.close()
	r.logf("seed %d (replay: --seed %d); %d faults planned; node data and logs under %s", cfg.Seed, cfg.Seed, len(r.res.Plan), cfg.Dir)
	for _, f := range r.res.Plan {
		r.logf("  at %-6v %v", f.At, f)
	}
	if err := r.start(ctx); err != nil {
		return nil, err
	}
	r.exercise(ctx)
	r.finish(ctx)
	return r.res, writeReport(r.res)
}

func (r *runner) logf(format string, a ...any) {
	fmt.Fprintf(r.cfg.Log, "chaos: "+format+"\n", a...)
}

// start launches the nodes and waits for a driver's first batch.
func (r *runner) start(ctx context.Context) error {
	if err := r.c.startAll(ctx); err != nil {
		return err
	}
	r.mon = newMonitor(r.c)
	deadline := time.Now().Add(r.cfg.StartTimeout)
	for {
		r.mon.poll(ctx, false)
		if d, last := r.mon.driver(); d != "" && last > 0 {
			r.logf("%d node(s) up, %s drives", len(r.c.nodes), d)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%w: no driver completed a batch within %v of the start; see the logs under %s",
				ErrNodeStart, r.cfg.StartTimeout, r.cfg.Dir)
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

// exercise runs the load, the monitor and the faults, heals, and waits
// for the load to drain.
func (r *runner) exercise(ctx context.Context) {
	monCtx, stopMon := context.WithCancel(ctx)
	monDone := make(chan struct{})
	go func() { r.mon.run(monCtx); close(monDone) }()
	defer func() { stopMon(); <-monDone }()

	start := time.Now()
	r.res.Start = start
	gen, stopGen := context.WithDeadline(ctx, start.Add(r.cfg.Duration))
	defer stopGen()
	drain, stopDrain := context.WithDeadline(ctx, start.Add(r.cfg.Duration+15*time.Second))
	defer stopDrain()
	r.load = newLoad(r.cfg, r.c)
	loadDone := make(chan struct{})
	go func() { r.load.run(gen, drain); close(loadDone) }()

	r.nem = &nemesis{c: r.c, mon: r.mon}
	faultCtx, stopFaults := context.WithDeadline(ctx, start.Add(r.cfg.Duration-r.cfg.Cooldown))
	err := r.nem.run(faultCtx, start, r.res.Plan)
	stopFaults()
	if herr := r.nem.healAll(ctx); err == nil {
		err = herr
	}
	r.res.Events = r.nem.events()
	if err != nil {
		r.res.Err = err
		r.logf("%v; stopping the load", err)
		stopGen()
		stopDrain()
	} else {
		r.logf("faults over at %v: every link healed, every node running", time.Since(start).Round(time.Second))
	}
	<-loadDone
	r.res.LoadEnd = time.Now()
	if r.res.Err == nil && ctx.Err() == nil {
		r.res.Err = r.settle(ctx)
	}
	r.res.Failovers = r.mon.failovers()
}

// settle waits until every node runs, one leader is agreed on, and the
// driver has completed, with nothing pending before it, a batch allocated
// after the load ended (time past the load's end and past every batch
// seen so far, plus two batches), and every node's state has applied it.
func (r *runner) settle(ctx context.Context) error {
	target := time.Now().UnixMilli()
	for _, b := range r.mon.batchRows() {
		target = max(target, b.Time)
	}
	target += 2 * r.cfg.Batch.Milliseconds()
	deadline := time.Now().Add(r.cfg.SettleTimeout)
	why := ""
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if why = r.settled(ctx, target); why == "" {
			r.res.Settled = time.Now()
			r.logf("settled in %v: batch %d completed and applied on every node", time.Since(r.res.LoadEnd).Round(100*time.Millisecond), target)
			return nil
		}
		sleepCtx(ctx, 250*time.Millisecond)
	}
	return fmt.Errorf("%w within %v of the load's end: %s", ErrNeverSettled, r.cfg.SettleTimeout, why)
}

// settled says why the cluster has not settled at target, "" if it has.
func (r *runner) settled(ctx context.Context, target int64) string {
	for _, n := range r.c.nodes {
		if !n.up() {
			return n.id + " is not running"
		}
	}
	l := r.c.leader(ctx)
	if l == nil {
		return "no leader the nodes agree on"
	}
	var doc struct {
		Batches []batchRow `json:"batches"`
	}
	if err := r.c.getJSON(ctx, l, "/api/batches?limit=100", &doc); err != nil {
		return err.Error()
	}
	var done int64
	for _, b := range doc.Batches {
		if b.Status == "done" {
			done = max(done, b.Time)
		}
	}
	for _, b := range doc.Batches {
		if b.Status != "done" && b.Status != "failed" && b.Time <= done {
			return fmt.Sprintf("the leader %s has batch %d %s before its last completed %d", l.id, b.Time, b.Status, done)
		}
	}
	if done < target {
		return fmt.Sprintf("the leader %s's last completed batch is %d, not yet %d", l.id, done, target)
	}
	for _, n := range r.c.nodes {
		s, err := r.c.state(ctx, n, 1)
		if err != nil {
			return err.Error()
		}
		if s.batch < target {
			return fmt.Sprintf("%s's state is at batch %d, not yet %d", n.id, s.batch, target)
		}
	}
	return ""
}

// finish snapshots every node's state, stops the nodes, checks, and
// fills the result.
func (r *runner) finish(ctx context.Context) {
	res := r.res
	states := map[string]stateSnapshot{}
	if res.Err == nil {
		for _, n := range r.c.nodes {
			s, err := r.c.state(ctx, n, maxTopKeys)
			if err != nil {
				res.Err = fmt.Errorf("%w: %s's state API: %v", ErrNeverSettled, n.id, err)
				break
			}
			states[n.id] = s
		}
	}
	res.Batches = r.mon.batchRows()
	r.c.close() // the outputs stay still from here on
	res.End = time.Now()
	reqs := r.load.finish()
	res.Requests = map[string]int{}
	for _, q := range reqs {
		res.Requests[outcomeName(q.outcome)]++
		if q.failure != "" && len(res.Refusals) < 20 {
			res.Refusals = append(res.Refusals, q.failure)
		}
	}
	r.load.mu.Lock()
	res.Resends, res.ResendBad, res.AckedPerS = r.load.mu.resends, r.load.mu.resendBad, r.load.mu.ackedPerS
	r.load.mu.Unlock()
	res.Twice = completedTwice(res.Batches)
	if res.Err != nil {
		res.Verdict = "FAIL: " + res.Err.Error()
		return
	}
	dirs := map[string]string{}
	for _, n := range r.c.nodes {
		dirs[n.id] = filepath.Join(n.dir, "output")
	}
	res.Checks = newChecker(reqs, r.cfg.Batch, dirs, states).run()
	if n := res.Requests[outcomeName(OutcomeFailed)]; n > 0 {
		// The producers follow the ingest protocol (one request at a
		// time, a sequence resent until acknowledged): a correct node
		// never refuses one of theirs.
		res.Checks.fail("refused", "%d requests were refused with a 4xx, which a producer following the protocol never gets (the first: %s)", n, firstOr(res.Refusals, "not recorded"))
	}
	res.Checks.Skipped = append(res.Checks.Skipped,
		"windows: the wordcount application has no window; windowed counts are checked by the simulated cluster (go test ./engine -run TestSimulatedCluster), not here",
		"no batch completed twice: checked on the batches /api/batches showed (each node's last 100, sampled every second), not on the metadata log itself, which no API lists")
	if r.cfg.Docker && hasFault(r.cfg.Faults, FaultPartition) {
		res.Checks.Skipped = append(res.Checks.Skipped,
			"one-way partitions (--docker): docker network disconnect cuts a container off both ways, so a one-way partition ran as isolate (its event says so)")
	}
	for _, s := range states {
		if s.partial {
			res.Checks.Skipped = append(res.Checks.Skipped, fmt.Sprintf("state of tokens: more than %d keys, so the state API was compared on the words only", maxTopKeys))
			break
		}
	}
	for _, t := range res.Twice {
		res.Checks.Mismatched++
		res.Checks.fail("completed twice", "%s", t)
	}
	for _, b := range res.ResendBad {
		res.Checks.fail("resend stored again", "%s", b)
	}
	res.Passed = res.Checks.OK()
	res.Verdict = r.verdict()
}

func (r *runner) verdict() string {
	c := r.res.Checks
	if r.res.Passed {
		return fmt.Sprintf("PASS: %d acknowledged lines counted exactly once, %d word counts and %d batches agree on every node",
			c.AckedLines, vocabSize, c.Batches)
	}
	var what []string
	if c.Lost > 0 {
		what = append(what, fmt.Sprintf("%d lost", c.Lost))
	}
	if c.Duplicated > 0 {
		what = append(what, fmt.Sprintf("%d duplicated", c.Duplicated))
	}
	if c.Unknown > 0 {
		what = append(what, fmt.Sprintf("%d counted never sent", c.Unknown))
	}
	if c.Mismatched > 0 {
		what = append(what, fmt.Sprintf("%d mismatches", c.Mismatched))
	}
	if len(what) == 0 {
		what = append(what, c.Problems[0])
	}
	return fmt.Sprintf("FAIL: %s; replay with --seed %d", strings.Join(what, ", "), r.cfg.Seed)
}

// maxTopKeys is the node's bound on GET /api/state/{op}?top=N.
const maxTopKeys = 100_000

// state reads a node's word counts through GET /api/state/wordcount?top=N.
func (c *cluster) state(ctx context.Context, n *node, top int) (stateSnapshot, error) {
	var doc struct {
		Batch int64 `json:"batch"`
		Top   []struct {
			Key   string `json:"key"`
			Value int64  `json:"value"`
		} `json:"top"`
	}
	if err := c.getJSONWithin(ctx, n, fmt.Sprintf("/api/state/wordcount?top=%d", top), &doc, 20*time.Second); err != nil {
		return stateSnapshot{}, err
	}
	s := stateSnapshot{batch: doc.Batch, counts: make(map[string]int64, len(doc.Top)), partial: len(doc.Top) >= top && top > 1}
	for _, e := range doc.Top {
		s.counts[e.Key] = e.Value
	}
	return s, nil
}

// p50Max is the median and the largest of ds.
func p50Max(ds []time.Duration) (time.Duration, time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2], s[len(s)-1]
}

func firstOr(s []string, or string) string {
	if len(s) == 0 {
		return or
	}
	return s[0]
}
