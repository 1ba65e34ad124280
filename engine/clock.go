package engine

import (
	"context"
	"sync"
	"time"
)

// Clock is the only way the engine reads time. Production code uses
// SystemClock; tests use a ManualClock and advance it by hand, as Spark's
// ManualClock does, so that batch boundaries are deterministic.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// WaitUntil blocks until Now() >= t or ctx is done, and returns
	// ctx.Err() in the latter case.
	WaitUntil(ctx context.Context, t time.Time) error
}

// SystemClock is the wall clock.
type SystemClock struct{}

var _ Clock = SystemClock{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// WaitUntil sleeps until t or until ctx is done.
func (SystemClock) WaitUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ManualClock is a clock that moves only when told to. Waiters wake when
// the clock is set or advanced past their deadline. It is safe for
// concurrent use.
type ManualClock struct {
	mu struct {
		sync.Mutex
		now     time.Time
		changed chan struct{} // closed and replaced on every change
	}
}

var _ Clock = (*ManualClock)(nil)

// NewManualClock returns a clock that reads start until it is moved.
func NewManualClock(start time.Time) *ManualClock {
	c := &ManualClock{}
	c.mu.now = start
	c.mu.changed = make(chan struct{})
	return c
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.now
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(c.mu.now.Add(d))
}

// Set moves the clock to t. Moving it backwards is allowed, as clocks do
// jump; waiters already released are not affected.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(t)
}

func (c *ManualClock) setLocked(t time.Time) {
	c.mu.now = t
	close(c.mu.changed)
	c.mu.changed = make(chan struct{})
}

// WaitUntil blocks until the clock reads t or later, or ctx is done.
func (c *ManualClock) WaitUntil(ctx context.Context, t time.Time) error {
	for {
		c.mu.Lock()
		now, changed := c.mu.now, c.mu.changed
		c.mu.Unlock()
		if !now.Before(t) {
			return ctx.Err()
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
