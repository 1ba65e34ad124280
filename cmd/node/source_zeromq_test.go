package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

// TestZeroMQPullSource runs the binary with --source zmq+pull:// against a
// PUSH peer in the test process and checks that the words it sends are
// counted.
func TestZeroMQPullSource(t *testing.T) {
	push := zmq4.NewPush(context.Background())
	defer push.Close()
	if err := push.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, "run", "--source", "zmq+pull://"+push.Addr().String(), "--http", "127.0.0.1:0", "--batch", "200ms")
	c.uiAddr()
	// A PUSH peer holds a message until a receiver is connected; one
	// message is enough, sent from a goroutine because Send blocks until
	// then.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		push.Send(zmq4.NewMsgString("river gate river"))
	}()
	c.waitLine(`^\(river,2\)$`)
	if code := c.stop(); code != exitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	push.Close()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the sender did not return after its socket closed")
	}
}
