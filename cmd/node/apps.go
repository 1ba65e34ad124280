package main

import (
	"cmp"
	"slices"
	"sort"

	"github.com/sluice-stream/sluice/engine"
)

// appOptions is what an application may read from the command line.
type appOptions struct {
	top     int    // how many records Print shows
	saveDir string // where to save results, "" for nowhere
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
