package rpc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func newMemCluster(t *testing.T, opts Options, ids ...string) (*MemNetwork, []*MemEndpoint) {
	t.Helper()
	n := NewMemNetwork()
	eps := make([]*MemEndpoint, len(ids))
	for i, id := range ids {
		eps[i] = n.EndpointWith(id, opts)
		eps[i].Handle("echo", echo)
		ep := eps[i]
		t.Cleanup(func() { ep.Close() })
	}
	return n, eps
}

func TestMemCall(t *testing.T) {
	checkLeaks(t)
	_, eps := newMemCluster(t, Options{}, "a", "b")
	for _, to := range []string{"b", "a"} { // another node, then itself
		var resp echoResp
		if err := eps[0].Call(context.Background(), to, "echo", echoReq{Text: "x"}, &resp); err != nil || resp.From != "a" || resp.Text != "x" {
			t.Fatalf("call to %s: %+v, %v", to, resp, err)
		}
	}
	if err := eps[0].Call(context.Background(), "b", "nope", nil, nil); !errors.Is(err, ErrUnknownMethod) || !IsCode(err, CodeUnknownMethod) {
		t.Fatalf("unknown method: %v", err)
	}
	if err := eps[0].Call(context.Background(), "zz", "echo", nil, nil); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("unknown peer: %v", err)
	}
}

// TestMemEncodesLikeTCP: a value msgpack cannot encode fails in the
// simulation as it would on the wire.
func TestMemEncodesLikeTCP(t *testing.T) {
	checkLeaks(t)
	_, eps := newMemCluster(t, Options{}, "a", "b")
	if err := eps[0].Call(context.Background(), "b", "echo", make(chan int), nil); err == nil {
		t.Fatal("a channel encoded")
	}
}

func TestMemPartitionAndHeal(t *testing.T) {
	checkLeaks(t)
	n, eps := newMemCluster(t, Options{Retries: -1}, "a", "b", "c")
	n.Isolate("a")
	for _, pair := range [][2]int{{0, 1}, {1, 0}} {
		if err := eps[pair[0]].Call(context.Background(), eps[pair[1]].ID(), "echo", echoReq{}, nil); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("%s→%s across the partition: %v, want ErrUnreachable", eps[pair[0]].ID(), eps[pair[1]].ID(), err)
		}
	}
	if err := eps[1].Call(context.Background(), "c", "echo", echoReq{}, nil); err != nil {
		t.Fatalf("b→c on the same side: %v", err)
	}
	n.Heal()
	if err := eps[0].Call(context.Background(), "b", "echo", echoReq{}, nil); err != nil {
		t.Fatalf("after Heal: %v", err)
	}
}

// TestMemRestart: calls to a closed node are ErrUnreachable; Endpoint with
// the same id then makes a fresh node that answers.
func TestMemRestart(t *testing.T) {
	checkLeaks(t)
	n, eps := newMemCluster(t, Options{Retries: -1}, "a", "b")
	eps[1].Close()
	if err := eps[0].Call(context.Background(), "b", "echo", echoReq{}, nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("call to closed node: %v", err)
	}
	if err := eps[1].Call(context.Background(), "a", "echo", echoReq{}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call from closed node: %v", err)
	}
	b2 := n.Endpoint("b")
	t.Cleanup(func() { b2.Close() })
	if b2 == eps[1] {
		t.Fatal("restart returned the closed endpoint")
	}
	b2.Handle("echo", echo)
	if err := eps[0].Call(context.Background(), "b", "echo", echoReq{}, nil); err != nil {
		t.Fatalf("call to restarted node: %v", err)
	}
}

func TestMemTimeoutAndClose(t *testing.T) {
	checkLeaks(t)
	_, eps := newMemCluster(t, Options{}, "a", "b")
	started := make(chan struct{}, 1)
	eps[1].Handle("block", func(ctx context.Context, _ string, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := eps[0].Call(ctx, "b", "block", nil, nil); !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	<-started
	done := make(chan error, 1)
	go func() { done <- eps[0].Call(context.Background(), "b", "block", nil, nil) }()
	<-started
	eps[0].Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}

// TestMemPauseHoldsAndDeliversLate: calls to and from a paused node are
// neither delivered nor failed while it is paused; a caller that gives up
// gets ErrTimeout, and its request still reaches the handler after Resume
// (a stale message arriving late). Raft traffic of the paused node is cut.
func TestMemPauseHoldsAndDeliversLate(t *testing.T) {
	checkLeaks(t)
	n, eps := newMemCluster(t, Options{Retries: -1}, "a", "b", "c")
	got := make(chan string, 4)
	for _, ep := range eps {
		ep.Handle("note", func(_ context.Context, from string, body []byte) ([]byte, error) {
			var req echoReq
			if err := Decode(body, &req); err != nil {
				return nil, err
			}
			got <- from + ">" + req.Text
			return nil, nil
		})
	}
	n.Pause("b")
	for _, c := range []struct {
		from *MemEndpoint
		to   string
		text string
	}{{eps[0], "b", "to-b"}, {eps[1], "c", "from-b"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		err := c.from.Call(ctx, c.to, "note", echoReq{Text: c.text}, nil)
		cancel()
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("%s→%s while b is paused: %v, want ErrTimeout", c.from.ID(), c.to, err)
		}
	}
	select {
	case m := <-got:
		t.Fatalf("%q delivered while b was paused", m)
	default:
	}
	if err := eps[0].Call(context.Background(), "c", "note", echoReq{Text: "a-c"}, nil); err != nil {
		t.Fatalf("a→c, neither paused: %v", err)
	}
	if m := <-got; m != "a>a-c" {
		t.Fatalf("got %q, want a>a-c", m)
	}
	var req raft.AppendEntriesRequest
	var resp raft.AppendEntriesResponse
	if err := eps[0].Raft().AppendEntries("b", "b", &req, &resp); err == nil {
		t.Fatal("raft a→b went through while b was paused")
	}
	n.Resume("b")
	late := map[string]bool{<-got: true, <-got: true}
	if !late["a>to-b"] || !late["b>from-b"] {
		t.Fatalf("after Resume got %v, want a>to-b and b>from-b", late)
	}
	if err := eps[0].Call(context.Background(), "b", "echo", echoReq{}, nil); err != nil {
		t.Fatalf("a→b after Resume: %v", err)
	}
}

// TestMemHealResumes: Heal resumes paused nodes, so that a simulation's
// final Heal leaves no call held.
func TestMemHealResumes(t *testing.T) {
	checkLeaks(t)
	n, eps := newMemCluster(t, Options{Retries: -1}, "a", "b")
	n.Pause("a")
	done := make(chan error, 1)
	go func() { done <- eps[1].Call(context.Background(), "a", "echo", echoReq{}, nil) }()
	n.Heal()
	if err := <-done; err != nil {
		t.Fatalf("call held across Heal: %v", err)
	}
}
