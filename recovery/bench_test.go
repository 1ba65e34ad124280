package recovery

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkApplyBlockAdded commits BlockAdded events (one request each)
// through raft on the real disk (every commit is a synced Pebble batch),
// from 1 and from 16 concurrent appliers. raft batches concurrent applies
// into one append (BatchApplyCh), so 16 appliers share fsyncs.
func BenchmarkApplyBlockAdded(b *testing.B) {
	for _, appliers := range []int{1, 16} {
		b.Run(fmt.Sprintf("appliers=%d", appliers), func(b *testing.B) {
			l := openLog(b, testConfig(b.TempDir()))
			var next atomic.Uint64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range appliers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					applyBlocks(b, l, &next, fmt.Sprintf("producer-%d", w))
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// applyBlocks applies blocks until b.N have been taken from next.
func applyBlocks(b *testing.B, l *Log, next *atomic.Uint64, producer string) {
	ctx := context.Background()
	for seq := uint64(1); ; seq++ {
		n := next.Add(1)
		if n > uint64(b.N) {
			return
		}
		ev := BlockAdded{Block: BlockRef{"bench", "node-1", n}, Records: 100, Bytes: 10_000,
			Requests: []Request{{Producer: producer, Seq: seq, Count: 100}}}
		res, err := l.Apply(ctx, ev)
		if err != nil || res.Requests[0].Status != Stored {
			b.Errorf("apply: %+v, %v", res, err)
			return
		}
	}
}
