package engine

import (
	"sync"
	"time"

	"github.com/sluice-stream/sluice/wal"
)

// WALLatency is a histogram of how long synced appends to the write-ahead
// log took (the write and its fsync, shared with the appends Pebble
// commits in the same group): the durability cost every stored block
// pays before its source is acknowledged.
type WALLatency struct {
	Count   uint64
	Sum     time.Duration
	Buckets []time.Duration // upper bounds, ascending
	Counts  []uint64        // cumulative: appends that took at most Buckets[i]
	// Syncs counts the fsyncs of the log (fewer than Count under group
	// commit); 0 where the log does not count them.
	Syncs uint64
}

// walLatencyBuckets are WALLatency's upper bounds, 100µs to 2.5s.
var walLatencyBuckets = []time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
}

// timedBlocks is a blockLog that times its appends. Like task times, they
// are read from the wall clock: they describe the disk, not the batch.
type timedBlocks struct {
	blockLog
	mu     sync.Mutex
	count  uint64
	sum    time.Duration
	counts []uint64 // per bucket, not cumulative; one more for +Inf
}

func timeAppends(b blockLog) *timedBlocks {
	return &timedBlocks{blockLog: b, counts: make([]uint64, len(walLatencyBuckets)+1)}
}

func (t *timedBlocks) Append(b wal.Block) error {
	start := time.Now()
	err := t.blockLog.Append(b)
	if err == nil {
		t.observe(time.Since(start))
	}
	return err
}

func (t *timedBlocks) observe(d time.Duration) {
	i := 0
	for i < len(walLatencyBuckets) && d > walLatencyBuckets[i] {
		i++
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count++
	t.sum += d
	t.counts[i]++
}

func (t *timedBlocks) latency() WALLatency {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := WALLatency{Count: t.count, Sum: t.sum, Buckets: walLatencyBuckets, Counts: make([]uint64, len(walLatencyBuckets))}
	var acc uint64
	for i := range walLatencyBuckets {
		acc += t.counts[i]
		l.Counts[i] = acc
	}
	if s, ok := t.blockLog.(interface{ Stats() wal.Stats }); ok {
		l.Syncs = s.Stats().Syncs
	}
	return l
}

// WALLatency reports the synced appends to the write-ahead log since
// Start; ok is false before Start.
func (c *Context) WALLatency() (l WALLatency, ok bool) {
	c.mu.Lock()
	st := c.storage
	c.mu.Unlock()
	if st == nil {
		return WALLatency{}, false
	}
	tb, ok := st.blocks.(*timedBlocks)
	if !ok {
		return WALLatency{}, false
	}
	return tb.latency(), true
}
