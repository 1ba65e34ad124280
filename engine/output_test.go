package engine

// Output operations (Print, SaveAsTextFiles, ForeachRDD), failed batches,
// and the errors of a context's life cycle.

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// awaitTermination waits for the context to stop and returns its failure.
func awaitTermination(t *testing.T, h *harness) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := h.c.AwaitTermination(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("the context did not terminate")
	}
	return err
}

// Spark's DStream.print(num): a 43-dash rule, "Time: <ms> ms", the rule,
// the first num records, "..." when there are more, and an empty line;
// the header is printed for an empty batch too.
func TestPrint(t *testing.T) {
	var buf bytes.Buffer
	h := newHarness(t, func(c *Config) { c.Stdout = &buf })
	QueueStream(h.c, NewQueue(ints(1, 5), ints(6, 7), nil, ints(8, 10)), true).Print(3)
	h.start()
	rule := strings.Repeat("-", 43)
	header := func(ms string) string { return rule + "\nTime: " + ms + " ms\n" + rule + "\n" }
	want := []string{
		header("1000") + "1\n2\n3\n...\n\n", // more than 3 records, across both partitions
		header("2000") + "6\n7\n\n",
		header("3000") + "\n",
		header("4000") + "8\n9\n10\n\n", // exactly 3: no "..."
	}
	for i, w := range want {
		h.run(1)
		if got := buf.String(); got != w {
			t.Errorf("batch %d printed\n%q\nwant\n%q", i+1, got, w)
		}
		buf.Reset()
	}
}

// Print prints records as Spark prints them: a pair as "(k,v)".
func TestPrintPairs(t *testing.T) {
	var buf bytes.Buffer
	h := newHarness(t, func(c *Config) { c.Stdout = &buf })
	MapToPair(QueueStream(h.c, NewQueue([]string{"a", "b"}), true), withOne).Print(10)
	h.start()
	h.run(1)
	rule := strings.Repeat("-", 43)
	if want := rule + "\nTime: 1000 ms\n" + rule + "\n(a,1)\n(b,1)\n\n"; buf.String() != want {
		t.Errorf("printed\n%q\nwant\n%q", buf.String(), want)
	}
}

// readTree returns every file under dir, by slash path, with its content.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func checkTree(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	got := readTree(t, dir)
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("%s = %q (present %v), want %q", name, g, ok, w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected file %s", name)
		}
	}
}

// Spark's saveAsTextFiles: a directory "<prefix>-<ms>" or
// "<prefix>-<ms>.<suffix>" per batch, a part-NNNNN file per partition with
// a record per line, and _SUCCESS. An empty batch has no partitions here,
// so its directory holds only _SUCCESS (Spark writes an empty part file
// per partition of the empty RDD). No temporary is left behind.
func TestSaveAsTextFiles(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t)
	ds := QueueStream(h.c, NewQueue(ints(1, 4), nil, []int{5}), true)
	ds.SaveAsTextFiles(filepath.Join(dir, "out"), "")
	ds.SaveAsTextFiles(filepath.Join(dir, "nums"), "txt")
	h.start()
	h.run(3)
	checkTree(t, dir, map[string]string{
		"out-1000/part-00000":      "1\n2\n",
		"out-1000/part-00001":      "3\n4\n",
		"out-1000/_SUCCESS":        "",
		"nums-1000.txt/part-00000": "1\n2\n",
		"nums-1000.txt/part-00001": "3\n4\n",
		"nums-1000.txt/_SUCCESS":   "",
		"out-2000/_SUCCESS":        "",
		"nums-2000.txt/_SUCCESS":   "",
		"out-3000/part-00000":      "5\n",
		"out-3000/_SUCCESS":        "",
		"nums-3000.txt/part-00000": "5\n",
		"nums-3000.txt/_SUCCESS":   "",
	})
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"nums-1000.txt", "nums-2000.txt", "nums-3000.txt", "out-1000", "out-2000", "out-3000"}
	if !slices.Equal(names, want) {
		t.Errorf("directory holds %v, want %v", names, want)
	}
}

// A re-run of a batch replaces its directory whole: no part file of the
// first run survives, and a temporary left by a crash is discarded.
func TestSaveTextDirRerunReplacesDirectory(t *testing.T) {
	dir := t.TempDir()
	final := batchDirName(filepath.Join(dir, "out"), "", 1000)
	b := &batchRun{t: 1000, exec: newExecutor(2)}
	if err := saveTextDir(b, "#1 saveAsTextFiles", final, materialized([][]string{{"a"}, {"b"}, {"c"}})); err != nil {
		t.Fatal(err)
	}
	checkTree(t, dir, map[string]string{
		"out-1000/part-00000": "a\n", "out-1000/part-00001": "b\n", "out-1000/part-00002": "c\n", "out-1000/_SUCCESS": "",
	})
	stale := filepath.Join(dir, ".out-1000.tmp")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "part-00009"), []byte("torn"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := saveTextDir(b, "#1 saveAsTextFiles", final, materialized([][]string{{"x", "y"}})); err != nil {
		t.Fatal(err)
	}
	checkTree(t, dir, map[string]string{"out-1000/part-00000": "x\ny\n", "out-1000/_SUCCESS": ""})
}

// An error from a ForeachRDD function fails the batch (BatchInfo.Err),
// stops the context, and is what AwaitTermination returns, as Spark's
// StreamingContext.awaitTermination rethrows a job's exception.
func TestForeachRDDErrorFailsBatch(t *testing.T) {
	h := newHarness(t)
	errSink := errors.New("sink unavailable")
	QueueStream(h.c, NewQueue([]int{1}, []int{2}), true).ForeachRDD(func(bt Time, _ RDD[int]) error {
		if bt == 2000 {
			return errSink
		}
		return nil
	})
	h.start()
	h.run(1)
	b := h.step()
	var te *TaskError
	if !errors.As(b.Err, &te) || !errors.Is(b.Err, errSink) {
		t.Fatalf("batch %v: err %v, want a *TaskError wrapping %v", b.Time, b.Err, errSink)
	}
	if te.Time != 2000 || te.Operator != "#1 foreachRDD" || te.Partition != -1 {
		t.Errorf("got %+v, want time 2000 ms, operator #1 foreachRDD, partition -1", te)
	}
	err := awaitTermination(t, h)
	if !errors.Is(err, errSink) || !strings.Contains(err.Error(), "batch 2000 ms failed") {
		t.Errorf("AwaitTermination = %v, want batch 2000 ms failed with %v", err, errSink)
	}
}

// A user function that panics inside a task fails the batch with a
// *TaskError that says where: the operator, the partition, the panic
// value, and a stack that goes through the user's function (here, this
// test). The process does not crash: the panic is recovered in the task.
func TestTaskPanicFailsBatch(t *testing.T) {
	h := newHarness(t)
	record(Map(QueueStream(h.c, NewQueue(ints(1, 4)), true), func(v int) int {
		if v == 3 { // in partition 1: [1 2] [3 4]
			panic("bad record 3")
		}
		return v
	}))
	h.start()
	b := h.step()
	var te *TaskError
	if !errors.As(b.Err, &te) {
		t.Fatalf("batch %v: err %v, want a *TaskError", b.Time, b.Err)
	}
	if te.Time != 1000 || te.Operator != "#1 map" || te.Partition != 1 || te.Panic != "bad record 3" {
		t.Errorf("got time %v operator %q partition %d panic %v, want 1000 ms, #1 map, 1, bad record 3",
			te.Time, te.Operator, te.Partition, te.Panic)
	}
	if !strings.Contains(te.Stack, "TestTaskPanicFailsBatch") {
		t.Errorf("stack does not show the user function:\n%s", te.Stack)
	}
	want := "engine: batch 1000 ms, operator #1 map, partition 1: panic: bad record 3"
	if err := awaitTermination(t, h); !errors.As(err, &te) || !strings.Contains(err.Error(), want) {
		t.Errorf("AwaitTermination = %v, want a *TaskError %q", err, want)
	}
}

// An error returned by a Transform function fails the batch, like any
// driver-side function (partition -1).
func TestTransformErrorFailsBatch(t *testing.T) {
	h := newHarness(t)
	errBad := errors.New("bad batch")
	record(Transform(QueueStream(h.c, NewQueue([]int{1}), true), func(Time, RDD[int]) (RDD[int], error) {
		return RDD[int]{}, errBad
	}))
	h.start()
	b := h.step()
	var te *TaskError
	if !errors.As(b.Err, &te) || !errors.Is(b.Err, errBad) || te.Operator != "#1 transform" || te.Partition != -1 {
		t.Fatalf("batch %v: err %v (%+v), want a *TaskError of #1 transform, partition -1, wrapping %v", b.Time, b.Err, te, errBad)
	}
	if err := awaitTermination(t, h); !errors.Is(err, errBad) {
		t.Errorf("AwaitTermination = %v, want %v", err, errBad)
	}
}

// Start with no output operation fails: nothing would run (Spark's "No
// output operations registered, so nothing to execute").
func TestStartWithoutOutputs(t *testing.T) {
	h := newHarness(t)
	Map(QueueStream(h.c, NewQueue[int](), true), func(v int) int { return v })
	if err := h.c.Start(); !errors.Is(err, ErrNoOutputs) {
		t.Fatalf("Start = %v, want ErrNoOutputs", err)
	}
}

// The graph is fixed at Start: an operator added later is an error that
// names it (Spark: "Adding new inputs, transformations, and output
// operations after starting a context is not supported"); a second Start,
// or a Start after Stop, is refused.
func TestStartedContextRejectsChanges(t *testing.T) {
	h := newHarness(t)
	ds := QueueStream(h.c, NewQueue[int](), true)
	record(ds)
	h.start()
	Map(ds, func(v int) int { return v })
	err := h.c.Validate()
	if !errors.Is(err, ErrStarted) || !strings.Contains(err.Error(), "(adding map)") {
		t.Errorf("Validate after adding an operator = %v, want ErrStarted naming map", err)
	}
	if err := h.c.Start(); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
	if err := h.c.Stop(context.Background(), false); err != nil {
		t.Fatal(err)
	}

	h2 := newHarness(t)
	record(QueueStream(h2.c, NewQueue[int](), true))
	if err := h2.c.Stop(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if err := h2.c.Start(); !errors.Is(err, ErrStopped) {
		t.Errorf("Start after Stop = %v, want ErrStopped", err)
	}
}

// NewContext rejects a bad configuration with the field and its value.
func TestNewContextRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"zero batch", Config{BatchDuration: 0}, "engine: batch duration 0s must be greater than zero"},
		{"negative batch", Config{BatchDuration: -time.Second}, "engine: batch duration -1s must be greater than zero"},
		{"negative partitions", Config{BatchDuration: time.Second, Partitions: -3}, "engine: partition count -3 must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewContext(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewContext = %v, %v; want error %q", c, err, tc.want)
			}
		})
	}
}
