package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// ForeachSink gives the sink every partition of every batch, empty ones
// included, named by batch time and partition, with the RDD's records.
func TestForeachSinkSeesEveryPartition(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	got := map[string][]string{}
	pairs := MapToPair(QueueStream(h.c, NewQueue([]string{"a", "b", "a"}, nil), true), withOne)
	ReduceByKey(pairs, addInt).ForeachSink(SinkFunc[Pair[string, int]](
		func(_ context.Context, p SinkPartition, recs []Pair[string, int]) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				got[p.String()] = append(got[p.String()], r.String())
			}
			if len(recs) == 0 {
				got[p.String()] = []string{}
			}
			return nil
		}))
	h.start()
	h.run(2)
	part := newPartitioner[string](2)
	want := map[string][]string{
		fmt.Sprintf("batch 1000 ms partition %d/2", part.of("a")): {"(a,2)"},
		fmt.Sprintf("batch 1000 ms partition %d/2", part.of("b")): {"(b,1)"},
		"batch 2000 ms partition 0/2":                             {},
		"batch 2000 ms partition 1/2":                             {},
	}
	if part.of("a") == part.of("b") {
		want[fmt.Sprintf("batch 1000 ms partition %d/2", part.of("a"))] = []string{"(a,2)", "(b,1)"}
		want[fmt.Sprintf("batch 1000 ms partition %d/2", 1-part.of("a"))] = []string{}
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sink got %v\nwant %v", got, want)
	}
}

func addInt(a, b int) int { return a + b }

// FileSink commits a (batch, partition) once: a second Write of the same
// partition, as a re-run makes, leaves the first file as it was.
func TestFileSinkWritesEachPartitionOnce(t *testing.T) {
	dir := t.TempDir()
	s := &FileSink[string]{Dir: dir}
	p := SinkPartition{Time: 3000, Partition: 1, Partitions: 2}
	if err := s.Write(context.Background(), p, []string{"x", "y"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), p, []string{"other"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "batch-3000", "part-00001"))
	if err != nil || string(b) != "x\ny\n" {
		t.Fatalf("part-00001 = %q, %v; want the first write, \"x\\ny\\n\"", b, err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "batch-3000", ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// A sink that fails in batch 2 fails the batch and stops the context; a
// new context on the same data directory re-runs batch 2 from the same
// blocks and state. The file sink then holds every (batch, partition)
// once, with exactly what an uninterrupted run writes, and the partitions
// committed before the failure are not written again.
func TestFileSinkExactlyOnceAcrossAFailedBatch(t *testing.T) {
	run := func(t *testing.T, failAt Time) string {
		dataDir, outDir := t.TempDir(), t.TempDir()
		var writes sync.Map // SinkPartition → count of committing writes
		build := func(h *harness, fail bool) {
			counts := UpdateStateByKey(MapToPair(FlatMap(IngestStream(h.c, "lines"), strings.Fields), withOne), runningSum)
			fs := &FileSink[Pair[string, int]]{Dir: outDir}
			failed := false
			counts.ForeachSink(SinkFunc[Pair[string, int]](func(ctx context.Context, p SinkPartition, recs []Pair[string, int]) error {
				if fail && p.Time == failAt && p.Partition == 1 && !failed {
					failed = true
					return errors.New("sink unavailable")
				}
				if _, err := os.Stat(filepath.Join(outDir, fmt.Sprintf("batch-%d", int64(p.Time)), fmt.Sprintf("part-%05d", p.Partition))); err == nil {
					return fs.Write(ctx, p, recs)
				}
				n, _ := writes.LoadOrStore(p, new(int))
				*n.(*int)++
				return fs.Write(ctx, p, recs)
			}))
		}
		h := newDurableHarness(t, dataDir)
		build(h, failAt > 0)
		h.start()
		for i, line := range []string{"a b", "b c", "c d"} {
			mustIngest(t, h.c, "p", uint64(i+1), line)
			b := h.step()
			if b.Err != nil {
				if b.Time != failAt {
					t.Fatalf("batch %v failed: %v", b.Time, b.Err)
				}
				h.c.Stop(context.Background(), false)
				h2 := newDurableHarness(t, dataDir)
				build(h2, false)
				h2.clock.Set(time.UnixMilli(int64(b.Time)))
				h2.start()
				h2.waitBatches(1) // batch failAt, re-run
				h = h2
			}
		}
		writes.Range(func(k, v any) bool {
			if *v.(*int) != 1 {
				t.Errorf("%v committed %d times", k, *v.(*int))
			}
			return true
		})
		return dumpDir(t, outDir)
	}
	want := run(t, 0)
	if got := run(t, 2000); got != want {
		t.Errorf("with a failed batch the sink holds\n%s\nwant\n%s", got, want)
	}
}

// dumpDir lists every file under dir with its content, sorted.
func dumpDir(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out = append(out, fmt.Sprintf("%s: %q", rel, b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// A batch with no partitions at all (an input stream's empty batch) still
// reaches the sink, as one empty partition, so a sink that records the
// batches it committed hears of every batch.
func TestForeachSinkHearsOfAnEmptyUnpartitionedBatch(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	var got []string
	QueueStream(h.c, NewQueue([]string{"a"}), true).ForeachSink(SinkFunc[string](
		func(_ context.Context, p SinkPartition, recs []string) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, fmt.Sprintf("%v %v", p, recs))
			return nil
		}))
	h.start()
	h.run(2)
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"batch 1000 ms partition 0/1 [a]", "batch 2000 ms partition 0/1 []"}; !slices.Equal(got, want) {
		t.Errorf("sink calls %q, want %q", got, want)
	}
}
