package recovery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// wait starts a raft operation and waits for its future or for ctx. raft's
// futures take no context, so when ctx can end, a goroutine waits on the
// future; it is counted in l.futures, and Close waits for it, so it never
// outlives the Log. The operation is given ctx's remaining time as raft's
// enqueue timeout.
func (l *Log) wait(ctx context.Context, start func(timeout time.Duration) raft.Future) error {
	timeout, err := enqueueTimeout(ctx)
	if err != nil {
		return err
	}
	if !l.track() {
		return ErrClosed
	}
	f := start(timeout)
	if ctx.Done() == nil {
		defer l.futures.Done()
		return f.Error()
	}
	done := make(chan error, 1)
	go func() {
		defer l.futures.Done()
		done <- f.Error()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// track counts one more future in flight, unless the log is closed.
func (l *Log) track() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return false
	}
	l.futures.Add(1)
	return true
}

// enqueueTimeout is ctx's remaining time (0: none), or ctx's error if it
// already ended.
func enqueueTimeout(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	d, ok := ctx.Deadline()
	if !ok {
		return 0, nil
	}
	if left := time.Until(d); left > 0 {
		return left, nil
	}
	return 0, context.DeadlineExceeded
}

// futureError sorts a raft or context error into this package's classes,
// keeping the original in the chain.
func futureError(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}
