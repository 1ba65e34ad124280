package engine

import (
	"context"
	"math"
	"sync"
	"time"
)

// rateLimiter admits records at a rate in records per second, read on the
// engine's Clock. Receivers wait on it before storing; the ingest endpoint
// asks it for a Retry-After; backpressure moves its rate.
//
// It is Guava's RateLimiter (SmoothBursty, as Spark's receivers use): up
// to one second's worth of unused records is stored for a burst, and a
// request larger than what is stored passes as soon as no earlier request
// is still being paid for, borrowing the rest from the future. The next
// request waits for the debt. So a batch larger than a second's worth
// never deadlocks, and over any long span the rate holds, give or take
// one burst and one request.
//
// It differs from Guava in SetRate. The debt is kept in records, not in
// time, so SetRate re-prices it: lowering the rate lengthens the current
// wait and raising it shortens it, and waiters are woken to see the
// change; Guava leaves the wait as it was, which would hold a receiver
// back long after backpressure has raised its rate. What is stored is
// capped at the new burst rather than scaled to it, and leaving unlimited
// starts with nothing stored rather than a full burst, so that a change
// of rate never adds a burst.
//
// It is safe for concurrent use. Time is read under the lock, so that
// callers see it advance in the order they hold the lock.
type rateLimiter struct {
	clock Clock

	mu struct {
		sync.Mutex
		perSecond float64 // 0: unlimited
		// nextFree is when the next request may pass; after it, records
		// accrue in stored, at most a second's worth. Before it, the
		// limiter is in debt by (nextFree-now)·perSecond records.
		nextFree time.Time
		stored   float64
		// changed is cancelled, and replaced, when the rate changes, to
		// wake waiters whose deadline it moved.
		changed context.Context
		cancel  context.CancelFunc
	}
}

// maxRateDelay bounds a computed wait, so a tiny rate and a huge request
// do not overflow time.Duration.
const maxRateDelay = time.Duration(math.MaxInt64 / 4)

// newRateLimiter returns a limiter admitting perSecond records a second;
// perSecond <= 0 means unlimited. It starts with nothing stored, as
// Guava's does, so its first second passes perSecond records, not twice
// as many.
func newRateLimiter(clock Clock, perSecond float64) *rateLimiter {
	l := &rateLimiter{clock: clock}
	l.mu.perSecond = normalRate(perSecond)
	l.mu.nextFree = clock.Now()
	l.mu.changed, l.mu.cancel = context.WithCancel(context.Background())
	return l
}

// normalRate maps every "no limit" (<= 0, NaN, +Inf) to 0.
func normalRate(perSecond float64) float64 {
	if !(perSecond > 0) || math.IsInf(perSecond, 1) {
		return 0
	}
	return perSecond
}

// Rate returns the rate in records per second; 0 means unlimited.
func (l *rateLimiter) Rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.perSecond
}

// SetRate changes the rate; perSecond <= 0 means unlimited. What is owed
// is kept in records and repaid at the new rate; what is stored is capped
// at the new burst. Coming from unlimited, the limiter starts as a new
// one does: nothing stored, nothing owed.
func (l *rateLimiter) SetRate(perSecond float64) {
	perSecond = normalRate(perSecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	old := l.mu.perSecond
	if perSecond == old {
		return
	}
	switch {
	case old == 0:
		l.mu.nextFree, l.mu.stored = now, 0
	case perSecond != 0:
		l.resyncLocked(now)
		if owed := l.mu.nextFree.Sub(now); owed > 0 {
			l.mu.nextFree = now.Add(recordsDuration(owed.Seconds()*old, perSecond))
		}
		l.mu.stored = min(l.mu.stored, perSecond)
	}
	l.mu.perSecond = perSecond
	l.mu.cancel()
	l.mu.changed, l.mu.cancel = context.WithCancel(context.Background())
}

// Reserve takes n records and returns 0 if they may pass now; otherwise
// it takes nothing and returns how long until they may (an HTTP 429's
// Retry-After).
func (l *rateLimiter) Reserve(n int) (delay time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	at, _ := l.reserveLocked(now, n)
	return at.Sub(now)
}

// Wait blocks until n records may pass, and takes them, or until ctx is
// done, when it returns ctx.Err() and takes nothing. It waits on the
// clock, and again if the rate changes meanwhile.
func (l *rateLimiter) Wait(ctx context.Context, n int) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		l.mu.Lock()
		now := l.clock.Now()
		at, changed := l.reserveLocked(now, n)
		l.mu.Unlock()
		if !at.After(now) {
			return nil
		}
		l.waitUntil(ctx, changed, at)
	}
}

// waitUntil waits on the clock until at, ctx is done or changed is
// cancelled; the caller looks at which.
func (l *rateLimiter) waitUntil(ctx, changed context.Context, at time.Time) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(changed, cancel)
	defer stop()
	_ = l.clock.WaitUntil(wctx, at)
}

// reserveLocked takes n records if no debt is outstanding at now and
// returns now; otherwise it takes nothing and returns when the debt is
// paid. It also returns the context cancelled on the next rate change.
func (l *rateLimiter) reserveLocked(now time.Time, n int) (time.Time, context.Context) {
	if l.mu.perSecond == 0 || n <= 0 {
		return now, l.mu.changed
	}
	l.resyncLocked(now)
	if l.mu.nextFree.After(now) {
		return l.mu.nextFree, l.mu.changed
	}
	fromStore := min(float64(n), l.mu.stored)
	l.mu.stored -= fromStore
	l.mu.nextFree = now.Add(recordsDuration(float64(n)-fromStore, l.mu.perSecond))
	return now, l.mu.changed
}

// resyncLocked stores what accrued since nextFree, up to a second's
// worth, and moves nextFree to now.
func (l *rateLimiter) resyncLocked(now time.Time) {
	if !now.After(l.mu.nextFree) {
		return
	}
	accrued := now.Sub(l.mu.nextFree).Seconds() * l.mu.perSecond
	l.mu.stored = min(l.mu.perSecond, l.mu.stored+accrued)
	l.mu.nextFree = now
}

// recordsDuration is how long records take at perSecond, rounded up so
// the limiter never runs faster than its rate.
func recordsDuration(records, perSecond float64) time.Duration {
	ns := math.Ceil(records * float64(time.Second) / perSecond)
	if !(ns < float64(maxRateDelay)) {
		return maxRateDelay
	}
	return time.Duration(ns)
}
