package rpc

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestTCPDialsFromItsOwnIP: a node listening on one loopback IP opens its
// calls and its raft connections from that IP, so a proxy in front of a
// peer can tell the nodes apart (the chaos harness cuts links by source
// IP); raft records the advertised address, not the bound one.
func TestTCPDialsFromItsOwnIP(t *testing.T) {
	checkLeaks(t)
	peer, err := net.Listen("tcp", "127.0.0.13:0")
	if err != nil {
		t.Skipf("no second loopback IP here: %v", err)
	}
	defer peer.Close()
	ep, err := Listen("n1", "127.0.0.12:0", map[string]string{"n2": peer.Addr().String()},
		Options{Advertise: "127.0.0.12:9999", Retries: -1})
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.12: %v", err)
	}
	defer ep.Close()
	if got := ep.Raft().LocalAddr(); got != "127.0.0.12:9999" {
		t.Errorf("raft's local address %q, want the advertised 127.0.0.12:9999", got)
	}
	from := make(chan string, 2)
	go func() {
		for range 2 {
			c, err := peer.Accept()
			if err != nil {
				return
			}
			from <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = ep.Call(ctx, "n2", "echo", echoReq{}, &echoResp{}) // fails: the peer is no node
	if ip := <-from; ip != "127.0.0.12" {
		t.Errorf("a call came from %s, want 127.0.0.12", ip)
	}
	if c, err := ep.stream.Dial(raft.ServerAddress(peer.Addr().String()), 2*time.Second); err == nil {
		c.Close()
	}
	if ip := <-from; ip != "127.0.0.12" {
		t.Errorf("a raft connection came from %s, want 127.0.0.12", ip)
	}
}

// TestTCPDialerKeepsWildcard: a node listening on every interface dials
// as before, from whatever address the system picks.
func TestTCPDialerKeepsWildcard(t *testing.T) {
	ep := &TCP{}
	if d := ep.dialer("127.0.0.1:1"); d.LocalAddr != nil {
		t.Errorf("no local IP, yet the dialer binds %v", d.LocalAddr)
	}
	ep.localIP = net.ParseIP("127.0.0.12")
	if d := ep.dialer("10.1.2.3:7000"); d.LocalAddr != nil {
		t.Errorf("a loopback IP cannot reach 10.1.2.3, yet the dialer binds %v", d.LocalAddr)
	}
	if d := ep.dialer("127.0.0.13:7000"); d.LocalAddr == nil {
		t.Error("a loopback peer is dialed from any IP, want 127.0.0.12")
	}
}
