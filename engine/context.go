package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Errors returned by the Context's life cycle.
var (
	// ErrNoOutputs is returned by Start when no output operation was
	// registered: nothing would ever run.
	ErrNoOutputs = errors.New("engine: no output operations registered, so nothing to execute (add Print, SaveAsTextFiles or ForeachRDD)")
	// ErrStarted is returned when the graph is changed or the context is
	// started after Start.
	ErrStarted = errors.New("engine: the context has already been started; build the whole graph before Start")
	// ErrStopped is returned by Start on a stopped context: a context
	// cannot be restarted, create a new one.
	ErrStopped = errors.New("engine: the context has been stopped and cannot be restarted; create a new one")
)

type lifecycle int

const (
	initialized lifecycle = iota
	active
	stopped
)

// Context is a streaming application: the DStream graph built on it, the
// batch scheduler that runs it, and the receivers that feed it (Spark's
// StreamingContext). Build the graph, Start, then AwaitTermination.
type Context struct {
	cfg  Config
	log  *slog.Logger
	exec *executor
	bus  *listenerBus

	mu        sync.Mutex // guards the fields below and the graph while building
	state     lifecycle
	ops       []*opNode
	outputs   []*outputOp
	inputs    []inputStream
	buildErrs []error
	sched     *scheduler
	storage   *storage                   // set by Start
	ingest    map[string]*receiverStream // ingest streams by name
	streams   map[string]bool            // names of streams whose blocks are stored
	producers producerLocks
	ingesting sync.WaitGroup // Ingest calls admitted while active
	lines     []string       // graphLines, set by Start
	stLines   []string       // stateLines, set by Start
	graphHash string         // hashLines(lines), set by Start
	node      *clusterNode   // set by Start in a cluster (Config.Cluster)
	// replicaMu serialises the state replica's writers (deltas arriving,
	// the replica loop applying them) with the driver taking the store over.
	replicaMu sync.Mutex
}

// NewContext returns a Context for cfg, with zero fields set to their
// defaults.
func NewContext(cfg Config) (*Context, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Context{cfg: cfg, log: cfg.Logger.With("app", cfg.AppName), exec: newExecutor(cfg.Parallelism)}
	c.bus = newListenerBus(c.log)
	return c, nil
}

// Config returns the context's configuration, with defaults applied.
func (c *Context) Config() Config { return c.cfg }

// Logger returns the context's logger.
func (c *Context) Logger() *slog.Logger { return c.log }

// AddListener registers l for batch and receiver events. Events are
// delivered in order on one goroutine, never on the batch's own.
func (c *Context) AddListener(l Listener) { c.bus.add(l) }

// addOp appends an operator to the graph. It returns nil (and records an
// error for Start) if the graph can no longer change.
func (c *Context) addOp(kind string, parents []*opNode, slide time.Duration, params ...string) *opNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := &opNode{ctx: c, id: len(c.ops), kind: kind, parents: parents, slide: slide, params: params}
	if c.state != initialized {
		c.buildErrs = append(c.buildErrs, fmt.Errorf("%w (adding %s)", ErrStarted, kind))
	}
	for _, p := range parents {
		if p.ctx != c {
			c.buildErrs = append(c.buildErrs, fmt.Errorf("engine: operator %s: a parent belongs to another Context", o.label()))
		}
	}
	c.ops = append(c.ops, o)
	return o
}

// buildError records a mistake found while building the graph; Start
// returns all of them.
func (c *Context) buildError(o *opNode, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buildErrs = append(c.buildErrs, &graphError{op: o, msg: fmt.Sprintf(format, args...)})
}

// graphError is a mistake in one operator. It names the operator when it
// is printed, so that a name given with Named after the mistake shows.
type graphError struct {
	op  *opNode
	msg string
}

func (e *graphError) Error() string { return "engine: operator " + e.op.label() + ": " + e.msg }

func (c *Context) addOutput(o *opNode, run func(b *batchRun) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outputs = append(c.outputs, &outputOp{node: o, run: run})
}

func (c *Context) addInput(in inputStream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inputs = append(c.inputs, in)
}

// Validate returns the errors found while building the graph, if any.
func (c *Context) Validate() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.buildErrs) > 0 {
		return errors.Join(c.buildErrs...)
	}
	if len(c.outputs) == 0 {
		return ErrNoOutputs
	}
	return nil
}

// Start validates the graph, starts the receivers and the batch scheduler,
// and returns. The first batch is at the first whole batch duration after
// now, by the context's clock.
func (c *Context) Start() error {
	if err := c.Validate(); err != nil {
		return err
	}
	fingerprint := c.Fingerprint()
	lines, stLines := c.graphLines(), c.stateLines() // before c.mu: they take it
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case active:
		return ErrStarted
	case stopped:
		return ErrStopped
	}
	if c.cfg.Cluster != nil {
		for _, in := range c.inputs {
			if _, ok := in.(memoryInput); ok {
				return fmt.Errorf("engine: input %s keeps its data in memory, so another node could not take it over: a cluster reads receivers, ingest streams, directories and Kafka", in.name())
			}
		}
		c.node = newClusterNode(c)
	}
	sto, err := openStorage(c)
	if err != nil {
		c.node = nil
		return err
	}
	sto.blocks = timeAppends(sto.blocks) // for WALLatency (wal_timing.go)
	c.storage = sto
	c.lines, c.stLines, c.graphHash = lines, stLines, fingerprint
	if c.node != nil {
		return c.startNode(fingerprint)
	}
	c.sched = newScheduler(c, c.inputs, c.outputs, c.ops)
	if err := c.sched.start(); err != nil {
		c.storage.close()
		c.storage = nil
		return err
	}
	c.state = active
	c.bus.start()
	c.log.Info("streaming started", "batch", c.cfg.BatchDuration, "partitions", c.cfg.Partitions,
		"data_dir", c.cfg.DataDir, "operators", len(c.ops), "fingerprint", fingerprint[:12])
	return nil
}

// Stop stops the context. With graceful set, receivers stop first and
// every batch holding data they received runs to completion; otherwise
// the batch now running finishes and queued batches are dropped. Stop
// returns when the scheduler has stopped. If ctx ends first, queued
// batches are dropped and Stop returns ctx's error once the batch running
// then has finished (a task cannot be interrupted, and no goroutine may
// outlive Stop). A context that is stopped, or was never started, cannot
// be started again.
func (c *Context) Stop(ctx context.Context, graceful bool) error {
	c.mu.Lock()
	s := c.sched
	wasActive := c.state == active
	c.state = stopped
	c.mu.Unlock()
	if !wasActive {
		return nil
	}
	c.awaitIngest(ctx, graceful) // no new one is admitted: the state is stopped
	if c.node != nil {
		err := c.stopNode(ctx, graceful)
		c.bus.stop()
		return errors.Join(err, c.storage.close())
	}
	err := s.stop(ctx, graceful)
	if graceful && err == nil && s.failure() == nil {
		err = c.storage.finalCheckpoint(c, s.epoch)
	}
	c.bus.stop()
	return errors.Join(err, c.storage.close())
}

// awaitIngest waits for the Ingest calls admitted before Stop. A graceful
// stop lets them finish storing, until ctx ends; after that, or at once
// for a stop that is not graceful, what they are storing is abandoned
// (their producers are not acknowledged and retry elsewhere), so that a
// storage retrying against a cluster it cannot reach does not hold Stop
// for its minute.
func (c *Context) awaitIngest(ctx context.Context, graceful bool) {
	done := make(chan struct{})
	go func() {
		c.ingesting.Wait()
		close(done)
	}()
	if graceful {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
	}
	c.mu.Lock()
	streams := make([]*receiverStream, 0, len(c.ingest))
	for _, s := range c.ingest {
		streams = append(streams, s)
	}
	c.mu.Unlock()
	for _, s := range streams {
		if s.cancel != nil {
			s.cancel()
		}
	}
	<-done
}

// AwaitTermination blocks until the context stops, by Stop or by a failed
// batch, and returns the failure if there was one; or until ctx is done.
func (c *Context) AwaitTermination(ctx context.Context) error {
	c.mu.Lock()
	s, n := c.sched, c.node
	c.mu.Unlock()
	if n != nil {
		select {
		case <-n.done:
			return n.failure()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s == nil {
		return errors.New("engine: AwaitTermination before Start")
	}
	select {
	case <-s.done:
		return s.failure()
	case <-ctx.Done():
		return ctx.Err()
	}
}
