package rpc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// maxBackoff caps the doubling retry delay.
const maxBackoff = time.Second

// retryable marks an attempt's failure as one where the request provably
// reached no handler (dial refused, preamble or request write failed), so
// sending it again cannot run a handler twice.
type retryable struct{ cause error }

func (r *retryable) Error() string { return "retryable: " + r.cause.Error() }
func (r *retryable) Unwrap() error { return r.cause }

// attemptFunc makes one try of a call and returns the response body. Its
// error is *retryable, or final (ErrClosed, ErrTimeout, ErrUnreachable, an
// *Error from the remote).
type attemptFunc func(ctx context.Context, req request) ([]byte, error)

// caller is the part of Call both endpoint kinds share: encoding, the
// default deadline, the bounded retry loop and decoding.
type caller struct {
	id      string
	opts    Options
	closing chan struct{} // closed when Close starts
}

func (c *caller) call(ctx context.Context, to, method string, req, resp any, attempt attemptFunc) error {
	if c.isClosing() {
		return ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
	}
	body, err := msgpack.Marshal(req)
	if err != nil {
		return fmt.Errorf("rpc: encode %s request: %w", method, err)
	}
	r := request{From: c.id, Method: method, Body: body}
	if dl, ok := ctx.Deadline(); ok {
		// Rounded up, so the handler's deadline never fires before the
		// caller's and the caller reports its own ErrTimeout.
		r.DeadlineMS = dl.Add(time.Millisecond - 1).UnixMilli()
	}
	out, err := c.retry(ctx, to, r, attempt)
	if IsCode(err, CodeTimeout) {
		return c.remoteTimeout(ctx, err)
	}
	if err != nil || resp == nil || len(out) == 0 {
		return err
	}
	if err := msgpack.Unmarshal(out, resp); err != nil {
		return fmt.Errorf("rpc: decode %s response into %T: %w", method, resp, err)
	}
	return nil
}

// remoteTimeout: the handler's copy of our deadline can fire a moment
// before ours; report it as our own timeout then, so callers see one error.
func (c *caller) remoteTimeout(ctx context.Context, err error) error {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 10*time.Millisecond {
		<-ctx.Done()
		return ctxError(ctx, err)
	}
	return err
}

func (c *caller) retry(ctx context.Context, to string, r request, attempt attemptFunc) ([]byte, error) {
	delay := c.opts.Backoff
	for try := 1; ; try++ {
		out, err := attempt(ctx, r)
		var re *retryable
		if !errors.As(err, &re) {
			return out, err
		}
		if try > c.opts.Retries {
			return nil, fmt.Errorf("%w: node %s after %d attempts: %w", ErrUnreachable, to, try, re.cause)
		}
		c.opts.Logger.Debug("rpc: call failed before delivery, retrying",
			"node", c.id, "to", to, "method", r.Method, "attempt", try, "backoff", delay, "err", re.cause)
		if err := c.sleep(ctx, delay, re.cause); err != nil {
			return nil, err
		}
		delay = min(2*delay, maxBackoff)
	}
}

// sleep waits d, or returns early with the error the call should return.
func (c *caller) sleep(ctx context.Context, d time.Duration, cause error) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctxError(ctx, cause)
	case <-c.closing:
		return ErrClosed
	}
}

func (c *caller) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// ctxError is what a call returns when its context ends: ErrTimeout for a
// deadline (wrapping the last transport cause when there was one), else the
// cancellation.
func ctxError(ctx context.Context, cause error) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		if cause != nil {
			return fmt.Errorf("%w: %w (last failure: %w)", ErrTimeout, err, cause)
		}
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return fmt.Errorf("rpc: call cancelled: %w", err)
}

// responseError turns a response's code into the error Call returns.
func responseError(code, message string) error {
	if code == "" {
		return nil
	}
	return &Error{Code: code, Message: message}
}

// Encode is the body codec Call uses for requests: handlers that return a
// value should encode it with Encode so both sides agree.
func Encode(v any) ([]byte, error) { return msgpack.Marshal(v) }

// Decode decodes a request body (in a Handler) or any body Encode made.
func Decode(body []byte, v any) error { return msgpack.Unmarshal(body, v) }
