package rpc

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"
)

// MemNetwork is an in-memory network for a one-process simulated cluster.
// Raft traffic uses raft's InmemTransport (raft addresses are node ids);
// RPC calls go through the same msgpack encoding of bodies and envelopes as
// TCP, so a value that would not encode fails here too, but no sockets.
// Partitions cut both lanes. A paused node's calls, both ways, are held
// and delivered when it resumes (see Pause).
type MemNetwork struct {
	mu     sync.Mutex
	eps    map[string]*MemEndpoint  // latest endpoint per id, open or closed
	group  map[string]int           // partition group per id; nil: healed
	paused map[string]chan struct{} // closed by Resume
}

// NewMemNetwork returns an empty, fully connected network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{eps: make(map[string]*MemEndpoint)}
}

// MemEndpoint is a node's Endpoint on a MemNetwork.
type MemEndpoint struct {
	caller
	net      *MemNetwork
	handlers handlers
	trans    *raft.InmemTransport
	base     context.Context // parent of every handler's context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once

	mu struct {
		sync.Mutex
		closed bool
	}
}

// Endpoint joins a new endpoint with default Options. While the endpoint
// for id is open it is returned again; after it was closed a fresh one is
// made (a restarted node).
func (n *MemNetwork) Endpoint(id string) *MemEndpoint {
	return n.EndpointWith(id, Options{})
}

// EndpointWith is Endpoint with Options (Timeout, Retries, Backoff, Logger
// apply; the TCP-only fields are ignored).
func (n *MemNetwork) EndpointWith(id string, opts Options) *MemEndpoint {
	n.mu.Lock()
	defer n.mu.Unlock()
	if e := n.eps[id]; e != nil && !e.isClosing() {
		return e
	}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(id))
	e := &MemEndpoint{
		caller: caller{id: id, opts: opts.withDefaults(), closing: make(chan struct{})},
		net:    n,
		trans:  trans,
	}
	e.base, e.cancel = context.WithCancel(context.Background())
	n.eps[id] = e
	n.rewireLocked()
	return e
}

// Partition splits the network: nodes in different groups cannot reach
// each other, by RPC (ErrUnreachable) or raft. Nodes named in no group
// form one more group together.
func (n *MemNetwork) Partition(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.group = make(map[string]int)
	for g, ids := range groups {
		for _, id := range ids {
			n.group[id] = g + 1
		}
	}
	n.rewireLocked()
}

// Heal reconnects everything and resumes every paused node.
func (n *MemNetwork) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.group = nil
	for id := range n.paused {
		n.resumeLocked(id)
	}
	n.rewireLocked()
}

// Pause freezes id's traffic as a stopped process's (SIGSTOP) would be,
// as far as a network can: raft messages to and from it are dropped (raft
// retries them), and RPC calls to or from it are held, neither delivered
// nor failed, until Resume. A caller whose deadline passes meanwhile gets
// ErrTimeout, and its request is still delivered after Resume: a stale
// message arriving late, as from a process that wakes up with requests in
// its socket buffers. The node's own goroutines keep running, which a
// stopped process's do not: what this models is the others' view of it.
func (n *MemNetwork) Pause(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.paused == nil {
		n.paused = make(map[string]chan struct{})
	}
	if n.paused[id] == nil {
		n.paused[id] = make(chan struct{})
	}
	n.rewireLocked()
}

// Resume delivers id's held calls and reconnects its raft routes.
func (n *MemNetwork) Resume(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.resumeLocked(id)
	n.rewireLocked()
}

func (n *MemNetwork) resumeLocked(id string) {
	if ch := n.paused[id]; ch != nil {
		close(ch)
		delete(n.paused, id)
	}
}

// held returns a channel closed once neither end of a call from → to is
// paused, or nil if neither is now.
func (n *MemNetwork) held(from, to string) <-chan struct{} {
	n.mu.Lock()
	a, b := n.paused[from], n.paused[to]
	n.mu.Unlock()
	switch {
	case a == nil && b == nil:
		return nil
	case a == nil || from == to:
		return b
	case b == nil:
		return a
	}
	both := make(chan struct{})
	go func() {
		<-a
		<-b
		close(both)
	}()
	return both
}

// Isolate cuts id off from every other node.
func (n *MemNetwork) Isolate(id string) {
	n.Partition([]string{id})
}

func (n *MemNetwork) reachableLocked(a, b string) bool {
	return n.group == nil || n.group[a] == n.group[b]
}

// raftLinkedLocked: raft traffic flows between a and b.
func (n *MemNetwork) raftLinkedLocked(a, b string) bool {
	return n.reachableLocked(a, b) && n.paused[a] == nil && n.paused[b] == nil
}

// rewireLocked makes raft's routes match the partition: connected both
// ways between open endpoints that can reach each other, else cut.
func (n *MemNetwork) rewireLocked() {
	for a, ea := range n.eps {
		if ea.isClosing() {
			continue
		}
		for b, eb := range n.eps {
			switch {
			case a == b:
				ea.trans.Connect(ea.trans.LocalAddr(), ea.trans)
			case !eb.isClosing() && n.raftLinkedLocked(a, b):
				ea.trans.Connect(raft.ServerAddress(b), eb.trans)
			default:
				ea.trans.Disconnect(raft.ServerAddress(b))
			}
		}
	}
}

// route finds the endpoint a call from → to is delivered to.
func (n *MemNetwork) route(from, to string) (*MemEndpoint, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.eps[to]
	switch {
	case e == nil:
		return nil, fmt.Errorf("%w: %q", ErrUnknownPeer, to)
	case e.isClosing():
		return nil, &retryable{fmt.Errorf("node %s is down", to)}
	case !n.reachableLocked(from, to):
		return nil, &retryable{fmt.Errorf("node %s is partitioned from %s", to, from)}
	}
	return e, nil
}

func (n *MemNetwork) known(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.eps[id] != nil
}

func (e *MemEndpoint) ID() string                      { return e.id }
func (e *MemEndpoint) Raft() raft.Transport            { return e.trans }
func (e *MemEndpoint) Handle(method string, h Handler) { e.handlers.set(method, h) }

// RaftAddress is the node id itself, for any node that ever joined.
func (e *MemEndpoint) RaftAddress(node string) (raft.ServerAddress, bool) {
	return raft.ServerAddress(node), e.net.known(node)
}

// Call implements Endpoint; a call to this node is delivered to itself.
func (e *MemEndpoint) Call(ctx context.Context, to, method string, req, resp any) error {
	if !e.net.known(to) {
		return fmt.Errorf("%w: %q", ErrUnknownPeer, to)
	}
	return e.call(ctx, to, method, req, resp, func(ctx context.Context, r request) ([]byte, error) {
		if to != e.id {
			if hold := e.net.held(e.id, to); hold != nil {
				return e.deliverLater(ctx, hold, to, r)
			}
		}
		target, err := e.net.route(e.id, to)
		if err != nil {
			return nil, err
		}
		return e.deliver(ctx, target, r)
	})
}

// deliverLater holds a call while an end of it is paused, then delivers
// it to whatever node to is by then, whether or not the caller still
// waits: a caller that gives up first gets ErrTimeout, and the handler
// runs all the same (the request was on the wire).
func (e *MemEndpoint) deliverLater(ctx context.Context, hold <-chan struct{}, to string, r request) ([]byte, error) {
	type result struct {
		body []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		<-hold
		target, err := e.net.route(e.id, to)
		if err != nil {
			done <- result{nil, err}
			return
		}
		body, err := e.deliver(context.Background(), target, r)
		done <- result{body, err}
	}()
	select {
	case res := <-done:
		return res.body, res.err
	case <-ctx.Done():
		return nil, ctxError(ctx, nil)
	case <-e.closing:
		return nil, ErrClosed
	}
}

// deliver runs r on target in a goroutine target owns, the envelope
// encoded and decoded both ways as on the wire.
func (e *MemEndpoint) deliver(ctx context.Context, target *MemEndpoint, r request) ([]byte, error) {
	payload, err := msgpack.Marshal(&r)
	if err != nil {
		return nil, fmt.Errorf("rpc: encode request frame: %w", err)
	}
	done := make(chan []byte, 1)
	if !target.goTracked(func() { done <- target.serve(payload) }) {
		return nil, &retryable{fmt.Errorf("node %s is down", target.id)}
	}
	select {
	case out := <-done:
		var resp response
		if err := decodePayload(out, &resp); err != nil {
			return nil, err
		}
		return resp.Body, responseError(resp.Code, resp.Message)
	case <-ctx.Done():
		return nil, ctxError(ctx, nil)
	case <-e.closing:
		return nil, ErrClosed
	case <-target.closing:
		return nil, fmt.Errorf("%w: node %s closed with the call in flight, outcome unknown", ErrUnreachable, target.id)
	}
}

func (e *MemEndpoint) serve(payload []byte) []byte {
	req := new(request)
	resp := response{Code: CodeInternal}
	if err := decodePayload(payload, req); err != nil {
		resp.Message = err.Error()
	} else {
		resp = e.handlers.serve(e.base, req)
	}
	out, err := msgpack.Marshal(&resp)
	if err != nil {
		out, _ = msgpack.Marshal(&response{ID: req.ID, Code: CodeInternal, Message: err.Error()})
	}
	return out
}

func (e *MemEndpoint) goTracked(f func()) bool { return spawn(&e.mu.Mutex, &e.mu.closed, &e.wg, f) }

// Close disconnects the endpoint from the network (calls to it fail with
// ErrUnreachable), fails its own calls in flight with ErrClosed, cancels
// its handlers and waits for them.
func (e *MemEndpoint) Close() error {
	e.once.Do(func() {
		e.mu.Lock()
		e.mu.closed = true
		close(e.closing)
		e.mu.Unlock()
		e.cancel()
		e.net.mu.Lock()
		e.net.rewireLocked()
		e.net.mu.Unlock()
		_ = e.trans.Close()
		e.wg.Wait()
	})
	return nil
}
