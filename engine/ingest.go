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
	out, err := s.storeBlock(ctx, records, []recovery.Request{{Producer: producer, Seq: seq, Offset: 0, Count: len(records)}})
	if err != nil {
		return res, err
	}
	switch o := out.Requests[0]; o.Status {
	case recovery.Duplicate:
		res.Duplicate = true
	case recovery.Rejected:
		return res, fmt.Errorf("%w: %s", ErrSequenceRejected, o.Reason)
	}
	return res, nil
}
