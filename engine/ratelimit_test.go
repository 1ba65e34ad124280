package engine

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var rateEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// hangAfter is a watchdog, not a sleep: the tests synchronise on
// channels, and only a bug makes them wait this long.
const hangAfter = 10 * time.Second

// waitSignalClock is a ManualClock that reports every WaitUntil deadline
// on waits before it starts waiting, so a test knows a Wait is blocked
// (and has counted everything before it) without sleeping.
type waitSignalClock struct {
	*ManualClock
	waits chan time.Time
}

func newWaitSignalClock() *waitSignalClock {
	return &waitSignalClock{ManualClock: NewManualClock(rateEpoch), waits: make(chan time.Time)}
}

func (c *waitSignalClock) WaitUntil(ctx context.Context, t time.Time) error {
	select {
	case c.waits <- t:
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.ManualClock.WaitUntil(ctx, t)
}

// startWait runs l.Wait(ctx, n) on a goroutine and delivers its result.
func startWait(ctx context.Context, l *rateLimiter, n int) <-chan error {
	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx, n) }()
	return done
}

// expectPass checks that the Wait behind done returns nil without waiting
// on the clock.
func expectPass(t *testing.T, c *waitSignalClock, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait = %v, want nil", err)
		}
	case at := <-c.waits:
		t.Fatalf("Wait waited until %v, want it to pass now (%v)", at, c.Now())
	case <-time.After(hangAfter):
		t.Fatal("Wait hung")
	}
}

// expectDone checks that the Wait behind done returns want.
func expectDone(t *testing.T, done <-chan error, want error) {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, want) {
			t.Fatalf("Wait = %v, want %v", err, want)
		}
	case <-time.After(hangAfter):
		t.Fatal("Wait hung")
	}
}

// nextWait returns the deadline of the next WaitUntil on c.
func nextWait(t *testing.T, c *waitSignalClock) time.Time {
	t.Helper()
	select {
	case at := <-c.waits:
		return at
	case <-time.After(hangAfter):
		t.Fatal("no Wait started waiting")
		return time.Time{}
	}
}

// expectWaitUntil checks that the Wait behind done waits on the clock, and
// returns the deadline.
func expectWaitUntil(t *testing.T, c *waitSignalClock, done <-chan error, want time.Time) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v, want it to wait until %v", err, want)
	case at := <-c.waits:
		if !at.Equal(want) {
			t.Fatalf("Wait waits until +%v, want +%v", at.Sub(rateEpoch), want.Sub(rateEpoch))
		}
	case <-time.After(hangAfter):
		t.Fatal("Wait hung before waiting")
	}
}

// passNow counts how many Reserve(1) pass at the current instant.
func passNow(t *testing.T, l *rateLimiter, bound int) int {
	t.Helper()
	for n := 0; n <= bound; n++ {
		if l.Reserve(1) != 0 {
			return n
		}
	}
	t.Fatalf("more than %d records passed at one instant at rate %v", bound, l.Rate())
	return 0
}

// TestRateLimitRespectsRateOverManySeconds counts the records that pass
// in each advanced second: after k seconds no more than rate·k (+1, the
// first request borrows) and no fewer than rate·k - 1 have passed.
func TestRateLimitRespectsRateOverManySeconds(t *testing.T) {
	for _, tc := range []struct {
		name      string
		perSecond float64
	}{
		{"one per second", 1},
		{"three per second, not a binary fraction", 3},
		{"a hundred per second", 100},
		{"a thousand per second", 1000},
		{"one every two seconds", 0.5},
		{"irregular", 7.3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewManualClock(rateEpoch)
			l := newRateLimiter(clock, tc.perSecond)
			bound := int(2*tc.perSecond) + 2
			total := passNow(t, l, bound)
			for k := 1; k <= 120; k++ {
				clock.Advance(time.Second)
				n := passNow(t, l, bound)
				total += n
				want := tc.perSecond * float64(k)
				if float64(total) > want+1 || float64(total) < want-1 {
					t.Fatalf("after %ds: %d records passed, want %v ± 1", k, total, want)
				}
				if tc.perSecond >= 1 && math.Abs(float64(n)-tc.perSecond) > 1 {
					t.Fatalf("second %d: %d records passed, want %v ± 1", k, n, tc.perSecond)
				}
			}
		})
	}
}

// TestRateLimitWaitRespectsRate is the same count through Wait, the way
// a receiver uses the limiter.
func TestRateLimitWaitRespectsRate(t *testing.T) {
	const perSecond = 50
	clock := newWaitSignalClock()
	l := newRateLimiter(clock, perSecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var passed atomic.Int64
	done := make(chan error, 1)
	go func() {
		for {
			if err := l.Wait(ctx, 1); err != nil {
				done <- err
				return
			}
			passed.Add(1)
		}
	}()
	nextWait(t, clock) // blocked after the first record
	prev := passed.Load()
	if prev != 1 {
		t.Fatalf("%d records passed at the start, want 1", prev)
	}
	for k := 1; k <= 30; k++ {
		clock.Advance(time.Second)
		nextWait(t, clock) // blocked again: the second's count is final
		n := passed.Load()
		if n-prev != perSecond {
			t.Fatalf("second %d: %d records passed, want %d", k, n-prev, perSecond)
		}
		prev = n
	}
	cancel()
	expectDone(t, done, context.Canceled)
}

// TestRateLimitReserveDelay checks the Retry-After that Reserve computes,
// and that a refused Reserve takes nothing.
func TestRateLimitReserveDelay(t *testing.T) {
	clock := NewManualClock(rateEpoch)
	l := newRateLimiter(clock, 10)
	steps := []struct {
		name    string
		advance time.Duration
		n       int
		want    time.Duration
	}{
		{"first request passes", 0, 1, 0},
		{"next waits a tenth of a second", 0, 1, 100 * time.Millisecond},
		{"refusal takes nothing", 0, 5, 100 * time.Millisecond},
		{"part of the wait elapsed", 40 * time.Millisecond, 1, 60 * time.Millisecond},
		{"wait elapsed", 60 * time.Millisecond, 1, 0},
		{"large request while not in debt borrows", 100 * time.Millisecond, 30, 0},
		{"the next waits for the loan", 0, 1, 3 * time.Second},
		{"zero records always pass", 0, 0, 0},
		{"loan partly repaid", 2500 * time.Millisecond, 1, 500 * time.Millisecond},
		{"loan repaid", 500 * time.Millisecond, 1, 0},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		if got := l.Reserve(s.n); got != s.want {
			t.Fatalf("%s: Reserve(%d) = %v, want %v", s.name, s.n, got, s.want)
		}
	}
}

// TestRateLimitBurstIsOneSecond: an idle limiter stores at most a
// second's worth; as in Guava, one more request then passes on credit.
func TestRateLimitBurstIsOneSecond(t *testing.T) {
	clock := NewManualClock(rateEpoch)
	l := newRateLimiter(clock, 10)
	l.Reserve(1)
	clock.Advance(time.Minute)
	if n := passNow(t, l, 100); n != 11 {
		t.Fatalf("after a minute idle %d records passed at once, want 11 (10 stored + 1 borrowed)", n)
	}
	if d := l.Reserve(1); d != 100*time.Millisecond {
		t.Fatalf("Reserve after the burst = %v, want 100ms", d)
	}
}

func TestRateLimitUnlimitedNeverBlocks(t *testing.T) {
	for _, rate := range []float64{0, -5, math.NaN(), math.Inf(1)} {
		clock := newWaitSignalClock()
		l := newRateLimiter(clock, rate)
		if got := l.Rate(); got != 0 {
			t.Fatalf("newRateLimiter(%v).Rate() = %v, want 0 (unlimited)", rate, got)
		}
		for range 1000 {
			if d := l.Reserve(1 << 30); d != 0 {
				t.Fatalf("rate %v: Reserve = %v, want 0", rate, d)
			}
			expectPass(t, clock, startWait(context.Background(), l, 1<<30))
		}
	}
}

// TestRateLimitHugeBatchBorrows: a request far larger than a second's
// worth passes at once and is paid for by the requests after it.
func TestRateLimitHugeBatchBorrows(t *testing.T) {
	clock := newWaitSignalClock()
	l := newRateLimiter(clock, 100)
	expectPass(t, clock, startWait(context.Background(), l, 10_000))
	done := startWait(context.Background(), l, 1)
	expectWaitUntil(t, clock, done, rateEpoch.Add(100*time.Second))
	clock.Advance(100 * time.Second)
	expectDone(t, done, nil)
}

func TestRateLimitWaitCancelled(t *testing.T) {
	t.Run("while waiting", func(t *testing.T) {
		clock := newWaitSignalClock()
		l := newRateLimiter(clock, 1)
		expectPass(t, clock, startWait(context.Background(), l, 1))
		ctx, cancel := context.WithCancel(context.Background())
		done := startWait(ctx, l, 5)
		expectWaitUntil(t, clock, done, rateEpoch.Add(time.Second))
		cancel()
		expectDone(t, done, context.Canceled)
		// The cancelled Wait took nothing: one second on, one record
		// passes and the next waits a second, not five.
		clock.Advance(time.Second)
		if d := l.Reserve(1); d != 0 {
			t.Fatalf("Reserve after cancel = %v, want 0", d)
		}
		if d := l.Reserve(1); d != time.Second {
			t.Fatalf("next Reserve = %v, want 1s", d)
		}
	})
	t.Run("before waiting", func(t *testing.T) {
		clock := newWaitSignalClock()
		l := newRateLimiter(clock, 1)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := l.Wait(ctx, 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
		if d := l.Reserve(1); d != 0 {
			t.Fatalf("Reserve after a cancelled Wait = %v, want 0: the Wait took a record", d)
		}
	})
}

func TestRateLimitSetRate(t *testing.T) {
	t.Run("changes the count per second", func(t *testing.T) {
		clock := NewManualClock(rateEpoch)
		l := newRateLimiter(clock, 10)
		passNow(t, l, 100)
		for _, rate := range []float64{10, 100, 5, 1000, 10} {
			l.SetRate(rate)
			if got := l.Rate(); got != rate {
				t.Fatalf("Rate() = %v after SetRate(%v)", got, rate)
			}
			clock.Advance(time.Second) // the first second settles the change
			passNow(t, l, 10000)
			for k := range 5 {
				clock.Advance(time.Second)
				if n := passNow(t, l, 10000); math.Abs(float64(n)-rate) > 1 {
					t.Fatalf("rate %v, second %d: %d records passed", rate, k, n)
				}
			}
		}
	})
	t.Run("raising shortens a wait in progress", func(t *testing.T) {
		clock := newWaitSignalClock()
		l := newRateLimiter(clock, 1)
		expectPass(t, clock, startWait(context.Background(), l, 1)) // owes 1 record
		done := startWait(context.Background(), l, 1)
		expectWaitUntil(t, clock, done, rateEpoch.Add(time.Second))
		l.SetRate(1000)
		expectWaitUntil(t, clock, done, rateEpoch.Add(time.Millisecond))
		clock.Advance(time.Millisecond)
		expectDone(t, done, nil)
	})
	t.Run("lowering lengthens a wait in progress", func(t *testing.T) {
		clock := newWaitSignalClock()
		l := newRateLimiter(clock, 10)
		expectPass(t, clock, startWait(context.Background(), l, 1)) // owes 1 record
		done := startWait(context.Background(), l, 1)
		expectWaitUntil(t, clock, done, rateEpoch.Add(100*time.Millisecond))
		l.SetRate(1)
		expectWaitUntil(t, clock, done, rateEpoch.Add(time.Second))
		clock.Advance(100 * time.Millisecond)
		if d := l.Reserve(1); d != 900*time.Millisecond {
			t.Fatalf("Reserve = %v, want 900ms", d)
		}
		clock.Advance(900 * time.Millisecond)
		expectDone(t, done, nil)
	})
	t.Run("to unlimited releases waiters", func(t *testing.T) {
		clock := newWaitSignalClock()
		l := newRateLimiter(clock, 1)
		expectPass(t, clock, startWait(context.Background(), l, 100))
		done := startWait(context.Background(), l, 1)
		expectWaitUntil(t, clock, done, rateEpoch.Add(100*time.Second))
		l.SetRate(0)
		expectPass(t, clock, done)
	})
	t.Run("from unlimited starts afresh", func(t *testing.T) {
		clock := NewManualClock(rateEpoch)
		l := newRateLimiter(clock, 0)
		l.Reserve(1 << 20)
		clock.Advance(time.Hour)
		l.SetRate(10)
		if n := passNow(t, l, 100); n != 1 {
			t.Fatalf("%d records passed right after leaving unlimited, want 1 (nothing stored)", n)
		}
		if d := l.Reserve(1); d != 100*time.Millisecond {
			t.Fatalf("Reserve = %v, want 100ms", d)
		}
	})
	t.Run("stored records are capped at the new burst", func(t *testing.T) {
		clock := NewManualClock(rateEpoch)
		l := newRateLimiter(clock, 100)
		l.Reserve(1)
		clock.Advance(time.Minute) // 100 stored
		l.SetRate(10)
		if n := passNow(t, l, 1000); n != 11 {
			t.Fatalf("%d records passed, want 11 (10 stored + 1 borrowed)", n)
		}
	})
}

// TestRateLimitConcurrent runs waiters, Reserve, SetRate and Rate at once
// (for the race detector) and checks that every waiter finishes.
func TestRateLimitConcurrent(t *testing.T) {
	const waiters, each = 8, 50
	clock := NewManualClock(rateEpoch)
	l := newRateLimiter(clock, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var finished atomic.Int64
	for range waiters {
		wg.Go(func() {
			for range each {
				if err := l.Wait(ctx, 1); err != nil {
					t.Errorf("Wait = %v", err)
					return
				}
			}
			finished.Add(1)
		})
	}
	for i := 0; finished.Load() < waiters; i++ {
		if i > 1_000_000 {
			cancel()
			wg.Wait()
			t.Fatalf("only %d of %d waiters finished", finished.Load(), waiters)
		}
		l.SetRate(float64(50 + i%100))
		_ = l.Rate()
		l.Reserve(1)
		clock.Advance(10 * time.Millisecond)
	}
	wg.Wait()
}
