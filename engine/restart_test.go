package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-stream/sluice/recovery"
	"github.com/sluice-stream/sluice/state"
	"github.com/sluice-stream/sluice/wal"
)

// Tests of what a restart on a data directory keeps (ARCHITECTURE.md §3,
// §5): the state store and the windows' per-batch data survive a stop,
// a lost or corrupt store is rebuilt from a checkpoint the metadata log
// references, and a node refuses to start where it cannot be exact. The
// graph and input are those of restart_helpers_test.go.

// uninterruptedRun runs batches 1..n of in on a fresh data directory
// without a stop and returns every batch's output and the state API's
// answers after every batch (index i: after batch i).
func uninterruptedRun(t *testing.T, in [][]string, n int) (*outLog, [][]string) {
	t.Helper()
	out := newOutLog()
	node := openRestartNode(t, t.TempDir(), in, out, 0)
	node.start()
	answers := make([][]string, n+1)
	for i := 1; i <= n; i++ {
		node.runBatches(i, i, false)
		answers[i] = stateAnswers(t, node.c)
	}
	stopContext(t, node.c, false)
	return out, answers
}

// checkAnswers fails unless the state API answers what it answered
// after batch i of the uninterrupted run.
func checkAnswers(t *testing.T, c *Context, want [][]string, i int, when string) {
	t.Helper()
	if got := stateAnswers(t, c); !slices.Equal(got, want[i]) {
		t.Errorf("%s, the state API answers\n%s\nthe uninterrupted run after batch %d\n%s",
			when, strings.Join(got, "\n"), i, strings.Join(want[i], "\n"))
	}
}

// restartStop is a stop of a run: after which batch, how, and whether
// the next batch's records are ingested before it (acknowledged, in no
// batch yet; skipped where that batch has no input).
type restartStop struct {
	after    int
	graceful bool
	pending  bool
}

func (s restartStop) String() string {
	how := "stop"
	if s.graceful {
		how = "graceful stop"
	}
	if s.pending {
		how += " with the next batch's records in"
	}
	return fmt.Sprintf("%s after batch %d", how, s.after)
}

// runWithStops runs batches 1..len(in) on dir, stopping the context and
// starting a new one on dir at every stop, and returns the last context,
// still running. Right after every restart, the state API must answer
// what the uninterrupted run did after the same batch (answers).
func runWithStops(t *testing.T, dir string, in [][]string, out *outLog, stops []restartStop, answers [][]string) *restartNode {
	t.Helper()
	at, ingested := 0, false // the last batch run; whether the next one's input is in
	restart := func() *restartNode {
		n := openRestartNode(t, dir, in, out, at)
		n.start()
		if at > 0 {
			checkAnswers(t, n.c, answers, at, fmt.Sprintf("right after the restart after batch %d", at))
		}
		return n
	}
	for _, s := range stops {
		n := restart()
		n.runBatches(at+1, s.after, ingested)
		at, ingested = max(at, s.after), false
		pending := s.pending && at < len(in) && len(in[at]) > 0
		if pending {
			n.ingestBatch(at + 1)
		}
		if !s.graceful || !pending {
			stopContext(t, n.c, s.graceful)
			ingested = pending
			continue
		}
		// A graceful stop runs a batch for the records waiting, at the
		// next batch time.
		stopped := make(chan error, 1)
		go func() { stopped <- n.c.Stop(context.Background(), true) }()
		n.advance(at + 1)
		if err := <-stopped; err != nil {
			t.Fatalf("%v: %v", s, err)
		}
		at++
	}
	n := restart()
	n.runBatches(at+1, len(in), ingested)
	return n
}

// TestRestartEqualsUninterruptedRun runs the restart graph (UpdateStateByKey,
// ReduceByKeyAndWindow with and without an inverse, CountByWindow,
// MapWithState with a timeout and its StateSnapshots) for 8 batches
// without a stop, then again with stops, each followed by a new context
// on the same data directory: every batch after a restart must print
// what the uninterrupted run printed (the windows of the first batches
// after it reach back before it: the windows' data is stored with the
// state), and the state API must answer the same at the end. One case
// stops after every batch, in turn not gracefully, with the next batch's
// records acknowledged before the stop, gracefully, and gracefully with
// records waiting; the others stop once, after a batch drawn from the
// seed.
func TestRestartEqualsUninterruptedRun(t *testing.T) {
	t.Parallel()
	const batches = 8
	in := restartInput(restartSeed, batches)
	want, wantAnswers := uninterruptedRun(t, in, batches)
	var every []restartStop
	for j := 1; j < batches; j++ {
		every = append(every, restartStop{after: j, graceful: j%4 >= 2, pending: j%2 == 0})
	}
	r := rand.New(rand.NewPCG(restartSeed, 1))
	once := []restartStop{{after: 1 + r.IntN(batches-1)}, {after: 1 + r.IntN(batches-1), pending: true}}
	cases := []struct {
		name  string
		stops []restartStop
	}{
		{"stop after every batch", every},
		{once[0].String(), once[:1]},
		{once[1].String(), once[1:]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := newOutLog()
			n := runWithStops(t, t.TempDir(), in, got, tc.stops, wantAnswers)
			compareOutputs(t, want, got)
			checkAllBatches(t, want, got, batches)
			checkAnswers(t, n.c, wantAnswers, batches, "after the last batch")
		})
	}
}

// checkpointBase is a data directory stopped (not gracefully) after
// restartLong batches with a checkpoint every 2 batches, so that the log
// references two checkpoints and was truncated, with what it needs to
// check a restore: the checkpoints referenced, and an uninterrupted run
// of restartLong+restartMore batches of the same input.
type checkpointBase struct {
	dir         string
	in          [][]string
	ckpts       []string // referenced, oldest first
	truncated   Time
	want        *outLog    // the uninterrupted run
	wantAnswers [][]string // of the uninterrupted run, after every batch
	otherDir    string     // the same graph run as another application, on other input
}

const (
	restartLong = 16
	restartMore = 3
)

func newCheckpointBase(t *testing.T) *checkpointBase {
	t.Helper()
	b := &checkpointBase{dir: t.TempDir(), in: restartInput(restartSeed, restartLong+restartMore)}
	b.want, b.wantAnswers = uninterruptedRun(t, b.in, restartLong+restartMore)

	n := openRestartNode(t, b.dir, b.in, newOutLog(), 0)
	n.start()
	n.runBatches(1, restartLong, false)
	view := n.c.storage.meta.View()
	for _, r := range view.Checkpoints {
		b.ckpts = append(b.ckpts, r.Name)
	}
	b.truncated = Time(view.TruncatedBefore)
	stopContext(t, n.c, false)
	if len(b.ckpts) != 2 || b.truncated == 0 {
		t.Fatalf("after %d batches the log references checkpoints %v and was truncated before %v; the test needs 2 and a truncation",
			restartLong, b.ckpts, b.truncated)
	}

	b.otherDir = t.TempDir()
	o := openRestartNode(t, b.otherDir, restartInput(restartSeed+1, restartLong), newOutLog(), 0,
		func(c *Config) { c.AppName = "other" })
	o.start()
	o.runBatches(1, restartLong, false)
	stopContext(t, o.c, false)
	return b
}

// ckptPath is the path of checkpoint name in data directory dir.
func ckptPath(dir, name string) string { return filepath.Join(dir, "checkpoints", name) }

// TestRestartRebuildsStateFromCheckpoint damages a stopped data directory
// whose log references two checkpoints and was truncated, and restarts
// on it. Where a checkpoint the log references is sound, the state is
// restored from the newest such one, the batches completed after it are
// re-run (printing what they printed before), and the state and the
// batches after the restart equal an uninterrupted run's. A corrupt
// checkpoint is moved aside as <name>.broken-<seconds>, a corrupt state
// store as state.broken-<seconds>; a checkpoint the log does not
// reference, or another application's, is never used. With no usable
// state and no usable checkpoint, Start fails with ErrNoValidState naming
// the checkpoints, and serves nothing.
func TestRestartRebuildsStateFromCheckpoint(t *testing.T) {
	t.Parallel()
	base := newCheckpointBase(t)
	older, newest := base.ckpts[0], base.ckpts[1]
	later := fmt.Sprintf("ckpt-%020d", 99*testBatch.Milliseconds())
	cases := []struct {
		name     string
		damage   func(t *testing.T, dir string)
		restored string   // the checkpoint the state must be restored from ("": the store is used)
		aside    []string // globs under dir that must match after the start
		logged   string   // in the log: why a checkpoint was refused
		wantErr  bool     // Start must fail with ErrNoValidState
	}{
		{name: "state store deleted", restored: newest,
			damage: func(t *testing.T, dir string) { removeState(t, dir) }},
		{name: "newest checkpoint's data has a flipped byte", restored: older, logged: "the descriptor says",
			aside: []string{"checkpoints/" + newest + ".broken-*"},
			damage: func(t *testing.T, dir string) {
				removeState(t, dir)
				flipByte(t, largestFile(t, filepath.Join(ckptPath(dir, newest), "data"), "*"))
			}},
		{name: "newest checkpoint's descriptor truncated", restored: older, logged: "truncated descriptor",
			aside: []string{"checkpoints/" + newest + ".broken-*"},
			damage: func(t *testing.T, dir string) {
				removeState(t, dir)
				truncateHalf(t, filepath.Join(ckptPath(dir, newest), "CHECKPOINT"))
			}},
		{name: "both checkpoints corrupt after truncation", wantErr: true,
			damage: func(t *testing.T, dir string) {
				removeState(t, dir)
				flipByte(t, largestFile(t, filepath.Join(ckptPath(dir, newest), "data"), "*"))
				truncateHalf(t, filepath.Join(ckptPath(dir, older), "CHECKPOINT"))
			}},
		{name: "a later checkpoint the log does not reference", restored: newest,
			damage: func(t *testing.T, dir string) {
				removeState(t, dir)
				copyDir(t, ckptPath(base.otherDir, newest), ckptPath(dir, later))
			}},
		{name: "another application's checkpoint under the newest referenced name", restored: older,
			logged: "not the descriptor the log references",
			damage: func(t *testing.T, dir string) {
				removeState(t, dir)
				if err := os.RemoveAll(ckptPath(dir, newest)); err != nil {
					t.Fatal(err)
				}
				copyDir(t, ckptPath(base.otherDir, newest), ckptPath(dir, newest))
			}},
		{name: "state store MANIFEST corrupt", restored: newest, aside: []string{"state.broken-*"},
			damage: func(t *testing.T, dir string) {
				flipByte(t, largestFile(t, filepath.Join(dir, "state"), "MANIFEST-*"))
			}},
		// Pebble reads a damaged record of its write-ahead log as the torn
		// end of the log: the store opens, behind the metadata log by
		// batches the log no longer holds, and is moved aside as stale.
		{name: "state store write-ahead log corrupt", restored: newest, aside: []string{"state.*-*"},
			damage: func(t *testing.T, dir string) {
				flipByte(t, largestFile(t, filepath.Join(dir, "state"), "*.log"))
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			copyDir(t, base.dir, dir)
			tc.damage(t, dir)
			got := newOutLog()
			n := openRestartNode(t, dir, base.in, got, restartLong)
			err := n.c.Start()
			if tc.wantErr {
				checkNoValidState(t, n, err, base.ckpts)
				return
			}
			if err != nil {
				t.Fatalf("Start: %v\nthe log:\n%s", err, n.logs)
			}
			t.Cleanup(func() { n.c.Stop(context.Background(), false) })
			n.waitApplied(restartLong)
			logs := n.logs.String()
			if want := "checkpoint=" + tc.restored; !strings.Contains(logs, "state restored from a checkpoint") || !strings.Contains(logs, want) {
				t.Errorf("the state was not restored from %s, as the log references it; the log:\n%s", tc.restored, logs)
			}
			if !strings.Contains(logs, tc.logged) {
				t.Errorf("the log does not say %q; the log:\n%s", tc.logged, logs)
			}
			if strings.Contains(logs, later) {
				t.Errorf("the start looked at %s, which the log does not reference; the log:\n%s", later, logs)
			}
			for _, g := range tc.aside {
				if globCount(t, filepath.Join(dir, g)) != 1 {
					t.Errorf("nothing moved aside as %s; the log:\n%s", g, logs)
				}
			}
			checkAnswers(t, n.c, base.wantAnswers, restartLong, "after the restore")
			n.runBatches(restartLong+1, restartLong+restartMore, false)
			compareOutputs(t, base.want, got)
			checkAnswers(t, n.c, base.wantAnswers, restartLong+restartMore, "after the restore and more batches")
		})
	}
}

// checkNoValidState checks a Start that had no state to trust: it fails
// with ErrNoValidState naming every referenced checkpoint, and the node
// does not run.
func checkNoValidState(t *testing.T, n *restartNode, err error, ckpts []string) {
	t.Helper()
	if err == nil {
		n.c.Stop(context.Background(), false)
		t.Fatalf("Start succeeded with no usable state store or checkpoint; the log:\n%s", n.logs)
	}
	if !errors.Is(err, ErrNoValidState) {
		t.Fatalf("Start: %v, want an error wrapping ErrNoValidState", err)
	}
	for _, name := range ckpts {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("the error %q does not name the checkpoint %s", err, name)
		}
	}
	if _, err := n.c.QueryState("counts", "apple"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("QueryState after the failed Start: %v, want ErrNotRunning", err)
	}
}

// removeState deletes DIR/state.
func removeState(t *testing.T, dir string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(dir, "state")); err != nil {
		t.Fatal(err)
	}
}

// graphVariant is the graph of TestRestartGraphChecks, with what a case
// changes.
type graphVariant struct {
	print        bool          // an added output operation
	window       time.Duration // of the windowed reduce
	opPartitions int           // of UpdateStateByKey; 0: the default
}

// buildVariantGraph builds word counts kept by UpdateStateByKey
// ("counts") and over a window, and a Print if asked.
func buildVariantGraph(c *Context, g graphVariant) {
	pairs := MapToPair(FlatMap(IngestStream(c, "lines"), strings.Fields), func(w string) (string, int64) { return w, 1 })
	var opts []OpOption
	if g.opPartitions > 0 {
		opts = append(opts, WithPartitions(g.opPartitions))
	}
	counts := UpdateStateByKey(pairs, func(vs []int64, n int64, _ bool) (int64, bool) {
		for _, v := range vs {
			n += v
		}
		return n, true
	}, opts...).Named("counts")
	counts.ForeachRDD(func(Time, RDD[Pair[string, int64]]) error { return nil })
	windowed := ReduceByKeyAndWindow(pairs, addInt64, g.window, testBatch)
	windowed.ForeachRDD(func(Time, RDD[Pair[string, int64]]) error { return nil })
	if g.print {
		windowed.Print(10)
	}
}

// TestRestartGraphChecks restarts on a data directory with a changed
// graph (ARCHITECTURE.md §1): a change that leaves the stored state as it
// is (an added output operation) is refused with ErrGraphChanged, naming
// the change and --allow-compatible-upgrade, and accepted with
// AllowCompatibleUpgrade, the state kept; a change of what the state
// depends on (a window's length, a partition count) is refused even so,
// naming the operator changed; so is another application.
func TestRestartGraphChecks(t *testing.T) {
	t.Parallel()
	base := graphVariant{window: 3 * testBatch}
	in := restartInput(restartSeed, 4)
	dir := t.TempDir()
	h := newDurableHarness(t, dir)
	buildVariantGraph(h.c, base)
	h.start()
	for i := 1; i <= 3; i++ {
		mustIngest(t, h.c, "p", uint64(i), in[i-1]...)
		h.run(1)
	}
	want := make(map[string]int64) // counts after batch 4
	for _, batch := range in {
		for _, l := range batch {
			for _, w := range strings.Fields(l) {
				want[w]++
			}
		}
	}
	stopContext(t, h.c, false)

	cases := []struct {
		name    string
		graph   graphVariant
		cfg     func(*Config)
		refused []string // what the refusal names; nil: the start succeeds
	}{
		{name: "an added Print", graph: graphVariant{window: base.window, print: true},
			refused: []string{"added operator", "print", "--allow-compatible-upgrade"}},
		{name: "an added Print with AllowCompatibleUpgrade", graph: graphVariant{window: base.window, print: true},
			cfg: func(c *Config) { c.AllowCompatibleUpgrade = true }},
		{name: "a changed window length with AllowCompatibleUpgrade", graph: graphVariant{window: 4 * testBatch},
			cfg:     func(c *Config) { c.AllowCompatibleUpgrade = true },
			refused: []string{"changed operator", "window", "window=4s", "fresh --data-dir"}},
		{name: "a changed partition count of the state with AllowCompatibleUpgrade", graph: graphVariant{window: base.window, opPartitions: 3},
			cfg:     func(c *Config) { c.AllowCompatibleUpgrade = true },
			refused: []string{"changed operator", "updateStateByKey", "partitions=3", "fresh --data-dir"}},
		{name: "a changed default partition count with AllowCompatibleUpgrade", graph: base,
			cfg:     func(c *Config) { c.AllowCompatibleUpgrade = true; c.Partitions = 3 },
			refused: []string{"changed settings", "partitions=3", "fresh --data-dir"}},
		{name: "another application with the same graph", graph: base,
			cfg:     func(c *Config) { c.AppName = "other" },
			refused: []string{`"test"`, `"other"`}},
		{name: "another application with an added Print and AllowCompatibleUpgrade", graph: graphVariant{window: base.window, print: true},
			cfg:     func(c *Config) { c.AppName = "other"; c.AllowCompatibleUpgrade = true },
			refused: []string{`"test"`, `"other"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := t.TempDir()
			copyDir(t, dir, d)
			var mods []func(*Config)
			if tc.cfg != nil {
				mods = append(mods, tc.cfg)
			}
			h := newDurableHarness(t, d, mods...)
			h.clock.Set(time.UnixMilli(3 * testBatch.Milliseconds()))
			buildVariantGraph(h.c, tc.graph)
			err := h.c.Start()
			if tc.refused != nil {
				if err == nil {
					h.c.Stop(context.Background(), false)
					t.Fatal("Start succeeded, want ErrGraphChanged")
				}
				if !errors.Is(err, ErrGraphChanged) {
					t.Fatalf("Start: %v, want ErrGraphChanged", err)
				}
				for _, w := range tc.refused {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("the refusal does not name %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			t.Cleanup(func() { h.c.Stop(context.Background(), false) })
			mustIngest(t, h.c, "p", 4, in[3]...)
			h.run(1)
			for w, n := range want {
				if sv, err := h.c.QueryState("counts", w); err != nil || sv.Value != n {
					t.Errorf("counts of %q after the upgrade and a batch: %+v, %v; want %d (the state kept)", w, sv, err, n)
				}
			}
		})
	}
}

// TestRestartStateStoreAheadOfLog starts on a data directory whose state
// store was copied from a later point of the same run: the store has
// applied batches the metadata log does not say completed. Start must
// fail with state.ErrAhead, saying which batches and what to do, and not
// run.
func TestRestartStateStoreAheadOfLog(t *testing.T) {
	t.Parallel()
	in := restartInput(restartSeed, 4)
	dir, early := t.TempDir(), t.TempDir()
	n := openRestartNode(t, dir, in, newOutLog(), 0)
	n.start()
	n.runBatches(1, 2, false)
	stopContext(t, n.c, false)
	copyDir(t, dir, early)
	n = openRestartNode(t, dir, in, newOutLog(), 2)
	n.start()
	n.runBatches(3, 4, false)
	stopContext(t, n.c, false)
	removeState(t, early)
	copyDir(t, filepath.Join(dir, "state"), filepath.Join(early, "state"))

	n = openRestartNode(t, early, in, newOutLog(), 2)
	err := n.c.Start()
	if err == nil {
		n.c.Stop(context.Background(), false)
		t.Fatal("Start succeeded with a state store ahead of the metadata log")
	}
	if !errors.Is(err, state.ErrAhead) {
		t.Fatalf("Start: %v, want an error wrapping state.ErrAhead", err)
	}
	for _, w := range []string{filepath.Join(early, "state"), "4000", "2000", "fresh"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the error does not name %q:\n%v", w, err)
		}
	}
	if _, err := n.c.QueryState("counts", "apple"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("QueryState after the failed Start: %v, want ErrNotRunning", err)
	}
}

// TestRestartTruncationKeepsReferencedCheckpoints runs 30 batches with a
// checkpoint every 2 and checks after each that truncation, which drops
// completed batches from the metadata log and their blocks from the WAL,
// never reaches past the oldest checkpoint the log references: every
// batch completed after it is in the log with its blocks in the WAL, as
// a restore from it must re-run them. DIR/checkpoints holds exactly the
// referenced checkpoints, at most recovery.CheckpointsKept.
func TestRestartTruncationKeepsReferencedCheckpoints(t *testing.T) {
	t.Parallel()
	const batches = 30
	dir := t.TempDir()
	n := openRestartNode(t, dir, restartInput(restartSeed, batches), newOutLog(), 0)
	n.start()
	for i := 1; i <= batches; i++ {
		n.runBatches(i, i, false)
		view := n.c.storage.meta.View()
		var refs []string
		for _, r := range view.Checkpoints {
			refs = append(refs, r.Name)
		}
		if dirs := checkpointDirs(t, dir); len(refs) > recovery.CheckpointsKept || !slices.Equal(dirs, refs) {
			t.Fatalf("after batch %d: checkpoints %v on disk, %v referenced; want the referenced ones, at most %d",
				i, dirs, refs, recovery.CheckpointsKept)
		}
		if len(view.Checkpoints) == 0 {
			if view.TruncatedBefore != 0 {
				t.Fatalf("after batch %d: truncated before %d without a checkpoint", i, view.TruncatedBefore)
			}
			continue
		}
		oldest := Time(view.Checkpoints[0].Time)
		if Time(view.TruncatedBefore) > oldest.Add(testBatch) {
			t.Fatalf("after batch %d: truncated before %d, past the oldest referenced checkpoint, of %v",
				i, view.TruncatedBefore, oldest)
		}
		kept := make(map[Time]recovery.Batch)
		for _, b := range view.Batches {
			kept[Time(b.Time)] = b
		}
		for bt := oldest.Add(testBatch); bt <= Time(view.LastCompleted); bt = bt.Add(testBatch) {
			b, ok := kept[bt]
			if !ok {
				t.Fatalf("after batch %d: batch %v, after the checkpoint of %v, is gone from the log", i, bt, oldest)
			}
			for _, e := range b.Blocks {
				id := wal.BlockID{Stream: e.Ref.Stream, Node: e.Ref.Node, Seq: e.Ref.Seq}
				if _, err := n.c.storage.blocks.Read(id); err != nil {
					t.Fatalf("after batch %d: block %v of batch %v: %v", i, id, bt, err)
				}
			}
		}
	}
	view := n.c.storage.meta.View()
	if view.TruncatedBefore == 0 {
		t.Fatalf("nothing truncated in %d batches", batches)
	}
	blocks := 0
	for _, b := range view.Batches {
		blocks += len(b.Blocks)
	}
	if got := walBlocks(t, n.c); got != blocks {
		t.Errorf("the WAL holds %d blocks, the batches the log keeps %d: truncated batches' blocks must go", got, blocks)
	}
}
