package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitTimeout bounds every wait of these tests for something the engine
// does on its own goroutines.
const waitTimeout = 20 * time.Second

// watchLog holds values appended by engine goroutines (outputs, listener
// events) and lets a test wait, with a deadline, until they satisfy a
// condition.
type watchLog[T any] struct {
	mu      sync.Mutex
	vals    []T
	changed chan struct{} // closed and replaced on every append
}

func newWatchLog[T any]() *watchLog[T] {
	return &watchLog[T]{changed: make(chan struct{})}
}

func (w *watchLog[T]) add(vs ...T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.vals = append(w.vals, vs...)
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *watchLog[T]) get() []T {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.vals)
}

// wait blocks until cond holds for the values appended so far, and returns
// them; it fails the test after waitTimeout.
func (w *watchLog[T]) wait(t testing.TB, what string, cond func([]T) bool) []T {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		vals, changed := slices.Clone(w.vals), w.changed
		w.mu.Unlock()
		if cond(vals) {
			return vals
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s; have %v", waitTimeout, what, vals)
			return nil
		}
	}
}

// collectRecords records every record of ds, in batch order.
func collectRecords[T any](ds *DStream[T]) *watchLog[T] {
	w := newWatchLog[T]()
	ds.ForeachRDD(func(_ Time, r RDD[T]) error {
		if vs := r.Collect(); len(vs) > 0 {
			w.add(vs...)
		}
		return nil
	})
	return w
}

// lifecycleEvent is one call to an eventRecorder.
type lifecycleEvent struct {
	kind   string // "submitted", "started", "completed" or "receiver error"
	batch  BatchInfo
	stream string
	err    error
}

func (e lifecycleEvent) String() string {
	if e.kind == "receiver error" {
		return fmt.Sprintf("receiver error %s: %v", e.stream, e.err)
	}
	return fmt.Sprintf("%s %v", e.kind, e.batch.Time)
}

// eventRecorder is a Listener and ReceiverListener that records every
// event it is given.
type eventRecorder struct {
	*watchLog[lifecycleEvent]
}

var (
	_ Listener         = eventRecorder{}
	_ ReceiverListener = eventRecorder{}
)

func newEventRecorder(c *Context) eventRecorder {
	r := eventRecorder{newWatchLog[lifecycleEvent]()}
	c.AddListener(r)
	return r
}

func (r eventRecorder) OnBatchSubmitted(b BatchInfo) {
	r.add(lifecycleEvent{kind: "submitted", batch: b})
}
func (r eventRecorder) OnBatchStarted(b BatchInfo) { r.add(lifecycleEvent{kind: "started", batch: b}) }
func (r eventRecorder) OnBatchCompleted(b BatchInfo) {
	r.add(lifecycleEvent{kind: "completed", batch: b})
}
func (r eventRecorder) OnReceiverError(stream string, err error) {
	r.add(lifecycleEvent{kind: "receiver error", stream: stream, err: err})
}

func receiverErrors(evs []lifecycleEvent) []lifecycleEvent {
	var out []lifecycleEvent
	for _, e := range evs {
		if e.kind == "receiver error" {
			out = append(out, e)
		}
	}
	return out
}

// waitReceiverError waits for a receiver error whose text contains want.
func (r eventRecorder) waitReceiverError(t testing.TB, want string) lifecycleEvent {
	t.Helper()
	var found lifecycleEvent
	r.wait(t, fmt.Sprintf("a receiver error containing %q", want), func(evs []lifecycleEvent) bool {
		for _, e := range receiverErrors(evs) {
			if strings.Contains(e.err.Error(), want) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// newWallClockContext returns a context on the system clock with short
// batches, for the tests of sources that wait on real I/O.
func newWallClockContext(t testing.TB, mod ...func(*Config)) *Context {
	t.Helper()
	cfg := Config{
		AppName:       "test",
		BatchDuration: 100 * time.Millisecond,
		BlockInterval: 20 * time.Millisecond,
		Partitions:    2,
		Clock:         SystemClock{},
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Stdout:        io.Discard,
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := NewContext(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startContext starts c and stops it when the test ends.
func startContext(t testing.TB, c *Context) {
	t.Helper()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background(), false) })
}

// stopContext stops c, failing the test if Stop fails or does not return.
func stopContext(t testing.TB, c *Context, graceful bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.Stop(ctx, graceful); err != nil {
		t.Fatalf("Stop(graceful=%v): %v", graceful, err)
	}
}

// waitClosed waits for ch to be closed.
func waitClosed(t testing.TB, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
	}
}

// engineGoroutines returns the stacks, by goroutine id, of the goroutines
// running code of this package, other than the caller.
func engineGoroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[string]string)
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 || !strings.Contains(g, "sluice-stream/sluice/engine.") {
			continue // the first is the caller's
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(g, "goroutine "), " ")
		out[id] = g
	}
	return out
}

// checkNoLeaks waits until every goroutine running engine code that was
// not in before has exited.
func checkNoLeaks(t testing.TB, before map[string]string) {
	t.Helper()
	var leaked []string
	deadline := time.Now().Add(waitTimeout)
	for {
		leaked = leaked[:0]
		for id, g := range engineGoroutines() {
			if _, ok := before[id]; !ok {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines outlive Stop:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(time.Millisecond)
	}
}

// queueGraph builds a QueueStream → ForeachRDD graph on h.
func queueGraph(h *harness, batches ...[]int) (*Queue[int], *watchLog[int]) {
	q := NewQueue(batches...)
	return q, collectRecords(QueueStream(h.c, q, true))
}

func TestContextStartTwice(t *testing.T) {
	h := newHarness(t)
	queueGraph(h, []int{1})
	h.start()
	if err := h.c.Start(); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v, want ErrStarted", err)
	}
	h.run(1) // the context still runs
}

func TestContextStartAfterStop(t *testing.T) {
	h := newHarness(t)
	queueGraph(h, []int{1})
	h.start()
	h.run(1)
	stopContext(t, h.c, false)
	if err := h.c.Start(); !errors.Is(err, ErrStopped) {
		t.Fatalf("Start after Stop: %v, want ErrStopped", err)
	}
}

// TestContextStopBeforeStart checks that Stop on a context never started
// returns at once, starting and stopping nothing; as in Spark, the
// context is stopped afterwards and cannot be started.
func TestContextStopBeforeStart(t *testing.T) {
	before := engineGoroutines()
	h := newHarness(t)
	ReceiverStream(h.c, "r", &storeThenBlock{}).ForeachRDD(func(Time, RDD[string]) error { return nil })
	stopContext(t, h.c, true)
	stopContext(t, h.c, false)
	if ri := h.c.Receivers(); len(ri) != 1 || ri[0].Running {
		t.Errorf("receivers after Stop before Start: %+v, want one not running", ri)
	}
	checkNoLeaks(t, before)
	if err := h.c.Start(); !errors.Is(err, ErrStopped) {
		t.Fatalf("Start after Stop: %v, want ErrStopped", err)
	}
	if err := h.c.AwaitTermination(context.Background()); err == nil {
		t.Error("AwaitTermination on a context never started returned nil")
	}
}

// TestContextStopNonGracefulDropsQueuedBatches checks Spark's
// stop(stopGracefully = false): the running batch finishes, batches
// already generated and waiting are dropped, no batch runs afterwards, and
// what the queue still holds stays there.
func TestContextStopNonGracefulDropsQueuedBatches(t *testing.T) {
	h := newHarness(t)
	q := NewQueue([]int{1}, []int{2}, []int{3}, []int{4}, []int{5})
	release := make(chan struct{})
	running := newWatchLog[int]()
	QueueStream(h.c, q, true).ForeachRDD(func(_ Time, r RDD[int]) error {
		running.add(r.Collect()...)
		<-release
		return nil
	})
	events := newEventRecorder(h.c)
	h.start()
	free := sync.OnceFunc(func() { close(release) })
	t.Cleanup(free) // runs before the harness's Stop

	h.clock.Advance(testBatch)
	running.wait(t, "batch 1 to run", func(vs []int) bool { return len(vs) == 1 })
	h.clock.Advance(2 * testBatch)
	events.wait(t, "batches 2 and 3 to be submitted", func(evs []lifecycleEvent) bool {
		return countEvents(evs, "submitted") == 3
	})

	stopped := make(chan error, 1)
	go func() { stopped <- h.c.Stop(context.Background(), false) }()
	waitClosed(t, "Stop to drop the queued batches", h.c.sched.stopping)
	free()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Stop did not return after the running batch finished")
	}

	h.clock.Advance(3 * testBatch) // nothing is left to notice
	if err := h.c.AwaitTermination(context.Background()); err != nil {
		t.Fatalf("AwaitTermination: %v", err)
	}
	if got := running.get(); !slices.Equal(got, []int{1}) {
		t.Errorf("batches that ran saw %v, want only batch 1's [1]", got)
	}
	evs := events.get()
	if n := countEvents(evs, "completed"); n != 1 {
		t.Errorf("%d batches completed, want 1: %v", n, evs)
	}
	if n := q.Len(); n != 2 {
		t.Errorf("queue holds %d batches after Stop, want 2 (4 and 5, never allocated)", n)
	}
}

func countEvents(evs []lifecycleEvent, kind string) int {
	n := 0
	for _, e := range evs {
		if e.kind == kind {
			n++
		}
	}
	return n
}

// storeThenBlock waits for begin (if set), stores n records, tells
// stored, and blocks until it is stopped.
type storeThenBlock struct {
	n      int
	begin  chan struct{}
	stored chan struct{}
	once   sync.Once
}

func (r *storeThenBlock) Receive(ctx context.Context, out *ReceiverOutput) error {
	if r.begin != nil {
		select {
		case <-r.begin:
		case <-ctx.Done():
			return nil
		}
	}
	for i := 0; i < r.n; i += 10 {
		var recs []string
		for j := i; j < min(i+10, r.n); j++ {
			recs = append(recs, strconv.Itoa(j))
		}
		if err := out.Add(ctx, recs...); err != nil {
			return nil
		}
	}
	r.once.Do(func() {
		if r.stored != nil {
			close(r.stored)
		}
	})
	<-ctx.Done()
	return nil
}

// stopWhileAdvancing runs Stop on another goroutine and, once Stop has
// stopped the inputs, advances h's clock a batch at a time while it runs,
// so that the batches a graceful stop waits for come due. It advances
// again whenever a batch completes, and gives up after ten batches.
func stopWhileAdvancing(t *testing.T, h *harness, graceful bool) {
	t.Helper()
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		stopped <- h.c.Stop(ctx, graceful)
	}()
	waitClosed(t, "Stop to stop the inputs", h.c.sched.stopping)
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for i := 0; i < 10; i++ {
		h.clock.Advance(h.c.cfg.BatchDuration)
		select {
		case err := <-stopped:
			if err != nil {
				t.Fatalf("Stop(graceful=%v): %v", graceful, err)
			}
			return
		case b := <-h.done:
			if b.Err != nil {
				t.Fatalf("batch %v: %v", b.Time, b.Err)
			}
		case <-deadline.C:
			t.Fatal("Stop did not return")
		}
	}
	t.Fatal("Stop did not return after 10 more batches")
}

// TestContextStopGracefulProcessesStoredRecords checks Spark's
// stop(stopGracefully = true): the receiver is stopped first and every
// record it stored, although not yet cut into a block, is in a batch that
// completes before Stop returns.
func TestContextStopGracefulProcessesStoredRecords(t *testing.T) {
	const n = 1000
	before := engineGoroutines()
	h := newHarness(t, func(c *Config) { c.BlockInterval = 300 * time.Millisecond })
	recv := &storeThenBlock{n: n, begin: make(chan struct{}), stored: make(chan struct{})}
	out := collectRecords(ReceiverStream(h.c, "gen", recv))
	h.start()
	h.run(1)
	// The clock stands still from here until Stop: no block is cut, and
	// only Stop's flush of the receiver's buffer saves the records.
	close(recv.begin)
	select {
	case <-recv.stored:
	case <-time.After(waitTimeout):
		t.Fatal("receiver did not store its records")
	}
	stopWhileAdvancing(t, h, true)

	got := out.get()
	slices.SortFunc(got, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	want := make([]string, n)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("graceful stop processed %d records, want each of 0..%d once", len(got), n-1)
	}
	ri := h.c.Receivers()
	if len(ri) != 1 || ri[0].Records != n || ri[0].Running || ri[0].Errors != 0 {
		t.Errorf("receiver info after Stop: %+v, want %d records, not running, no errors", ri, n)
	}
	checkNoLeaks(t, before)
}

// TestContextStopGracefulGivesUpWithContext checks that a graceful stop
// whose context ends before the batches it waits for have run returns the
// context's error, drops those batches and leaves no goroutine behind.
func TestContextStopGracefulGivesUpWithContext(t *testing.T) {
	before := engineGoroutines()
	h := newHarness(t)
	recv := &storeThenBlock{n: 10, stored: make(chan struct{})}
	out := collectRecords(ReceiverStream(h.c, "gen", recv))
	h.start()
	select {
	case <-recv.stored:
	case <-time.After(waitTimeout):
		t.Fatal("receiver did not store its records")
	}
	// The clock does not move: the batch that would take the records never
	// comes due.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := h.c.Stop(ctx, true)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "graceful stop did not finish") {
		t.Fatalf("Stop with a done context: %v, want the graceful stop reported unfinished, wrapping context.Canceled", err)
	}
	if got := out.get(); len(got) != 0 {
		t.Errorf("records %v processed, want none", got)
	}
	checkNoLeaks(t, before)
}

// TestContextStopGracefulDrainsQueue checks that a graceful stop runs
// batches until the queue of a QueueStream is empty.
func TestContextStopGracefulDrainsQueue(t *testing.T) {
	h := newHarness(t)
	q, out := queueGraph(h, []int{1, 2}, []int{3}, []int{}, []int{4, 5})
	h.start()
	h.run(1)
	stopWhileAdvancing(t, h, true)
	if got := out.get(); !slices.Equal(got, []int{1, 2, 3, 4, 5}) || q.Len() != 0 {
		t.Errorf("graceful stop output %v with %d batches left in the queue, want [1 2 3 4 5] and none", got, q.Len())
	}
}

// TestContextStopLeavesNoGoroutines runs every kind of input and a
// shuffle, then checks that no goroutine of the engine outlives Stop.
func TestContextStopLeavesNoGoroutines(t *testing.T) {
	for _, graceful := range []bool{false, true} {
		t.Run(fmt.Sprintf("graceful=%v", graceful), func(t *testing.T) {
			before := engineGoroutines()
			dir := t.TempDir()
			writeTestFile(t, dir, "a.txt", "x y\nz\n")
			h := newHarness(t)
			events := newEventRecorder(h.c)
			lines := QueueStream(h.c, NewQueue([]string{"a b", "b"}, []string{"c"}), true).
				Union(ReceiverStream(h.c, "gen", &storeThenBlock{n: 20}), TextFileStream(h.c, dir))
			words := FlatMap(lines, strings.Fields)
			counts := ReduceByKey(MapToPair(words, func(w string) (string, int64) { return w, 1 }), addInt64)
			out := collectRecords(counts)
			h.start()
			h.run(3)
			stopWhileAdvancing(t, h, graceful)
			checkNoLeaks(t, before)
			if len(out.get()) == 0 {
				t.Error("no output before Stop")
			}
			if errs := receiverErrors(events.get()); len(errs) != 0 {
				t.Errorf("receiver errors: %v", errs)
			}
		})
	}
}

// flakyReceiver fails on its first calls, by calling fail, then stores
// "up" and blocks until stopped. calls holds the clock's time at each call.
type flakyReceiver struct {
	failures int
	fail     func(call int) error // may panic
	calls    *watchLog[time.Time]
}

func (r *flakyReceiver) Receive(ctx context.Context, out *ReceiverOutput) error {
	r.calls.add(out.Clock().Now())
	if n := len(r.calls.get()); n <= r.failures {
		return r.fail(n)
	}
	out.Add(ctx, "up")
	<-ctx.Done()
	return nil
}

// TestReceiverRestartsWithBackoff checks that a receiver that fails, by an
// error, a panic or returning before it is stopped, is called again after
// a backoff of 100ms doubling at every failure, and that every failure is
// reported to ReceiverListeners and counted.
func TestReceiverRestartsWithBackoff(t *testing.T) {
	tests := []struct {
		name string
		fail func(call int) error
		want []string // the errors reported, in order
	}{
		{"error", func(n int) error { return fmt.Errorf("flaky %d", n) },
			[]string{"flaky 1; restarting in 100ms", "flaky 2; restarting in 200ms"}},
		{"panic", func(n int) error { panic(fmt.Sprintf("boom %d", n)) },
			[]string{"receiver panicked: boom 1; restarting in 100ms", "receiver panicked: boom 2; restarting in 200ms"}},
		{"early return", func(int) error { return nil },
			[]string{"receiver returned before it was stopped; restarting in 100ms",
				"receiver returned before it was stopped; restarting in 200ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := engineGoroutines()
			c := newWallClockContext(t)
			events := newEventRecorder(c)
			recv := &flakyReceiver{failures: 2, fail: tt.fail, calls: newWatchLog[time.Time]()}
			out := collectRecords(ReceiverStream(c, "flaky", recv))
			startContext(t, c)
			out.wait(t, `"up" from the third call`, func(vs []string) bool { return slices.Contains(vs, "up") })

			calls := recv.calls.get()
			if len(calls) != 3 {
				t.Fatalf("receiver called %d times, want 3", len(calls))
			}
			for i, wantGap := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond} {
				if gap := calls[i+1].Sub(calls[i]); gap < wantGap {
					t.Errorf("call %d came %v after call %d, want at least %v", i+2, gap, i+1, wantGap)
				}
			}
			if ri := c.Receivers()[0]; ri.Errors != 2 || ri.LastError != tt.want[1] || !ri.Running {
				t.Errorf("receiver info %+v, want 2 errors, last %q, running", ri, tt.want[1])
			}
			stopContext(t, c, false) // delivers every event posted
			var got []string
			for _, e := range receiverErrors(events.get()) {
				got = append(got, e.err.Error())
				if e.stream != "flaky" {
					t.Errorf("error reported for stream %q, want \"flaky\"", e.stream)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("receiver errors:\ngot  %q\nwant %q", got, tt.want)
			}
			checkNoLeaks(t, before)
		})
	}
}

// TestReceiverSubMillisecondBlockInterval checks that a block interval
// shorter than a millisecond, which Config accepts, cuts blocks instead
// of crashing the process.
func TestReceiverSubMillisecondBlockInterval(t *testing.T) {
	before := engineGoroutines()
	c := newWallClockContext(t, func(cfg *Config) { cfg.BlockInterval = 500 * time.Microsecond })
	out := collectRecords(ReceiverStream(c, "gen", &storeThenBlock{n: 25}))
	startContext(t, c)
	out.wait(t, "25 records", func(vs []string) bool { return len(vs) == 25 })
	stopContext(t, c, true)
	checkNoLeaks(t, before)
}

// TestListenerEventOrder checks Spark's StreamingListener contract: every
// batch is submitted, started and completed, in that order, with the
// input's record count and the delays measured on the context's clock.
func TestListenerEventOrder(t *testing.T) {
	input := [][]int{{1, 2, 3}, {}, {4, 5}, {6, 7, 8, 9, 10}}
	const work = 10 * time.Millisecond
	h := newHarness(t)
	events := newEventRecorder(h.c)
	QueueStream(h.c, NewQueue(input...), true).ForeachRDD(func(Time, RDD[int]) error {
		h.clock.Advance(work) // the batch takes 10ms of clock time
		return nil
	})
	h.start()
	h.run(len(input))
	stopContext(t, h.c, false) // delivers every event posted

	evs := events.get()
	if len(evs) != 3*len(input) {
		t.Fatalf("%d events, want %d: %v", len(evs), 3*len(input), evs)
	}
	seen := make(map[Time][]string)
	var order []Time
	for _, e := range evs {
		if len(seen[e.batch.Time]) == 0 {
			order = append(order, e.batch.Time)
		}
		seen[e.batch.Time] = append(seen[e.batch.Time], e.kind)
		if e.kind != "completed" {
			continue
		}
		b := e.batch
		i := int(b.Time.Sub(0)/testBatch) - 1
		if i < 0 || i >= len(input) {
			t.Fatalf("completed batch %v is not one of the %d run", b.Time, len(input))
		}
		if b.Records != int64(len(input[i])) || len(b.Inputs) != 1 || b.Inputs[0].Records != b.Records {
			t.Errorf("batch %v: records %d, inputs %+v; want %d", b.Time, b.Records, b.Inputs, len(input[i]))
		}
		if b.SchedulingDelay() != 0 || b.ProcessingDelay() != work || b.TotalDelay() != work || b.Err != nil {
			t.Errorf("batch %v: scheduling delay %v, processing %v, total %v, err %v; want 0, %v, %v, nil",
				b.Time, b.SchedulingDelay(), b.ProcessingDelay(), b.TotalDelay(), b.Err, work, work)
		}
	}
	for i, bt := range order {
		if want := Time(0).Add(time.Duration(i+1) * testBatch); bt != want {
			t.Errorf("batch %d has time %v, want %v", i+1, bt, want)
		}
		if kinds := seen[bt]; !slices.Equal(kinds, []string{"submitted", "started", "completed"}) {
			t.Errorf("batch %v events %v, want submitted, started, completed", bt, kinds)
		}
	}
}

// TestFingerprint checks that the graph fingerprint is a function of the
// code that builds the graph and of what decides where state lives: the
// same code gives the same fingerprint, and a different window length,
// partition count or batch duration a different one.
func TestFingerprint(t *testing.T) {
	type graph struct {
		batch         time.Duration
		partitions    int // Config.Partitions
		opPartitions  int // WithPartitions of the windowed reduce
		window, slide time.Duration
	}
	build := func(g graph) string {
		t.Helper()
		c, err := NewContext(Config{BatchDuration: g.batch, Partitions: g.partitions,
			Clock: NewManualClock(time.UnixMilli(0)), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		pairs := MapToPair(QueueStream(c, NewQueue[string](), true), func(s string) (string, int64) { return s, 1 })
		counts := ReduceByKeyAndWindow(pairs, addInt64, g.window, g.slide, WithPartitions(g.opPartitions))
		counts.ForeachRDD(func(Time, RDD[Pair[string, int64]]) error { return nil })
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		return c.Fingerprint()
	}
	base := graph{batch: time.Second, partitions: 4, opPartitions: 8, window: 3 * time.Second, slide: time.Second}
	fp := build(base)
	if len(fp) != 64 || strings.Trim(fp, "0123456789abcdef") != "" {
		t.Fatalf("fingerprint %q is not a hex SHA-256", fp)
	}
	if again := build(base); again != fp {
		t.Errorf("same graph built twice: fingerprints %s and %s", fp, again)
	}
	changes := []struct {
		name   string
		change func(*graph)
	}{
		{"window length", func(g *graph) { g.window = 4 * time.Second }},
		{"slide", func(g *graph) { g.slide = 3 * time.Second }},
		{"operator partition count", func(g *graph) { g.opPartitions = 9 }},
		{"default partition count", func(g *graph) { g.partitions = 5 }},
		{"batch duration", func(g *graph) { g.batch = 500 * time.Millisecond }},
	}
	for _, ch := range changes {
		g := base
		ch.change(&g)
		if got := build(g); got == fp {
			t.Errorf("changing the %s left the fingerprint %s unchanged", ch.name, fp)
		}
	}
}
