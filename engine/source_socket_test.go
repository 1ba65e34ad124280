package engine

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineServer is a TCP server on the loopback interface that hands each
// accepted connection to the test.
type lineServer struct {
	ln       net.Listener
	conns    chan net.Conn
	accepted sync.WaitGroup // the accept loop
	closeLn  func()
}

// listenLines listens on addr, which must be on 127.0.0.1, and stops
// listening when the test ends.
func listenLines(t *testing.T, addr string) *lineServer {
	t.Helper()
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Fatalf("test server address %s is not on 127.0.0.1", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &lineServer{ln: ln, conns: make(chan net.Conn, 16)}
	s.accepted.Add(1)
	go func() {
		defer s.accepted.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns <- conn
		}
	}()
	s.closeLn = sync.OnceFunc(func() {
		ln.Close()
		s.accepted.Wait()
		close(s.conns)
		for conn := range s.conns {
			conn.Close()
		}
	})
	t.Cleanup(s.closeLn)
	return s
}

func (s *lineServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// accept returns the next connection the server accepted; the test ends
// by closing it.
func (s *lineServer) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case conn := <-s.conns:
		t.Cleanup(func() { conn.Close() })
		return conn
	case <-time.After(waitTimeout):
		t.Fatalf("no connection to %s", s.ln.Addr())
		return nil
	}
}

func sendText(t *testing.T, conn net.Conn, data ...string) {
	t.Helper()
	for _, d := range data {
		if _, err := conn.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
}

// hasLines reports whether want is a subsequence of got.
func hasLines(want ...string) func([]string) bool {
	return func(got []string) bool {
		i := 0
		for _, g := range got {
			if i < len(want) && g == want[i] {
				i++
			}
		}
		return i == len(want)
	}
}

// TestSocketTextStream checks Spark's socketTextStream on a real socket:
// lines written by the server are records of the stream (CRLF stripped,
// lines split over writes joined), an over-long line is dropped and
// counted while its neighbours arrive, and when the server goes away the
// receiver reports the lost connection and every failed reconnect attempt
// to ReceiverListeners and reconnects once a server listens again.
func TestSocketTextStream(t *testing.T) {
	before := engineGoroutines()
	srv := listenLines(t, "127.0.0.1:0")
	addr := srv.ln.Addr().String()
	stream := "socket:" + addr
	c := newWallClockContext(t, func(cfg *Config) { cfg.MaxLineBytes = 32 })
	events := newEventRecorder(c)
	out := collectRecords(SocketTextStream(c, "127.0.0.1", srv.port()))
	startContext(t, c)

	conn := srv.accept(t)
	sendText(t, conn, "one\ntwo\r\n", strings.Repeat("x", 40)+"\n", "thr", "ee\n", "\n")
	out.wait(t, "lines one, two, three and an empty line", hasLines("one", "two", "three", ""))
	if got := out.get(); !slices.Equal(got, []string{"one", "two", "three", ""}) {
		t.Errorf("records %q, want one, two, three, \"\" (the 40-byte line dropped)", got)
	}
	// A receiver counts a block once it is registered, which may be
	// after the batch that reads it has run: wait for the count.
	ri := c.Receivers()
	for deadline := time.Now().Add(waitTimeout); len(ri) == 1 && ri[0].Records < 4 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		ri = c.Receivers()
	}
	if len(ri) != 1 || ri[0].Stream != stream || ri[0].Records != 4 || ri[0].Errors != 1 ||
		!strings.Contains(ri[0].LastError, ": 40 bytes") || !ri[0].Running {
		t.Errorf("receivers %+v, want %s running with 4 records and 1 error for a 40-byte line", ri, stream)
	}
	if e := events.waitReceiverError(t, ": 40 bytes"); !errors.Is(e.err, ErrLineTooLong) || e.stream != stream {
		t.Errorf("receiver error %v, want ErrLineTooLong for %s", e, stream)
	}

	// The server goes away: the receiver sees the connection closed, then
	// fails to connect until a server listens on the port again.
	srv.closeLn()
	conn.Close()
	lost := events.waitReceiverError(t, addr+" closed the connection; restarting in")
	refused := events.waitReceiverError(t, "connecting to "+addr)
	if lost.stream != stream || refused.stream != stream {
		t.Errorf("errors reported for %q and %q, want %q", lost.stream, refused.stream, stream)
	}
	srv2 := listenLines(t, addr)
	conn2 := srv2.accept(t)
	sendText(t, conn2, "four\n", "five\r\n")
	out.wait(t, "lines four and five after reconnecting", hasLines("one", "two", "three", "", "four", "five"))

	if ri := c.Receivers()[0]; ri.Records != 6 {
		t.Errorf("receiver info %+v, want 6 records", ri)
	}
	stopContext(t, c, false) // delivers every event posted
	if ri := c.Receivers()[0]; ri.Running {
		t.Errorf("receiver still running after Stop: %+v", ri)
	}

	errs := receiverErrors(events.get())
	if ri := c.Receivers()[0]; ri.Errors != int64(len(errs)) || len(errs) < 3 {
		t.Errorf("receiver info %+v, want as many errors as reported: %v", ri, errs)
	}
	for i, e := range errs[1:] {
		if want := fmt.Sprintf("restarting in %v", 100*time.Millisecond<<i); !strings.HasSuffix(e.err.Error(), want) {
			t.Errorf("reconnect error %d %q, want it to end %q (backoff doubling from 100ms)", i+1, e.err, want)
		}
	}
	srv2.closeLn()
	checkNoLeaks(t, before)
}

// TestSocketTextStreamStop checks that a graceful Stop interrupts a
// receiver waiting in its reconnect backoff, and one blocked reading the
// rest of a line, whose part read so far is dropped.
func TestSocketTextStreamStop(t *testing.T) {
	for _, connected := range []bool{false, true} {
		t.Run(fmt.Sprintf("connected=%v", connected), func(t *testing.T) {
			before := engineGoroutines()
			srv := listenLines(t, "127.0.0.1:0")
			addr := srv.ln.Addr().String()
			c := newWallClockContext(t)
			events := newEventRecorder(c)
			out := collectRecords(SocketTextStream(c, "127.0.0.1", srv.port()))
			if !connected {
				srv.closeLn()
			}
			startContext(t, c)
			if connected {
				// In one write, so that the receiver has read the partial
				// line when "complete" arrives.
				sendText(t, srv.accept(t), "complete\npartial line, never ended")
				out.wait(t, "the complete line", hasLines("complete"))
			} else {
				events.waitReceiverError(t, "connecting to "+addr)
			}
			stopContext(t, c, true)
			if got := out.get(); connected && !slices.Equal(got, []string{"complete"}) {
				t.Errorf("records %q, want only \"complete\": a line cut short by Stop is not a record", got)
			}
			if errs := receiverErrors(events.get()); connected && len(errs) != 0 {
				t.Errorf("receiver errors %v, want none: stopping is not a failure", errs)
			}
			srv.closeLn()
			checkNoLeaks(t, before)
		})
	}
}
