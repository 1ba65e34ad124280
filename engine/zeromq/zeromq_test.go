package zeromq

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/sluice-stream/sluice/engine"
)

const waitTimeout = 10 * time.Second

// collected is what a context's batches held, in order.
type collected struct {
	mu    sync.Mutex
	lines []string
}

func (c *collected) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lines)
}

// startStream runs a context on the system clock whose only input is a
// zeromq stream of cfg, and collects its records.
func startStream(t *testing.T, cfg Config) (*engine.Context, *collected) {
	t.Helper()
	c, err := engine.NewContext(engine.Config{
		AppName: "zeromq-test", BatchDuration: 50 * time.Millisecond, BlockInterval: 10 * time.Millisecond,
		Partitions: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := Stream(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := &collected{}
	ds.ForeachRDD(func(_ engine.Time, r engine.RDD[string]) error {
		got.mu.Lock()
		got.lines = append(got.lines, r.Collect()...)
		got.mu.Unlock()
		return nil
	})
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background(), false) })
	return c, got
}

// listen binds a peer socket on a loopback port (0 for any) and returns
// it and its tcp:// endpoint.
func listen(t *testing.T, sock zmq4.Socket, port int) string {
	t.Helper()
	if err := sock.Listen(fmt.Sprintf("tcp://127.0.0.1:%d", port)); err != nil {
		t.Fatal(err)
	}
	return "tcp://" + sock.Addr().String()
}

// sendUntil sends msg(i) for i = from, from+1, ... until done holds,
// and returns the next i. A PUSH or PUB peer drops or holds messages
// until the receiver is connected, so the test keeps sending instead of
// guessing when the connection is up.
func sendUntil(t *testing.T, sock zmq4.Socket, from int, msg func(int) zmq4.Msg, done func() bool) int {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	i := from
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("not received within %v", waitTimeout)
		}
		if err := sock.Send(msg(i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		i++
		time.Sleep(5 * time.Millisecond) // pacing the sender, not waiting for a result
	}
	return i
}

// inOrder fails unless got is prefix-numbered "m<i>" lines with no
// repeat and no reordering, and returns the numbers.
func inOrder(t *testing.T, got []string, prefix string) []int {
	t.Helper()
	var nums []int
	for _, l := range got {
		var n int
		if _, err := fmt.Sscanf(strings.TrimPrefix(l, prefix), "%d", &n); err != nil {
			t.Fatalf("record %q is not %s<n>", l, prefix)
		}
		if len(nums) > 0 && n <= nums[len(nums)-1] {
			t.Fatalf("records %v out of order or repeated", got)
		}
		nums = append(nums, n)
	}
	return nums
}

// TestPushPullInOrderAndReconnects checks that a PULL stream stores what
// a PUSH peer sends, each frame a line, in order, and that when the peer
// goes away and comes back on the same address the receiver connects
// again and receives its new messages.
func TestPushPullInOrderAndReconnects(t *testing.T) {
	ctx := context.Background()
	push := zmq4.NewPush(ctx)
	endpoint := listen(t, push, 0)
	_, got := startStream(t, Config{Endpoint: endpoint, Socket: Pull})

	msg := func(i int) zmq4.Msg { return zmq4.NewMsgFrom([]byte(fmt.Sprint("m", i)), []byte(fmt.Sprint("m", i+1))) }
	step2 := func(i int) zmq4.Msg { return msg(2 * i) }
	next := sendUntil(t, push, 0, step2, func() bool { return len(got.get()) >= 6 })
	if nums := inOrder(t, got.get(), "m"); nums[0]%2 != 0 {
		t.Errorf("records %v: a message's frames are split", got.get())
	}
	push.Close()

	var port int
	fmt.Sscanf(endpoint[strings.LastIndex(endpoint, ":")+1:], "%d", &port)
	before := len(got.get())
	push2 := zmq4.NewPush(ctx)
	defer push2.Close()
	listen(t, push2, port)
	sendUntil(t, push2, next+1000, step2, func() bool { return len(got.get()) >= before+6 })
	if nums := inOrder(t, got.get(), "m"); nums[len(nums)-1] < 2*(next+1000) {
		t.Errorf("records %v: nothing from the peer that came back", got.get())
	}
}

// TestPubSubTopicFilter checks that a SUB stream stores only the
// messages of its topic, without the topic frame, in order.
func TestPubSubTopicFilter(t *testing.T) {
	ctx := context.Background()
	pub := zmq4.NewPub(ctx)
	defer pub.Close()
	endpoint := listen(t, pub, 0)
	_, got := startStream(t, Config{Endpoint: endpoint, Socket: Sub, Topics: []string{"keep"}})

	msg := func(i int) zmq4.Msg {
		topic := "keep"
		if i%2 == 1 {
			topic = "drop"
		}
		return zmq4.NewMsgFrom([]byte(topic), []byte(fmt.Sprint(topic, i)))
	}
	sendUntil(t, pub, 0, msg, func() bool { return len(got.get()) >= 5 })
	for _, l := range got.get() {
		if !strings.HasPrefix(l, "keep") {
			t.Fatalf("records %v: want only topic keep, without its topic frame", got.get())
		}
	}
	for _, n := range inOrder(t, got.get(), "keep") {
		if n%2 != 0 {
			t.Fatalf("records %v hold a message of another topic", got.get())
		}
	}
}

// TestConfigValidate checks the refusals of a configuration.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no_scheme", Config{Endpoint: "127.0.0.1:5555"}, "tcp://"},
		{"bad_socket", Config{Endpoint: "tcp://127.0.0.1:5555", Socket: 7}, "Pull or Sub"},
		{"topics_on_pull", Config{Endpoint: "tcp://127.0.0.1:5555", Topics: []string{"a"}}, "Sub socket only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
