package rpc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Handler serves one method. from is the calling node's id (sent in the
// request header). body is the request's msgpack payload; the returned
// bytes are the response's msgpack payload. Returning an *Error sends its
// Code/Message to the caller; any other error is sent as Code "internal".
// ctx carries the caller's deadline and is cancelled when the endpoint
// closes or the caller's connection breaks.
type Handler func(ctx context.Context, from string, body []byte) ([]byte, error)

// Endpoint is one node's end of the cluster network.
type Endpoint interface {
	ID() string
	// Raft is the transport raft uses; addresses are raft.ServerAddress.
	Raft() raft.Transport
	// RaftAddress is the raft address of a node id.
	RaftAddress(node string) (raft.ServerAddress, bool)
	// Handle registers h for method. Register before first use; safe
	// concurrently. A second registration replaces the first.
	Handle(method string, h Handler)
	// Call sends req (msgpack-encoded) to node `to` and decodes the reply
	// into resp (may be nil). It honours ctx's deadline (Options.Timeout
	// when ctx has none). It retries, with backoff and a bounded number of
	// times, only failures where the request provably did not reach a
	// handler (dial refused, write failed); once the request is on the wire
	// it is never sent again, so a handler runs at most once per Call.
	Call(ctx context.Context, to, method string, req, resp any) error
	// Close closes the listener and connections, fails calls in flight with
	// ErrClosed, and waits for every goroutine the endpoint started.
	Close() error
}

var (
	_ Endpoint = (*TCP)(nil)
	_ Endpoint = (*MemEndpoint)(nil)
)

// Options tunes an endpoint. The zero value is valid: every zero field
// takes the default documented on it.
type Options struct {
	Logger      *slog.Logger  // nil: discard
	Timeout     time.Duration // default per-call timeout; default 5s
	Retries     int           // transport retries after the first attempt; default 3, -1 for none
	Backoff     time.Duration // first retry delay, doubled each retry; default 50ms
	MaxFrame    int           // largest frame payload accepted; default 64 MiB
	RaftPool    int           // raft.NetworkTransportConfig.MaxPool; default 3
	RaftTimeout time.Duration // raft.NetworkTransportConfig.Timeout; default 10s
	RaftLogger  hclog.Logger  // raft transport's logger; nil: discard
	// MaxInFlight bounds the requests served concurrently per connection;
	// the connection's reader waits for a free slot. Default 64.
	MaxInFlight int
	// Advertise is the address the other nodes dial to reach this one
	// (its entry in the peer map), when it differs from the address it
	// listens on: behind a proxy or a NAT. Raft records it as this node's
	// address. Empty: the listening address.
	Advertise string
}

// DefaultOptions returns Options with every default filled in.
func DefaultOptions() Options { return Options{}.withDefaults() }

// Validate reports a negative field by name.
func (o Options) Validate() error {
	switch {
	case o.Timeout < 0:
		return fmt.Errorf("rpc: Options.Timeout %v is negative; use 0 for the default 5s", o.Timeout)
	case o.Retries < -1:
		return fmt.Errorf("rpc: Options.Retries %d: want -1 (none), 0 (default 3) or more", o.Retries)
	case o.Backoff < 0, o.RaftTimeout < 0:
		return fmt.Errorf("rpc: Options.Backoff and RaftTimeout must not be negative")
	case o.MaxFrame < 0, o.RaftPool < 0, o.MaxInFlight < 0:
		return fmt.Errorf("rpc: Options.MaxFrame, RaftPool and MaxInFlight must not be negative")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.RaftLogger == nil {
		o.RaftLogger = hclog.NewNullLogger()
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defD(&o.Timeout, 5*time.Second)
	def(&o.Retries, 3)
	if o.Retries < 0 {
		o.Retries = 0
	}
	defD(&o.Backoff, 50*time.Millisecond)
	def(&o.MaxFrame, DefaultMaxFrame)
	def(&o.RaftPool, 3)
	defD(&o.RaftTimeout, 10*time.Second)
	def(&o.MaxInFlight, 64)
	return o
}

// handlers is the method table both endpoint kinds share.
type handlers struct {
	mu sync.RWMutex
	m  map[string]Handler
}

func (h *handlers) set(method string, fn Handler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = make(map[string]Handler)
	}
	h.m[method] = fn
}

func (h *handlers) get(method string) (Handler, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	fn, ok := h.m[method]
	return fn, ok
}

// serve runs the handler for one request and builds its response. The
// handler's context carries the request's deadline.
func (h *handlers) serve(ctx context.Context, req *request) response {
	resp := response{ID: req.ID}
	fn, ok := h.get(req.Method)
	if !ok {
		resp.Code, resp.Message = CodeUnknownMethod, fmt.Sprintf("no handler for method %q", req.Method)
		return resp
	}
	if req.DeadlineMS != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.UnixMilli(req.DeadlineMS))
		defer cancel()
	}
	body, err := fn(ctx, req.From, req.Body)
	if err != nil {
		resp.Code, resp.Message = remoteError(err)
		return resp
	}
	resp.Body = body
	return resp
}
