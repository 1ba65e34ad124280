package main

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"
)

// latencyProbe measures, for `node bench`, the ack latency of requests
// sent at a fixed rate and their end-to-end latency: from the ack until
// the request's marker word is in the committed state.
type latencyProbe struct {
	// send stores lines as worker w's next request, retrying until acked.
	send func(w int, lines []string) error
	// visible reports which of the markers the committed state holds.
	visible func(markers []string) []bool
	// wake receives when a batch completes (the committed state changes
	// only then); nil: the markers are looked up every 20 ms.
	wake <-chan struct{}
}

// latencyResult is what a probe measured.
type latencyResult struct {
	acks, e2es []time.Duration
	sentLPS    float64
}

// run sends a request of benchRequestLines lines (one of them a marker
// of its own) every benchRequestLines/lps seconds for d, from a pool of
// 16 workers. A request is due at a fixed time from the start, so a late
// wake-up is caught up rather than lowering the rate; should the pool be
// busy it waits, and the wait is not counted.
func (p latencyProbe) run(lines []string, lps float64, d time.Duration) (latencyResult, error) {
	interval := time.Duration(float64(time.Second) / max(1, lps/benchRequestLines))
	type acked struct {
		marker string
		at     time.Time
	}
	work, ackedc := make(chan int, 1024), make(chan acked, 1024)
	var mu sync.Mutex
	var res latencyResult
	var firstErr error
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range work {
				marker := benchMarker + strconv.Itoa(i)
				from := (i * (benchRequestLines - 1)) % (len(lines) - benchRequestLines)
				req := append(slices.Clone(lines[from:from+benchRequestLines-1]), marker)
				start := time.Now()
				err := p.send(w, req)
				at := time.Now()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				res.acks = append(res.acks, at.Sub(start))
				mu.Unlock()
				if err == nil {
					ackedc <- acked{marker, at}
				}
			}
		})
	}
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		var pending []acked
		open := true
		take := func(a acked, ok bool) {
			if !ok {
				open, ackedc = false, nil
				return
			}
			pending = append(pending, a)
		}
		for open || len(pending) > 0 {
			tick := time.After(20 * time.Millisecond)
			if p.wake != nil {
				tick = time.After(100 * time.Millisecond) // in case a completion was missed
			}
			select {
			case a, ok := <-ackedc:
				take(a, ok)
				continue
			case <-p.wake:
			case <-tick:
			}
			now := time.Now()
			// Markers acknowledged before the batch completed may be in
			// it: take them in before looking.
			for drained := false; !drained && open; {
				select {
				case a, ok := <-ackedc:
					take(a, ok)
				default:
					drained = true
				}
			}
			markers := make([]string, len(pending))
			for i, a := range pending {
				markers[i] = a.marker
			}
			seen := p.visible(markers)
			kept := pending[:0]
			for i, a := range pending {
				if seen[i] {
					mu.Lock()
					res.e2es = append(res.e2es, now.Sub(a.at))
					mu.Unlock()
				} else {
					kept = append(kept, a)
				}
			}
			pending = kept
		}
	}()
	began := time.Now()
	for i := 0; time.Duration(i)*interval < d; i++ {
		time.Sleep(time.Until(began.Add(time.Duration(i) * interval)))
		work <- i
	}
	close(work)
	wg.Wait()
	sent := time.Since(began)
	close(ackedc)
	select {
	case <-polled:
	case <-time.After(time.Minute):
		return res, errors.New("some acknowledged markers were not in the committed state after a minute")
	}
	res.sentLPS = rate(len(res.acks)*benchRequestLines, sent)
	return res, firstErr
}
