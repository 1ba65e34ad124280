package rpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// serverConn is an accepted RPC connection. Its reader (the route
// goroutine) decodes requests and starts one goroutine per request, at most
// MaxInFlight at a time; responses are written under wmu in completion
// order.
type serverConn struct {
	t    *TCP
	conn net.Conn
	wmu  sync.Mutex
}

// serveConn reads requests until the connection ends or carries a bad
// frame, which is logged and ends it. Handlers still running see their
// context cancelled.
func (t *TCP) serveConn(c net.Conn) {
	ctx, cancel := context.WithCancel(t.base)
	defer cancel()
	defer t.closeConn(c)
	sc := &serverConn{t: t, conn: c}
	sem := make(chan struct{}, t.opts.MaxInFlight)
	r := bufio.NewReaderSize(c, 64<<10)
	for {
		req, err := sc.read(r)
		if err != nil {
			sc.logEnd(err)
			return
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if !t.goTracked(func() { defer func() { <-sem }(); sc.serve(ctx, req) }) {
			return
		}
	}
}

func (sc *serverConn) read(r io.Reader) (*request, error) {
	payload, err := readFrame(r, sc.t.opts.MaxFrame)
	if err != nil {
		return nil, err
	}
	req := new(request)
	if err := decodePayload(payload, req); err != nil {
		return nil, err
	}
	return req, nil
}

// logEnd logs why a connection ended: a warning for a bad frame, nothing
// for an ordinary close.
func (sc *serverConn) logEnd(err error) {
	switch {
	case errors.Is(err, ErrMalformed):
		sc.t.opts.Logger.Warn("rpc: bad request frame, closing connection",
			"node", sc.t.id, "remote", sc.conn.RemoteAddr().String(), "err", err)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), sc.t.isClosing():
	default:
		sc.t.opts.Logger.Debug("rpc: connection ended", "node", sc.t.id,
			"remote", sc.conn.RemoteAddr().String(), "err", err)
	}
}

func (sc *serverConn) serve(ctx context.Context, req *request) {
	resp := sc.t.handlers.serve(ctx, req)
	payload, err := msgpack.Marshal(&resp)
	if err == nil && len(payload) > sc.t.opts.MaxFrame {
		err = fmt.Errorf("response of %d bytes is over MaxFrame %d", len(payload), sc.t.opts.MaxFrame)
	}
	if err != nil {
		resp = response{ID: req.ID, Code: CodeInternal, Message: err.Error()}
		payload, _ = msgpack.Marshal(&resp)
	}
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	// A client that stops reading must not pin this goroutine forever.
	_ = sc.conn.SetWriteDeadline(time.Now().Add(sc.t.opts.Timeout))
	if err := writeFrame(sc.conn, payload); err != nil {
		sc.t.closeConn(sc.conn)
	}
}
