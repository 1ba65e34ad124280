package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluice-stream/sluice/recovery"
)

// Errors of Context.Ingest. Each says what the producer should do.
var (
	// ErrUnknownStream: no ingest stream has that name.
	ErrUnknownStream = errors.New("engine: no ingest stream of that name")
	// ErrNotRunning: the context is not running (starting, stopping or
	// stopped); retry later, or against another node.
	ErrNotRunning = errors.New("engine: the node is not running; retry later")
	// ErrSequenceRejected: the request's sequence number is lower than
	// one already acknowledged for its producer and was never stored.
	// Retrying cannot help: sequences of a producer must increase.
	ErrSequenceRejected = errors.New("engine: sequence rejected")
	// ErrStorageFailed: the records could not be made durable and
	// registered (a full or read-only disk, an I/O error, a timeout).
	// Retry later: if the records were registered after all, the retry is
	// acknowledged as a duplicate.
	ErrStorageFailed = errors.New("engine: storage failed")
)

// RateLimitError is returned by Ingest when the stream is over its rate
// limit: retry after RetryAfter.
type RateLimitError struct {
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("engine: over the stream's rate limit; retry in %v", e.RetryAfter)
}

// IngestResult is what an acknowledged Ingest stored.
type IngestResult struct {
	Records   int  // records of the request
	Duplicate bool // the request was stored before; nothing was stored now
}

// IngestStream returns a stream fed by Context.Ingest (the node's
// POST /api/ingest/{name} endpoint): reliable ingest with idempotent
// producers.
func IngestStream(c *Context, name string) *DStream[string] {
	s := newReceiverStream(c, "ingestStream", name, nil)
	c.mu.Lock()
	if c.ingest == nil {
		c.ingest = make(map[string]*receiverStream)
	}
	if _, dup := c.ingest[name]; dup {
		c.buildErrs = append(c.buildErrs, fmt.Errorf("engine: two ingest streams are named %q", name))
	}
	c.ingest[name] = s
	c.mu.Unlock()
	return s.DStream
}

// producerLocks serialises the requests of one producer, so that two
// copies of one request in flight at once cannot both be stored.
type producerLocks struct {
	mu    sync.Mutex
	locks map[string]*producerLock
}

type producerLock struct {
	sync.Mutex
	users int
}

func (p *producerLocks) lock(producer string) func() {
	p.mu.Lock()
	if p.locks == nil {
		p.locks = make(map[string]*producerLock)
	}
	l := p.locks[producer]
	if l == nil {
		l = &producerLock{}
		p.locks[producer] = l
	}
	l.users++
	p.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		p.mu.Lock()
		if l.users--; l.users == 0 {
			delete(p.locks, producer)
		}
		p.mu.Unlock()
	}
}

// Ingest stores records sent by producer as its request seq, on the ingest
// stream named stream, and returns once they are durable and registered:
// written and synced to the WAL, and their BlockAdded committed. A request
// (producer, seq) stored before is acknowledged again without storing
// anything. A producer must send its requests one at a time, with
// increasing sequence numbers.
func (c *Context) Ingest(ctx context.Context, stream, producer string, seq uint64, records []string) (IngestResult, error) {
	res := IngestResult{Records: len(records)}
	c.mu.Lock()
	s, state := c.ingest[stream], c.state
	if s != nil && state == active {
		// Stop waits for the requests it let in, so that a graceful stop
		// processes what they store.
		c.ingesting.Add(1)
		defer c.ingesting.Done()
	}
	c.mu.Unlock()
	switch {
	case s == nil:
		return res, fmt.Errorf("%w: %q", ErrUnknownStream, stream)
	case state != active:
		return res, ErrNotRunning
	case c.node != nil && !c.node.ready():
		return res, fmt.Errorf("%w: this node is catching up with the cluster's metadata log; retry shortly, or send to another node", ErrNotRunning)
	}
	unlock := c.producers.lock(producer)
	defer unlock()
	if seen, reason := c.storage.meta.ProducerSeen(producer, seq); seen {
		res.Duplicate = true
		return res, nil
	} else if reason != "" {
		return res, fmt.Errorf("%w: %s", ErrSequenceRejected, reason)
	}
	if d := s.limiter.Reserve(len(records)); d > 0 {
		return res, &RateLimitError{RetryAfter: d}
	}
	o, err := s.group.store(ctx, s, producer, seq, records)
	if err != nil {
		return res, err
	}
	switch o.Status {
	case recovery.Duplicate:
		res.Duplicate = true
	case recovery.Rejected:
		return res, fmt.Errorf("%w: %s", ErrSequenceRejected, o.Reason)
	}
	return res, nil
}

// ingestGroup is the group commit of an ingest stream: the requests that
// arrive while a block is being stored wait, and the first of them then
// stores them all as the next block, one WAL append and one BlockAdded
// carrying each request as its own recovery.Request. Without it every
// request paid for its own WAL commit and its own raft entry, in turn:
// under concurrent producers the requests queued behind each other's
// fsyncs (ack latency), and every request made a block and so a
// partition of its batch (throughput).
//
// Exactly once is the FSM's, as for a block of one request: it decides
// each request of the block alone (Stored, Duplicate, Rejected), and the
// records of the requests it does not store are skipped when the block is
// read. Two requests of one producer are never in one group: the
// producer's lock is held until its request is acknowledged.
type ingestGroup struct {
	mu struct {
		sync.Mutex
		queue   []*ingestCall
		storing int // groups being stored; at maxGroupsStoring, the queue waits
	}
}

// ingestCall is one request waiting in a group.
type ingestCall struct {
	req      recovery.Request
	records  []string
	bytes    int
	out      recovery.RequestOutcome
	err      error
	lead     chan struct{} // receives when the call is to store the next group
	promoted bool          // lead was sent; guarded by the group's mu
	done     chan struct{} // closed when its group is stored (or failed)
}

// maxGroupBytes bounds the records of one group's block (a request alone
// may be larger: it is never split).
const maxGroupBytes = 4 << 20

// maxGroupsStoring is how many groups are stored at once. One would
// serialise the two syncs of a group (the WAL's, then the metadata
// log's) with nothing overlapping them; two let one group's WAL sync run
// while the other's entry is committed (node bench through HTTP: 350,000
// lines/s with one, 830,000 with two), with still a block for several
// requests under load.
const maxGroupsStoring = 2

// store stores records as (producer, seq) in the next group and returns
// the FSM's outcome for it. A caller that finds fewer than
// maxGroupsStoring groups being stored stores the queue as a group; the
// others wait, and when a group is stored, the first of the queue is
// told to store the next one, so that each caller stores at most one
// group and none is held storing others'.
func (g *ingestGroup) store(ctx context.Context, s *receiverStream, producer string, seq uint64, records []string) (recovery.RequestOutcome, error) {
	call := &ingestCall{req: recovery.Request{Producer: producer, Seq: seq, Count: len(records)},
		records: records, lead: make(chan struct{}, 1), done: make(chan struct{})}
	for _, r := range records {
		call.bytes += len(r)
	}
	g.mu.Lock()
	g.mu.queue = append(g.mu.queue, call)
	lead := g.mu.storing < maxGroupsStoring
	if lead {
		g.mu.storing++
	}
	g.mu.Unlock()
	if !lead {
		select {
		case <-call.lead:
			lead = true
		case <-call.done:
			// Stored by a group another caller took; a promotion sent
			// before that (while the call was first in the queue) still
			// holds a slot, which storeNext hands on.
			select {
			case <-call.lead:
				lead = true
			default:
			}
		}
	}
	if lead {
		g.storeNext(ctx, s)
	}
	<-call.done
	return call.out, call.err
}

// storeNext stores the next group, then hands the queue on.
func (g *ingestGroup) storeNext(ctx context.Context, s *receiverStream) {
	g.mu.Lock()
	calls := g.take() // empty if another leader took the queue first
	g.mu.Unlock()
	if len(calls) > 0 {
		g.storeCalls(ctx, s, calls)
	}
	g.mu.Lock()
	if len(g.mu.queue) > 0 && !g.mu.queue[0].promoted {
		g.mu.queue[0].promoted = true
		g.mu.queue[0].lead <- struct{}{}
	} else {
		g.mu.storing--
	}
	g.mu.Unlock()
}

// storeCalls stores calls as a group, with a context of their own.
func (g *ingestGroup) storeCalls(ctx context.Context, s *receiverStream, calls []*ingestCall) {
	// The group holds other callers' requests: this caller giving up must
	// not fail them, the stream stopping must (Stop abandons what is not
	// stored: unacknowledged, it is the producers' to retry). A minute
	// bounds a storage that hangs, as for a receiver's block (cutBlock).
	life := s.life
	if life == nil {
		life = context.WithoutCancel(ctx)
	}
	gctx, cancel := context.WithTimeout(life, time.Minute)
	defer cancel()
	storeGroup(gctx, s, calls)
}

// take removes the next group from the queue: its calls in arrival
// order, up to maxGroupBytes of records (at least one call). g.mu is held.
func (g *ingestGroup) take() []*ingestCall {
	n, bytes := 0, 0
	for n < len(g.mu.queue) && (n == 0 || bytes+g.mu.queue[n].bytes <= maxGroupBytes) {
		bytes += g.mu.queue[n].bytes
		n++
	}
	calls := g.mu.queue[:n:n]
	g.mu.queue = g.mu.queue[n:]
	if len(g.mu.queue) == 0 {
		g.mu.queue = nil
	}
	return calls
}

// storeGroup stores calls as one block and hands each its outcome.
func storeGroup(ctx context.Context, s *receiverStream, calls []*ingestCall) {
	records := calls[0].records
	if len(calls) > 1 {
		total := 0
		for _, c := range calls {
			total += len(c.records)
		}
		records = make([]string, 0, total)
		for _, c := range calls {
			records = append(records, c.records...)
		}
	}
	reqs := make([]recovery.Request, len(calls))
	offset := 0
	for i, c := range calls {
		reqs[i] = c.req
		reqs[i].Offset = offset
		offset += len(c.records)
	}
	res, err := s.storeBlock(ctx, records, reqs)
	for i, c := range calls {
		if c.err = err; err == nil {
			c.out = res.Requests[i]
		}
		close(c.done)
	}
}
