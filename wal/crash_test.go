package wal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestCrashAfterAppendKeepsEveryAppendedBlock takes a crash image of the
// filesystem after Appends returned: only synced data is sure to be in
// it, some unsynced data may be. Every appended block must be in it, since
// Append returns only once the block is synced.
func TestCrashAfterAppendKeepsEveryAppendedBlock(t *testing.T) {
	cases := []struct {
		name     string
		unsynced int // percent of unsynced data the crash keeps
	}{
		{"only_synced_data_survives", 0},
		{"some_unsynced_data_survives", 50},
		{"all_data_survives", 100},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			l := openLog(t, fs, "wal", quietLogger())
			want := appendConcurrently(t, l, 8, 25)
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: c.unsynced, RNG: rand.New(rand.NewPCG(7, 11))})
			r := openLog(t, crashed, "wal", quietLogger())
			for _, b := range want {
				mustRead(t, r, b)
			}
		})
	}
}

// TestCrashDuringAppends takes a crash image while Appends are in flight:
// every block whose Append returned before the crash must be in it, and
// every block in it must read back whole.
func TestCrashDuringAppends(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprintf("seed_%d", seed), func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			l := openLog(t, fs, "wal", quietLogger())
			acked := &ackedBlocks{}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() { appendUntil(t, l, fmt.Sprintf("n%d", w), acked, stop) })
			}
			for acked.len() < 100 {
				acked.waitForMore()
			}
			before := acked.snapshot()
			rng := rand.New(rand.NewPCG(seed, seed))
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: int(rng.IntN(101)), RNG: rng})
			close(stop)
			wg.Wait()

			r := openLog(t, crashed, "wal", quietLogger())
			for _, b := range before {
				mustRead(t, r, b)
			}
			n := 0
			if err := r.Iterate(func(Block) error { n++; return nil }); err != nil {
				t.Fatalf("Iterate over the crash image: %v", err)
			}
			t.Logf("%d blocks acknowledged before the crash, %d in the crash image", len(before), n)
		})
	}
}

// appendConcurrently appends perWriter blocks from each of writers
// goroutines and returns them all.
func appendConcurrently(t *testing.T, l *Log, writers, perWriter int) []Block {
	var mu sync.Mutex
	var all []Block
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for seq := range uint64(perWriter) {
				b := testBlock("s", fmt.Sprintf("n%d", w), seq, 20)
				if err := l.Append(b); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				all = append(all, b)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return all
}

// appendUntil appends blocks of node until stop is closed, recording each
// one whose Append returned.
func appendUntil(t *testing.T, l *Log, node string, acked *ackedBlocks, stop <-chan struct{}) {
	for seq := uint64(0); ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		b := testBlock("s", node, seq, 20)
		if err := l.Append(b); err != nil {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("Append: %v", err)
			}
			return
		}
		acked.add(b)
	}
}

// ackedBlocks is the set of blocks whose Append returned nil.
type ackedBlocks struct {
	mu     sync.Mutex
	blocks []Block
	more   chan struct{}
}

func (a *ackedBlocks) add(b Block) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.blocks = append(a.blocks, b)
	if a.more != nil {
		close(a.more)
		a.more = nil
	}
}

func (a *ackedBlocks) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.blocks)
}

// waitForMore blocks until another block is acknowledged.
func (a *ackedBlocks) waitForMore() {
	a.mu.Lock()
	if a.more == nil {
		a.more = make(chan struct{})
	}
	ch := a.more
	a.mu.Unlock()
	<-ch
}

func (a *ackedBlocks) snapshot() []Block {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Block(nil), a.blocks...)
}
