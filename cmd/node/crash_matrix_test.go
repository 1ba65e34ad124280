package main

// The crash matrix of the commit path (ARCHITECTURE.md §5, steps 4 to 6;
// the order is engine.runBatch's): the node is killed with SIGKILL at
// every failpoint a batch passes once it is allocated (its outputs
// written, its state delta written, a checkpoint renamed into place,
// just before and just after BatchCompleted), running each stateful
// application (word count over UpdateStateByKey, a 3-batch window reduced
// with its inverse, sessions over MapWithState with a timeout), and
// restarted on the same data directory. What the restarted node serves
// and writes must equal, exactly, what a run of the same workload without
// a crash serves and writes: every state API answer after every batch
// (the "batch" field and the 404 of an unknown key included) and every
// output file, byte for byte.
//
// Both runs see the same batch times: the node runs on a manual clock
// (--clock manual:START_MS), and the test, for each batch, sends that
// batch's requests (each acknowledged before the next, by an idempotent
// producer), then moves the clock to the batch's time, then waits for the
// batch to complete. The node with the failpoint dies in one batch: the
// test checks that it died by SIGKILL at that failpoint, restarts it with
// the clock at that batch's time, waits for the re-run, and goes on.
//
// A seed draws the workload (the words or clicks of each batch) and the
// batch the node dies in (the Nth pass of the failpoint). The default run
// has one seed per cell; -matrix.seeds=N runs seeds 1 to N, and
// -matrix.seed=S replays seed S alone. A failure names the failpoint, the
// application and the seed, and prints the command that replays it.

import (
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-stream/sluice/engine"
)

var (
	matrixSeeds = flag.Int("matrix.seeds", 1, "run the crash matrix with seeds 1 to N")
	matrixSeed  = flag.Uint64("matrix.seed", 0, "run the crash matrix with this seed only (0: -matrix.seeds)")
)

// The schedule of a run: batches of matrixBatchMS from matrixStartMS;
// input in the first matrixInputBatches, then matrixTailBatches without
// input, so that windows slide past the input and sessions time out.
const (
	matrixStartMS      int64 = 1_000_000_000_000 // a multiple of the batch
	matrixBatchMS      int64 = 1000
	matrixInputBatches       = 6
	matrixTailBatches        = 4
	matrixBatches            = matrixInputBatches + matrixTailBatches
)

// matrixFailpoints are the failpoints of the commit path, in the order a
// batch meets them: every one after the batch is allocated.
var matrixFailpoints = []string{
	engine.FailAfterOutputWritten,
	engine.FailAfterStateDelta,
	engine.FailAfterCheckpointRenamed,
	engine.FailBeforeBatchCompleted,
	engine.FailAfterBatchCompleted,
}

// matrixApp is an application of the matrix and the workload it gets.
type matrixApp struct {
	name     string // --app
	op       string // its stateful operator, for the state API
	workload func(rng *rand.Rand) matrixWorkload
}

// windowed-top's window is not state (the state API answers 404 for
// "window-counts", as documented): its every window is in its output
// files, which the matrix compares. Its state answers are compared all
// the same, should the window become queryable.
var matrixApps = []matrixApp{
	{name: "wordcount", op: "wordcount", workload: wordsWorkload},
	{name: "windowed-top", op: "window-counts", workload: wordsWorkload},
	{name: "sessions", op: "sessions", workload: clicksWorkload},
}

// matrixWorkload is what a seed sends, and what it asks the state API.
type matrixWorkload struct {
	chunks [][][]string // input batch → requests → lines
	keys   []string     // keys asked for one by one, known or not
}

// TestCrashMatrix runs every cell of failpoint × application × seed.
func TestCrashMatrix(t *testing.T) {
	if i := slices.Index(engine.Failpoints, engine.FailAfterOutputWritten); i < 0 || !slices.Equal(engine.Failpoints[i:], matrixFailpoints) {
		t.Errorf("the commit path's failpoints are now %v; the crash matrix covers %v: add the new ones to matrixFailpoints",
			engine.Failpoints, matrixFailpoints)
	}
	seeds := []uint64{*matrixSeed}
	if *matrixSeed == 0 {
		seeds = seeds[:0]
		for s := range *matrixSeeds {
			seeds = append(seeds, uint64(s+1))
		}
	}
	refs := &matrixRefs{m: make(map[string]*matrixRefEntry)}
	for _, fp := range matrixFailpoints {
		t.Run(fp, func(t *testing.T) {
			for _, app := range matrixApps {
				t.Run(app.name, func(t *testing.T) {
					for _, seed := range seeds {
						t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
							t.Parallel()
							runMatrixCell(t, refs, matrixCell{failpoint: fp, app: app, seed: seed})
						})
					}
				})
			}
		})
	}
}

// matrixCell is one failpoint, application and seed.
type matrixCell struct {
	failpoint string
	app       matrixApp
	seed      uint64
}

func (c matrixCell) String() string {
	return fmt.Sprintf("failpoint %s, app %s, seed %d", c.failpoint, c.app.name, c.seed)
}

func (c matrixCell) replay() string {
	return fmt.Sprintf("go test ./cmd/node -run '^TestCrashMatrix$/^%s$/^%s$/^seed=%d$' -matrix.seed=%d -v",
		c.failpoint, c.app.name, c.seed, c.seed)
}

// errorf reports a failure of the cell with what replays it.
func (c matrixCell) errorf(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Errorf("%s: %s\n\treplay: %s", c, fmt.Sprintf(format, args...), c.replay())
}

func (c matrixCell) fatalf(t *testing.T, format string, args ...any) {
	t.Helper()
	c.errorf(t, format, args...)
	t.FailNow()
}

// workload draws the cell's input: it depends on the application and the
// seed only, so that the cells of one application and seed share their
// crash-free run.
func (c matrixCell) workload() matrixWorkload {
	return c.app.workload(rand.New(rand.NewPCG(c.seed, matrixHash(c.app.name))))
}

// crashHit draws N of NAME@N: the pass of the failpoint that kills, which
// sets the batch the node dies in. For one application and seed the
// failpoints passed once a batch kill in different batches: they take
// their N from one permutation of the batches.
func (c matrixCell) crashHit() int {
	rng := rand.New(rand.NewPCG(c.seed, matrixHash("crash/"+c.app.name)))
	n := 1 + rng.Perm(matrixBatches)[slices.Index(matrixFailpoints, c.failpoint)]
	if c.failpoint == engine.FailAfterCheckpointRenamed {
		// Passed only when a checkpoint is written: every other batch
		// (--checkpoint-interval 2s).
		n = 1 + (n-1)%(matrixBatches/2)
	}
	return n
}

func matrixHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// statePaths are the state API requests asked after every batch: the
// whole state, largest first, and each key of the workload.
func (c matrixCell) statePaths(w matrixWorkload) []string {
	op := "/api/state/" + c.app.op
	paths := []string{op + "?top=10000"}
	for _, k := range w.keys {
		paths = append(paths, op+"/"+url.PathEscape(k))
	}
	return paths
}

// runMatrixCell runs the cell with its failpoint and compares the run
// with the crash-free one.
func runMatrixCell(t *testing.T, refs *matrixRefs, c matrixCell) {
	want, err := refs.get(t, c)
	if err != nil {
		c.fatalf(t, "the crash-free run: %v", err)
	}
	hit := c.crashHit()
	got, err := runMatrix(t, c, fmt.Sprintf("%s@%d", c.failpoint, hit))
	if err != nil {
		c.fatalf(t, "the run with SLUICE_FAILPOINTS=%s@%d: %v", c.failpoint, hit, err)
	}
	t.Logf("%s: killed at pass %d of the failpoint, in batch %d of %d (time %d)",
		c, hit, got.crashBatch, matrixBatches, matrixBatchTime(got.crashBatch))
	for _, d := range diffMatrixStates(want, got, 10) {
		c.errorf(t, "%s", d)
	}
	for _, d := range diffMatrixOutputs(want.files, got.files, 10) {
		c.errorf(t, "%s", d)
	}
	if len(got.skipped) > 0 {
		t.Logf("%s: temporaries left under output/ after the crash (not compared): %v", c, got.skipped)
	}
}

func matrixBatchTime(k int) int64 { return matrixStartMS + int64(k)*matrixBatchMS }

// matrixRun is what one run served and wrote.
type matrixRun struct {
	states     [][]matrixAnswer // after batch k+1, the answer to every state path
	files      map[string][]byte
	skipped    []string // temporaries under output/
	crashBatch int      // the batch the node died in, from 1; 0 without a crash
}

// runMatrix runs the cell's workload batch by batch, with the failpoint
// spec (NAME@N) set in the first node, or none when spec is "". A node
// that dies must have died at the failpoint, once; it is restarted with
// the clock at the batch it died in.
func runMatrix(t *testing.T, c matrixCell, spec string) (*matrixRun, error) {
	dir := t.TempDir()
	args := func(clockMS int64) []string {
		return []string{"run", "--app", c.app.name, "--source", "ingest", "--data-dir", dir, "--http", "127.0.0.1:0",
			"--batch", "1s", "--partitions", "3", "--checkpoint-interval", "2s", "--window", "3s", "--session-timeout", "3s",
			"--top", "3", "--clock", fmt.Sprintf("manual:%d", clockMS)}
	}
	w := c.workload()
	paths := c.statePaths(w)
	n, err := launchMatrixNode(t, spec, args(matrixStartMS))
	if err != nil {
		return nil, err
	}
	p := newTokenProducer(t, "matrix", c.seed)
	var seq uint64
	run := &matrixRun{}
	for k := 1; k <= matrixBatches; k++ {
		bt := matrixBatchTime(k)
		if k <= len(w.chunks) {
			for _, lines := range w.chunks[k-1] {
				seq++
				if err := matrixIngest(p, n, seq, lines); err != nil {
					return nil, fmt.Errorf("batch %d (time %d): %w", k, bt, err)
				}
			}
		}
		err := n.setClock(bt)
		if err != nil && n.died() {
			err = errMatrixNodeDied // killed before it answered
		}
		if err == nil {
			err = n.awaitBatch(bt)
		}
		if errors.Is(err, errMatrixNodeDied) {
			if spec == "" || run.crashBatch != 0 {
				return nil, fmt.Errorf("batch %d (time %d): the node died, and not at the failpoint; output:\n%s", k, bt, n.output())
			}
			if err := n.killedBy(c.failpoint); err != nil {
				return nil, fmt.Errorf("batch %d (time %d): %w", k, bt, err)
			}
			run.crashBatch = k
			if n, err = launchMatrixNode(t, "", args(bt)); err != nil {
				return nil, fmt.Errorf("restarting after the crash in batch %d: %w", k, err)
			}
			err = n.awaitRecovery()
			if err == nil {
				err = checkMatrixRerun(n, c.failpoint, bt)
			}
			if err != nil {
				err = fmt.Errorf("%w; output of the restarted node:\n%s", err, n.output())
			}
		}
		if err != nil {
			return nil, fmt.Errorf("batch %d (time %d): %w", k, bt, err)
		}
		answers, err := n.queryState(paths)
		if err != nil {
			return nil, fmt.Errorf("after batch %d (time %d): %w", k, bt, err)
		}
		run.states = append(run.states, answers)
	}
	if spec != "" && run.crashBatch == 0 {
		return nil, fmt.Errorf("the failpoint never fired in %d batches: the cell tested nothing; output:\n%s", matrixBatches, n.output())
	}
	n.cmd.Process.Kill()
	n.waitExit(deathDeadline)
	if run.files, run.skipped, err = readMatrixOutputs(dir); err != nil {
		return nil, err
	}
	return run, nil
}

// checkMatrixRerun checks that the node restarted after a crash in batch bt
// took the path of §5 that the failpoint calls for: a batch that died
// before BatchCompleted is re-run (it is allocated and not completed);
// one that died after it is not, its delta being redone instead.
func checkMatrixRerun(n *matrixNode, failpoint string, bt int64) error {
	first, last, ok := n.rerunRange()
	rerun := ok && first <= bt && bt <= last
	switch {
	case failpoint != engine.FailAfterBatchCompleted && !rerun:
		return fmt.Errorf("the node restarted after a crash at %s in batch %d did not say it re-runs that batch "+
			"(allocated and not completed)", failpoint, bt)
	case failpoint == engine.FailAfterBatchCompleted && rerun:
		return fmt.Errorf("the node restarted after a crash at %s in batch %d re-runs it as not completed, "+
			"though BatchCompleted was committed", failpoint, bt)
	}
	return nil
}

// diffMatrixStates lists the state answers of got that differ from want's, at
// most limit, then a count.
func diffMatrixStates(want, got *matrixRun, limit int) []string {
	var diffs []string
	for k := range min(len(want.states), len(got.states)) {
		when := "before the crash"
		switch {
		case k+1 == got.crashBatch:
			when = "the batch the node died in"
		case k+1 > got.crashBatch:
			when = "after the crash"
		}
		for i, w := range want.states[k] {
			g := got.states[k][i]
			if w != g {
				diffs = append(diffs, fmt.Sprintf("after batch %d (time %d; %s), GET %s:\n\tcrash-free: %d %s\n\tcrashed:    %d %s",
					k+1, matrixBatchTime(k+1), when, w.path, w.code, w.body, g.code, g.body))
			}
		}
	}
	if len(diffs) > limit {
		diffs = append(diffs[:limit], fmt.Sprintf("... and %d more answers differ", len(diffs)-limit))
	}
	return diffs
}

// matrixRefs keeps the crash-free run of each application and seed, run
// once for the five failpoints' cells.
type matrixRefs struct {
	mu sync.Mutex
	m  map[string]*matrixRefEntry
}

type matrixRefEntry struct {
	mu  sync.Mutex
	run *matrixRun // nil until a run succeeded
}

func (r *matrixRefs) get(t *testing.T, c matrixCell) (*matrixRun, error) {
	key := fmt.Sprintf("%s/%d", c.app.name, c.seed)
	r.mu.Lock()
	e := r.m[key]
	if e == nil {
		e = &matrixRefEntry{}
		r.m[key] = e
	}
	r.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.run != nil {
		return e.run, nil
	}
	run, err := runMatrix(t, c, "")
	if err == nil {
		e.run = run
	}
	return run, err
}

// ---- workloads ----

var matrixWords = []string{"river", "gate", "stone", "mill", "wheel", "flood", "bank", "reed", "weir", "lock", "heron", "salmon"}

// wordsWorkload: lines of 1 to 6 words from a vocabulary of 5 to 9 words,
// skewed so that counts differ; about one input batch in five is empty.
// The keys asked: three words of the vocabulary, one outside it and one
// never seen.
func wordsWorkload(rng *rand.Rand) matrixWorkload {
	words := slices.Clone(matrixWords)
	rng.Shuffle(len(words), func(i, j int) { words[i], words[j] = words[j], words[i] })
	vocab, unused := words[:5+rng.IntN(5)], words[len(words)-1]
	var w matrixWorkload
	for range matrixInputBatches {
		var chunk [][]string
		if rng.IntN(5) > 0 {
			for range 1 + rng.IntN(3) {
				var req []string
				for range 1 + rng.IntN(4) {
					line := make([]string, 1+rng.IntN(6))
					for i := range line {
						line[i] = vocab[min(rng.IntN(len(vocab)), rng.IntN(len(vocab)))]
					}
					req = append(req, strings.Join(line, " "))
				}
				chunk = append(chunk, req)
			}
		}
		w.chunks = append(w.chunks, chunk)
	}
	w.keys = append(w.keys, vocab[0], vocab[1], vocab[len(vocab)-1], unused, "no-such-word")
	return w
}

var (
	matrixUsers = []string{"ann", "bob", "cai", "dee", "eli", "fay"}
	matrixPages = []string{"home", "list", "item", "cart", "pay"}
)

// clicksWorkload: in each input batch, some users click 1 to 3 pages, one
// click a line, now and then with a line that is no click; users pause
// long enough for their sessions to time out. The keys asked: every user,
// and one who never clicks.
func clicksWorkload(rng *rand.Rand) matrixWorkload {
	var w matrixWorkload
	for range matrixInputBatches {
		var chunk [][]string
		if rng.IntN(6) > 0 {
			for range 1 + rng.IntN(2) {
				var req []string
				for _, u := range matrixUsers {
					if rng.IntN(4) != 0 {
						continue
					}
					for range 1 + rng.IntN(3) {
						req = append(req, u+" "+matrixPages[rng.IntN(len(matrixPages))])
					}
				}
				if rng.IntN(4) == 0 {
					req = append(req, "not-a-click")
				}
				if len(req) > 0 {
					chunk = append(chunk, req)
				}
			}
		}
		w.chunks = append(w.chunks, chunk)
	}
	w.keys = append(slices.Clone(matrixUsers), "zed")
	return w
}
