package main

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sluice-stream/sluice/engine"
	"github.com/sluice-stream/sluice/engine/kafka"
)

// appOptions is what an application may read from the command line.
type appOptions struct {
	top     int           // how many records Print shows
	saveDir string        // where to save results, "" for nowhere
	batch   time.Duration // the batch duration
	window  time.Duration // windowed-top's window (0: 3 batches)
	timeout time.Duration // sessions' idle timeout (0: 3 batches)
	// kafkaOut, when set, is where wordcount also writes each batch's
	// changed counts.
	kafkaOut *kafka.SinkConfig
}

// app builds a graph over the node's input stream.
type app struct {
	describe string
	build    func(c *engine.Context, lines *engine.DStream[string], o appOptions)
}

// apps are the built-in applications, by --app name.
var apps = map[string]app{
	"wordcount": {
		describe: "count every word since the start (UpdateStateByKey), print the top counts each batch",
		build:    buildWordCount,
	},
	"windowed-top": {
		describe: "the most frequent words over a sliding window (--window, default 3 batches), counted incrementally (ReduceByKeyAndWindow with its inverse)",
		build:    buildWindowedTop,
	},
	"sessions": {
		describe: "sessions of click events (lines \"user page\"): a session ends after --session-timeout without a click (MapWithState with a timeout) and is then printed and saved",
		build:    buildSessions,
	},
	"archive": {
		describe: "keep every record, batch by batch, in DATA-DIR/output/records-<batch ms> (needs --data-dir)",
		build:    buildArchive,
	},
}

// buildArchive saves each batch's records as they came, one directory per
// batch: a batch re-run after a crash replaces its directory whole, so
// the directories hold every record of every batch exactly once.
func buildArchive(c *engine.Context, lines *engine.DStream[string], o appOptions) {
	lines.Count().Print(o.top)
	if o.saveDir != "" {
		lines.SaveAsTextFiles(o.saveDir+"/records", "")
	}
}

func appNames() []string {
	names := make([]string, 0, len(apps))
	for n := range apps {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// buildWordCount is Spark's StatefulNetworkWordCount: lines are split on
// ASCII white space (engine.Words), each word counted since the start; each batch prints the
// most frequent words and, with a data directory, saves every count.
func buildWordCount(c *engine.Context, lines *engine.DStream[string], o appOptions) {
	words := engine.FlatMapEmit(lines, engine.Words)
	pairs := engine.MapToPair(words, func(w string) (string, int64) { return w, 1 })
	// Counting each batch first combines on the map side, so the state
	// update sees one value per word and batch (twice the throughput of
	// updating the state from every occurrence).
	batchCounts := engine.ReduceByKey(pairs, func(a, b int64) int64 { return a + b })
	counts := engine.UpdateStateByKey(batchCounts, sumCounts).Named("wordcount")
	engine.Transform(counts, topCounts(o.top)).Print(o.top)
	if o.saveDir != "" {
		counts.SaveAsTextFiles(o.saveDir+"/counts", "")
	}
	if o.kafkaOut != nil {
		changedCounts(batchCounts, counts).ForeachSink(mustKafkaCountSink(*o.kafkaOut))
	}
}

// changedCounts keeps, of all the counts, those of the words the batch
// held: what changed in the batch.
func changedCounts(batch, counts *engine.DStream[engine.Pair[string, int64]]) *engine.DStream[engine.Pair[string, int64]] {
	joined := engine.Join(batch, counts)
	return engine.MapValues(joined, func(v engine.Tuple2[int64, int64]) int64 { return v.Second })
}

// mustKafkaCountSink makes the sink of a SinkConfig that startNode has
// validated already.
func mustKafkaCountSink(cfg kafka.SinkConfig) *kafka.Sink[engine.Pair[string, int64]] {
	s, err := kafkaCountSink(cfg)
	if err != nil {
		panic(err) // validated by startNode
	}
	return s
}

func sumCounts(vals []int64, old int64, _ bool) (int64, bool) {
	for _, v := range vals {
		old += v
	}
	return old, true
}

// topCounts keeps the n largest counts of a batch, largest first, ties by
// word, in one partition.
func topCounts(n int) func(engine.Time, engine.RDD[engine.Pair[string, int64]]) (engine.RDD[engine.Pair[string, int64]], error) {
	return func(t engine.Time, r engine.RDD[engine.Pair[string, int64]]) (engine.RDD[engine.Pair[string, int64]], error) {
		all := r.Collect()
		slices.SortFunc(all, func(a, b engine.Pair[string, int64]) int {
			if c := cmp.Compare(b.Value, a.Value); c != 0 {
				return c
			}
			return cmp.Compare(a.Key, b.Key)
		})
		// Keep one more than shown, so Print can say "..." when there are more.
		return engine.NewRDD(t, all[:min(len(all), n+1)]), nil
	}
}

// buildWindowedTop counts words over a sliding window, sliding one batch
// at a time: each window is the previous one less the batch that left it
// plus the batch that entered it. Words whose count falls to zero leave
// the window. The counts of every window are saved with a data directory.
func buildWindowedTop(c *engine.Context, lines *engine.DStream[string], o appOptions) {
	window := cmp.Or(o.window, 3*o.batch)
	words := engine.FlatMapEmit(lines, engine.Words)
	pairs := engine.MapToPair(words, func(w string) (string, int64) { return w, 1 })
	counts := engine.ReduceByKeyAndWindowInv(pairs,
		func(a, b int64) int64 { return a + b }, func(a, b int64) int64 { return a - b },
		window, o.batch, func(_ string, n int64) bool { return n != 0 }).Named("window-counts")
	engine.Transform(counts, topCounts(o.top)).Print(o.top)
	if o.saveDir != "" {
		counts.SaveAsTextFiles(o.saveDir+"/window", "")
	}
}

// session is one user's run of clicks. Times are batch times, so a re-run
// of a batch computes the same sessions.
type session struct {
	Start, Last engine.Time
	Clicks      int
	Pages       int // distinct pages, as far as consecutive clicks tell
	LastPage    string
}

func (s session) String() string {
	return fmt.Sprintf("start=%d last=%d clicks=%d pages=%d", int64(s.Start), int64(s.Last), s.Clicks, s.Pages)
}

// buildSessions turns click events ("user page", one a line) into
// sessions per user: a session ends when the user has not clicked for
// the timeout, measured in batch time; it is then emitted, printed and,
// with a data directory, saved. The open sessions are the state named
// "sessions".
func buildSessions(c *engine.Context, lines *engine.DStream[string], o appOptions) {
	timeout := cmp.Or(o.timeout, 3*o.batch)
	clicks := engine.FlatMap(lines, func(line string) []engine.Pair[string, string] {
		user, page, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || user == "" {
			return nil // not a click event: skipped
		}
		return []engine.Pair[string, string]{engine.KV(user, strings.TrimSpace(page))}
	})
	ended := engine.MapWithState(clicks, engine.StateSpec[string, string, session, string]{
		Function: func(t engine.Time, user string, page engine.Option[string], st *engine.State[session]) (string, bool) {
			if st.IsTimingOut() {
				return fmt.Sprintf("%s %v", user, st.Get()), true
			}
			s := session{Start: t}
			if st.Exists() {
				s = st.Get()
			}
			s.Last, s.Clicks = t, s.Clicks+1
			if page.Value != s.LastPage {
				s.Pages++
				s.LastPage = page.Value
			}
			st.Update(s)
			return "", false
		},
		Timeout: timeout,
	})
	ended.Named("sessions")
	ended.Print(o.top)
	if o.saveDir != "" {
		ended.SaveAsTextFiles(o.saveDir+"/sessions", "")
	}
}
