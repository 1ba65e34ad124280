package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/sluice-stream/sluice/recovery"
)

// Tests of Context.Ingest's group commit (ingestGroup): requests that wait
// for a block being stored are stored together as the next block, and
// each is still decided alone by the metadata log (Stored, Duplicate,
// Rejected), so a group changes what a request costs, never what it
// counts.

// TestIngestGroupOutcomes stores one group holding a new request, a
// duplicate of a stored one and a rejected one: each gets its own
// outcome, and the batch reads the new records only, in order.
func TestIngestGroupOutcomes(t *testing.T) {
	h := newDurableHarness(t, t.TempDir())
	out := collectRecords(IngestStream(h.c, "lines"))
	h.start()
	mustIngest(t, h.c, "p", 1, "a", "b")
	mustIngest(t, h.c, "q", 7, "y")
	s := h.c.ingest["lines"]
	calls := []*ingestCall{
		{req: recovery.Request{Producer: "r", Seq: 1, Count: 2}, records: []string{"c", "d"}},
		{req: recovery.Request{Producer: "p", Seq: 1, Count: 2}, records: []string{"a", "b"}}, // stored before
		{req: recovery.Request{Producer: "q", Seq: 6, Count: 1}, records: []string{"z"}},      // lower than 7
		{req: recovery.Request{Producer: "p", Seq: 2, Count: 1}, records: []string{"e"}},
	}
	for _, c := range calls {
		c.done = make(chan struct{})
	}
	storeGroup(context.Background(), s, calls)
	var got []recovery.Status
	for _, c := range calls {
		if c.err != nil {
			t.Fatal(c.err)
		}
		got = append(got, c.out.Status)
	}
	want := []recovery.Status{recovery.Stored, recovery.Duplicate, recovery.Rejected, recovery.Stored}
	if !slices.Equal(got, want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	if n := walBlocks(t, h.c); n != 3 {
		t.Errorf("%d WAL blocks, want 3: a group is one block", n)
	}
	h.step()
	checkOnce(t, "the batch", out.get(), []string{"a", "b", "y", "c", "d", "e"})
}

// TestIngestGroupTake checks that a group takes the queue in arrival
// order up to maxGroupBytes, and always at least one request, however
// large.
func TestIngestGroupTake(t *testing.T) {
	call := func(bytes int) *ingestCall { return &ingestCall{bytes: bytes} }
	for _, tc := range []struct {
		name  string
		sizes []int
		want  []int // calls per group, in order
	}{
		{"all fit", []int{10, 20, 30}, []int{3}},
		{"split at the limit", []int{maxGroupBytes / 2, maxGroupBytes / 2, 1}, []int{2, 1}},
		{"an oversized request alone", []int{1, maxGroupBytes + 1, 1}, []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g ingestGroup
			var all []*ingestCall
			for _, n := range tc.sizes {
				c := call(n)
				all = append(all, c)
				g.mu.queue = append(g.mu.queue, c)
			}
			var got []int
			var order []*ingestCall
			for len(g.mu.queue) > 0 {
				group := g.take()
				got = append(got, len(group))
				order = append(order, group...)
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(order, all) {
				t.Errorf("groups of %v, want %v (in arrival order)", got, tc.want)
			}
		})
	}
}

// TestIngestGroupConcurrent runs many producers at once, each retrying
// every request once after its acknowledgement: every request is stored
// exactly once (its retry is a duplicate), and the batch holds each
// producer's records once, in the producer's order.
func TestIngestGroupConcurrent(t *testing.T) {
	h := newDurableHarness(t, t.TempDir())
	out := collectRecords(IngestStream(h.c, "lines"))
	h.start()
	const producers, requests = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Go(func() {
			name := fmt.Sprintf("p%d", p)
			for seq := uint64(1); seq <= requests; seq++ {
				recs := []string{fmt.Sprintf("%s/%d/a", name, seq), fmt.Sprintf("%s/%d/b", name, seq)}
				if res, err := ingest(h.c, name, seq, recs...); err != nil || res.Duplicate {
					errs <- fmt.Errorf("Ingest(%s, %d) = %+v, %v; want stored", name, seq, res, err)
					return
				}
				if res, err := ingest(h.c, name, seq, recs...); err != nil || !res.Duplicate {
					errs <- fmt.Errorf("retry of Ingest(%s, %d) = %+v, %v; want a duplicate", name, seq, res, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	h.step()
	byProducer := make(map[string][]string)
	for _, r := range out.get() {
		var name string
		fmt.Sscanf(r, "%2s", &name)
		byProducer[name] = append(byProducer[name], r)
	}
	for p := range producers {
		name := fmt.Sprintf("p%d", p)
		var want []string
		for seq := 1; seq <= requests; seq++ {
			want = append(want, fmt.Sprintf("%s/%d/a", name, seq), fmt.Sprintf("%s/%d/b", name, seq))
		}
		checkOnce(t, name, byProducer[name], want)
	}
}
