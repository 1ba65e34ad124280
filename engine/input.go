package engine

import (
	"context"
	"sync"
)

// inputStream is a DStream that reads from outside the graph. Receivers
// store their blocks in the write-ahead log and the metadata log
// allocates them to batches; memory inputs allocate their own data.
type inputStream interface {
	node() *opNode
	name() string
	// start begins receiving; ctx ends when the context stops.
	start(ctx context.Context)
	// stop stops receiving. With graceful set it returns only after
	// everything received has been handed over to allocation.
	stop(graceful bool)
	// pending reports whether data is waiting for a batch.
	pending() bool
}

// memoryInput is an input stream that keeps its data in memory and
// allocates it itself (queues): what it holds is not in the
// write-ahead log, and a batch re-run after a restart does not see it.
type memoryInput interface {
	inputStream
	// allocate returns the data of batch t and its record count.
	allocate(t Time) (data any, records int64)
}

// Queue feeds a QueueStream: each pushed slice is one batch's records (or,
// with oneAtATime false, all queued slices are taken together). It is safe
// for concurrent use, including while the context runs.
type Queue[T any] struct {
	mu    sync.Mutex
	items [][]T
}

// NewQueue returns a queue holding batches, in order.
func NewQueue[T any](batches ...[]T) *Queue[T] {
	return &Queue[T]{items: batches}
}

// Push appends batches to the queue.
func (q *Queue[T]) Push(batches ...[]T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(q.items, batches...)
}

// Len returns the number of batches waiting.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

func (q *Queue[T]) take(all bool) [][]T {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil
	}
	n := 1
	if all {
		n = len(q.items)
	}
	out := q.items[:n:n]
	q.items = q.items[n:]
	return out
}

// queueStream is Spark's QueueInputDStream: an input stream for tests, fed
// from memory. It is not durable: what it held is lost with the process.
type queueStream[T any] struct {
	*DStream[T]
	q          *Queue[T]
	oneAtATime bool
	partitions int
}

// QueueStream returns a stream fed by q. With oneAtATime, each batch takes
// one slice from the queue (an empty batch if there is none); otherwise a
// batch takes everything queued. A batch's records are split into the
// context's partition count, in order.
func QueueStream[T any](c *Context, q *Queue[T], oneAtATime bool) *DStream[T] {
	s := &queueStream[T]{q: q, oneAtATime: oneAtATime, partitions: c.cfg.Partitions}
	s.DStream = newStream(c, "queueStream", nil, c.cfg.BatchDuration, nil, func(b *batchRun) (*rdd[T], error) {
		data, _ := b.inputs[s.op.id].([]T)
		return materialized(splitEven(data, s.partitions)), nil
	})
	c.addInput(s)
	return s.DStream
}

func (s *queueStream[T]) node() *opNode         { return s.op }
func (s *queueStream[T]) name() string          { return "queue" }
func (s *queueStream[T]) start(context.Context) {}
func (s *queueStream[T]) stop(bool)             {}
func (s *queueStream[T]) pending() bool         { return s.q.Len() > 0 }

func (s *queueStream[T]) allocate(Time) (any, int64) {
	var out []T
	for _, batch := range s.q.take(!s.oneAtATime) {
		out = append(out, batch...)
	}
	return out, int64(len(out))
}

// splitEven splits records into n contiguous partitions of near-equal size;
// fewer when there are fewer records than n.
func splitEven[T any](records []T, n int) [][]T {
	if len(records) == 0 {
		return nil
	}
	if n > len(records) {
		n = len(records)
	}
	parts := make([][]T, n)
	for i := range parts {
		lo, hi := i*len(records)/n, (i+1)*len(records)/n
		parts[i] = records[lo:hi:hi]
	}
	return parts
}
