package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// pages are the pages clicked, the first ones most often.
var pages = []string{"home", "search", "product", "cart", "checkout", "help"}

// click returns the click numbered i of the stream of seed, "user page".
// It depends on (seed, i) alone: the stream is a log whose every position
// can be read again, as a Kafka partition's can.
func click(seed, i uint64) string {
	rng := rand.New(rand.NewPCG(seed, i))
	page := pages[min(rng.IntN(len(pages)), rng.IntN(len(pages)))] // skewed to the first pages
	return fmt.Sprintf("user%d %s", rng.IntN(100), page)
}

// clickGenerator is the job's Receiver: every tick of the engine's clock
// it stores the next perTick clicks, until total (0: forever).
//
// It stores with StoreAt, the position being the number of clicks stored
// so far, and starts from Position: after a restart over the same data
// directory it resumes after the last click stored, so no click is
// counted twice and none is skipped. (A source that cannot be replayed
// would use Store, acknowledging its sender after Store returns; one that
// cannot be acknowledged at all, Add.)
type clickGenerator struct {
	seed    uint64
	total   uint64 // 0: no end
	perTick int
	tick    time.Duration
}

var _ engine.Receiver = (*clickGenerator)(nil)

// producer names the generator's positions in the metadata log: a
// different seed is a different source.
func (g *clickGenerator) producer() string { return fmt.Sprintf("clicks-seed-%d", g.seed) }

// Receive stores clicks until ctx is done or total clicks are stored.
func (g *clickGenerator) Receive(ctx context.Context, out *engine.ReceiverOutput) error {
	next, _ := out.Position(g.producer())
	clock := out.Clock()
	at := clock.Now()
	for g.total == 0 || next < g.total {
		at = at.Add(g.tick)
		if clock.WaitUntil(ctx, at) != nil {
			return nil // stopped
		}
		end := next + uint64(g.perTick)
		if g.total > 0 {
			end = min(end, g.total)
		}
		batch := make([]string, 0, end-next)
		for i := next; i < end; i++ {
			batch = append(batch, click(g.seed, i))
		}
		if _, err := out.StoreAt(ctx, g.producer(), end, batch...); err != nil {
			return err // the engine restarts Receive, which resumes from Position
		}
		next = end
	}
	<-ctx.Done()
	return nil
}
