package rpc

import (
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// raftStream is the raft.StreamLayer over the shared port: Dial writes the
// raft lane byte before handing the connection to raft, and Accept yields
// the accepted connections whose first byte was that lane byte.
type raftStream struct {
	t    *TCP
	ch   chan net.Conn // from route to Accept
	done chan struct{} // closed by Close
	once sync.Once
}

var _ raft.StreamLayer = (*raftStream)(nil)

func (s *raftStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.ch:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept. The shared listener stays open for RPC; TCP.Close
// closes it.
func (s *raftStream) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

// Addr is the address raft records for this node: the advertised one
// (Options.Advertise) when set, since the others dial that.
func (s *raftStream) Addr() net.Addr {
	if s.t.advertise != nil {
		return s.t.advertise
	}
	return s.t.ln.Addr()
}

func (s *raftStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.t.isClosing() {
		return nil, ErrClosed
	}
	d := s.t.dialer(string(address))
	d.Timeout = timeout
	c, err := d.Dial("tcp", string(address))
	if err != nil {
		return nil, err
	}
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{laneRaft}); err != nil {
		_ = c.Close()
		return nil, err
	}
	_ = c.SetWriteDeadline(time.Time{})
	if !s.t.track(c) {
		return nil, ErrClosed
	}
	return &trackedConn{Conn: c, t: s.t}, nil
}

// deliver hands an accepted raft-lane connection to Accept, or closes it
// when raft's side has stopped accepting.
func (s *raftStream) deliver(c net.Conn) {
	select {
	case s.ch <- c:
	case <-s.done:
		_ = c.Close()
	case <-s.t.closing:
		_ = c.Close()
	}
}

// trackedConn is a raft connection that leaves the TCP's set when raft
// closes it, so the set holds only open connections.
type trackedConn struct {
	net.Conn
	t    *TCP
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.t.untrack(c.Conn) })
	return c.Conn.Close()
}
