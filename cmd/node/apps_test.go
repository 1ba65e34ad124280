package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// The tests of this file run each built-in application in-process, end to
// end: the app's own graph (apps[name].build) over a queue of known lines,
// batch by batch on a manual clock, checking what it prints and saves and
// what the state API answers against values worked out by hand.

// appRun is one built-in application running in-process.
type appRun struct {
	t     *testing.T
	c     *engine.Context
	clock *engine.ManualClock
	q     *engine.Queue[string]
	out   *syncBuffer
	done  chan engine.BatchInfo
	save  string // the app's save directory
}

// batchListener hands every completed batch to a channel.
type batchListener struct {
	engine.NopListener
	done chan<- engine.BatchInfo
}

func (l batchListener) OnBatchCompleted(b engine.BatchInfo) { l.done <- b }

// startApp builds the application name with o (its batch set to a second
// and its save directory to a fresh one) over a queue stream, with two
// partitions so that keys are shuffled, and starts it on a manual clock
// at 0: the first batch is at 1000 ms.
func startApp(t *testing.T, name string, o appOptions) *appRun {
	t.Helper()
	r := &appRun{t: t, clock: engine.NewManualClock(time.UnixMilli(0)), q: engine.NewQueue[string](),
		out: &syncBuffer{}, done: make(chan engine.BatchInfo, 64), save: t.TempDir()}
	c, err := engine.NewContext(engine.Config{
		AppName: name, BatchDuration: time.Second, Partitions: 2, Clock: r.clock, Stdout: r.out,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	o.batch, o.saveDir = time.Second, r.save
	apps[name].build(c, engine.QueueStream(c, r.q, true), o)
	c.AddListener(batchListener{done: r.done})
	if err := c.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() { c.Stop(context.Background(), false) })
	return r
}

// batch runs the next batch over lines, waiting for it by its time, and
// returns what it printed.
func (r *appRun) batch(lines ...string) string {
	r.t.Helper()
	before := len(r.out.String())
	r.q.Push(lines)
	r.clock.Advance(time.Second)
	target := engine.TimeOf(r.clock.Now())
	timeout := time.After(10 * time.Second)
	for {
		select {
		case b := <-r.done:
			if b.Err != nil {
				r.t.Fatalf("batch %v failed: %v", b.Time, b.Err)
			}
			if b.Time >= target {
				return r.out.String()[before:]
			}
		case <-timeout:
			r.t.Fatalf("batch %v did not complete within 10s", target)
		}
	}
}

// printed is what Print shows for batch ms with records.
func printed(ms int64, records ...string) string {
	var b strings.Builder
	rule := strings.Repeat("-", 43)
	b.WriteString(rule + "\nTime: " + engine.Time(ms).String() + "\n" + rule + "\n")
	for _, r := range records {
		b.WriteString(r + "\n")
	}
	return b.String() + "\n"
}

// saved returns the lines of every part file that SaveAsTextFiles wrote
// for prefix at batch ms, sorted (partition order is the hash's).
func (r *appRun) saved(prefix string, ms int64) []string {
	r.t.Helper()
	dir := filepath.Join(r.save, prefix+"-"+strconv.FormatInt(ms, 10))
	if _, err := os.Stat(filepath.Join(dir, "_SUCCESS")); err != nil {
		r.t.Fatalf("batch %d was not saved whole under %s: %v", ms, prefix, err)
	}
	parts, err := filepath.Glob(filepath.Join(dir, "part-*"))
	if err != nil {
		r.t.Fatal(err)
	}
	lines := []string{}
	for _, p := range parts {
		data, err := os.ReadFile(p)
		if err != nil {
			r.t.Fatal(err)
		}
		for l := range strings.Lines(string(data)) {
			lines = append(lines, strings.TrimSuffix(l, "\n"))
		}
	}
	slices.Sort(lines)
	return lines
}

// wordcount counts every word since the start (UpdateStateByKey named
// "wordcount"), prints the top counts of each batch, largest first and
// ties by word, with "..." when there are more, and saves every count.
// An empty batch changes nothing: the counts and their update times stay.
func TestWordCountApp(t *testing.T) {
	r := startApp(t, "wordcount", appOptions{top: 3})
	steps := []struct {
		lines []string
		want  string
	}{
		{[]string{"the cat the hat"}, printed(1000, "(the,2)", "(cat,1)", "(hat,1)")},
		{[]string{"the dog", "a  cat\t"}, printed(2000, "(the,3)", "(cat,2)", "(a,1)", "...")},
		{nil, printed(3000, "(the,3)", "(cat,2)", "(a,1)", "...")},
	}
	for _, s := range steps {
		if got := r.batch(s.lines...); got != s.want {
			t.Fatalf("the batch over %q printed:\n%s\nwant:\n%s", s.lines, got, s.want)
		}
	}
	if got, want := r.saved("counts", 3000), []string{"(a,1)", "(cat,2)", "(dog,1)", "(hat,1)", "(the,3)"}; !slices.Equal(got, want) {
		t.Errorf("counts-3000 holds %q, want every count %q", got, want)
	}

	for _, q := range []struct {
		key            string
		value          int64
		updated, batch engine.Time
	}{
		{"the", 3, 2000, 3000},
		{"hat", 1, 1000, 3000}, // not counted since the first batch
	} {
		sv, err := r.c.QueryState("wordcount", q.key)
		if err != nil {
			t.Fatalf("QueryState(wordcount, %q): %v", q.key, err)
		}
		if sv.Value != q.value || sv.Updated != q.updated || sv.Batch != q.batch {
			t.Errorf("QueryState(wordcount, %q) = value %v updated %v as of %v, want %d updated %v as of %v",
				q.key, sv.Value, sv.Updated, sv.Batch, q.value, q.updated, q.batch)
		}
	}
	if _, err := r.c.QueryState("wordcount", "zebra"); !errors.Is(err, engine.ErrUnknownKey) {
		t.Errorf("QueryState of a word never seen: %v, want ErrUnknownKey", err)
	}
	top, asOf, err := r.c.TopState("wordcount", 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := stateKVs(top); asOf != 3000 || !slices.Equal(got, []string{"the=3", "cat=2"}) {
		t.Errorf("TopState(wordcount, 2) = %v as of %v, want [the=3 cat=2] as of 3000 ms", got, asOf)
	}
}

// windowed-top counts words over the last 3 batches, sliding a batch at a
// time with the inverse function: a batch's words leave the window 3
// batches later, and a word whose count falls to 0 is dropped.
func TestWindowedTopApp(t *testing.T) {
	r := startApp(t, "windowed-top", appOptions{top: 10})
	steps := []struct {
		lines []string
		want  string
	}{
		{[]string{"a b a"}, printed(1000, "(a,2)", "(b,1)")},
		{[]string{"b c"}, printed(2000, "(a,2)", "(b,2)", "(c,1)")},
		{[]string{"c"}, printed(3000, "(a,2)", "(b,2)", "(c,2)")},
		{nil, printed(4000, "(c,2)", "(b,1)")}, // 1000 left: a falls to 0
		{nil, printed(5000, "(c,1)")},          // 2000 left: b falls to 0
		{nil, printed(6000)},                   // 3000 left: the window is empty
		{[]string{"a"}, printed(7000, "(a,1)")},
	}
	for _, s := range steps {
		if got := r.batch(s.lines...); got != s.want {
			t.Fatalf("the batch over %q printed:\n%s\nwant:\n%s", s.lines, got, s.want)
		}
	}
	if got, want := r.saved("window", 4000), []string{"(b,1)", "(c,2)"}; !slices.Equal(got, want) {
		t.Errorf("window-4000 holds %q, want %q (a, at 0, dropped)", got, want)
	}
	if got := r.saved("window", 6000); len(got) != 0 {
		t.Errorf("window-6000 holds %q, want nothing: every word left the window", got)
	}
	// The window's counts are remembered batch slices, not keyed state:
	// the state API does not list them. Should it, this test is to say
	// what it answers.
	if ops := r.c.StateOperators(); len(ops) != 0 {
		t.Errorf("windowed-top's state operators: %+v, want none", ops)
	}
	if _, err := r.c.QueryState("window-counts", "a"); !errors.Is(err, engine.ErrUnknownOperator) {
		t.Errorf("QueryState(window-counts, a): %v, want ErrUnknownOperator", err)
	}
}

// sessions keeps a session per user (MapWithState named "sessions") and
// ends it when the user has not clicked for the timeout, 3 batches by
// default, measured in batch time: a session last clicked at batch u
// ends at the first batch t with u < t - 3s, and is printed and saved
// then with its clicks and distinct consecutive pages. A click refreshes
// the session; lines that are not "user page" are skipped.
func TestSessionsApp(t *testing.T) {
	r := startApp(t, "sessions", appOptions{top: 10})
	alice := "alice start=1000 last=2000 clicks=3 pages=2"
	bob := "bob start=1000 last=4000 clicks=2 pages=2"
	steps := []struct {
		lines []string
		ended []string
	}{
		{[]string{"alice /home", "bob /home", "garbage", " carol"}, nil}, // 1000
		{[]string{"alice /cart", "alice /cart"}, nil},                    // 2000
		{nil, nil},                    // 3000
		{[]string{"bob /about"}, nil}, // 4000: bob's session goes on
		{nil, nil},                    // 5000: alice idle 3s, not more
		{nil, []string{alice}},        // 6000: alice idle more than 3s
		{nil, nil},                    // 7000
		{nil, []string{bob}},          // 8000
		{nil, nil},                    // 9000: ended sessions are gone
	}
	for i, s := range steps {
		ms := int64(i+1) * 1000
		if got, want := r.batch(s.lines...), printed(ms, s.ended...); got != want {
			t.Fatalf("batch %d ms over %q printed:\n%s\nwant:\n%s", ms, s.lines, got, want)
		}
		if got := r.saved("sessions", ms); !slices.Equal(got, s.ended) {
			t.Errorf("sessions-%d holds %q, want %q", ms, got, s.ended)
		}
		if ms == 5000 {
			checkOpenSession(t, r.c, "alice", session{Start: 1000, Last: 2000, Clicks: 3, Pages: 2, LastPage: "/cart"}, 2000)
			checkOpenSession(t, r.c, "bob", session{Start: 1000, Last: 4000, Clicks: 2, Pages: 2, LastPage: "/about"}, 4000)
		}
	}
	for _, user := range []string{"alice", "bob", "garbage", "carol"} {
		if sv, err := r.c.QueryState("sessions", user); !errors.Is(err, engine.ErrUnknownKey) {
			t.Errorf("QueryState(sessions, %s) after every session ended = %+v, %v; want ErrUnknownKey", user, sv, err)
		}
	}
	if _, _, err := r.c.TopState("sessions", 1); !errors.Is(err, engine.ErrNotOrdered) {
		t.Errorf("TopState of sessions: %v, want ErrNotOrdered (a session is not a number)", err)
	}
}

func checkOpenSession(t *testing.T, c *engine.Context, user string, want session, updated engine.Time) {
	t.Helper()
	sv, err := c.QueryState("sessions", user)
	if err != nil {
		t.Fatalf("QueryState(sessions, %s): %v", user, err)
	}
	if !reflect.DeepEqual(sv.Value, want) || sv.Updated != updated {
		t.Errorf("QueryState(sessions, %s) = %+v updated %v, want %+v updated %v", user, sv.Value, sv.Updated, want, updated)
	}
}

// stateKVs renders state values as key=value.
func stateKVs(svs []engine.StateValue) []string {
	out := make([]string, len(svs))
	for i, sv := range svs {
		out[i] = fmt.Sprintf("%v=%v", sv.Key, sv.Value)
	}
	return out
}
