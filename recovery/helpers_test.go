package recovery

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/raft"
)

// ref is a block ref on stream "s", node "n".
func ref(seq uint64) BlockRef { return BlockRef{Stream: "s", Node: "n", Seq: seq} }

// block is a BlockAdded of one record per request, requests given as
// producer/seq pairs.
func block(seq uint64, reqs ...Request) BlockAdded {
	off := 0
	for i := range reqs {
		reqs[i].Offset = off
		if reqs[i].Count == 0 {
			reqs[i].Count = 1
		}
		off += reqs[i].Count
	}
	return BlockAdded{Block: ref(seq), Records: off, Bytes: int64(10 * off), Requests: reqs}
}

func req(producer string, seq uint64) Request { return Request{Producer: producer, Seq: seq} }

// applyOK applies evs to s, failing the test on an error or a broken
// invariant, and returns the last result.
func applyOK(t testing.TB, s *state, evs ...Event) Result {
	t.Helper()
	var res Result
	for _, ev := range evs {
		var err error
		if res, err = s.apply(ev); err != nil {
			t.Fatalf("apply %#v: %v", ev, err)
		}
		checkState(t, s)
	}
	return res
}

func checkState(t testing.TB, s *state) {
	t.Helper()
	if msg := s.check(); msg != "" {
		t.Fatalf("invariant broken: %s", msg)
	}
}

// encoded is the snapshot bytes of s: equal bytes, equal states.
func encoded(t testing.TB, s *state) []byte {
	t.Helper()
	b, err := encodeSnapshot(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sameState(t testing.TB, got, want *state) {
	t.Helper()
	if !bytes.Equal(encoded(t, got), encoded(t, want)) {
		t.Fatalf("states differ:\n got %+v\nwant %+v", got.view(), want.view())
	}
}

// randomLog returns n events from seed: mostly valid, with retries of old
// blocks and requests, stale allocations and completions, truncations,
// and some events the FSM must refuse.
func randomLog(seed uint64, n int) []Event {
	g := &logGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), next: map[string]uint64{}}
	evs := make([]Event, 0, n)
	for len(evs) < n {
		evs = append(evs, g.event())
	}
	return evs
}

type logGen struct {
	rng       *rand.Rand
	next      map[string]uint64 // producer → next seq
	blockSeq  uint64
	time      int64
	completed int64
}

func (g *logGen) event() Event {
	switch r := g.rng.IntN(100); {
	case r < 55:
		return g.block()
	case r < 75:
		g.time += int64(1 + g.rng.IntN(2))
		return BatchAllocated{Time: g.time - int64(g.rng.IntN(2))} // sometimes a retry
	case r < 92:
		g.completed += int64(g.rng.IntN(2))
		return BatchCompleted{Time: min(g.completed, g.time)}
	case r < 95:
		nodes := []string{"n1", "n2", "n3"}
		a := PartitionAssigned{Primaries: make([]string, 4), Backups: make([]string, 4)}
		for p := range a.Primaries {
			i := g.rng.IntN(3)
			a.Primaries[p], a.Backups[p] = nodes[i], nodes[(i+1+g.rng.IntN(2))%3]
		}
		return a
	default:
		return Truncated{Before: g.completed + 1 - int64(g.rng.IntN(3))}
	}
}

func (g *logGen) block() BlockAdded {
	g.blockSeq++
	seq := g.blockSeq
	if g.rng.IntN(8) == 0 && seq > 3 {
		seq -= uint64(1 + g.rng.IntN(3)) // a re-added block
	}
	var reqs []Request
	for range g.rng.IntN(4) {
		p := fmt.Sprintf("p%d", g.rng.IntN(3))
		s := g.next[p]
		g.next[p]++
		if g.rng.IntN(6) == 0 && s > 2 {
			s -= uint64(1 + g.rng.IntN(2)) // a retry, or an old one
		}
		reqs = append(reqs, Request{Producer: p, Seq: s, Count: g.rng.IntN(3)})
	}
	b := block(seq, reqs...)
	b.Block.Node = fmt.Sprintf("n%d", g.rng.IntN(2))
	b.Records += g.rng.IntN(2) // a record outside every request
	return b
}

// entries encodes evs as raft command entries from index 1.
func entries(t testing.TB, evs []Event) []*raft.Log {
	t.Helper()
	out := make([]*raft.Log, len(evs))
	for i, ev := range evs {
		data, err := EncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = &raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: data}
	}
	return out
}

// replay applies evs to s (nil: a fresh state), ignoring refused events
// as raft does, and checks the invariants at the end.
func replay(t testing.TB, s *state, evs []Event) *state {
	t.Helper()
	if s == nil {
		s = newState()
	}
	for _, ev := range evs {
		_, _ = s.apply(ev)
	}
	checkState(t, s)
	return s
}

// replayStrict is replay that also checks, after every event, the
// invariants and that a refused event changed nothing.
func replayStrict(t testing.TB, evs []Event) *state {
	t.Helper()
	s := newState()
	for _, ev := range evs {
		before := encoded(t, s)
		if _, err := s.apply(ev); err != nil && !bytes.Equal(before, encoded(t, s)) {
			t.Fatalf("%#v failed (%v) but changed the state", ev, err)
		}
		checkState(t, s)
	}
	return s
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// readCloser returns an io.ReadCloser over b.
func readCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
