package rpc

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestTCPCallResponse(t *testing.T) {
	checkLeaks(t)
	eps := newTCPCluster(t, 2, Options{})
	eps[1].Handle("echo", echo)
	var resp echoResp
	if err := eps[0].Call(context.Background(), "n2", "echo", echoReq{Text: "hi"}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.From != "n1" || resp.Text != "hi" {
		t.Fatalf("got %+v, want from n1 text hi", resp)
	}
}

func TestTCPCallSelf(t *testing.T) {
	checkLeaks(t)
	eps := newTCPCluster(t, 1, Options{})
	eps[0].Handle("echo", echo)
	var resp echoResp
	if err := eps[0].Call(context.Background(), "n1", "echo", echoReq{Text: "me"}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.From != "n1" || resp.Text != "me" {
		t.Fatalf("got %+v", resp)
	}
}

// TestTCPConcurrentCallsShareOneConnection: 200 calls in flight at once are
// multiplexed over a single connection and each gets its own answer.
func TestTCPConcurrentCallsShareOneConnection(t *testing.T) {
	checkLeaks(t)
	eps := newTCPCluster(t, 2, Options{})
	eps[1].Handle("echo", echo)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			var resp echoResp
			want := fmt.Sprint("call-", i)
			if err := eps[0].Call(context.Background(), "n2", "echo", echoReq{Text: want}, &resp); err != nil {
				errs <- err
			} else if resp.Text != want {
				errs <- fmt.Errorf("call %d got %q", i, resp.Text)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	eps[0].mu.Lock()
	conns := len(eps[0].mu.conns)
	eps[0].mu.Unlock()
	if conns != 1 {
		t.Errorf("caller holds %d connections, want 1 multiplexed", conns)
	}
}

func TestTCPBigBody(t *testing.T) {
	checkLeaks(t)
	eps := newTCPCluster(t, 2, Options{})
	eps[1].Handle("echo", echo)
	data := make([]byte, 8<<20)
	rand.Read(data)
	var resp echoResp
	if err := eps[0].Call(context.Background(), "n2", "echo", echoReq{Data: data}, &resp); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp.Data, data) {
		t.Fatal("8 MiB body came back different")
	}
}

// TestTCPRemoteErrors: an *Error keeps its code across the wire; any other
// error arrives as "internal"; a missing handler is "unknown-method".
func TestTCPRemoteErrors(t *testing.T) {
	checkLeaks(t)
	eps := newTCPCluster(t, 2, Options{})
	eps[1].Handle("not-leader", func(context.Context, string, []byte) ([]byte, error) {
		return nil, fmt.Errorf("wrapped: %w", Errorf("not-leader", "leader is %s", "n3"))
	})
	eps[1].Handle("plain", func(context.Context, string, []byte) ([]byte, error) {
		return nil, errors.New("disk on fire")
	})
	for _, tc := range []struct {
		method, code, msg string
		is                error
	}{
		{"not-leader", "not-leader", "leader is n3", nil},
		{"plain", CodeInternal, "disk on fire", nil},
		{"nope", CodeUnknownMethod, `no handler for method "nope"`, ErrUnknownMethod},
	} {
		t.Run(tc.method, func(t *testing.T) {
			err := eps[0].Call(context.Background(), "n2", tc.method, nil, nil)
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.code || e.Message != tc.msg || !IsCode(err, tc.code) {
				t.Fatalf("got %v, want code %q message %q", err, tc.code, tc.msg)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("%v is not %v", err, tc.is)
			}
		})
	}
}

func TestTCPUnknownPeer(t *testing.T) {
	checkLeaks(t)
	eps := newTCPCluster(t, 1, Options{})
	if err := eps[0].Call(context.Background(), "n9", "echo", nil, nil); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("got %v, want ErrUnknownPeer", err)
	}
}

// TestTCPTimeout: a handler that waits for its context sees the caller's
// deadline end it, and the caller gets ErrTimeout, whether the deadline
// came from ctx or from Options.Timeout.
func TestTCPTimeout(t *testing.T) {
	checkLeaks(t)
	eps := newTCPCluster(t, 2, Options{Timeout: 150 * time.Millisecond})
	handlerDone := make(chan error, 2)
	eps[1].Handle("block", func(ctx context.Context, _ string, _ []byte) ([]byte, error) {
		<-ctx.Done()
		handlerDone <- ctx.Err()
		return nil, ctx.Err()
	})
	for _, name := range []string{"ctx", "options"} {
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if name == "ctx" {
			ctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
		}
		defer cancel()
		start := time.Now()
		err := eps[0].Call(ctx, "n2", "block", nil, nil)
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: got %v, want ErrTimeout", name, err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("%s: took %v", name, el)
		}
		if herr := <-handlerDone; !errors.Is(herr, context.DeadlineExceeded) {
			t.Fatalf("%s: handler's ctx ended with %v, want its deadline", name, herr)
		}
	}
}

// TestTCPRetryPeerStartsWithinWindow: the peer's port refuses the first
// dial; it starts listening during the backoff and the call succeeds.
func TestTCPRetryPeerStartsWithinWindow(t *testing.T) {
	checkLeaks(t)
	addr := freeAddr(t)
	logs := newLogRecorder()
	a, err := Listen("a", "127.0.0.1:0", map[string]string{"b": addr}, Options{Retries: 5, Backoff: 50 * time.Millisecond, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	done := make(chan error, 1)
	var resp echoResp
	go func() { done <- a.Call(context.Background(), "b", "echo", echoReq{Text: "late"}, &resp) }()
	logs.await(t, "retrying", "attempt=1") // the first dial was refused
	b, err := Listen("b", addr, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	b.Handle("echo", echo)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if resp.Text != "late" {
		t.Fatalf("got %+v", resp)
	}
}

// TestTCPUnreachableBounded: a peer that never comes up costs the bounded
// retries, then ErrUnreachable wrapping the refused dial.
func TestTCPUnreachableBounded(t *testing.T) {
	checkLeaks(t)
	addr := freeAddr(t)
	a, err := Listen("a", "127.0.0.1:0", map[string]string{"b": addr}, Options{Retries: 3, Backoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	start := time.Now()
	err = a.Call(context.Background(), "b", "echo", nil, nil)
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("got %v, want ErrUnreachable wrapping ECONNREFUSED", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("gave up after %v, want well under 2s", el)
	}
}

// TestTCPNoRetryAfterHandlerRan: the server drops the connection after the
// handler ran but before the reply went out. The caller must not resend:
// ErrUnreachable, and the handler ran exactly once.
func TestTCPNoRetryAfterHandlerRan(t *testing.T) {
	checkLeaks(t)
	eps := newTCPCluster(t, 2, Options{Retries: 5, Backoff: 10 * time.Millisecond})
	var runs atomic.Int32
	eps[1].Handle("once", func(context.Context, string, []byte) ([]byte, error) {
		runs.Add(1)
		dropConns(eps[1])
		return Encode("done")
	})
	err := eps[0].Call(context.Background(), "n2", "once", nil, nil)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable (outcome unknown)", err)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

// TestTCPReplyThenDrop: the handler replied, then the server dropped the
// connection; the call succeeded once and the next call reconnects.
func TestTCPReplyThenDrop(t *testing.T) {
	checkLeaks(t)
	eps := newTCPCluster(t, 2, Options{})
	var runs atomic.Int32
	eps[1].Handle("count", func(context.Context, string, []byte) ([]byte, error) {
		return Encode(runs.Add(1))
	})
	var n int32
	if err := eps[0].Call(context.Background(), "n2", "count", nil, &n); err != nil || n != 1 {
		t.Fatalf("first call: %d, %v", n, err)
	}
	dropConns(eps[1])
	awaitClientDead(t, eps[0], eps[1].Addr().String())
	if err := eps[0].Call(context.Background(), "n2", "count", nil, &n); err != nil || n != 2 {
		t.Fatalf("call after the drop: %d, %v", n, err)
	}
	if r := runs.Load(); r != 2 {
		t.Fatalf("handler ran %d times for 2 calls", r)
	}
}

// dropConns closes every connection the endpoint holds, as a crash of the
// network path would, without closing the endpoint.
func dropConns(ep *TCP) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	for c := range ep.mu.conns {
		_ = c.Close()
	}
}

// awaitClientDead waits until ep's connection to addr has seen the drop.
func awaitClientDead(t *testing.T, ep *TCP, addr string) {
	t.Helper()
	ep.mu.Lock()
	s := ep.mu.clients[addr]
	ep.mu.Unlock()
	s.sem <- struct{}{}
	cc := s.cc
	<-s.sem
	select {
	case <-cc.dead:
	case <-time.After(5 * time.Second):
		t.Fatal("client never noticed the dropped connection")
	}
}

// TestTCPCloseWithCallsInFlight: closing the caller fails its calls in
// flight with ErrClosed; closing the server while handlers block does not
// hang; nothing leaks.
func TestTCPCloseWithCallsInFlight(t *testing.T) {
	checkLeaks(t)
	eps := newTCPCluster(t, 2, Options{})
	started := make(chan struct{}, 10)
	eps[1].Handle("block", func(ctx context.Context, _ string, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	errs := make(chan error, 10)
	for range 10 {
		go func() { errs <- eps[0].Call(context.Background(), "n2", "block", nil, nil) }()
	}
	for range 10 {
		<-started
	}
	eps[0].Close()
	for range 10 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Errorf("got %v, want ErrClosed", err)
		}
	}
	if err := eps[0].Call(context.Background(), "n2", "block", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("call after Close: %v, want ErrClosed", err)
	}
	closed := make(chan struct{})
	go func() { eps[1].Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("server Close hung with handlers in flight")
	}
}

func TestTCPOversizeRequestRefusedLocally(t *testing.T) {
	checkLeaks(t)
	eps := newTCPCluster(t, 2, Options{MaxFrame: 1 << 10})
	eps[1].Handle("echo", echo)
	err := eps[0].Call(context.Background(), "n2", "echo", echoReq{Data: make([]byte, 2<<10)}, nil)
	if err == nil || errors.Is(err, ErrUnreachable) {
		t.Fatalf("got %v, want a local over-MaxFrame error", err)
	}
	if err := eps[0].Call(context.Background(), "n2", "echo", echoReq{Text: "small"}, nil); err != nil {
		t.Fatalf("small call after refusal: %v", err)
	}
}
