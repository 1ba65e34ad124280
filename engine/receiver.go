package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-stream/sluice/recovery"
	"github.com/sluice-stream/sluice/wal"
)

// Receiver is a long-running source of text records (Spark's Receiver):
// a socket, a message queue, a generator. The engine runs Receive on its
// own goroutine and restarts it, after a backoff, when it returns an
// error.
type Receiver interface {
	// Receive reads from the source until ctx is done, handing records to
	// out. It returns nil once ctx is done; any other return is logged,
	// reported to listeners, and followed by a new call after a backoff.
	Receive(ctx context.Context, out *ReceiverOutput) error
}

// ReceiverOutput is where a Receiver puts what it reads, in one of two
// ways (as Spark's Receiver.store of one record or of many):
//
//   - Store writes the records as one block and returns once the block is
//     durable and registered: synced to the write-ahead log and recorded
//     in the metadata log. Acknowledge the source only after Store
//     returns nil; then the records are never lost, whatever happens to
//     the process.
//   - Add buffers records; a block is cut from the buffer every block
//     interval and stored as Store would. Faster, but the source learns
//     nothing: what is buffered when the process dies is lost.
//
// Both wait when the stream is over its rate limit. It is safe for
// concurrent use.
type ReceiverOutput struct {
	s *receiverStream
}

// Store stores records as one block and returns once they are durable and
// registered, or with the error that kept them from it (nothing of them
// is stored then).
func (o *ReceiverOutput) Store(ctx context.Context, records ...string) error {
	if err := o.s.limiter.Wait(ctx, len(records)); err != nil {
		return err
	}
	_, err := o.s.storeBlock(ctx, records, nil)
	return err
}

// StoreAt stores records as one block that ends at position seq of the
// source named producer (a Kafka topic partition and the offset after its
// last record, a file and its chunk), in the same way as Store, and
// records the position with the block in the metadata log. A position
// stored before is a duplicate: nothing is stored and duplicate is true.
// Positions of one producer must increase (ErrSequenceRejected
// otherwise); Position tells where to resume after a restart, so a
// source is read exactly once: what it stored is never stored again, and
// what it did not store is read again.
func (o *ReceiverOutput) StoreAt(ctx context.Context, producer string, seq uint64, records ...string) (duplicate bool, err error) {
	unlock := o.s.c.producers.lock(producer)
	defer unlock()
	if seen, reason := o.s.c.storage.meta.ProducerSeen(producer, seq); seen {
		return true, nil
	} else if reason != "" {
		return false, fmt.Errorf("%w: %s", ErrSequenceRejected, reason)
	}
	if err := o.s.limiter.Wait(ctx, len(records)); err != nil {
		return false, err
	}
	res, err := o.s.storeBlock(ctx, records, []recovery.Request{{Producer: producer, Seq: seq, Count: len(records)}})
	if err != nil {
		return false, err
	}
	switch r := res.Requests[0]; r.Status {
	case recovery.Duplicate:
		return true, nil
	case recovery.Rejected:
		return false, fmt.Errorf("%w: %s", ErrSequenceRejected, r.Reason)
	}
	return false, nil
}

// Position returns the last position stored by StoreAt for producer, and
// false if none was.
func (o *ReceiverOutput) Position(producer string) (seq uint64, ok bool) {
	return o.s.c.storage.meta.ProducerPosition(producer)
}

// Add buffers records for the next block.
func (o *ReceiverOutput) Add(ctx context.Context, records ...string) error {
	if err := o.s.limiter.Wait(ctx, len(records)); err != nil {
		return err
	}
	o.s.mu.Lock()
	o.s.mu.buf = append(o.s.mu.buf, records...)
	o.s.mu.Unlock()
	return nil
}

// ReportError records a problem that did not stop the receiver (a dropped
// line, a failed connection attempt): it is logged, counted and shown to
// listeners.
func (o *ReceiverOutput) ReportError(err error) { o.s.reportError(err) }

// Clock returns the context's clock, for receivers that wait.
func (o *ReceiverOutput) Clock() Clock { return o.s.c.cfg.Clock }

// MaxLineBytes is the configured longest line a line source accepts.
func (o *ReceiverOutput) MaxLineBytes() int { return o.s.c.cfg.MaxLineBytes }

// ReceiverInfo describes a receiver for status pages.
type ReceiverInfo struct {
	Stream    string  `json:"stream"`
	Operator  int     `json:"operator"`
	Records   int64   `json:"records"` // stored durably
	Blocks    int64   `json:"blocks"`
	Errors    int64   `json:"errors"`
	LastError string  `json:"last_error,omitempty"`
	Running   bool    `json:"running"`
	RateLimit float64 `json:"rate_limit,omitempty"` // records/s now, 0 for none
}

// receiverStream is a DStream[string] fed by a Receiver (or, for an ingest
// stream, by Context.Ingest). Every block it stores goes to the WAL and
// is registered in the metadata log; a batch reads the blocks the
// metadata log allocated to it.
type receiverStream struct {
	*DStream[string]
	stream  string
	recv    Receiver // nil for an ingest stream
	limiter *rateLimiter
	pid     *pidRateEstimator // nil without backpressure; only the run goroutine uses it
	nextSeq atomic.Uint64     // the next block's sequence; set at start from what is stored
	group   ingestGroup       // Context.Ingest's group commit (ingest streams only)

	mu struct {
		sync.Mutex
		buf []string
	}
	sourceStats
	cancel context.CancelFunc
	// life ends when the stream stops (or Stop gives up on it): what an
	// ingest group is storing is abandoned then. Set by start, before
	// Ingest admits a request.
	life context.Context
	wg   sync.WaitGroup
	once sync.Once
}

// ReceiverStream returns a stream of the records r receives. name names
// the stream: it must be unique in the context, and it is how the stream's
// blocks are found after a restart.
func ReceiverStream(c *Context, name string, r Receiver) *DStream[string] {
	return newReceiverStream(c, "receiverStream", name, r).DStream
}

func newReceiverStream(c *Context, kind, name string, r Receiver) *receiverStream {
	s := &receiverStream{stream: name, recv: r, limiter: newRateLimiter(c.cfg.Clock, c.cfg.ReceiverMaxRate)}
	s.DStream = newStream(c, kind, nil, c.cfg.BatchDuration, []string{"stream=" + name},
		func(b *batchRun) (*rdd[string], error) {
			entries, _ := b.inputs[s.op.id].([]recovery.BlockEntry)
			return s.readBlocks(b, entries)
		})
	s.init(c, name, s.op.id)
	if c.cfg.Backpressure {
		// Spark's defaults: proportional 1, integral 0.2, derivative 0,
		// at least 100 records/s.
		s.pid, _ = newPIDRateEstimator(c.cfg.BatchDuration, 1.0, 0.2, 0.0, 100)
	}
	c.addInput(s)
	c.mu.Lock()
	if c.streams == nil {
		c.streams = make(map[string]bool)
	}
	if c.streams[name] {
		c.buildErrs = append(c.buildErrs, fmt.Errorf("engine: two input streams are named %q; names identify a stream's blocks and must be unique", name))
	}
	c.streams[name] = true
	c.mu.Unlock()
	return s
}

// adjustRate feeds the backpressure estimator with a completed batch and
// applies the rate it proposes, never above Config.ReceiverMaxRate.
func (s *receiverStream) adjustRate(b BatchInfo, records int64) {
	if s.pid == nil {
		return
	}
	rate, ok := s.pid.compute(b.CompletedAt, records, b.ProcessingDelay(), b.SchedulingDelay())
	if !ok {
		return
	}
	if limit := s.c.cfg.ReceiverMaxRate; limit > 0 {
		rate = min(rate, limit)
	}
	s.limiter.SetRate(rate)
}

func (s *receiverStream) info() ReceiverInfo {
	ri := s.sourceStats.info()
	ri.RateLimit = s.limiter.Rate()
	return ri
}

func (s *receiverStream) node() *opNode { return s.op }
func (s *receiverStream) name() string  { return s.stream }

func (s *receiverStream) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	s.cancel, s.life = cancel, ctx
	s.setRunning(true)
	if s.recv == nil {
		return
	}
	s.wg.Add(2)
	go s.receiveLoop(ctx)
	go s.blockLoop(ctx)
}

// storeBlock writes records as one block to the WAL (synced), registers it
// in the metadata log with the producer requests it holds, and returns
// the metadata log's verdict on those requests.
func (s *receiverStream) storeBlock(ctx context.Context, records []string, reqs []recovery.Request) (recovery.Result, error) {
	sto := s.c.storage
	id := wal.BlockID{Stream: s.stream, Node: sto.node, Seq: s.nextSeq.Add(1) - 1}
	if err := sto.blocks.Append(wal.Block{ID: id, Records: records}); err != nil {
		err = fmt.Errorf("%w: %w", ErrStorageFailed, err)
		s.reportError(err)
		return recovery.Result{}, err
	}
	failpoint(FailAfterWALSync)
	var bytes int64
	for _, r := range records {
		bytes += int64(len(r))
	}
	ev := recovery.BlockAdded{
		Block:   recovery.BlockRef{Stream: id.Stream, Node: id.Node, Seq: id.Seq},
		Records: len(records), Bytes: bytes, Requests: reqs,
	}
	var res recovery.Result
	var err error
	if n := s.c.node; n != nil {
		if ev.Replicas, err = n.replicate(ctx, wal.Block{ID: id, Records: records}); err == nil {
			res, err = n.applyAnywhere(ctx, ev)
		}
	} else {
		res, err = sto.meta.Apply(ctx, ev)
	}
	if err != nil {
		err = fmt.Errorf("%w: registering block %v: %w", ErrStorageFailed, id, err)
		if ctx.Err() == nil { // a stop, or a caller giving up, is not the source's error
			s.reportError(err)
		}
		return recovery.Result{}, err
	}
	failpoint(FailAfterBlockAdded)
	s.update(func(ri *ReceiverInfo) { ri.Blocks++; ri.Records += int64(len(records)) })
	return res, nil
}

// readBlocks reads a batch's blocks from the WAL, one task per block,
// drops the records of duplicate requests, and splits the rest into
// partitions.
func (s *receiverStream) readBlocks(b *batchRun, entries []recovery.BlockEntry) (*rdd[string], error) {
	blocks := make([]block, len(entries))
	err := b.exec.runE(b.t, s.op.label(), len(entries), func(i int) error {
		e := entries[i]
		got, err := s.c.storage.blocks.Read(wal.BlockID{Stream: e.Ref.Stream, Node: e.Ref.Node, Seq: e.Ref.Seq})
		if errors.Is(err, wal.ErrNotFound) && s.c.node != nil {
			got, err = s.c.node.fetchBlock(context.Background(), e)
		}
		if err != nil {
			return fmt.Errorf("reading block %s/%s/%d of the batch: %w", e.Ref.Stream, e.Ref.Node, e.Ref.Seq, err)
		}
		blocks[i] = block{records: withoutRanges(got.Records, e.Skip)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return materialized(splitBlocks(blocks, s.c.cfg.Partitions)), nil
}

// withoutRanges returns records less the ranges in skip.
func withoutRanges(records []string, skip []recovery.Range) []string {
	if len(skip) == 0 {
		return records
	}
	drop := make([]bool, len(records))
	for _, r := range skip {
		for i := r.Offset; i < r.Offset+r.Count && i < len(records); i++ {
			drop[i] = true
		}
	}
	out := make([]string, 0, len(records))
	for i, rec := range records {
		if !drop[i] {
			out = append(out, rec)
		}
	}
	return out
}

// receiveLoop runs the receiver, restarting it with exponential backoff
// (100ms doubling to 5s) when it fails.
func (s *receiverStream) receiveLoop(ctx context.Context) {
	defer s.wg.Done()
	out := &ReceiverOutput{s: s}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		startedAt := s.c.cfg.Clock.Now()
		err := s.runReceiver(ctx, out)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = fmt.Errorf("receiver returned before it was stopped")
		}
		if s.c.cfg.Clock.Now().Sub(startedAt) > 10*time.Second {
			backoff = 100 * time.Millisecond // it ran a while: not a crash loop
		}
		s.reportError(fmt.Errorf("%w; restarting in %v", err, backoff))
		if s.c.cfg.Clock.WaitUntil(ctx, s.c.cfg.Clock.Now().Add(backoff)) != nil {
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *receiverStream) runReceiver(ctx context.Context, out *ReceiverOutput) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("receiver panicked: %v", r)
		}
	}()
	return s.recv.Receive(ctx, out)
}

// blockLoop cuts a block at every multiple of the block interval. It
// counts in time.Time, not in Time's milliseconds: Config accepts a block
// interval shorter than a millisecond, which Time would round to zero.
func (s *receiverStream) blockLoop(ctx context.Context) {
	defer s.wg.Done()
	clock, every := s.c.cfg.Clock, s.c.cfg.BlockInterval
	next := clock.Now().Truncate(every)
	for {
		next = next.Add(every)
		if clock.WaitUntil(ctx, next) != nil {
			return
		}
		s.cutBlock()
	}
}

// cutBlock stores what Add buffered as one block. If it cannot be stored
// the records are lost (their source was never told they were kept) and
// the error is reported. A stop does not cancel it: once cut, the block
// is stored.
func (s *receiverStream) cutBlock() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.mu.Lock()
	records := s.mu.buf
	s.mu.buf = nil
	s.mu.Unlock()
	if len(records) == 0 {
		return
	}
	if _, err := s.storeBlock(ctx, records, nil); err != nil {
		s.c.log.Error("buffered records lost", "stream", s.stream, "records", len(records), "err", err)
	}
}

// stop stops the receiver and stores what it had buffered as a last block,
// so that a graceful stop processes it.
func (s *receiverStream) stop(bool) {
	s.once.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		s.cutBlock()
		s.setRunning(false)
	})
}

// pending reports buffered records; blocks stored and not yet allocated
// are the scheduler's to see, in the metadata log.
func (s *receiverStream) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mu.buf) > 0
}

// block is one block's records, as a batch reads them.
type block struct {
	records []string
}

// Receivers describes the context's receivers.
func (c *Context) Receivers() []ReceiverInfo {
	c.mu.Lock()
	inputs := c.inputs
	c.mu.Unlock()
	var out []ReceiverInfo
	for _, in := range inputs {
		if r, ok := in.(interface{ info() ReceiverInfo }); ok {
			out = append(out, r.info())
		}
	}
	return out
}

// splitBlocks turns a batch's blocks into input partitions: each block is
// split into pieces of at most ceil(total/n) records, so a batch yields
// about n partitions (more when blocks are many) and no partition spans
// two blocks (in a cluster, a task runs where its block is).
func splitBlocks(blocks []block, n int) [][]string {
	total := 0
	for _, b := range blocks {
		total += len(b.records)
	}
	if total == 0 {
		return nil
	}
	size := (total + n - 1) / n
	var parts [][]string
	for _, b := range blocks {
		for lo := 0; lo < len(b.records); lo += size {
			hi := min(lo+size, len(b.records))
			parts = append(parts, b.records[lo:hi:hi])
		}
	}
	return parts
}
