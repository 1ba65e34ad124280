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

// JumpClock is the system clock shifted by an offset that jumps, forward
// or back, when told to: a node whose clock is stepped by NTP or set by
// hand, for fault injection (the chaos harness's clock nemesis). Waiters
// wake on every jump and measure again. It is safe for concurrent use.
//
// Batch times stay unique and increasing across a jump: the driver
// generates each batch time from the previous one (never from the clock),
// and resumes after the last one the metadata log allocated; a backward
// jump only delays the next batch, a forward one makes the driver catch
// up with the times it skipped.
type JumpClock struct {
	mu struct {
		sync.Mutex
		offset  time.Duration
		changed chan struct{} // closed and replaced on every jump
	}
}

var _ Clock = (*JumpClock)(nil)

// NewJumpClock returns a clock that reads the system clock until it jumps.
func NewJumpClock() *JumpClock {
	c := &JumpClock{}
	c.mu.changed = make(chan struct{})
	return c
}

// Now returns the system time plus the offset.
func (c *JumpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.mu.offset)
}

// Jump moves the clock by d (negative: back) and returns the offset from
// the system clock it then has.
func (c *JumpClock) Jump(d time.Duration) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.offset += d
	close(c.mu.changed)
	c.mu.changed = make(chan struct{})
	return c.mu.offset
}

// WaitUntil blocks until the clock reads t or later, or ctx is done.
func (c *JumpClock) WaitUntil(ctx context.Context, t time.Time) error {
	for {
		c.mu.Lock()
		d, changed := t.Sub(time.Now().Add(c.mu.offset)), c.mu.changed
		c.mu.Unlock()
		if d <= 0 {
			return ctx.Err()
		}
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-changed:
			timer.Stop()
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
	}
}
