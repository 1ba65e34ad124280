package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// delivery is what a source hands chanReceiver: lines, and where to say
// whether they were stored.
type delivery struct {
	lines  []string
	stored chan error
}

// chanReceiver is a custom Receiver fed by a channel: it stands for a
// source that wants an acknowledgement, such as a message queue.
//
// Which ReceiverOutput method to call depends on what the source can do:
//
//   - Store, as here, when the source waits for an acknowledgement: it
//     returns once the records are durable and registered, so the
//     source may forget them then, and nothing acknowledged is lost.
//   - Add when the source cannot be told anything (a UDP feed, a
//     sensor): it only buffers, and a block is cut every block interval.
//     It is cheaper, but what is buffered when the process dies is lost.
//   - StoreAt and Position when the source has positions of its own (a
//     Kafka offset, a byte offset in a file): StoreAt records the position
//     with the block, a position stored before is a duplicate, and
//     Position tells a restarted receiver where to resume, so each record
//     is read exactly once. See Example_receiverWithPositions.
type chanReceiver struct {
	in <-chan delivery
}

var _ engine.Receiver = chanReceiver{}

// Receive stores each delivery as one block until the context stops.
func (r chanReceiver) Receive(ctx context.Context, out *engine.ReceiverOutput) error {
	for {
		select {
		case <-ctx.Done():
			return nil // a stop, not a failure
		case d := <-r.in:
			d.stored <- out.Store(ctx, d.lines...)
		}
	}
}

// A custom receiver made a stream with ReceiverStream. Lines stored before
// the clock reaches a batch time belong to that batch: the example waits
// for the receiver's acknowledgement, then moves the clock.
func Example_customReceiver() {
	clock := engine.NewManualClock(time.UnixMilli(0))
	c, err := engine.NewContext(engine.Config{
		BatchDuration: time.Second,
		Partitions:    1,
		Clock:         clock,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	in := make(chan delivery)
	lines := engine.ReceiverStream(c, "chat", chanReceiver{in: in})
	engine.Map(lines, strings.ToUpper).Print(10)

	done := make(chan struct{}, 8)
	c.AddListener(batchDone(done))
	if err := c.Start(); err != nil {
		panic(err)
	}
	for _, batch := range [][]string{{"hello", "world"}, {"bye"}} {
		d := delivery{lines: batch, stored: make(chan error, 1)}
		in <- d
		if err := <-d.stored; err != nil {
			panic(err) // a real source would retry, or not acknowledge
		}
		clock.Advance(time.Second)
		<-done
	}
	c.Stop(context.Background(), false)
	for _, r := range c.Receivers() {
		fmt.Printf("stream %s: %d records in %d blocks\n", r.Stream, r.Records, r.Blocks)
	}
	// Output:
	// -------------------------------------------
	// Time: 1000 ms
	// -------------------------------------------
	// HELLO
	// WORLD
	//
	// -------------------------------------------
	// Time: 2000 ms
	// -------------------------------------------
	// BYE
	//
	// stream chat: 3 records in 2 blocks
}

// logReceiver reads a source with positions: an append-only log whose
// records are numbered from 0, as a Kafka partition's are. It stores two
// records a block with StoreAt, the block's position being the offset
// after its last record, and at start resumes where Position says the
// last stored block ended.
type logReceiver struct {
	log      []string
	caughtUp chan<- uint64 // told the offset reached, once the log is read
}

// Receive stores the log from where the last stored block ended.
func (r logReceiver) Receive(ctx context.Context, out *engine.ReceiverOutput) error {
	next, _ := out.Position("log") // 0 when nothing was stored yet
	for next < uint64(len(r.log)) {
		end := min(next+2, uint64(len(r.log)))
		// A duplicate (the block was stored before a crash, and the
		// position not yet seen here) is not stored again: either way,
		// move on.
		if _, err := out.StoreAt(ctx, "log", end, r.log[next:end]...); err != nil {
			return err // the engine restarts Receive, which resumes from Position
		}
		next = end
	}
	select {
	case r.caughtUp <- next:
	default:
	}
	<-ctx.Done()
	return nil
}

// A receiver over a source with positions reads each record exactly once
// across restarts: the second run over the same data directory resumes
// after the records the first one stored, and sees only the new ones.
func Example_receiverWithPositions() {
	dir, err := os.MkdirTemp("", "sluice-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	source := []string{"r0", "r1", "r2"}
	clock := engine.NewManualClock(time.UnixMilli(0))
	runOnce := func() {
		c, err := engine.NewContext(engine.Config{
			BatchDuration: time.Second,
			Partitions:    1,
			Clock:         clock,
			DataDir:       dir, // the positions live in its metadata log
			Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			panic(err)
		}
		caughtUp := make(chan uint64, 1)
		lines := engine.ReceiverStream(c, "log", logReceiver{log: source, caughtUp: caughtUp})
		lines.Print(10)
		done := make(chan struct{}, 8)
		c.AddListener(batchDone(done))
		if err := c.Start(); err != nil {
			panic(err)
		}
		fmt.Println("read up to offset", <-caughtUp)
		clock.Advance(time.Second)
		<-done
		if err := c.Stop(context.Background(), true); err != nil {
			panic(err)
		}
	}
	runOnce()
	source = append(source, "r3", "r4") // the source grows while the job is down
	runOnce()
	// Output:
	// read up to offset 3
	// -------------------------------------------
	// Time: 1000 ms
	// -------------------------------------------
	// r0
	// r1
	// r2
	//
	// read up to offset 5
	// -------------------------------------------
	// Time: 2000 ms
	// -------------------------------------------
	// r3
	// r4
	//
}
