package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers of the restart tests (restart_test.go): a graph with one of
// every stateful and windowed operator fed by a durable ingest stream,
// its deterministic input, a log of every batch's output kept across the
// contexts of one run, and file surgery on a stopped data directory.

// restartSeed seeds the input of the restart tests; failures print it.
const restartSeed = 20240611

// restartVocab is the words of the restart input, and the keys the tests
// query.
var restartVocab = []string{"apple", "banana", "cherry", "damson", "elder", "fig"}

// restartInput returns the lines of each batch (index i is batch i+1):
// random lines of restartVocab, except that in every run of seven
// batches the 5th, 6th and 7th are empty, so that a 3-batch window
// empties and MapWithState's keys (timeout 2 batches) time out.
func restartInput(seed uint64, batches int) [][]string {
	r := rand.New(rand.NewPCG(seed, 0))
	in := make([][]string, batches)
	for i := range in {
		if i%7 >= 4 {
			continue
		}
		for range 1 + r.IntN(4) {
			var ws []string
			for range 1 + r.IntN(3) {
				ws = append(ws, restartVocab[r.IntN(len(restartVocab))])
			}
			in[i] = append(in[i], strings.Join(ws, " "))
		}
	}
	return in
}

// outLog keeps every batch's output of every named output operation,
// across the contexts of one run. A batch that runs twice (re-run to
// rebuild the state) must print what it printed the first time; a
// difference is kept in conflicts.
type outLog struct {
	mu        sync.Mutex
	byName    map[string]map[Time][]string
	conflicts []string
}

func newOutLog() *outLog { return &outLog{byName: make(map[string]map[Time][]string)} }

func (l *outLog) add(name string, t Time, recs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.byName[name]
	if m == nil {
		m = make(map[Time][]string)
		l.byName[name] = m
	}
	if old, ok := m[t]; ok && !slices.Equal(old, recs) {
		l.conflicts = append(l.conflicts, fmt.Sprintf("%s at %v: ran again with %q, first %q", name, t, recs, old))
	}
	m[t] = recs
}

// names returns the output names, sorted.
func (l *outLog) names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for n := range l.byName {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// batches returns the output of name by batch time.
func (l *outLog) batches(name string) map[Time][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[Time][]string, len(l.byName[name]))
	for t, r := range l.byName[name] {
		out[t] = r
	}
	return out
}

func recordTo[T any](l *outLog, name string, ds *DStream[T]) {
	ds.ForeachRDD(func(t Time, r RDD[T]) error {
		l.add(name, t, printed(r.Collect()))
		return nil
	})
}

// Restart window lengths, in batches.
const (
	restartWindow  = 3 * testBatch
	restartTimeout = 2 * testBatch
)

// buildRestartGraph builds, on an ingest stream "lines", one of each
// operator whose data outlives a batch, each recorded in out under the
// operator's name: UpdateStateByKey ("counts", queryable), incremental
// and full windows, CountByWindow, and MapWithState with a timeout
// ("sessions", queryable) with its StateSnapshots.
func buildRestartGraph(c *Context, out *outLog) {
	lines := IngestStream(c, "lines")
	words := FlatMap(lines, strings.Fields)
	pairs := MapToPair(words, func(w string) (string, int64) { return w, 1 })
	counts := UpdateStateByKey(pairs, func(vs []int64, n int64, _ bool) (int64, bool) {
		for _, v := range vs {
			n += v
		}
		return n, true
	}).Named("counts")
	recordTo(out, "updateStateByKey", counts)
	recordTo(out, "reduceByKeyAndWindowInv", ReduceByKeyAndWindowInv(pairs, addInt64, subInt64, restartWindow, testBatch,
		func(_ string, n int64) bool { return n != 0 }))
	recordTo(out, "reduceByKeyAndWindow", ReduceByKeyAndWindow(pairs, addInt64, restartWindow, testBatch))
	recordTo(out, "reduceByKeyAndWindow slide 2", ReduceByKeyAndWindow(pairs, addInt64, 4*testBatch, 2*testBatch))
	recordTo(out, "countByWindow", words.CountByWindow(restartWindow, testBatch))
	sessions := MapWithState(pairs, StateSpec[string, int64, int64, string]{
		Function: func(t Time, k string, v Option[int64], s *State[int64]) (string, bool) {
			if s.IsTimingOut() {
				return fmt.Sprintf("%s timed out at %v after %d", k, t, s.Get()), true
			}
			n := v.Value
			if s.Exists() {
				n += s.Get()
			}
			s.Update(n)
			return fmt.Sprintf("%s=%d", k, n), true
		},
		Timeout: restartTimeout,
	})
	sessions.Named("sessions")
	recordTo(out, "mapWithState", sessions.DStream)
	recordTo(out, "stateSnapshots", sessions.StateSnapshots())
}

// syncBuffer is a log destination safe for the engine's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// restartNode is one context of a restart run on a data directory.
type restartNode struct {
	*harness
	t    *testing.T
	in   [][]string
	logs *syncBuffer
}

// openRestartNode builds the restart graph on a new context on dir, its
// clock at batch `at` (the last batch run on dir before), logging into a
// buffer. It does not start it.
func openRestartNode(t *testing.T, dir string, in [][]string, out *outLog, at int, mod ...func(*Config)) *restartNode {
	t.Helper()
	logs := &syncBuffer{}
	mods := append([]func(*Config){func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
		c.CheckpointInterval = 2 * testBatch
	}}, mod...)
	h := newDurableHarness(t, dir, mods...)
	h.clock.Set(time.UnixMilli(int64(at) * testBatch.Milliseconds()))
	buildRestartGraph(h.c, out)
	return &restartNode{harness: h, t: t, in: in, logs: logs}
}

func batchTime(i int) Time { return Time(0).Add(time.Duration(i) * testBatch) }

// ingestBatch ingests the input of batch i (1-based) as producer p's
// request i; an empty batch sends nothing.
func (n *restartNode) ingestBatch(i int) {
	n.t.Helper()
	if recs := n.in[i-1]; len(recs) > 0 {
		mustIngest(n.t, n.c, "p", uint64(i), recs...)
	}
}

// advance moves the clock one batch and waits for batch i, skipping the
// batches re-run before it; it fails the test on a failed batch.
func (n *restartNode) advance(i int) {
	n.t.Helper()
	want := batchTime(i)
	n.clock.Advance(testBatch)
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		select {
		case b := <-n.done:
			if b.Err != nil {
				n.t.Fatalf("batch %v (seed %d): %v", b.Time, restartSeed, b.Err)
			}
			if b.Time == want {
				return
			}
			if b.Time > want {
				n.t.Fatalf("batch %v completed while waiting for %v", b.Time, want)
			}
		case <-deadline.C:
			n.t.Fatalf("batch %v did not complete in %v; the log:\n%s", want, waitTimeout, n.logs)
		}
	}
}

// runBatches ingests and runs batches from..to; with ingested set, the
// input of batch from is in already.
func (n *restartNode) runBatches(from, to int, ingested bool) {
	n.t.Helper()
	for i := from; i <= to; i++ {
		if i > from || !ingested {
			n.ingestBatch(i)
		}
		n.advance(i)
	}
}

// waitApplied waits until the committed state is as of batch i: the
// batches a restore re-runs are done.
func (n *restartNode) waitApplied(i int) {
	n.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		applied, err := n.c.storage.state.Applied()
		if err != nil {
			n.t.Fatal(err)
		}
		if Time(applied) >= batchTime(i) {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("the state is as of %v after %v, want %v", Time(applied), waitTimeout, batchTime(i))
		}
		time.Sleep(time.Millisecond)
	}
}

// stateAnswers is what the state API answers for every word of the
// vocabulary and the top 3 of both stateful operators of the restart
// graph, one line each.
func stateAnswers(t *testing.T, c *Context) []string {
	t.Helper()
	var out []string
	for _, op := range []string{"counts", "sessions"} {
		for _, w := range restartVocab {
			sv, err := c.QueryState(op, w)
			switch {
			case errors.Is(err, ErrUnknownKey):
				out = append(out, fmt.Sprintf("%s %s: none", op, w))
			case err != nil:
				t.Fatalf("QueryState(%s, %s): %v", op, w, err)
			default:
				out = append(out, fmt.Sprintf("%s %s: %+v", op, w, sv))
			}
		}
		top, at, err := c.TopState(op, 3)
		if err != nil {
			t.Fatalf("TopState(%s): %v", op, err)
		}
		out = append(out, fmt.Sprintf("%s top 3 as of %v: %+v", op, at, top))
	}
	return out
}

// compareOutputs fails unless every batch got printed for every output
// equals want's for that batch, and no batch re-run printed something
// else than the first time.
func compareOutputs(t *testing.T, want, got *outLog) {
	t.Helper()
	for _, c := range got.conflicts {
		t.Errorf("a batch re-run to rebuild the state gave another output: %s", c)
	}
	for _, name := range want.names() {
		w, g := want.batches(name), got.batches(name)
		for bt, recs := range g {
			wr, ok := w[bt]
			if !ok {
				t.Errorf("%s: output at %v, which the uninterrupted run has not: %q", name, bt, recs)
				continue
			}
			if !slices.Equal(recs, wr) {
				t.Errorf("%s at %v (seed %d):\ngot  %q\nwant %q", name, bt, restartSeed, recs, wr)
			}
		}
	}
}

// checkAllBatches fails unless got has an output of every operator at
// every batch time want has up to batch last.
func checkAllBatches(t *testing.T, want, got *outLog, last int) {
	t.Helper()
	for _, name := range want.names() {
		g := got.batches(name)
		for bt := range want.batches(name) {
			if _, ok := g[bt]; !ok && bt <= batchTime(last) {
				t.Errorf("%s: no output at %v", name, bt)
			}
		}
	}
}

// copyDir copies the stopped data directory src to a new dst, file by
// file (hard links become copies).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		from, err := os.Open(p)
		if err != nil {
			return err
		}
		defer from.Close()
		f, err := os.Create(to)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, from); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
}

// flipByte inverts the byte in the middle of the file at p.
func flipByte(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil || len(b) == 0 {
		t.Fatalf("reading %s to corrupt it: %v (%d bytes)", p, err, len(b))
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// truncateHalf cuts the file at p to half its length.
func truncateHalf(t *testing.T, p string) {
	t.Helper()
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, info.Size()/2); err != nil {
		t.Fatal(err)
	}
}

// largestFile returns the largest file in dir whose name matches pattern.
func largestFile(t *testing.T, dir, pattern string) string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(matches) == 0 {
		t.Fatalf("no file %s in %s: %v", pattern, dir, err)
	}
	var best string
	var size int64 = -1
	for _, m := range matches {
		if info, err := os.Stat(m); err == nil && info.Mode().IsRegular() && info.Size() > size {
			best, size = m, info.Size()
		}
	}
	return best
}

// checkpointDirs lists the names of the checkpoint directories in
// DIR/checkpoints (not temporary or moved aside).
func checkpointDirs(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if n := e.Name(); e.IsDir() && len(n) == len("ckpt-")+20 && strings.HasPrefix(n, "ckpt-") {
			out = append(out, n)
		}
	}
	return out
}

// globCount returns how many paths match pattern.
func globCount(t *testing.T, pattern string) int {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}
