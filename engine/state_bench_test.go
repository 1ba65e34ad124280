package engine

// BenchmarkStateKeys fills the state store of a durable context with many
// keys, a batch at a time, and reports the rate and the memory it took.
// It is long, so it runs only when asked:
//
//	go test ./engine -run XXX -bench BenchmarkStateKeys -benchtime 1x -state.keys=10000000 -timeout 2h
//
// Each sub-benchmark runs in a child process (this test binary, run again)
// so that the peak RSS it reports (the child's rusage) is the engine's and
// not that of the other benchmarks of the run; -state.inprocess measures
// in this process instead.

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	stateBenchKeys      = flag.Int("state.keys", 0, "BenchmarkStateKeys: keys to make (words to count, for the word count); 0 skips it")
	stateBenchBatch     = flag.Int("state.batch", 200_000, "BenchmarkStateKeys: records per batch")
	stateBenchInProcess = flag.Bool("state.inprocess", false, "BenchmarkStateKeys: measure in this process, not in a child")
	stateBenchHeap      = flag.String("state.heapprofile", "", "BenchmarkStateKeys: write a heap profile here after the last batch")
)

// stateBenchChildEnv marks the child process that measures.
const stateBenchChildEnv = "SLUICE_STATE_BENCH_CHILD"

// stateBenchResult is what one measurement found; the child prints it on
// a line of its own after stateBenchPrefix.
type stateBenchResult struct {
	Keys, Records int64
	Batches       int
	Total         time.Duration // ingest and batches, from the first record to the last batch
	FirstBatch    time.Duration // ingest + processing of the first batch
	LastBatch     time.Duration // of the last
	FirstProc     time.Duration // the batch alone, from the clock's tick to its completion
	LastProc      time.Duration
	PeakRSS       int64 // bytes: VmHWM, or the child's rusage
	StateBytes    int64 // DIR/state at the end
	WALBytes      int64
	CheckBytes    int64 // DIR/checkpoints
	DiskBytes     int64 // all of DIR, each file once: checkpoints hard-link the state's tables
}

const stateBenchPrefix = "statebench-result: "

// stateBenchCase is one graph over an ingest stream: build returns a
// function that tells how many keys the state holds after a batch, and
// records returns the records of batch i.
type stateBenchCase struct {
	name    string
	build   func(lines *DStream[string]) func() int64
	records func(i, n int) []string
	keyed   bool // the records are the keys: stop at -state.keys keys
	words   int  // words per record, counted as records (0: a record is one)
}

var stateBenchCases = []stateBenchCase{
	{
		// Every record a new key: the state grows by a batch's records.
		name:  "mapWithState",
		keyed: true,
		build: func(lines *DStream[string]) func() int64 {
			pairs := MapToPair(lines, func(l string) (string, int64) { return l, 1 })
			ms := MapWithState(pairs, StateSpec[string, int64, int64, int64]{
				Function: func(_ Time, _ string, v Option[int64], st *State[int64]) (int64, bool) {
					var n int64
					if st.Exists() {
						n = st.Get()
					}
					st.Update(n + v.Value)
					return 0, false
				},
			})
			return countOutput(ms.DStream, false)
		},
		records: distinctKeys,
	},
	{
		// Word count as the node's app runs it, over 1,000 words: the
		// state stays small and every key changes every batch.
		name:  "updateStateByKey-words",
		words: 10,
		build: func(lines *DStream[string]) func() int64 {
			words := FlatMapEmit(lines, Words)
			pairs := MapToPair(words, func(w string) (string, int64) { return w, 1 })
			counts := ReduceByKey(pairs, func(a, b int64) int64 { return a + b })
			return countOutput(UpdateStateByKey(counts, sumState), true)
		},
		records: vocabularyLines,
	},
	{
		// UpdateStateByKey over distinct keys: it calls its function for
		// every key with state, every batch, so a batch costs the whole
		// state, not the batch.
		name:  "updateStateByKey-distinct",
		keyed: true,
		build: func(lines *DStream[string]) func() int64 {
			pairs := MapToPair(lines, func(l string) (string, int64) { return l, 1 })
			return countOutput(UpdateStateByKey(pairs, sumState), true)
		},
		records: distinctKeys,
	},
}

func sumState(vs []int64, old int64, _ bool) (int64, bool) {
	for _, v := range vs {
		old += v
	}
	return old, true
}

// countOutput makes ds an output; with keys set, the returned function
// reports the records of ds's last batch (the keys, for a state stream).
func countOutput[T any](ds *DStream[T], keys bool) func() int64 {
	var n int64
	if !keys {
		ds.ForeachRDD(func(Time, RDD[T]) error { return nil })
		return func() int64 { return n }
	}
	// Count streams the state's partitions; ForeachRDD would hold every
	// key in memory at once.
	ds.Count().ForeachRDD(func(_ Time, r RDD[int64]) error {
		n = 0
		for _, c := range r.Collect() {
			n += c
		}
		return nil
	})
	return func() int64 { return n }
}

// distinctKeys are n new keys for batch i.
func distinctKeys(i, n int) []string {
	out := make([]string, n)
	for j := range out {
		out[j] = fmt.Sprintf("key-%010d", i*n+j)
	}
	return out
}

// vocabularyLines are lines of 10 words, n words in all, from a
// vocabulary of 1,000: each word counts as a record.
func vocabularyLines(i, n int) []string {
	out := make([]string, 0, n/10)
	var b strings.Builder
	for j := 0; j < n; j += 10 {
		b.Reset()
		for w := range 10 {
			if w > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "w%d", (i*n+j+w*7919)%1000)
		}
		out = append(out, b.String())
	}
	return out
}

func BenchmarkStateKeys(b *testing.B) {
	if *stateBenchKeys <= 0 {
		b.Skip("run with -state.keys=N (e.g. 10000000) and a long -timeout")
	}
	for _, bc := range stateBenchCases {
		b.Run(bc.name, func(b *testing.B) {
			var res stateBenchResult
			for range b.N {
				if os.Getenv(stateBenchChildEnv) != "" || *stateBenchInProcess {
					res = measureState(b, bc)
				} else {
					res = measureStateInChild(b, bc.name)
				}
			}
			if os.Getenv(stateBenchChildEnv) != "" {
				line, _ := json.Marshal(res)
				fmt.Printf("\n%s%s\n", stateBenchPrefix, line)
			}
			reportState(b, res)
		})
	}
}

func reportState(b *testing.B, r stateBenchResult) {
	b.ReportMetric(float64(r.Records)/r.Total.Seconds(), "records/s")
	b.ReportMetric(float64(r.Keys), "keys")
	b.ReportMetric(float64(r.PeakRSS)/(1<<20), "peak-rss-MiB")
	b.ReportMetric(float64(r.StateBytes)/(1<<20), "state-MiB")
	b.ReportMetric(float64(r.WALBytes)/(1<<20), "wal-MiB")
	b.ReportMetric(float64(r.CheckBytes)/(1<<20), "checkpoints-MiB")
	b.ReportMetric(float64(r.DiskBytes)/(1<<20), "disk-MiB")
	b.ReportMetric(float64(r.FirstBatch.Milliseconds()), "first-batch-ms")
	b.ReportMetric(float64(r.LastBatch.Milliseconds()), "last-batch-ms")
	b.ReportMetric(float64(r.LastProc.Milliseconds()), "last-processing-ms")
	b.Logf("%s: %d records, %d keys in %d batches, %v (%.0f records/s); peak RSS %d MiB; "+
		"state %d MiB, wal %d MiB, checkpoints %d MiB, all %d MiB (each file once); first batch %v (processing %v), last %v (processing %v)",
		b.Name(), r.Records, r.Keys, r.Batches, r.Total.Round(time.Millisecond), float64(r.Records)/r.Total.Seconds(),
		r.PeakRSS>>20, r.StateBytes>>20, r.WALBytes>>20, r.CheckBytes>>20, r.DiskBytes>>20,
		r.FirstBatch.Round(time.Millisecond), r.FirstProc.Round(time.Millisecond),
		r.LastBatch.Round(time.Millisecond), r.LastProc.Round(time.Millisecond))
}

// measureStateInChild runs the sub-benchmark name in a child process and
// takes its peak RSS from the child's rusage.
func measureStateInChild(b *testing.B, name string) stateBenchResult {
	b.Helper()
	args := []string{"-test.run=^$", "-test.bench=^BenchmarkStateKeys$/^" + name + "$", "-test.benchtime=1x",
		"-test.timeout=0", "-state.keys=" + strconv.Itoa(*stateBenchKeys), "-state.batch=" + strconv.Itoa(*stateBenchBatch)}
	if *stateBenchHeap != "" {
		args = append(args, "-state.heapprofile="+*stateBenchHeap)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), stateBenchChildEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill() })
	var res stateBenchResult
	found := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), stateBenchPrefix); ok {
			found = json.Unmarshal([]byte(line), &res) == nil
		} else if strings.HasPrefix(sc.Text(), "    ") || strings.Contains(sc.Text(), "batch ") {
			fmt.Println(sc.Text()) // the child's progress
		}
	}
	if err := cmd.Wait(); err != nil || !found {
		b.Fatalf("the child measuring %s: %v (result found: %v)", name, err, found)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.PeakRSS = ru.Maxrss << 10 // kilobytes on Linux
	}
	return res
}

// measureState runs one case in this process.
func measureState(b *testing.B, bc stateBenchCase) stateBenchResult {
	b.Helper()
	dir := b.TempDir()
	h := newHarness(b, func(c *Config) { c.DataDir, c.Partitions, c.Parallelism = dir, 0, 0 })
	keys := bc.build(IngestStream(h.c, "lines"))
	h.start()
	const perRequest = 10_000
	var res stateBenchResult
	var seq uint64
	batchSize := *stateBenchBatch
	batches := (*stateBenchKeys + batchSize - 1) / batchSize
	start := time.Now()
	for i := range batches {
		recs := bc.records(i, min(batchSize, *stateBenchKeys-i*batchSize))
		t0 := time.Now()
		for lo := 0; lo < len(recs); lo += perRequest {
			seq++
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := h.c.Ingest(ctx, "lines", "bench", seq, recs[lo:min(lo+perRequest, len(recs))])
			cancel()
			if err != nil {
				b.Fatalf("ingest: %v", err)
			}
		}
		proc := stepLong(b, h)
		took := time.Since(t0)
		res.Batches++
		res.Records += int64(len(recs) * max(bc.words, 1))
		if bc.keyed {
			res.Keys += int64(len(recs))
		} else {
			res.Keys = keys()
		}
		if i == 0 {
			res.FirstBatch, res.FirstProc = took, proc
		}
		res.LastBatch, res.LastProc = took, proc
		if i%10 == 0 || i == batches-1 {
			rss, _ := procStatus("VmRSS")
			fmt.Printf("    %s batch %d: %d keys, ingest+batch %v, processing %v, rss %d MiB\n",
				bc.name, i+1, res.Keys, took.Round(time.Millisecond), proc.Round(time.Millisecond), rss>>20)
		}
	}
	res.Total = time.Since(start)
	if bc.keyed {
		if got := keys(); got != 0 && got != res.Keys {
			b.Fatalf("the state holds %d keys, want %d", got, res.Keys)
		}
	}
	if *stateBenchHeap != "" {
		writeHeapProfile(b, *stateBenchHeap+"."+bc.name)
	}
	res.PeakRSS, _ = procStatus("VmHWM")
	res.StateBytes = treeBytes(filepath.Join(dir, "state"), nil)
	res.WALBytes = treeBytes(filepath.Join(dir, "wal"), nil)
	res.CheckBytes = treeBytes(filepath.Join(dir, "checkpoints"), nil)
	res.DiskBytes = treeBytes(dir, map[uint64]bool{})
	return res
}

// stepLong is harness.step with no bound but the test's (late batches of
// a large state take long). It returns the batch's wall time: the
// batch's own times are read from the manual clock, which stands still.
func stepLong(b *testing.B, h *harness) time.Duration {
	b.Helper()
	start := time.Now()
	h.clock.Advance(h.c.cfg.BatchDuration)
	info := <-h.done
	if info.Err != nil {
		b.Fatalf("batch %v: %v", info.Time, info.Err)
	}
	return time.Since(start)
}

func writeHeapProfile(b *testing.B, path string) {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// procStatus reads a field of /proc/self/status in bytes (0 where there
// is none).
func procStatus(field string) (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// treeBytes sums the sizes of the regular files under dir; with seen, a
// file with several links (a checkpoint's hard link of a state table) is
// counted once.
func treeBytes(dir string, seen map[uint64]bool) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && seen != nil {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		n += info.Size()
		return nil
	})
	return n
}
