package engine

import (
	"log/slog"
	"sync"
	"time"
)

// BatchInfo describes one batch, as Spark's BatchInfo: when it was
// submitted, when its processing started and ended, and what it read.
type BatchInfo struct {
	Time        Time          `json:"time"`
	Records     int64         `json:"records"` // input records over all streams
	Inputs      []StreamInput `json:"inputs,omitempty"`
	SubmittedAt time.Time     `json:"submitted_at"`
	StartedAt   time.Time     `json:"started_at,omitzero"`
	CompletedAt time.Time     `json:"completed_at,omitzero"`
	// Err is the batch's failure: a *TaskError for a user function that
	// panicked or failed. A failed batch stops the context.
	Err error `json:"-"`
}

// StreamInput is what one input stream contributed to a batch.
type StreamInput struct {
	Operator int    `json:"operator"`
	Stream   string `json:"stream"`
	Records  int64  `json:"records"`
}

// SchedulingDelay is how long the batch waited for its turn.
func (b BatchInfo) SchedulingDelay() time.Duration {
	if b.StartedAt.IsZero() {
		return 0
	}
	return b.StartedAt.Sub(b.SubmittedAt)
}

// ProcessingDelay is how long the batch ran.
func (b BatchInfo) ProcessingDelay() time.Duration {
	if b.StartedAt.IsZero() || b.CompletedAt.IsZero() {
		return 0
	}
	return b.CompletedAt.Sub(b.StartedAt)
}

// TotalDelay is scheduling plus processing delay.
func (b BatchInfo) TotalDelay() time.Duration {
	if b.CompletedAt.IsZero() {
		return 0
	}
	return b.CompletedAt.Sub(b.SubmittedAt)
}

// Listener receives batch events (Spark's StreamingListener). Calls come
// in order from one goroutine; a slow listener delays later events, never
// batches.
type Listener interface {
	OnBatchSubmitted(BatchInfo)
	OnBatchStarted(BatchInfo)
	OnBatchCompleted(BatchInfo)
}

// ReceiverListener is an optional interface of a Listener that also wants
// to hear about receivers' errors (a lost connection, a dropped line).
type ReceiverListener interface {
	OnReceiverError(stream string, err error)
}

// NopListener implements Listener with methods that do nothing, for
// embedding.
type NopListener struct{}

func (NopListener) OnBatchSubmitted(BatchInfo) {}
func (NopListener) OnBatchStarted(BatchInfo)   {}
func (NopListener) OnBatchCompleted(BatchInfo) {}

// listenerBus delivers events to listeners in order on its own goroutine,
// so that the scheduler never waits for a listener.
type listenerBus struct {
	log *slog.Logger
	mu  struct {
		sync.Mutex
		listeners []Listener
		queue     []func(Listener)
		running   bool
		stopping  bool
	}
	wake chan struct{}
	done chan struct{}
}

func newListenerBus(log *slog.Logger) *listenerBus {
	return &listenerBus{log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (b *listenerBus) add(l Listener) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.listeners = append(b.mu.listeners, l)
}

func (b *listenerBus) post(ev func(Listener)) {
	b.mu.Lock()
	b.mu.queue = append(b.mu.queue, ev)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *listenerBus) start() {
	b.mu.Lock()
	b.mu.running = true
	b.mu.Unlock()
	go b.run()
}

// stop delivers the events already posted, then stops the goroutine.
func (b *listenerBus) stop() {
	b.mu.Lock()
	running := b.mu.running
	b.mu.stopping = true
	b.mu.Unlock()
	if !running {
		return
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
	<-b.done
}

func (b *listenerBus) run() {
	defer close(b.done)
	for {
		b.mu.Lock()
		queue, listeners, stopping := b.mu.queue, b.mu.listeners, b.mu.stopping
		b.mu.queue = nil
		b.mu.Unlock()
		for _, ev := range queue {
			for _, l := range listeners {
				b.deliver(l, ev)
			}
		}
		if stopping && len(queue) == 0 {
			return
		}
		if len(queue) == 0 {
			<-b.wake
		}
	}
}

func (b *listenerBus) deliver(l Listener, ev func(Listener)) {
	defer func() {
		if r := recover(); r != nil {
			b.log.Error("listener panicked; event dropped for it", "panic", r)
		}
	}()
	ev(l)
}
