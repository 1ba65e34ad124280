package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// The tests run the job's own graph and receiver on a manual clock, a
// batch a second, and compare what it counted with a recount of the
// clicks its seed makes: every click counted once, in the state, in the
// files of the sink and on the HTTP endpoint, across a restart too.

const testClicks = 300

func testOptions(t *testing.T) options {
	return options{dataDir: t.TempDir(), out: t.TempDir(), batch: time.Second, seed: 7,
		clicks: testClicks, perTick: 40, tick: time.Second, partitions: 3}
}

// recount counts the pages of the first n clicks of seed, as the job
// should.
func recount(seed, n uint64) map[string]int64 {
	want := map[string]int64{}
	for i := range n {
		_, page, _ := strings.Cut(click(seed, i), " ")
		want[page]++
	}
	return want
}

// testJob is the job running on a manual clock.
type testJob struct {
	t     *testing.T
	c     *engine.Context
	clock *engine.ManualClock
	done  chan engine.BatchInfo
}

type batchListener struct {
	engine.NopListener
	done chan<- engine.BatchInfo
}

func (l batchListener) OnBatchCompleted(b engine.BatchInfo) { l.done <- b }

func startTestJob(t *testing.T, o options, clock *engine.ManualClock) *testJob {
	t.Helper()
	c, err := newJob(o, clock, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	j := &testJob{t: t, c: c, clock: clock, done: make(chan engine.BatchInfo, 64)}
	c.AddListener(batchListener{done: j.done})
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background(), false) })
	return j
}

// next moves the clock a batch on and waits for the batch of the new
// time, or for stopped to say the context stopped; it reports whether it
// stopped. It waits for that batch by its time, since a restarted job
// also runs, on its own, the batch times it missed while it was down.
func (j *testJob) next(stopped <-chan error) bool {
	j.t.Helper()
	j.clock.Advance(time.Second)
	target := engine.TimeOf(j.clock.Now())
	timeout := time.After(10 * time.Second)
	for {
		select {
		case b := <-j.done:
			if b.Err != nil {
				j.t.Fatalf("batch %v failed: %v", b.Time, b.Err)
			}
			if b.Time >= target {
				return false
			}
		case err := <-stopped:
			if err != nil {
				j.t.Fatalf("graceful stop: %v", err)
			}
			return true
		case <-timeout:
			j.t.Fatalf("batch %v did not complete within 10s", target)
		}
	}
}

// total is the sum of the committed page totals.
func (j *testJob) total() int64 {
	j.t.Helper()
	top, _, err := j.c.TopState("pages", len(pages))
	if err != nil {
		j.t.Fatal(err)
	}
	var sum int64
	for _, sv := range top {
		sum += sv.Value.(int64)
	}
	return sum
}

// runUntilCounted runs batches until the totals reach want clicks, and
// one more, in which nothing may change.
func (j *testJob) runUntilCounted(want int64) {
	j.t.Helper()
	for range 30 {
		j.next(nil)
		if j.total() >= want {
			j.next(nil)
			if got := j.total(); got != want {
				j.t.Fatalf("%d clicks counted, want %d", got, want)
			}
			return
		}
	}
	j.t.Fatalf("after 30 batches %d clicks counted, want %d", j.total(), want)
}

// stopGracefully stops the job, moving the clock on while it waits for
// the batches that hold what was received.
func (j *testJob) stopGracefully() {
	j.t.Helper()
	stopped := make(chan error, 1)
	go func() { stopped <- j.c.Stop(context.Background(), true) }()
	for !j.next(stopped) {
	}
}

// checkTotals compares the state, through Go and through the HTTP
// endpoint, with want.
func checkTotals(t *testing.T, c *engine.Context, want map[string]int64) {
	t.Helper()
	for page, n := range want {
		sv, err := c.QueryState("pages", page)
		if err != nil || sv.Value != n {
			t.Errorf("QueryState(pages, %s) = %v, %v; want %d", page, sv.Value, err, n)
		}
	}
	srv := httptest.NewServer(stateAPI(c))
	defer srv.Close()
	var one struct{ Key, Value any }
	if code := getJSON(t, srv.URL+"/pages/home", &one); code != 200 || one.Key != "home" || one.Value != float64(want["home"]) {
		t.Errorf("GET /pages/home = %d %+v, want 200 home=%d", code, one, want["home"])
	}
	if code := getJSON(t, srv.URL+"/pages/nowhere", &one); code != http.StatusNotFound {
		t.Errorf("GET /pages/nowhere = %d, want 404", code)
	}
	byViews := slices.SortedFunc(maps.Keys(want), func(a, b string) int {
		return cmp.Or(cmp.Compare(want[b], want[a]), cmp.Compare(a, b))
	})
	var top struct {
		Pages []struct {
			Key   string
			Value int64
		}
	}
	if code := getJSON(t, srv.URL+"/top?n=2", &top); code != 200 || len(top.Pages) != 2 ||
		top.Pages[0].Key != byViews[0] || top.Pages[1].Key != byViews[1] ||
		top.Pages[0].Value != want[byViews[0]] || top.Pages[1].Value != want[byViews[1]] {
		t.Errorf("GET /top?n=2 = %d %+v, want %s=%d then %s=%d", code, top.Pages,
			byViews[0], want[byViews[0]], byViews[1], want[byViews[1]])
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}

// sinkTotals sums the page views of every file the sink committed, and
// fails on a temporary file left behind.
func sinkTotals(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !strings.HasPrefix(d.Name(), "part-") {
			t.Errorf("the sink left %s", path)
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		for sc := bufio.NewScanner(f); sc.Scan(); {
			page, n, _ := strings.Cut(sc.Text(), "\t")
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Errorf("%s: line %q is not page<TAB>count", path, sc.Text())
			}
			got[page] += v
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Every click of the seed is counted once: in the state named "pages",
// on the HTTP endpoint, and in the sum of the per-batch files.
func TestCountsEveryClickOnce(t *testing.T) {
	o := testOptions(t)
	j := startTestJob(t, o, engine.NewManualClock(time.UnixMilli(0)))
	j.runUntilCounted(testClicks)
	want := recount(o.seed, testClicks)
	checkTotals(t, j.c, want)
	if got := sinkTotals(t, o.out); !maps.Equal(got, want) {
		t.Errorf("the sink's files add up to %v, want %v", got, want)
	}
}

// A graceful stop part way and a restart over the same data directory
// count every click once: the state comes back, and the generator
// resumes after the last click it stored (Position); a click stored
// again would be dropped as a duplicate of its position (StoreAt). With
// Store instead of StoreAt, the clicks of the first run are counted twice.
func TestRestartResumesWithoutCountingTwice(t *testing.T) {
	o := testOptions(t)
	clock := engine.NewManualClock(time.UnixMilli(0))
	first := startTestJob(t, o, clock)
	first.next(nil)
	first.next(nil)
	first.stopGracefully()
	if n := first.c.Receivers()[0].Records; n == 0 || n >= testClicks {
		t.Fatalf("the first run stored %d clicks; the test needs a run stopped part way", n)
	}

	second := startTestJob(t, o, clock)
	second.runUntilCounted(testClicks)
	want := recount(o.seed, testClicks)
	checkTotals(t, second.c, want)
	if got := sinkTotals(t, o.out); !maps.Equal(got, want) {
		t.Errorf("the sink's files of both runs add up to %v, want %v", got, want)
	}
}
