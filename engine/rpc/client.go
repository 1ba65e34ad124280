package rpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// peerSlot holds the one multiplexed connection to an address. sem (one
// token) serialises dialing so concurrent calls share a single dial, and
// waiting for it honours the caller's context.
type peerSlot struct {
	sem chan struct{}
	cc  *clientConn // guarded by sem
}

// clientConn is an outbound RPC connection shared by every call to one
// address. Calls write under wmu; one reader goroutine (owned by the TCP)
// dispatches responses to the waiting calls by id.
type clientConn struct {
	t    *TCP
	addr string
	conn net.Conn
	wmu  sync.Mutex
	dead chan struct{} // closed once the connection failed

	mu struct {
		sync.Mutex
		next    uint64
		pending map[uint64]chan response
		err     error // why the connection died
	}
}

// client returns the live connection to addr, dialing one if needed.
func (t *TCP) client(ctx context.Context, addr string) (*clientConn, error) {
	t.mu.Lock()
	s := t.mu.clients[addr]
	if s == nil {
		s = &peerSlot{sem: make(chan struct{}, 1)}
		t.mu.clients[addr] = s
	}
	t.mu.Unlock()
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctxError(ctx, nil)
	case <-t.closing:
		return nil, ErrClosed
	}
	defer func() { <-s.sem }()
	if s.cc != nil && !s.cc.failed() {
		return s.cc, nil
	}
	cc, err := t.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	s.cc = cc
	return cc, nil
}

// dial opens an RPC connection and starts its reader. Failures before the
// connection is usable are retryable: no request has been sent on it.
func (t *TCP) dial(ctx context.Context, addr string) (*clientConn, error) {
	c, err := t.dialer(addr).DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx, err)
		}
		return nil, &retryable{fmt.Errorf("dial %s: %w", addr, err)}
	}
	if !t.track(c) {
		return nil, ErrClosed
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetWriteDeadline(dl)
	}
	if _, err := c.Write(rpcPreamble()); err != nil {
		t.closeConn(c)
		return nil, &retryable{fmt.Errorf("write preamble to %s: %w", addr, err)}
	}
	_ = c.SetWriteDeadline(time.Time{})
	cc := &clientConn{t: t, addr: addr, conn: c, dead: make(chan struct{})}
	cc.mu.pending = make(map[uint64]chan response)
	if !t.goTracked(cc.readLoop) {
		t.closeConn(c)
		return nil, ErrClosed
	}
	return cc, nil
}

// attempt sends one request on the connection to addr and waits for its
// response.
func (t *TCP) attempt(ctx context.Context, addr string, r request) ([]byte, error) {
	cc, err := t.client(ctx, addr)
	if err != nil {
		return nil, err
	}
	id, ch, err := cc.register()
	if err != nil {
		return nil, &retryable{err} // died before we wrote a byte
	}
	defer cc.unregister(id)
	r.ID = id
	payload, err := msgpack.Marshal(&r)
	if err != nil {
		return nil, fmt.Errorf("rpc: encode request frame: %w", err)
	}
	if len(payload) > t.opts.MaxFrame {
		return nil, fmt.Errorf("rpc: %s request of %d bytes is over MaxFrame %d", r.Method, len(payload), t.opts.MaxFrame)
	}
	if err := cc.write(ctx, payload); err != nil {
		return nil, err
	}
	return cc.wait(ctx, ch)
}

// wait blocks until the response, the connection's death, the deadline or
// Close. The request is on the wire: nothing here is retryable.
func (cc *clientConn) wait(ctx context.Context, ch chan response) ([]byte, error) {
	select {
	case resp := <-ch:
		return resp.Body, responseError(resp.Code, resp.Message)
	case <-cc.dead:
		select {
		case resp := <-ch: // the reader dispatches before it fails the conn
			return resp.Body, responseError(resp.Code, resp.Message)
		default:
		}
		if cc.t.isClosing() {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("%w: connection to %s lost after the request was sent, outcome unknown: %w",
			ErrUnreachable, cc.addr, cc.cause())
	case <-ctx.Done():
		return nil, ctxError(ctx, nil)
	case <-cc.t.closing:
		return nil, ErrClosed
	}
}

// write sends one frame. A failed write leaves a torn frame the server will
// never dispatch, so the connection is dropped and the call may be retried.
func (cc *clientConn) write(ctx context.Context, payload []byte) error {
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		_ = cc.conn.SetWriteDeadline(dl)
	}
	err := writeFrame(cc.conn, payload)
	_ = cc.conn.SetWriteDeadline(time.Time{})
	if err == nil {
		return nil
	}
	cc.fail(err)
	switch {
	case cc.t.isClosing():
		return ErrClosed
	case ctx.Err() != nil:
		return ctxError(ctx, err)
	}
	return &retryable{fmt.Errorf("write to %s: %w", cc.addr, err)}
}

func (cc *clientConn) register() (uint64, chan response, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.mu.err != nil {
		return 0, nil, cc.mu.err
	}
	cc.mu.next++
	ch := make(chan response, 1)
	cc.mu.pending[cc.mu.next] = ch
	return cc.mu.next, ch, nil
}

func (cc *clientConn) unregister(id uint64) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	delete(cc.mu.pending, id)
}

func (cc *clientConn) failed() bool {
	select {
	case <-cc.dead:
		return true
	default:
		return false
	}
}

func (cc *clientConn) cause() error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.mu.err
}

// fail marks the connection dead (first cause wins) and closes it; calls
// waiting on it see dead closed.
func (cc *clientConn) fail(err error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.mu.err != nil {
		return
	}
	cc.mu.err = err
	close(cc.dead)
	cc.t.closeConn(cc.conn)
}

func (cc *clientConn) readLoop() {
	r := bufio.NewReaderSize(cc.conn, 64<<10)
	for {
		payload, err := readFrame(r, cc.t.opts.MaxFrame)
		var resp response
		if err == nil {
			err = decodePayload(payload, &resp)
		}
		if err != nil {
			if errors.Is(err, ErrMalformed) {
				cc.t.opts.Logger.Warn("rpc: bad response frame, dropping connection",
					"node", cc.t.id, "remote", cc.addr, "err", err)
			}
			cc.fail(err)
			return
		}
		cc.mu.Lock()
		ch := cc.mu.pending[resp.ID]
		delete(cc.mu.pending, resp.ID)
		cc.mu.Unlock()
		if ch != nil {
			ch <- resp // buffered; a call that gave up just never reads it
		}
	}
}
