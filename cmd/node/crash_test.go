package main

// Crash tests of the durable ingest path (ARCHITECTURE.md §5 and §7,
// layer 2). Each runs the node binary as a child process over a data
// directory, has it die by SIGKILL at one named failpoint (SLUICE_FAILPOINTS,
// engine/failpoint.go) or by the test's own SIGKILL, restarts it on the same
// directory, and checks the archive app's output against what a producer
// was told: every record of every acknowledged request is saved exactly
// once, and no record twice.
//
// The producer is this test process, a plain HTTP client of
// POST /api/ingest/lines that numbers its requests and retries the one in
// flight, with the same sequence number, until it is acknowledged. A seed
// picks its request sizes and pauses and, in the crash loop, when the test
// kills the node; a failure prints the seed, and -crash.seed=N runs that
// seed alone. Timing still varies from run to run: a seed replays the
// workload and the kill delays, not the interleaving.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

var crashSeed = flag.Uint64("crash.seed", 0, "run the crash tests with this seed only (0: two new seeds per test)")

// Deadlines. They bound a failing test; a passing one takes a fraction.
const (
	startDeadline = 15 * time.Second // until a node prints its address
	deathDeadline = 10 * time.Second // until a node dies at its failpoint
	drainDeadline = 15 * time.Second // until the archive holds every acknowledged record
	stopDeadline  = 15 * time.Second // until a node exits after SIGTERM
)

// TestCrashAfterWALWriteBeforeSync: the block is written to the WAL, not
// synced, when the node dies. Nothing was acknowledged, nothing registered:
// the retry is stored anew (not a duplicate) and counted once.
func TestCrashAfterWALWriteBeforeSync(t *testing.T) {
	forEachSeed(t, func(t *testing.T, seed uint64) {
		crashOnIngest(t, seed, ingestCrash{failpoint: engine.FailAfterWALWrite})
	})
}

// TestCrashAfterWALSyncBeforeBlockAdded: the block is durable in the WAL
// and never registered. The restart deletes it as garbage, so the retry is
// stored anew (not a duplicate) and counted once, not twice.
func TestCrashAfterWALSyncBeforeBlockAdded(t *testing.T) {
	forEachSeed(t, func(t *testing.T, seed uint64) {
		crashOnIngest(t, seed, ingestCrash{failpoint: engine.FailAfterWALSync})
	})
}

// TestCrashAfterBlockAddedBeforeAck: the block is registered, the producer
// never heard so. Its retry must be acknowledged as a duplicate and its
// records counted once, from the block stored before the crash.
func TestCrashAfterBlockAddedBeforeAck(t *testing.T) {
	forEachSeed(t, func(t *testing.T, seed uint64) {
		crashOnIngest(t, seed, ingestCrash{failpoint: engine.FailAfterBlockAdded, retryIsDuplicate: true})
	})
}

// TestCrashAfterBatchAllocated: the batch holding a registered block is
// allocated, nothing of it written. The restart re-runs that batch from
// the same block, and the block goes to no other batch.
func TestCrashAfterBatchAllocated(t *testing.T) {
	forEachSeed(t, func(t *testing.T, seed uint64) {
		crashInBatch(t, seed, engine.FailAfterBatchAllocated, false)
	})
}

// TestCrashBeforeBatchCompleted: the batch's output directory is written,
// BatchCompleted is not. The restart re-runs the batch, and its output
// replaces the directory written before the crash rather than adding to
// it.
func TestCrashBeforeBatchCompleted(t *testing.T) {
	forEachSeed(t, func(t *testing.T, seed uint64) {
		crashInBatch(t, seed, engine.FailBeforeBatchCompleted, true)
	})
}

// TestCrashLoopExactlyOnce kills the node five times with SIGKILL while
// the producer keeps sending, each time at a delay drawn from the seed:
// mostly after the node has acknowledged a request, sometimes after it
// printed its address (while it may still re-run batches, or generate the
// batch times it missed). Then it checks exactly-once over all six lives
// of the node.
func TestCrashLoopExactlyOnce(t *testing.T) {
	forEachSeed(t, func(t *testing.T, seed uint64) {
		const rounds = 5
		kills := rand.New(rand.NewPCG(seed, 2))
		dir := t.TempDir()
		p := newTokenProducer(t, "p1", seed)
		ep := newNodeEndpoint()
		n := startCrashNode(t, dir, "")
		ep.set(n.addr)
		ctx, cancel := context.WithCancel(context.Background())
		stop, finished := make(chan struct{}), make(chan struct{})
		var runErr error // set before finished is closed
		go func() { defer close(finished); runErr = p.run(ctx, ep, stop) }()
		t.Cleanup(func() { cancel(); <-finished })
		reruns := 0
		for round := 1; round <= rounds; round++ {
			after := "its address"
			if kills.IntN(3) > 0 {
				p.waitAcks(t, n.addr, 1, finished, &runErr)
				after = "its first acknowledgement"
			}
			delay := time.Duration(kills.IntN(250)) * time.Millisecond
			<-time.After(delay)
			n.kill(t)
			t.Logf("round %d: killed the node %v after %s", round, delay, after)
			n = startCrashNode(t, dir, "")
			ep.set(n.addr)
			if _, _, ok := n.rerunRange(); ok {
				reruns++
			}
		}
		p.waitAcks(t, n.addr, 3, finished, &runErr)
		close(stop)
		select {
		case <-finished:
			if runErr != nil {
				t.Fatalf("producer: %v", runErr)
			}
		case <-time.After(deathDeadline):
			t.Fatalf("the producer did not finish its last request in %v", deathDeadline)
		}
		finishCrashRun(t, n, dir, p)
		t.Logf("%d of %d restarts re-ran batches allocated before the kill", reruns, rounds)
	})
}

// forEachSeed runs fn as a subtest per seed: two new ones, or -crash.seed.
func forEachSeed(t *testing.T, fn func(t *testing.T, seed uint64)) {
	seeds := []uint64{*crashSeed}
	if *crashSeed == 0 {
		seeds = []uint64{rand.Uint64() | 1, rand.Uint64() | 1}
	}
	name := t.Name()
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("replay: go test ./cmd/node -run '^%s$' -crash.seed=%d -v", name, seed)
				}
			})
			fn(t, seed)
		})
	}
}

// ingestCrash is a failpoint on the ingest path, which a request's first
// attempt reaches.
type ingestCrash struct {
	failpoint string
	// retryIsDuplicate: the block was registered before the crash, so the
	// retry is acknowledged as stored before.
	retryIsDuplicate bool
}

// crashOnIngest: the node dies at the failpoint on the first request;
// restarted without it, it acknowledges the retry of that request and a
// few more, and the archive holds each of their records once.
func crashOnIngest(t *testing.T, seed uint64, cc ingestCrash) {
	dir := t.TempDir()
	p := newTokenProducer(t, "p1", seed)
	n := startCrashNode(t, dir, cc.failpoint)
	ctx := context.Background()
	// Every request passes every ingest failpoint: the first must kill
	// the node.
	if a := p.send(ctx, n.addr); a.outcome != attemptIndeterminate {
		t.Fatalf("request 1 with SLUICE_FAILPOINTS=%s: %v %d %s; want no reply, the node killed at the failpoint",
			cc.failpoint, a.outcome, a.status, a.err)
	}
	n.waitKilled(t, cc.failpoint)

	n = startCrashNode(t, dir, "")
	a := p.send(ctx, n.addr)
	if a.outcome != attemptAcked {
		t.Fatalf("retry of request 1 after the restart: %v %d %s", a.outcome, a.status, a.err)
	}
	if a.duplicate != cc.retryIsDuplicate {
		t.Errorf("retry of request 1: duplicate = %v, want %v (the block was %s before the crash)",
			a.duplicate, cc.retryIsDuplicate, map[bool]string{true: "registered", false: "not registered"}[cc.retryIsDuplicate])
	}
	p.sendMore(t, n.addr, 2+p.rng.IntN(4))
	finishCrashRun(t, n, dir, p)
}

// crashInBatch: a batch failpoint fires at the first batch a node runs, so
// to make that batch hold records, a first node registers request 1's block
// and dies before a batch takes it (at after-block-added-before-ack, sent
// just after a batch completed). The second node, with the failpoint
// under test, allocates the block to its first batch and dies at the
// failpoint. The third re-runs that batch; the producer retries request 1
// (a duplicate) and sends a few more.
func crashInBatch(t *testing.T, seed uint64, failpoint string, outputWritten bool) {
	dir := t.TempDir()
	p := newTokenProducer(t, "p1", seed)
	ctx := context.Background()

	prime := startCrashNode(t, dir, engine.FailAfterBlockAdded)
	waitBetweenBatches(t, prime.addr)
	if a := p.send(ctx, prime.addr); a.outcome != attemptIndeterminate {
		t.Fatalf("request 1 to the priming node: %v %d %s, want no reply", a.outcome, a.status, a.err)
	}
	prime.waitKilled(t, engine.FailAfterBlockAdded)

	crashed := launchCrashNode(t, dir, failpoint) // dies before any request is sent to it
	crashed.waitKilled(t, failpoint)
	atCrash, err := scanArchive(dir)
	if err != nil {
		t.Fatal(err)
	}

	n := startCrashNode(t, dir, "")
	first, last, ok := n.rerunRange()
	if !ok {
		t.Fatalf("the node restarted after %s did not log that it re-runs the batches allocated before the restart; output:\n%s",
			failpoint, n.output())
	}
	a := p.send(ctx, n.addr)
	if a.outcome != attemptAcked || !a.duplicate {
		t.Fatalf("retry of request 1: %v (duplicate %v) %d %s, want acknowledged as a duplicate", a.outcome, a.duplicate, a.status, a.err)
	}
	p.sendMore(t, n.addr, 2+p.rng.IntN(4))
	final := finishCrashRun(t, n, dir, p)

	// The crashed batch held request 1: it is among the batches re-run,
	// and it had (or had not) written its directory before the crash.
	if _, _, primeLeftBatch := crashed.rerunRange(); primeLeftBatch {
		t.Logf("the priming node died while a batch ran (was the machine stalled?); the second node ran that batch first, so which batch crashed is not checked")
		return
	}
	tok := p.requests()[0].tokens[0]
	dirs := final.where[tok]
	if len(dirs) != 1 {
		return // finishCrashRun has reported it
	}
	bt := archiveBatchTime(dirs[0])
	if bt < first || bt > last {
		t.Errorf("request 1 is in batch %d, not among the re-run batches %d..%d: the crashed batch held no records, or its block went to another batch",
			bt, first, last)
	}
	before := atCrash.where[tok]
	switch {
	case outputWritten && (len(before) != 1 || before[0] != dirs[0]):
		t.Errorf("at the crash, request 1 was in %v; want %s, written before %s", before, dirs[0], failpoint)
	case !outputWritten && len(before) != 0:
		t.Errorf("at the crash, request 1 was already in %v; nothing should be written before %s", before, failpoint)
	}
}

// finishCrashRun waits until the archive holds every request's records,
// stops the node with SIGTERM (it must exit 0) and checks the archive:
// each record once.
func finishCrashRun(t *testing.T, n *crashNode, dir string, p *tokenProducer) archiveScan {
	t.Helper()
	reqs := p.requests()
	waitArchived(t, dir, reqs)
	n.stopGracefully(t)
	ar, err := scanArchive(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, ar, reqs)
	t.Log(p.summary())
	if t.Failed() {
		t.Logf("attempts:\n%s", p.attemptLog())
	}
	return ar
}

// ---- one life of a node ----

// crashNode is one run of the node binary over a data directory.
type crashNode struct {
	*child
	addr string
}

var (
	statusPageLine = regexp.MustCompile(`Status page: http://(\S+)/`)
	rerunLine      = regexp.MustCompile(`re-running batches allocated before the restart.*first="?(\d+) ms"? last="?(\d+) ms"?`)
)

// launch starts the archive app over ingest on dir, with failpoint set
// unless it is "", and does not wait for it (its addr is "").
func launchCrashNode(t *testing.T, dir, failpoint string) *crashNode {
	t.Helper()
	return &crashNode{child: startChildEnv(t, failpointEnv(failpoint), "run", "--app", "archive", "--source", "ingest", "--data-dir", dir,
		"--http", "127.0.0.1:0", "--batch", "100ms")}
}

// startCrashNode launches a node and waits for the address it prints.
func startCrashNode(t *testing.T, dir, failpoint string) *crashNode {
	t.Helper()
	c := launchCrashNode(t, dir, failpoint)
	if err := c.awaitAddr(); err != nil {
		t.Fatalf("failpoint %q: %v", failpoint, err)
	}
	return c
}

// awaitAddr waits for the address the node prints and sets c.addr.
func (c *crashNode) awaitAddr() error {
	deadline := time.After(startDeadline)
	for {
		select {
		case l := <-c.lines:
			if m := statusPageLine.FindStringSubmatch(l); m != nil {
				c.addr = m[1]
				return nil
			}
		case <-c.done:
			return fmt.Errorf("the node exited before printing its address; output:\n%s", c.output())
		case <-deadline:
			return fmt.Errorf("the node printed no address in %v; output:\n%s", startDeadline, c.output())
		}
	}
}

// failpointEnv is this process's environment with SLUICE_FAILPOINTS set
// to failpoint, or unset when it is "".
func failpointEnv(failpoint string) []string {
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_FAILPOINTS=") {
			env = append(env, kv)
		}
	}
	if failpoint != "" {
		env = append(env, "SLUICE_FAILPOINTS="+failpoint)
	}
	return env
}

// waitExit waits up to d for the process to exit and returns how it did.
func (c *crashNode) waitExit(d time.Duration) (syscall.WaitStatus, bool) {
	select {
	case <-c.done:
	case <-time.After(d):
		return 0, false
	}
	c.cmd.Wait()
	ws, _ := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ws, true
}

// waitKilled waits for the node to die by SIGKILL; with a failpoint, the
// node must say it killed itself there.
func (c *crashNode) waitKilled(t *testing.T, failpoint string) {
	t.Helper()
	ws, ok := c.waitExit(deathDeadline)
	if !ok {
		t.Fatalf("the node is still running %v later; it did not die at failpoint %s", deathDeadline, failpoint)
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the node exited with %v, want killed by SIGKILL; output:\n%s", c.cmd.ProcessState, c.output())
	}
	if want := "sluice: failpoint " + failpoint; failpoint != "" && !strings.Contains(c.output(), want) {
		t.Fatalf("the node died by SIGKILL without logging %q; output:\n%s", want, c.output())
	}
}

// kill sends SIGKILL and waits for the node to die of it.
func (n *crashNode) kill(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v (did the node die on its own? output:\n%s)", err, n.output())
	}
	n.waitKilled(t, "")
}

// stopGracefully sends SIGTERM: the node processes what it received and
// must exit 0.
func (n *crashNode) stopGracefully(t *testing.T) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	ws, ok := n.waitExit(stopDeadline)
	if !ok {
		t.Fatalf("the node had not exited %v after SIGTERM; output:\n%s", stopDeadline, n.output())
	}
	if ws.Signaled() || ws.ExitStatus() != exitOK {
		t.Fatalf("the node exited with %v after SIGTERM, want exit 0; output:\n%s", n.cmd.ProcessState, n.output())
	}
}

// rerunRange reports the batches a node said it re-runs at start.
func (c *crashNode) rerunRange() (first, last int64, ok bool) {
	m := rerunLine.FindStringSubmatch(c.output())
	if m == nil {
		return 0, 0, false
	}
	first, _ = strconv.ParseInt(m[1], 10, 64)
	last, _ = strconv.ParseInt(m[2], 10, 64)
	return first, last, true
}

// waitBetweenBatches polls the status page until a batch has completed
// less than 40ms after its batch time: the next batch is then some 60ms
// away (batches are 100ms; an empty one takes about 10ms), time for a
// request to be stored while no batch runs. On a machine too loaded for
// that it gives up after 3s: crashInBatch then checks less.
func waitBetweenBatches(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		st := getStatus(t, addr)
		if len(st.Recent) > 0 && time.Now().UnixMilli()-st.Recent[0].Time < 40 {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("no batch completed within 40ms of its batch time in 3s; recent batches: %+v", st.Recent)
			return
		}
		<-time.After(5 * time.Millisecond)
	}
}

// ---- the producer ----

// sendOutcome is what a producer learns from one attempt at a request.
type sendOutcome int

const (
	attemptAcked         sendOutcome = iota // 200: stored, now or before
	attemptRefused                          // a definite error reply, or a refused connection: nothing stored
	attemptIndeterminate                    // no reply: stored or not, the producer cannot tell
)

func (o sendOutcome) String() string {
	return [...]string{"acknowledged", "refused", "indeterminate"}[o]
}

type sendAttempt struct {
	seq       uint64
	addr      string
	outcome   sendOutcome
	status    int  // 0 without a reply
	duplicate bool // a 200 saying the request was stored before
	retryable bool // a refusal that a retry may cure (429, 503)
	err       string
}

type producerRequest struct {
	seq    uint64
	tokens []string // one record each, unique: "p1-s7-r3"
	acked  bool
}

// tokenProducer sends numbered requests of unique tokens, one at a time,
// retrying a request with its sequence number until acknowledged.
type tokenProducer struct {
	id     string
	rng    *rand.Rand // used by the one goroutine that sends
	client *http.Client
	acks   chan struct{} // signalled at every acknowledgement

	mu struct {
		sync.Mutex
		reqs     []*producerRequest
		attempts []sendAttempt
		ackedBy  map[string]int // acknowledgements by node address
	}
}

func newTokenProducer(t *testing.T, id string, seed uint64) *tokenProducer {
	p := &tokenProducer{id: id, rng: rand.New(rand.NewPCG(seed, 1)), acks: make(chan struct{}, 1),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}}
	p.mu.ackedBy = make(map[string]int)
	t.Cleanup(p.client.CloseIdleConnections)
	return p
}

// pending returns the request to send: the last one if it is not
// acknowledged, else a new one of 1 to 8 records.
func (p *tokenProducer) pending() *producerRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.mu.reqs); n > 0 && !p.mu.reqs[n-1].acked {
		return p.mu.reqs[n-1]
	}
	r := &producerRequest{seq: uint64(len(p.mu.reqs) + 1)}
	for i := range 1 + p.rng.IntN(8) {
		r.tokens = append(r.tokens, fmt.Sprintf("%s-s%d-r%d", p.id, r.seq, i+1))
	}
	p.mu.reqs = append(p.mu.reqs, r)
	return r
}

// send makes one attempt at the pending request and records it.
func (p *tokenProducer) send(ctx context.Context, addr string) sendAttempt {
	r := p.pending()
	a := p.post(ctx, addr, r)
	p.mu.Lock()
	p.mu.attempts = append(p.mu.attempts, a)
	if a.outcome == attemptAcked {
		r.acked = true
		p.mu.ackedBy[addr]++
	}
	p.mu.Unlock()
	if a.outcome == attemptAcked {
		select {
		case p.acks <- struct{}{}:
		default:
		}
	}
	return a
}

func (p *tokenProducer) post(ctx context.Context, addr string, r *producerRequest) sendAttempt {
	a := sendAttempt{seq: r.seq, addr: addr, outcome: attemptIndeterminate}
	body := strings.Join(r.tokens, "\n") + "\n"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/ingest/lines", strings.NewReader(body))
	if err != nil {
		a.err = err.Error()
		return a
	}
	req.Header.Set(headerProducer, p.id)
	req.Header.Set(headerSequence, strconv.FormatUint(r.seq, 10))
	resp, err := p.client.Do(req)
	if err != nil {
		a.err = err.Error()
		if errors.Is(err, syscall.ECONNREFUSED) {
			a.outcome, a.retryable = attemptRefused, true // never delivered
		}
		return a
	}
	defer resp.Body.Close()
	a.status = resp.StatusCode
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		a.err = "reading the reply: " + err.Error()
		return a // a cut reply: stored or not, unknown
	}
	if resp.StatusCode != http.StatusOK {
		a.outcome, a.err = attemptRefused, strings.TrimSpace(string(data))
		a.retryable = resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable
		return a
	}
	var rep ingestReply
	if err := json.Unmarshal(data, &rep); err != nil {
		a.err = fmt.Sprintf("a 200 whose body %q is not a reply: %v", data, err)
		return a
	}
	if rep.Producer != p.id || rep.Sequence != r.seq || rep.Records != len(r.tokens) || rep.Stream != "lines" {
		a.outcome, a.err = attemptRefused, fmt.Sprintf("a 200 that does not match the request: %s", data)
		return a
	}
	a.outcome, a.duplicate = attemptAcked, rep.Duplicate
	return a
}

// sendMore sends n new requests, each acknowledged at its first attempt.
func (p *tokenProducer) sendMore(t *testing.T, addr string, n int) {
	t.Helper()
	for range n {
		if a := p.send(context.Background(), addr); a.outcome != attemptAcked {
			t.Fatalf("request %d to a running node: %v %d %s", a.seq, a.outcome, a.status, a.err)
		}
	}
}

// run sends requests to whichever node ep names until stop is closed and
// the request then pending is acknowledged, or ctx ends. After no reply
// it retries when ep changes (the node was restarted) or 20ms have passed;
// after a refusal a retry may cure, 20ms later. It pauses 0-3ms between
// requests. It returns an error only for a refusal no retry can cure.
func (p *tokenProducer) run(ctx context.Context, ep *nodeEndpoint, stop <-chan struct{}) error {
	for {
		addr, changed := ep.get()
		a := p.send(ctx, addr)
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		switch {
		case a.outcome == attemptAcked:
			select {
			case <-stop:
				return nil
			default:
			}
			wait = time.Duration(p.rng.IntN(4)) * time.Millisecond
		case a.outcome == attemptRefused && !a.retryable:
			return fmt.Errorf("request %d refused: %d %s", a.seq, a.status, a.err)
		default:
			wait = 20 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-time.After(wait):
		}
	}
}

// waitAcks waits until the node at addr has acknowledged n requests.
// The producer runs until finished is closed, having set *runErr.
func (p *tokenProducer) waitAcks(t *testing.T, addr string, n int, finished <-chan struct{}, runErr *error) {
	t.Helper()
	deadline := time.After(startDeadline)
	for {
		p.mu.Lock()
		got := p.mu.ackedBy[addr]
		p.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-p.acks:
		case <-finished:
			t.Fatalf("the producer stopped: %v", *runErr)
		case <-deadline:
			t.Fatalf("the node at %s acknowledged %d requests in %v, want %d", addr, got, startDeadline, n)
		}
	}
}

// requests returns the requests sent so far.
func (p *tokenProducer) requests() []*producerRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*producerRequest(nil), p.mu.reqs...)
}

func (p *tokenProducer) summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var by [3]int
	dups, records := 0, 0
	for _, a := range p.mu.attempts {
		by[a.outcome]++
		if a.duplicate {
			dups++
		}
	}
	for _, r := range p.mu.reqs {
		records += len(r.tokens)
	}
	return fmt.Sprintf("producer %s: %d requests, %d records; attempts: %d acknowledged (%d as duplicates), %d refused, %d indeterminate",
		p.id, len(p.mu.reqs), records, by[attemptAcked], dups, by[attemptRefused], by[attemptIndeterminate])
}

// attemptLog lists the attempts that were not a plain first-time
// acknowledgement, and the number of those that were.
func (p *tokenProducer) attemptLog() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	plain := 0
	for _, a := range p.mu.attempts {
		if a.outcome == attemptAcked && !a.duplicate {
			plain++
			continue
		}
		fmt.Fprintf(&b, "  request %d to %s: %v (status %d, duplicate %v) %s\n", a.seq, a.addr, a.outcome, a.status, a.duplicate, a.err)
	}
	fmt.Fprintf(&b, "  and %d requests acknowledged at once", plain)
	return b.String()
}

// nodeEndpoint is the address of the node the producer sends to; the crash
// loop changes it at every restart.
type nodeEndpoint struct {
	mu      sync.Mutex
	addr    string
	changed chan struct{} // closed when addr changes
}

func newNodeEndpoint() *nodeEndpoint { return &nodeEndpoint{changed: make(chan struct{})} }

func (e *nodeEndpoint) get() (string, <-chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addr, e.changed
}

func (e *nodeEndpoint) set(addr string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addr = addr
	close(e.changed)
	e.changed = make(chan struct{})
}

// ---- the archive and the verdicts ----

// archiveScan is what the archive app saved under DATA/output.
type archiveScan struct {
	where      map[string][]string // record → the batch directories holding it, once per occurrence
	leftover   []string            // temporaries and moved-aside directories of an interrupted save
	unfinished []string            // batch directories without _SUCCESS
}

func scanArchive(dataDir string) (archiveScan, error) {
	ar := archiveScan{where: make(map[string][]string)}
	out := filepath.Join(dataDir, "output")
	entries, err := os.ReadDir(out)
	if errors.Is(err, fs.ErrNotExist) {
		return ar, nil
	}
	if err != nil {
		return ar, err
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "records-") || archiveBatchTime(name) < 0 {
			ar.leftover = append(ar.leftover, name)
			continue
		}
		if _, err := os.Stat(filepath.Join(out, name, "_SUCCESS")); err != nil {
			ar.unfinished = append(ar.unfinished, name)
		}
		parts, err := filepath.Glob(filepath.Join(out, name, "part-*"))
		if err != nil {
			return ar, err
		}
		for _, part := range parts {
			data, err := os.ReadFile(part)
			if err != nil {
				return ar, err
			}
			for _, rec := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
				if rec != "" {
					ar.where[rec] = append(ar.where[rec], name)
				}
			}
		}
	}
	return ar, nil
}

// archiveBatchTime is the batch time of a directory "records-<ms>", or -1.
func archiveBatchTime(dir string) int64 {
	text, ok := strings.CutPrefix(dir, "records-")
	ms, err := strconv.ParseInt(text, 10, 64)
	if !ok || err != nil {
		return -1
	}
	return ms
}

// waitArchived polls the archive until it holds every record of reqs (a
// directory being replaced may be missed by one poll; the next sees it).
func waitArchived(t *testing.T, dir string, reqs []*producerRequest) {
	t.Helper()
	deadline := time.Now().Add(drainDeadline)
	for {
		ar, err := scanArchive(dir)
		missing := 0
		for _, r := range reqs {
			for _, tok := range r.tokens {
				if len(ar.where[tok]) == 0 {
					missing++
				}
			}
		}
		if err == nil && missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the archive still lacks %d acknowledged records (last error: %v)", drainDeadline, missing, err)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// checkExactlyOnce: every record of every request is in the archive once;
// the records of one request (one block) are in one batch; the archive
// holds nothing else, and no save was left unfinished.
func checkExactlyOnce(t *testing.T, ar archiveScan, reqs []*producerRequest) {
	t.Helper()
	var errs []string
	sent := make(map[string]bool)
	for _, r := range reqs {
		if !r.acked {
			errs = append(errs, fmt.Sprintf("request %d was never acknowledged", r.seq))
		}
		batches := make(map[string]bool)
		for _, tok := range r.tokens {
			sent[tok] = true
			switch dirs := ar.where[tok]; {
			case len(dirs) == 0:
				errs = append(errs, fmt.Sprintf("record %s of acknowledged request %d is lost", tok, r.seq))
			case len(dirs) > 1:
				errs = append(errs, fmt.Sprintf("record %s of request %d is saved %d times, in %v", tok, r.seq, len(dirs), dirs))
			}
			for _, d := range ar.where[tok] {
				batches[d] = true
			}
		}
		if len(batches) > 1 {
			errs = append(errs, fmt.Sprintf("request %d is one block, yet its records are in batches %v", r.seq, slices.Sorted(maps.Keys(batches))))
		}
	}
	for tok, dirs := range ar.where {
		if !sent[tok] {
			errs = append(errs, fmt.Sprintf("record %q in %v was never sent", tok, dirs))
		}
	}
	for _, d := range ar.leftover {
		errs = append(errs, fmt.Sprintf("output/%s is left over from an interrupted save", d))
	}
	for _, d := range ar.unfinished {
		errs = append(errs, fmt.Sprintf("output/%s has no _SUCCESS", d))
	}
	slices.Sort(errs)
	const show = 20
	for i, e := range errs {
		if i == show {
			t.Errorf("... and %d more", len(errs)-show)
			break
		}
		t.Error(e)
	}
}
