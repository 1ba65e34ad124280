package engine

import (
	"context"
	"fmt"
	"sync"
	"time"
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

// ReceiverOutput is where a Receiver puts what it reads. Records are cut
// into blocks every block interval; a batch takes the blocks cut before
// its time. It is safe for concurrent use.
type ReceiverOutput struct {
	s *receiverStream
}

// Store hands records to the engine.
func (o *ReceiverOutput) Store(records ...string) { o.s.store(records) }

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
	Stream    string `json:"stream"`
	Operator  int    `json:"operator"`
	Records   int64  `json:"records"`
	Blocks    int64  `json:"blocks"`
	Errors    int64  `json:"errors"`
	LastError string `json:"last_error,omitempty"`
	Running   bool   `json:"running"`
}

// block is a chunk of one stream's records, cut every block interval.
// Blocks are immutable once cut.
type block struct {
	seq     uint64
	records []string
}

// receiverStream is a DStream[string] fed by a Receiver. The receiver
// appends to the current buffer; a block goroutine cuts the buffer into
// a block every block interval; allocate hands every block cut so far to
// the batch.
type receiverStream struct {
	*DStream[string]
	stream string
	recv   Receiver

	mu struct {
		sync.Mutex
		buf     []string
		blocks  []block // cut, not yet allocated
		nextSeq uint64
	}
	sourceStats
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// ReceiverStream returns a stream of the records r receives. name names
// the stream in logs and the UI.
func ReceiverStream(c *Context, name string, r Receiver) *DStream[string] {
	s := &receiverStream{stream: name, recv: r}
	s.DStream = newStream(c, "receiverStream", nil, c.cfg.BatchDuration, []string{"stream=" + name},
		func(b *batchRun) (*rdd[string], error) {
			blocks, _ := b.inputs[s.op.id].([]block)
			return materialized(splitBlocks(blocks, c.cfg.Partitions)), nil
		})
	s.init(c, name, s.op.id)
	c.addInput(s)
	return s.DStream
}

func (s *receiverStream) node() *opNode { return s.op }
func (s *receiverStream) name() string  { return s.stream }

func (s *receiverStream) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	s.cancel = cancel
	s.setRunning(true)
	s.wg.Add(2)
	go s.receiveLoop(ctx)
	go s.blockLoop(ctx)
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

func (s *receiverStream) store(records []string) {
	s.mu.Lock()
	s.mu.buf = append(s.mu.buf, records...)
	s.mu.Unlock()
	s.update(func(ri *ReceiverInfo) { ri.Records += int64(len(records)) })
}

func (s *receiverStream) cutBlock() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.mu.buf) == 0 {
		return
	}
	s.mu.blocks = append(s.mu.blocks, block{seq: s.mu.nextSeq, records: s.mu.buf})
	s.mu.nextSeq++
	s.mu.buf = nil
	s.update(func(ri *ReceiverInfo) { ri.Blocks++ })
}

// stop stops the receiver and cuts what it had buffered into a last block,
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

func (s *receiverStream) allocate(Time) (any, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	blocks := s.mu.blocks
	s.mu.blocks = nil
	var n int64
	for _, b := range blocks {
		n += int64(len(b.records))
	}
	return blocks, n
}

func (s *receiverStream) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mu.blocks) > 0 || len(s.mu.buf) > 0
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
