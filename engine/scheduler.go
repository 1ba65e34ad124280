package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluice-stream/sluice/recovery"
	"github.com/sluice-stream/sluice/state"
)

// batchRun is one batch being executed: its time, the input fixed for it
// when it was allocated, and the executor that runs its tasks. Only the
// scheduler's run goroutine touches it, apart from tasks reading inputs.
type batchRun struct {
	t      Time
	c      *Context
	exec   *executor
	inputs map[int]any // operator id of an input stream → its allocated input
	info   BatchInfo
	state  *state.Batch // the state writes of the batch
	// prev is the batch the state store is as of while b runs: the last
	// completed batch before t (state tasks carry it to the primaries).
	prev   Time
	replay bool   // completed before, re-run to rebuild the state
	epoch  uint64 // the driver's, carried by the tasks it sends
	// detached: a map task's batch of one block (dist_map.go), whose
	// operators compute and keep nothing.
	detached bool
}

// scheduler generates a batch every batch duration (the job generator) and
// runs batches one after another, in time order (the job scheduler). Two
// goroutines: generate owns the batch clock and allocation, run owns
// execution. Neither outlives stop.
type scheduler struct {
	c      *Context
	inputs []inputStream
	owned  []inputStream // the inputs it starts and stops (in a cluster, not the ingest streams)
	epoch  uint64        // the driver's epoch, stamped on its batch events (DriverStarted)
	// tookOver: when this driver's node began taking over (zero for the
	// first driver of a single node); the first batch it completes logs
	// the time since.
	tookOver      time.Time
	stopOnceGuard sync.Once
	stopErr       error
	outputs       []*outputOp
	ops           []*opNode
	forced        []*opNode // stateful or remembered: computed at every valid time

	cancelGen context.CancelFunc // stops generation at once
	genDone   chan struct{}
	stopping  chan struct{} // closed once stop has stopped the inputs and set its mode
	done      chan struct{} // closed when both goroutines have exited

	mu struct {
		sync.Mutex
		queue    []*batchRun
		draining bool // graceful stop: generate until inputs hold nothing
		genEnded bool // no batch will be queued any more
		dropped  bool // non-graceful stop: drop queued batches
		err      error
	}
	wake chan struct{}
	// taken receives (without blocking) when run takes a batch off the
	// queue: generate waits on it for room (awaitRoom).
	taken chan struct{}
}

// maxQueued is how many allocated batches may wait for run. Allocation
// keeps this little ahead of execution, so that a driver behind the clock
// (after an outage, or under load) allocates the batch times it missed
// one by one as it gets to them: a block registered meanwhile goes to the
// batch that runs next, not to one queued behind every time since passed.
const maxQueued = 2

func newScheduler(c *Context, inputs []inputStream, outputs []*outputOp, ops []*opNode) *scheduler {
	s := &scheduler{c: c, inputs: inputs, owned: inputs, outputs: outputs, ops: ops,
		genDone: make(chan struct{}), stopping: make(chan struct{}), done: make(chan struct{}),
		wake: make(chan struct{}, 1), taken: make(chan struct{}, 1)}
	for _, o := range ops {
		if o.stateful || o.remember > 0 {
			s.forced = append(s.forced, o)
		}
	}
	return s
}

// start recovers what the metadata log says is unfinished, then starts
// the inputs and the two goroutines. Batches allocated and not completed
// (the process died while running them) are queued first, to be re-run
// from the same blocks; generation resumes at the batch time after the
// last allocated one, so the times missed while no driver ran are
// generated too (empty where no block arrived) and windows stay aligned.
func (s *scheduler) start() error {
	if s.c.node == nil {
		if err := s.startDriver(); err != nil {
			return err
		}
	}
	first, err := s.recover()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancelGen = cancel
	for _, in := range s.owned {
		in.start(ctx)
	}
	go s.generate(ctx, first)
	go s.run()
	return nil
}

// startDriver records DriverStarted with raft's term as this driver's
// epoch, for a single node (a cluster node does it in drive). A log
// without terms (a test's) is not fenced.
func (s *scheduler) startDriver() error {
	t, ok := s.c.storage.meta.(interface{ Term() uint64 })
	if !ok {
		return nil
	}
	s.epoch = t.Term()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.c.storage.meta.Apply(ctx, recovery.DriverStarted{Epoch: s.epoch, Node: s.c.cfg.NodeID}); err != nil {
		return fmt.Errorf("engine: recording the driver's start: %w", err)
	}
	return nil
}

// recover queues the pending batches, sets every receiver's next block
// sequence, deletes blocks no batch will read, and returns the first batch
// time to generate.
func (s *scheduler) recover() (Time, error) {
	view := s.c.storage.meta.View()
	if err := s.c.checkGraph(view); err != nil {
		return 0, err
	}
	applied, err := s.c.storage.openState(s.c, view)
	if err != nil {
		return 0, err
	}
	for _, pb := range view.Batches {
		if pb.Completed && Time(pb.Time) > applied {
			b := s.newBatch(Time(pb.Time), pb.Blocks)
			b.replay = true
			s.mu.queue = append(s.mu.queue, b)
		}
	}
	if n := len(s.mu.queue); n > 0 {
		s.c.log.Info("re-running completed batches to rebuild the state", "batches", n,
			"first", s.mu.queue[0].t, "last", s.mu.queue[n-1].t)
	}
	replays := len(s.mu.queue)
	for _, pb := range view.Pending() {
		b := s.newBatch(Time(pb.Time), pb.Blocks)
		s.mu.queue = append(s.mu.queue, b)
	}
	if n := len(s.mu.queue) - replays; n > 0 {
		s.c.log.Info("re-running batches allocated before the restart and not completed",
			"batches", n, "first", s.mu.queue[replays].t, "last", s.mu.queue[len(s.mu.queue)-1].t)
	}
	if err := s.c.storage.collectGarbage(view, s.receivers(), s.c.node == nil); err != nil {
		return 0, err
	}
	d := s.c.cfg.BatchDuration
	if view.LastAllocated > 0 {
		return Time(view.LastAllocated).Add(d), nil
	}
	return TimeOf(s.c.cfg.Clock.Now()).floorTo(0, d).Add(d), nil
}

// adjustRates gives each receiver's backpressure estimator the batch.
// BatchInfo.Inputs lists the inputs in the order of s.inputs (newBatch).
func (s *scheduler) adjustRates(b *batchRun) {
	for i, in := range s.inputs {
		if r, ok := in.(*receiverStream); ok {
			r.adjustRate(b.info, b.info.Inputs[i].Records)
		}
	}
}

func (s *scheduler) receivers() []*receiverStream {
	var out []*receiverStream
	for _, in := range s.owned {
		if r, ok := in.(*receiverStream); ok {
			out = append(out, r)
		}
	}
	return out
}

// generate allocates a batch at every batch time until stopped.
func (s *scheduler) generate(ctx context.Context, first Time) {
	defer close(s.genDone)
	d := s.c.cfg.BatchDuration
	for t := first; ; t = t.Add(d) {
		if err := s.c.cfg.Clock.WaitUntil(ctx, t.Std()); err != nil {
			s.endGeneration()
			return
		}
		// Submitted when the clock reached t, as before allocation waited
		// for room: the scheduling delay (backpressure's measure of a
		// driver behind) still counts the wait.
		reached := s.c.cfg.Clock.Now()
		if err := s.awaitRoom(ctx); err != nil {
			s.endGeneration()
			return
		}
		b, err := s.allocate(ctx, t)
		if err != nil {
			s.endGeneration()
			if ctx.Err() == nil {
				s.fail(err)
			}
			return
		}
		b.info.SubmittedAt = reached
		// The listener gets a copy: once queued, b is the run goroutine's.
		submitted := b.info
		s.c.bus.post(func(l Listener) { l.OnBatchSubmitted(submitted) })
		s.mu.Lock()
		s.mu.queue = append(s.mu.queue, b)
		last := s.mu.draining && !s.inputsPending()
		s.mu.Unlock()
		s.signal()
		if last {
			s.endGeneration()
			return
		}
	}
}

// awaitRoom waits until fewer than maxQueued batches wait for run, or
// ctx ends.
func (s *scheduler) awaitRoom(ctx context.Context) error {
	for {
		s.mu.Lock()
		queued := len(s.mu.queue)
		s.mu.Unlock()
		if queued < maxQueued {
			return nil
		}
		select {
		case <-s.taken:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *scheduler) endGeneration() {
	s.mu.Lock()
	s.mu.genEnded = true
	s.mu.Unlock()
	s.signal()
}

// allocate fixes what batch t holds: BatchAllocated in the metadata log
// gives it every block registered and not yet allocated; inputs that keep
// their data in memory (queues, directories) allocate theirs themselves.
func (s *scheduler) allocate(ctx context.Context, t Time) (*batchRun, error) {
	res, err := s.c.storage.meta.Apply(ctx, recovery.BatchAllocated{Time: int64(t), Epoch: s.epoch})
	if err != nil {
		return nil, fmt.Errorf("engine: allocating batch %v: %w", t, err)
	}
	failpoint(FailAfterBatchAllocated)
	return s.newBatch(t, res.Batch.Blocks), nil
}

// newBatch makes the batch run of t from its allocated blocks and the
// memory inputs' data.
func (s *scheduler) newBatch(t Time, blocks []recovery.BlockEntry) *batchRun {
	b := &batchRun{t: t, c: s.c, exec: s.c.exec, epoch: s.epoch, inputs: make(map[int]any, len(s.inputs))}
	b.info = BatchInfo{Time: t, SubmittedAt: s.c.cfg.Clock.Now()}
	byStream := make(map[string][]recovery.BlockEntry)
	for _, e := range blocks {
		byStream[e.Ref.Stream] = append(byStream[e.Ref.Stream], e)
	}
	for _, in := range s.inputs {
		var data any
		var n int64
		if m, ok := in.(memoryInput); ok {
			data, n = m.allocate(t)
		} else {
			entries := byStream[in.name()]
			data = entries
			for _, e := range entries {
				n += int64(e.Records)
				for _, r := range e.Skip {
					n -= int64(r.Count)
				}
			}
		}
		b.inputs[in.node().id] = data
		b.info.Records += n
		b.info.Inputs = append(b.info.Inputs, StreamInput{Operator: in.node().id, Stream: in.name(), Records: n})
	}
	return b
}

// inputsPending reports whether received data waits for a batch: in an
// input's memory, or registered in the metadata log and not allocated.
func (s *scheduler) inputsPending() bool {
	for _, in := range s.inputs {
		if in.pending() {
			return true
		}
	}
	return len(s.c.storage.meta.View().Unallocated) > 0
}

func (s *scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run executes queued batches in order until generation has ended and the
// queue is empty, or a batch fails.
func (s *scheduler) run() {
	defer close(s.done)
	defer func() { <-s.genDone }()
	for {
		s.mu.Lock()
		var b *batchRun
		if len(s.mu.queue) > 0 && !s.mu.dropped {
			b, s.mu.queue = s.mu.queue[0], s.mu.queue[1:]
			select {
			case s.taken <- struct{}{}:
			default:
			}
		}
		finished := b == nil && (s.mu.genEnded || s.mu.dropped)
		s.mu.Unlock()
		if finished {
			return
		}
		if b == nil {
			<-s.wake
			continue
		}
		if err := s.execute(b); err != nil {
			s.fail(err)
			return
		}
	}
}

// execute runs one batch: stateful and remembered operators first, then
// every output operation valid at b.t, in the order they were registered;
// then the batch commits (commit) and remembered RDDs that no window
// needs are dropped.
func (s *scheduler) execute(b *batchRun) error {
	b.info.StartedAt = s.c.cfg.Clock.Now()
	started := b.info
	s.c.bus.post(func(l Listener) { l.OnBatchStarted(started) })
	err := s.runBatch(b)
	for _, o := range s.ops {
		o.hooks.forget(b.t.Add(-o.remember))
	}
	b.info.CompletedAt = s.c.cfg.Clock.Now()
	b.info.Err = err
	if err == nil {
		s.adjustRates(b)
	}
	done := b.info
	s.c.bus.post(func(l Listener) { l.OnBatchCompleted(done) })
	if err != nil {
		return fmt.Errorf("engine: batch %v failed: %w", b.t, err)
	}
	if !s.tookOver.IsZero() && !b.replay {
		s.c.log.Info("the new driver completed its first batch", "batch", b.t, "since_takeover", time.Since(s.tookOver).Round(time.Millisecond), "epoch", s.epoch)
		s.tookOver = time.Time{}
	}
	s.c.log.Debug("batch completed", "time", b.t, "records", b.info.Records, "replay", b.replay,
		"scheduling_delay", b.info.SchedulingDelay(), "processing", b.info.ProcessingDelay())
	return nil
}

// runBatch runs the batch's jobs and commits it. The commit path, in
// order, each step a failpoint:
//
//  1. the outputs are written (by the jobs);
//  2. the state delta of the batch is written and synced;
//  3. now and then, a checkpoint of the state as of the batch before;
//  4. BatchCompleted{t, checkpoint} is committed to the metadata log;
//  5. the delta is applied: the batch's state becomes the committed one;
//  6. now and then, what no batch will read again is truncated.
//
// A crash before 4 re-runs the batch from the same blocks and the state
// of the batch before, replacing its delta and rewriting its outputs; a
// crash after 4 redoes the delta at start. A replayed batch (completed
// before, re-run to rebuild the state) skips 3, 4 and 6.
func (s *scheduler) runBatch(b *batchRun) error {
	prev, err := s.c.storage.state.Applied()
	if err != nil {
		return err
	}
	st, err := s.c.storage.state.Begin(int64(b.t))
	if err != nil {
		return err
	}
	b.state, b.prev = st, Time(prev)
	if err := s.executeJobs(b); err != nil {
		st.Abort()
		return err
	}
	failpoint(FailAfterOutputWritten)
	for _, o := range s.ops {
		if o.remember > 0 {
			st.TruncateSlices(o.id, int64(b.t.Add(-o.remember))+1)
		}
	}
	if err := st.WriteDelta(); err != nil {
		st.Abort()
		return err
	}
	failpoint(FailAfterStateDelta)
	if b.replay {
		return st.Apply()
	}
	if n := s.c.node; n != nil {
		data, err := st.Export()
		if err != nil {
			st.Abort()
			return err
		}
		n.shipDelta(s.epoch, b.t, Time(prev), data)
	}
	ref := s.c.storage.maybeCheckpoint(s.c, b.t)
	if err := s.complete(b.t, ref); err != nil {
		st.Abort()
		return err
	}
	failpoint(FailAfterBatchCompleted)
	if err := st.Apply(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if ref != nil {
		s.c.storage.retainCheckpoints(s.c)
	}
	return s.c.storage.truncate(ctx, s.epoch, s.horizon(b.t), 10*s.c.cfg.BatchDuration, s.c.cfg.BatchDuration)
}

// complete records BatchCompleted{t} once the batch's outputs and state
// delta are written.
func (s *scheduler) complete(t Time, ref *recovery.CheckpointRef) error {
	failpoint(FailBeforeBatchCompleted)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.c.storage.meta.Apply(ctx, recovery.BatchCompleted{Time: int64(t), Checkpoint: ref, Epoch: s.epoch}); err != nil {
		return fmt.Errorf("engine: recording batch %v completed: %w", t, err)
	}
	return nil
}

// horizon is the oldest batch time whose input a window may still read:
// batches before it are truncated from the logs.
func (s *scheduler) horizon(t Time) Time {
	var keep time.Duration
	for _, o := range s.ops {
		keep = max(keep, o.remember)
	}
	return t.Add(-keep - s.c.cfg.BatchDuration)
}

// executeJobs runs the batch's jobs. Tasks catch their own panics; the
// guard here catches those of user code run on this goroutine (Transform,
// output functions) so that no panic kills the process.
func (s *scheduler) executeJobs(b *batchRun) error {
	return guard(b.t, "batch", -1, func() error { return s.runJobs(b) })
}

func (s *scheduler) runJobs(b *batchRun) error {
	for _, o := range s.forced {
		if o.validAt(b.t) {
			if err := o.hooks.force(b); err != nil {
				return err
			}
		}
	}
	for _, out := range s.outputs {
		if out.node.validAt(b.t) {
			if err := out.run(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// fail stops the context after a failed batch: a batch that cannot
// complete must not be skipped, since every later batch of a stateful
// operator depends on it.
func (s *scheduler) fail(err error) {
	var te *TaskError
	if errors.As(err, &te) && te.Stack != "" {
		s.c.log.Error("batch failed; stopping", "err", err, "stack", te.Stack)
	} else {
		s.c.log.Error("batch failed; stopping", "err", err)
	}
	s.mu.Lock()
	s.mu.err = err
	s.mu.Unlock()
	s.cancelGen()
	for _, in := range s.owned {
		in.stop(false)
	}
}

func (s *scheduler) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.err
}

// stop ends the scheduler. Graceful: receivers stop and flush, generation
// goes on until a batch has taken everything they received, and every
// queued batch runs. Otherwise generation stops now, the running batch
// finishes and queued ones are dropped.
// stopOnce is stop, for callers that may race to stop one scheduler: the
// second caller waits for and returns the first one's result.
func (s *scheduler) stopOnce(ctx context.Context, graceful bool) error {
	s.stopOnceGuard.Do(func() { s.stopErr = s.stop(ctx, graceful) })
	return s.stopErr
}

func (s *scheduler) stop(ctx context.Context, graceful bool) error {
	for _, in := range s.owned {
		in.stop(graceful)
	}
	s.mu.Lock()
	if graceful {
		s.mu.draining = true
		if !s.inputsPending() {
			// Nothing received is waiting: the batches already
			// allocated are all there is to finish.
			s.cancelGen()
		}
	} else {
		s.mu.dropped = true
	}
	s.mu.Unlock()
	if !graceful {
		s.cancelGen()
	}
	close(s.stopping) // Context.Stop calls stop once
	s.signal()
	select {
	case <-s.done:
		s.cancelGen()
		return nil
	case <-ctx.Done():
		s.cancelGen()
		s.mu.Lock()
		s.mu.dropped = true
		s.mu.Unlock()
		s.signal()
		<-s.done
		return fmt.Errorf("engine: graceful stop did not finish: %w", ctx.Err())
	}
}
