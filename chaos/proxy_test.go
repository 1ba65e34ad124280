package chaos

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echoServer answers every line with the same line, until closed.
func echoServer(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					c.Write(append(sc.Bytes(), '\n'))
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

// roundTrip dials to from the local IP from, sends a line and reads it
// back; an error if any step fails within a second.
func roundTrip(from, to string, c net.Conn) (net.Conn, error) {
	var err error
	if c == nil {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: time.Second}
		if c, err = d.Dial("tcp", to); err != nil {
			return nil, err
		}
	}
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err = c.Write([]byte("ping\n")); err != nil {
		c.Close()
		return nil, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		c.Close()
		if err == nil {
			err = net.ErrClosed
		}
		return nil, err
	}
	return c, nil
}

// TestProxyPartition: the proxy in front of n1 forwards n2's and n3's
// connections; blocking n2 cuts n2's open connection and refuses its new
// ones while n3 still passes; healing lets n2 in again.
func TestProxyPartition(t *testing.T) {
	target := echoServer(t, "127.0.0.11:0")
	p, err := newProxy("n1", "127.0.0.11:0", target.Addr().String(),
		map[string]string{"127.0.0.11": "n1", "127.0.0.12": "n2", "127.0.0.13": "n3"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	open2, err := roundTrip("127.0.0.12", p.addr(), nil)
	if err != nil {
		t.Fatalf("n2 through the proxy before any partition: %v", err)
	}
	defer open2.Close()
	p.block("n2")
	if _, err := roundTrip("", "", open2); err == nil {
		t.Error("n2's connection open before the partition still works after it")
	}
	if c, err := roundTrip("127.0.0.12", p.addr(), nil); err == nil {
		c.Close()
		t.Error("n2 connected through a partition")
	}
	c3, err := roundTrip("127.0.0.13", p.addr(), nil)
	if err != nil {
		t.Fatalf("n3 is not partitioned, yet: %v", err)
	}
	c3.Close()
	p.heal()
	c2, err := roundTrip("127.0.0.12", p.addr(), nil)
	if err != nil {
		t.Fatalf("n2 after the heal: %v", err)
	}
	c2.Close()
}
