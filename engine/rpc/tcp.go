package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// laneTimeout bounds how long an accepted connection may take to send its
// lane byte and preamble, so a silent client cannot hold a goroutine.
const laneTimeout = 10 * time.Second

// TCP is an Endpoint on one TCP port shared by raft and RPC (see frame.go).
//
// Goroutines, all owned by the TCP and waited for by Close: one accept
// loop; one per accepted connection until its lane is known, then for RPC
// connections the same one reads frames; one per request being served; one
// reader per outbound RPC connection. Raft's NetworkTransport runs its own
// goroutines over connections this TCP tracks and closes.
type TCP struct {
	caller
	handlers handlers
	ln       net.Listener
	// localIP, when the node listens on one IP (not 0.0.0.0 or ::), is
	// the IP its outbound connections leave from: see dialer.
	localIP   net.IP
	advertise net.Addr // Options.Advertise, nil if not set
	stream    *raftStream
	raft      *raft.NetworkTransport
	base      context.Context // parent of every handler's context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	once      sync.Once

	mu struct {
		sync.Mutex
		closed  bool
		peers   map[string]string
		conns   map[net.Conn]struct{} // every open connection, both lanes
		clients map[string]*peerSlot  // by address
	}
}

// Listen binds addr ("127.0.0.1:7001"); peers maps node id → address
// (including this node). The raft transport is a *raft.NetworkTransport over
// a raft.StreamLayer whose Dial writes the raft lane byte first and whose
// Accept yields the connections that started with it.
func Listen(id, addr string, peers map[string]string, opts Options) (*TCP, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rpc: listen on --raft %s: %w", addr, err)
	}
	t := &TCP{caller: caller{id: id, opts: opts.withDefaults(), closing: make(chan struct{})}, ln: ln}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsUnspecified() {
		t.localIP = a.IP
	}
	if opts.Advertise != "" {
		t.advertise = advertisedAddr(opts.Advertise)
	}
	t.base, t.cancel = context.WithCancel(context.Background())
	t.mu.peers = maps.Clone(peers)
	t.mu.conns = make(map[net.Conn]struct{})
	t.mu.clients = make(map[string]*peerSlot)
	t.stream = &raftStream{t: t, ch: make(chan net.Conn), done: make(chan struct{})}
	t.raft = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  t.stream,
		MaxPool: t.opts.RaftPool,
		Timeout: t.opts.RaftTimeout,
		Logger:  t.opts.RaftLogger,
	})
	t.goTracked(t.acceptLoop)
	return t, nil
}

// dialer returns the dialer for a connection to addr. A node that listens
// on one IP dials from that IP too (any port), so that the peer sees
// which node a connection comes from: loopback clusters give each node
// its own 127.0.0.x, and a fault proxy in front of a node (chaos) tells
// the nodes apart by source IP to cut one direction of a link. It does
// not when addr is an IP of the other kind (loopback against not), which
// the local IP could not reach.
func (t *TCP) dialer(addr string) *net.Dialer {
	d := &net.Dialer{}
	if t.localIP == nil {
		return d
	}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() != t.localIP.IsLoopback() {
			return d
		}
	}
	d.LocalAddr = &net.TCPAddr{IP: t.localIP}
	return d
}

// advertisedAddr is addr as a net.Addr for raft, which only formats it
// with String.
func advertisedAddr(addr string) net.Addr {
	return stringAddr(addr) // a host name stays one: it is resolved when dialed
}

type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

func (t *TCP) ID() string           { return t.id }
func (t *TCP) Addr() net.Addr       { return t.ln.Addr() }
func (t *TCP) Raft() raft.Transport { return t.raft }

func (t *TCP) Handle(method string, h Handler) { t.handlers.set(method, h) }

// RaftAddress is the node's address in the peer map: raft and RPC share it.
func (t *TCP) RaftAddress(node string) (raft.ServerAddress, bool) {
	addr, ok := t.peer(node)
	return raft.ServerAddress(addr), ok
}

// SetPeers replaces the peer map (membership change). Calls in flight keep
// the address they started with.
func (t *TCP) SetPeers(peers map[string]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mu.peers = maps.Clone(peers)
}

func (t *TCP) peer(node string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	addr, ok := t.mu.peers[node]
	return addr, ok
}

// Call implements Endpoint. A call to this node goes through its own
// listener, the same path as any other.
func (t *TCP) Call(ctx context.Context, to, method string, req, resp any) error {
	addr, ok := t.peer(to)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownPeer, to)
	}
	return t.call(ctx, to, method, req, resp, func(ctx context.Context, r request) ([]byte, error) {
		return t.attempt(ctx, addr, r)
	})
}

// Close closes the listener, the raft transport and every connection,
// fails calls in flight with ErrClosed, and waits for its goroutines.
func (t *TCP) Close() error {
	t.once.Do(func() {
		t.mu.Lock()
		t.mu.closed = true
		close(t.closing)
		conns := maps.Clone(t.mu.conns)
		t.mu.Unlock()
		t.cancel()
		_ = t.ln.Close()
		_ = t.raft.Close()
		t.raft.CloseStreams()
		for c := range conns {
			_ = c.Close()
		}
		t.wg.Wait()
	})
	return nil
}

// goTracked starts f in a goroutine Close waits for, unless Close has
// begun.
func (t *TCP) goTracked(f func()) bool { return spawn(&t.mu.Mutex, &t.mu.closed, &t.wg, f) }

// spawn starts f in a goroutine wg counts, unless *closed (read under mu)
// says the owner's Close has begun. Adding under mu keeps wg.Add from
// racing the owner's wg.Wait.
func spawn(mu *sync.Mutex, closed *bool, wg *sync.WaitGroup, f func()) bool {
	mu.Lock()
	defer mu.Unlock()
	if *closed {
		return false
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		f()
	}()
	return true
}

// track records an open connection so Close can close it; it refuses (and
// closes c) once Close has begun.
func (t *TCP) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		_ = c.Close()
		return false
	}
	t.mu.conns[c] = struct{}{}
	return true
}

func (t *TCP) untrack(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mu.conns, c)
}

func (t *TCP) closeConn(c net.Conn) {
	t.untrack(c)
	_ = c.Close()
}

func (t *TCP) acceptLoop() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.isClosing() || errors.Is(err, net.ErrClosed) {
				return
			}
			t.opts.Logger.Warn("rpc: accept failed", "node", t.id, "err", err)
			if t.sleep(context.Background(), 10*time.Millisecond, err) != nil {
				return
			}
			continue
		}
		if !t.track(c) {
			return
		}
		if !t.goTracked(func() { t.route(c) }) {
			t.closeConn(c)
			return
		}
	}
}

// route reads the lane byte and hands the connection to raft or serves it
// as RPC. A connection that starts wrong is logged and closed.
func (t *TCP) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(laneTimeout))
	var lane [1]byte
	if _, err := io.ReadFull(c, lane[:]); err != nil {
		t.closeConn(c)
		return
	}
	switch lane[0] {
	case laneRaft:
		_ = c.SetReadDeadline(time.Time{})
		t.stream.deliver(&trackedConn{Conn: c, t: t})
	case laneRPC:
		var pre [preambleSize - 1]byte
		if _, err := io.ReadFull(c, pre[:]); err != nil {
			t.closeConn(c)
			return
		}
		if err := checkPreamble(pre[:]); err != nil {
			t.opts.Logger.Warn("rpc: refused connection", "node", t.id, "remote", c.RemoteAddr().String(), "err", err)
			t.closeConn(c)
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		t.serveConn(c)
	default:
		t.opts.Logger.Warn("rpc: refused connection", "node", t.id, "remote", c.RemoteAddr().String(),
			"err", fmt.Errorf("%w: unknown lane byte 0x%02x", ErrVersion, lane[0]))
		t.closeConn(c)
	}
}
