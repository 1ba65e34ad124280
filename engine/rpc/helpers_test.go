package rpc

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkLeaks fails the test if goroutines started during it are still
// running once every later cleanup (endpoint Close, raft Shutdown) has run.
// Call it first so its cleanup runs last.
func checkLeaks(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// logRecorder is a slog.Handler that keeps every record, so tests can wait
// for a warning instead of sleeping.
type logRecorder struct {
	mu   sync.Mutex
	recs []string
	ch   chan string
}

func newLogRecorder() *logRecorder { return &logRecorder{ch: make(chan string, 1024)} }

func (r *logRecorder) logger() *slog.Logger                     { return slog.New(r) }
func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	r.recs = append(r.recs, b.String())
	r.mu.Unlock()
	select {
	case r.ch <- b.String():
	default:
	}
	return nil
}

// await waits for a record containing every one of parts.
func (r *logRecorder) await(t *testing.T, parts ...string) string {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case s := <-r.ch:
			if containsAll(s, parts) {
				return s
			}
		case <-timeout:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("no log record with %q; have:\n%s", parts, strings.Join(r.recs, "\n"))
			return ""
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// newTCPCluster listens n endpoints on 127.0.0.1:0 named n1..nN, each
// knowing every address, closed at cleanup.
func newTCPCluster(t testing.TB, n int, opts Options) []*TCP {
	t.Helper()
	eps := make([]*TCP, n)
	peers := make(map[string]string)
	for i := range eps {
		id := fmt.Sprintf("n%d", i+1)
		ep, err := Listen(id, "127.0.0.1:0", nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ep.Close() })
		eps[i] = ep
		peers[id] = ep.Addr().String()
	}
	for _, ep := range eps {
		ep.SetPeers(peers)
	}
	return eps
}

// freeAddr returns an address nothing listens on (a port just released).
func freeAddr(t *testing.T) string {
	t.Helper()
	ep, err := Listen("tmp", "127.0.0.1:0", nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := ep.Addr().String()
	ep.Close()
	return addr
}

type echoReq struct {
	Text string
	Data []byte
}

type echoResp struct {
	From string
	Text string
	Data []byte
}

func echo(_ context.Context, from string, body []byte) ([]byte, error) {
	var req echoReq
	if err := Decode(body, &req); err != nil {
		return nil, err
	}
	return Encode(echoResp{From: from, Text: req.Text, Data: req.Data})
}
