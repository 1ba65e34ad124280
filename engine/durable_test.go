package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-stream/sluice/recovery"
	"github.com/sluice-stream/sluice/wal"
)

// Tests of reliable ingest on a data directory (ARCHITECTURE.md §5): what
// Context.Ingest and ReceiverOutput.Store acknowledge is in the WAL and
// the metadata log, is counted once however often a producer retries,
// survives a restart, and is deleted once no batch will read it again.

// newDurableHarness is a harness on the manual clock whose context keeps
// its logs in dir.
func newDurableHarness(t *testing.T, dir string, mod ...func(*Config)) *harness {
	t.Helper()
	return newHarness(t, append([]func(*Config){func(c *Config) { c.DataDir = dir }}, mod...)...)
}

// ingest calls c.Ingest with a deadline.
func ingest(c *Context, producer string, seq uint64, records ...string) (IngestResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return c.Ingest(ctx, "lines", producer, seq, records)
}

// mustIngest ingests records and fails the test unless they were stored
// now (not a duplicate).
func mustIngest(t *testing.T, c *Context, producer string, seq uint64, records ...string) {
	t.Helper()
	res, err := ingest(c, producer, seq, records...)
	if err != nil || res.Duplicate || res.Records != len(records) {
		t.Fatalf("Ingest(%s, %d) = %+v, %v; want %d records stored", producer, seq, res, err, len(records))
	}
}

// walBlocks counts the blocks in c's write-ahead log.
func walBlocks(t *testing.T, c *Context) int {
	t.Helper()
	n := 0
	if err := c.storage.blocks.Iterate(func(wal.Block) error { n++; return nil }); err != nil {
		t.Fatalf("iterating the WAL: %v", err)
	}
	return n
}

// storedRecords is what c's receivers report stored durably.
func storedRecords(c *Context) int64 {
	var n int64
	for _, ri := range c.Receivers() {
		n += ri.Records
	}
	return n
}

// waitBatches waits for n batches to complete without moving the clock
// (batches due already, such as those missed while no context ran).
func (h *harness) waitBatches(n int) []BatchInfo {
	h.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	var out []BatchInfo
	for len(out) < n {
		select {
		case b := <-h.done:
			if b.Err != nil {
				h.t.Fatalf("batch %v: %v", b.Time, b.Err)
			}
			out = append(out, b)
		case <-deadline.C:
			h.t.Fatalf("%d of %d batches completed in %v", len(out), n, waitTimeout)
		}
	}
	return out
}

// checkOnce fails unless got holds exactly want, in that order.
func checkOnce(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: records %q, want each of %q exactly once, in order", what, got, want)
	}
}

// TestDurableIngestDeduplicates checks the idempotent producer: a request
// (producer, seq) is stored once however often it is retried, before or
// after its batch ran; a lower sequence never stored is rejected, with
// the reason; nothing refused reaches the WAL or a batch.
func TestDurableIngestDeduplicates(t *testing.T) {
	h := newDurableHarness(t, t.TempDir())
	out := collectRecords(IngestStream(h.c, "lines"))
	h.start()
	steps := []struct {
		name     string
		producer string
		seq      uint64
		records  []string
		run      bool  // run one batch instead of ingesting
		wantDup  bool  // acknowledged as stored before
		wantErr  error // refused
		blocks   int   // WAL blocks afterwards
	}{
		{name: "first request", producer: "p", seq: 1, records: []string{"a", "b"}, blocks: 1},
		{name: "second request", producer: "p", seq: 2, records: []string{"c"}, blocks: 2},
		{name: "retry of the first", producer: "p", seq: 1, records: []string{"a", "b"}, wantDup: true, blocks: 2},
		{name: "retry of the last", producer: "p", seq: 2, records: []string{"c"}, wantDup: true, blocks: 2},
		{name: "batch", run: true, blocks: 2},
		{name: "third request", producer: "p", seq: 3, records: []string{"d"}, blocks: 3},
		{name: "retry of a request whose batch ran", producer: "p", seq: 1, records: []string{"a", "b"}, wantDup: true, blocks: 3},
		{name: "another producer", producer: "q", seq: 5, records: []string{"x"}, blocks: 4},
		{name: "a gap is allowed", producer: "q", seq: 7, records: []string{"y"}, blocks: 5},
		{name: "lower never-stored sequence", producer: "q", seq: 6, records: []string{"z"}, wantErr: ErrSequenceRejected, blocks: 5},
		{name: "rejected again", producer: "q", seq: 6, records: []string{"z"}, wantErr: ErrSequenceRejected, blocks: 5},
		{name: "q's sequences are not p's", producer: "p", seq: 4, records: []string{"e"}, blocks: 6},
	}
	for _, s := range steps {
		if s.run {
			h.run(1)
		} else {
			res, err := ingest(h.c, s.producer, s.seq, s.records...)
			switch {
			case s.wantErr != nil && !errors.Is(err, s.wantErr):
				t.Fatalf("%s: Ingest(%s, %d) = %v, want %v", s.name, s.producer, s.seq, err, s.wantErr)
			case s.wantErr == nil && err != nil:
				t.Fatalf("%s: Ingest(%s, %d): %v", s.name, s.producer, s.seq, err)
			case s.wantErr == nil && (res.Duplicate != s.wantDup || res.Records != len(s.records)):
				t.Fatalf("%s: Ingest(%s, %d) = %+v, want duplicate=%v and %d records", s.name, s.producer, s.seq, res, s.wantDup, len(s.records))
			}
			if errors.Is(err, ErrSequenceRejected) {
				if msg := err.Error(); !strings.Contains(msg, "sequence 6") || !strings.Contains(msg, "sequences must increase") {
					t.Errorf("%s: the rejection %q does not give the reason", s.name, msg)
				}
			}
		}
		if n := walBlocks(t, h.c); n != s.blocks {
			t.Fatalf("%s: %d blocks in the WAL, want %d", s.name, n, s.blocks)
		}
	}
	h.run(1)
	checkOnce(t, "two batches", out.get(), []string{"a", "b", "c", "d", "x", "y", "e"})
	if n := storedRecords(h.c); n != 7 {
		t.Errorf("receiver reports %d records stored, want 7", n)
	}
}

// TestDurableDuplicateInABlockIsSkipped checks the second line of
// defence: when a duplicate or rejected request reaches the metadata log
// inside a block (a retry whose first attempt was committed after its
// reply was lost, so Ingest's own check did not see it), the FSM marks
// its records skipped and the batch reads the block without them.
func TestDurableDuplicateInABlockIsSkipped(t *testing.T) {
	h := newDurableHarness(t, t.TempDir())
	out := collectRecords(IngestStream(h.c, "lines"))
	h.start()
	mustIngest(t, h.c, "p", 1, "a", "b")
	mustIngest(t, h.c, "q", 7, "y")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	res, err := h.c.ingest["lines"].storeBlock(ctx, []string{"a", "b", "z", "c"}, []recovery.Request{
		{Producer: "p", Seq: 1, Offset: 0, Count: 2}, // stored before
		{Producer: "q", Seq: 6, Offset: 2, Count: 1}, // lower than 7, never stored
		{Producer: "p", Seq: 2, Offset: 3, Count: 1}, // new
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []recovery.Status
	for _, o := range res.Requests {
		got = append(got, o.Status)
	}
	if want := []recovery.Status{recovery.Duplicate, recovery.Rejected, recovery.Stored}; !slices.Equal(got, want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	b := h.step()
	checkOnce(t, "the batch", out.get(), []string{"a", "b", "y", "c"})
	if b.Records != 4 {
		t.Errorf("the batch counts %d input records, want 4: skipped records do not count", b.Records)
	}
}

// TestDurableIngestRefusals checks the errors of Ingest that are not
// about sequences: each refuses without storing anything.
func TestDurableIngestRefusals(t *testing.T) {
	h := newDurableHarness(t, t.TempDir())
	out := collectRecords(IngestStream(h.c, "lines"))
	if _, err := ingest(h.c, "p", 1, "early"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Ingest before Start: %v, want ErrNotRunning", err)
	}
	h.start()
	_, err := h.c.Ingest(context.Background(), "nope", "p", 1, []string{"x"})
	if !errors.Is(err, ErrUnknownStream) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("Ingest to an unknown stream: %v, want ErrUnknownStream naming it", err)
	}
	// Neither refusal used the sequence: p's request 1 is new.
	mustIngest(t, h.c, "p", 1, "a")
	h.run(1)
	checkOnce(t, "the batch", out.get(), []string{"a"})
	stopContext(t, h.c, false)
	if _, err := ingest(h.c, "p", 2, "late"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Ingest after Stop: %v, want ErrNotRunning", err)
	}
	if n := storedRecords(h.c); n != 1 {
		t.Errorf("%d records stored, want 1", n)
	}
}

// TestDurableIngestSurvivesRestart stops a context (not gracefully) with
// acknowledged records no batch has taken, and opens a new context with
// the same graph on the same data directory, its clock three batches
// later: the batch times missed meanwhile are generated at once, the
// first of them holds the records, nothing completed before is
// delivered again, and a producer retrying across the restart is told
// its request is a duplicate.
func TestDurableIngestSurvivesRestart(t *testing.T) {
	before := engineGoroutines()
	dir := t.TempDir()
	h1 := newDurableHarness(t, dir)
	out1 := collectRecords(IngestStream(h1.c, "lines"))
	h1.start()
	mustIngest(t, h1.c, "p", 1, "a", "b")
	h1.run(2) // batches 1000 (a, b) and 2000 (empty)
	mustIngest(t, h1.c, "p", 2, "c", "d")
	stopContext(t, h1.c, false)
	checkOnce(t, "before the restart", out1.get(), []string{"a", "b"})
	checkNoLeaks(t, before)

	h2 := newDurableHarness(t, dir)
	h2.clock.Set(time.UnixMilli(5000)) // down for batches 3000, 4000, 5000
	out2 := collectRecords(IngestStream(h2.c, "lines"))
	h2.start()
	got := h2.waitBatches(3)
	for i, want := range []Time{3000, 4000, 5000} {
		if got[i].Time != want {
			t.Fatalf("batch %d after the restart at %v, want %v: times go on from the last allocated batch, 2000", i+1, got[i].Time, want)
		}
	}
	if got[0].Records != 2 || got[1].Records != 0 || got[2].Records != 0 {
		t.Errorf("records of the batches after the restart: %d, %d, %d; want 2, 0, 0", got[0].Records, got[1].Records, got[2].Records)
	}
	for seq, records := range map[uint64][]string{1: {"a", "b"}, 2: {"c", "d"}} {
		res, err := ingest(h2.c, "p", seq, records...)
		if err != nil || !res.Duplicate {
			t.Fatalf("retry of (p, %d) after the restart = %+v, %v; want a duplicate", seq, res, err)
		}
	}
	mustIngest(t, h2.c, "p", 3, "e")
	if b := h2.step(); b.Time != 6000 || b.Records != 1 {
		t.Errorf("next batch %v with %d records, want 6000 ms with 1", b.Time, b.Records)
	}
	checkOnce(t, "after the restart", out2.get(), []string{"c", "d", "e"})
}

// TestDurableDataDirInUse checks that a second context on a data
// directory in use fails to start, naming the directory, and that the
// directory is free again once the first stops.
func TestDurableDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	h1 := newDurableHarness(t, dir)
	collectRecords(IngestStream(h1.c, "lines"))
	h1.start()

	h2 := newDurableHarness(t, dir)
	collectRecords(IngestStream(h2.c, "lines"))
	err := h2.c.Start()
	if !errors.Is(err, ErrDataDirInUse) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Start on %s: %v, want ErrDataDirInUse naming the directory", dir, err)
	}
	mustIngest(t, h1.c, "p", 1, "still served")

	stopContext(t, h1.c, false)
	h3 := newDurableHarness(t, dir)
	collectRecords(IngestStream(h3.c, "lines"))
	h3.start() // fails the test if the lock outlived Stop
}

// TestDurableIngestRateLimit checks Config.ReceiverMaxRate on Ingest: a
// request over the rate is refused with when to retry, stores nothing and
// does not use its sequence, so the same request passes once the wait is
// over.
func TestDurableIngestRateLimit(t *testing.T) {
	h := newDurableHarness(t, t.TempDir(), func(c *Config) { c.ReceiverMaxRate = 10 })
	out := collectRecords(IngestStream(h.c, "lines"))
	h.start()
	first := []string{"1", "2", "3", "4", "5"}
	second := []string{"6", "7", "8", "9", "10"}
	mustIngest(t, h.c, "p", 1, first...) // nothing owed: passes, owing half a second
	_, err := ingest(h.c, "p", 2, second...)
	var limited *RateLimitError
	if !errors.As(err, &limited) || limited.RetryAfter != 500*time.Millisecond {
		t.Fatalf("Ingest over the rate: %v, want a *RateLimitError with RetryAfter 500ms", err)
	}
	if n, blocks := storedRecords(h.c), walBlocks(t, h.c); n != 5 || blocks != 1 {
		t.Fatalf("after the refusal: %d records in %d blocks stored, want 5 in 1", n, blocks)
	}
	h.clock.Advance(limited.RetryAfter)
	mustIngest(t, h.c, "p", 2, second...)
	h.run(1)
	checkOnce(t, "the batch", out.get(), append(first, second...))
}

// storeAndAdd is a receiver that stores "s1", "s2" with Store, then,
// after proceed, buffers "a1", "a2" with Add, telling the test after
// each.
type storeAndAdd struct {
	stored, proceed, added chan struct{}
}

func (r *storeAndAdd) Receive(ctx context.Context, out *ReceiverOutput) error {
	if err := out.Store(ctx, "s1", "s2"); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	close(r.stored)
	select {
	case <-r.proceed:
	case <-ctx.Done():
		return nil
	}
	if err := out.Add(ctx, "a1", "a2"); err != nil {
		return fmt.Errorf("add: %w", err)
	}
	close(r.added)
	<-ctx.Done()
	return nil
}

// TestDurableReceiverStoreAndAdd checks ReceiverOutput's two ways (as
// Spark's Receiver.store of many records and of one): Store returns once
// its block is in the WAL and registered, before any block interval;
// Add buffers until the next block interval. Both deliver each record
// once.
func TestDurableReceiverStoreAndAdd(t *testing.T) {
	h := newDurableHarness(t, t.TempDir())
	r := &storeAndAdd{stored: make(chan struct{}), proceed: make(chan struct{}), added: make(chan struct{})}
	out := collectRecords(ReceiverStream(h.c, "lines", r))
	h.start()
	waitClosed(t, "Store to return", r.stored)
	un := h.c.storage.meta.View().Unallocated
	if len(un) != 1 || un[0].Records != 2 || walBlocks(t, h.c) != 1 {
		t.Fatalf("after Store returned: unallocated %+v, %d WAL blocks; want one block of 2 records registered and written", un, walBlocks(t, h.c))
	}
	close(r.proceed)
	waitClosed(t, "Add to return", r.added)
	if n := len(h.c.storage.meta.View().Unallocated); n != 1 {
		t.Fatalf("%d blocks registered after Add, want still 1: Add buffers until the block interval, which has not passed", n)
	}
	// The clock moves a batch at a time; the block of "a1", "a2" is cut
	// at the first block interval, in whichever batch is allocated next.
	deadline := time.Now().Add(waitTimeout)
	for len(out.get()) < 4 && time.Now().Before(deadline) {
		h.run(1)
	}
	got := out.get()
	slices.Sort(got)
	checkOnce(t, "the receiver's batches", got, []string{"a1", "a2", "s1", "s2"})
}

// TestDurableTruncation runs 60 one-second batches, each with one ingest
// request: completed batches are dropped from the metadata log and their
// blocks from the WAL every ten batches, so that the disk does not grow
// with the life of the node; dedupe still remembers every request, and a
// restart on the truncated logs delivers nothing again.
func TestDurableTruncation(t *testing.T) {
	const batches = 60
	dir := t.TempDir()
	h := newDurableHarness(t, dir)
	out := collectRecords(IngestStream(h.c, "lines"))
	h.start()
	var want []string
	for i := 1; i <= batches; i++ {
		rec := fmt.Sprintf("r%d", i)
		mustIngest(t, h.c, "p", uint64(i), rec)
		want = append(want, rec)
		h.run(1)
	}
	checkOnce(t, "60 batches", out.get(), want)
	view := h.c.storage.meta.View()
	// Truncation runs when its horizon (a batch before the one completed)
	// has moved ten batches: last at batch 51000, before 50000.
	if view.TruncatedBefore != 50000 {
		t.Errorf("truncated before %d ms, want 50000", view.TruncatedBefore)
	}
	if n := len(view.Batches); n > 11 {
		t.Errorf("the metadata log keeps %d batches, want at most the 11 not truncated", n)
	}
	if n := walBlocks(t, h.c); n > 11 {
		t.Errorf("the WAL keeps %d blocks, want at most the 11 of batches not truncated", n)
	}
	if res, err := ingest(h.c, "p", 1, "r1"); err != nil || !res.Duplicate {
		t.Errorf("retry of a truncated request = %+v, %v; want a duplicate (dedupe is kept forever)", res, err)
	}
	stopContext(t, h.c, false)

	h2 := newDurableHarness(t, dir)
	h2.clock.Set(time.UnixMilli(batches * 1000))
	out2 := collectRecords(IngestStream(h2.c, "lines"))
	h2.start()
	mustIngest(t, h2.c, "p", batches+1, "last")
	h2.run(1)
	checkOnce(t, "after a restart on truncated logs", out2.get(), []string{"last"})
}
