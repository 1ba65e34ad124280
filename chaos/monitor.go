package chaos

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"
)

// batchRow is what the harness reads of a batch in GET /api/batches.
type batchRow struct {
	Time        int64     `json:"time"`
	Status      string    `json:"status"`
	Records     int64     `json:"records"`
	TotalDelay  float64   `json:"total_delay_ms"`
	Epoch       uint64    `json:"epoch"`
	Replay      bool      `json:"replay"`
	CompletedAt time.Time `json:"completed_at"`
	node        string
}

// failover is one measured failover: from a fault that took the driver
// away to the first batch a driver completed after it.
type failover struct {
	Fault    string        `json:"fault"`
	From     string        `json:"from"` // the driver the fault took away
	To       string        `json:"to"`
	At       time.Time     `json:"at"`
	Took     time.Duration `json:"took_ns"`
	Resolved bool          `json:"resolved"`
	after    int64         // the last batch completed before the fault
	other    bool          // the new driver must be another node
}

// monitor polls every node's /api/cluster a few times a second and the
// driver's /api/batches every second: who drives, the batches and their
// delays, and the failovers the nemesis asks it to time.
type monitor struct {
	c *cluster

	mu struct {
		sync.Mutex
		batches   map[string]batchRow // by node and time
		failovers []*failover
		driver    string
		last      int64 // the driver's last completed batch
	}
}

func newMonitor(c *cluster) *monitor {
	m := &monitor{c: c}
	m.mu.batches = map[string]batchRow{}
	return m
}

func (m *monitor) run(ctx context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		m.poll(ctx, i%5 == 0)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// poll asks every up node at once, with a short timeout so that a
// stopped node does not hold the others' answers, for its view of itself
// alone (?local=1: a node asked for the whole cluster's view asks the
// others in turn, and would wait on a stopped one).
func (m *monitor) poll(ctx context.Context, batches bool) {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range m.c.nodes {
		if !n.up() {
			continue
		}
		wg.Go(func() {
			var d clusterDoc
			if m.c.getJSON(ctx, n, "/api/cluster?local=1", &d) != nil {
				return
			}
			driving, _, last, _ := d.self()
			if !driving {
				return
			}
			m.sawDriver(n.id, last)
			if batches {
				m.pollBatches(ctx, n)
			}
		})
	}
	wg.Wait()
}

func (m *monitor) sawDriver(id string, last int64) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.driver, m.mu.last = id, last
	for _, f := range m.mu.failovers {
		if !f.Resolved && last > f.after && (!f.other || id != f.From) {
			f.Resolved, f.To, f.Took = true, id, now.Sub(f.At)
		}
	}
}

func (m *monitor) pollBatches(ctx context.Context, n *node) {
	var doc struct {
		Batches []batchRow `json:"batches"`
	}
	if m.c.getJSON(ctx, n, "/api/batches?limit=20", &doc) != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range doc.Batches {
		b.node = n.id
		m.mu.batches[n.id+"/"+strconv.FormatInt(b.Time, 10)] = b
	}
}

// driver is the node last seen driving and its last completed batch.
func (m *monitor) driver() (string, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.driver, m.mu.last
}

// expectFailover starts timing a failover: the fault at took the driver
// from away; other says whether it must be another node that resumes.
func (m *monitor) expectFailover(fault, from string, at time.Time, other bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.failovers = append(m.mu.failovers, &failover{Fault: fault, From: from, At: at, after: m.mu.last, other: other})
}

func (m *monitor) failovers() []failover {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]failover, 0, len(m.mu.failovers))
	for _, f := range m.mu.failovers {
		out = append(out, *f)
	}
	return out
}

// batchRows is every batch row seen, by time then node.
func (m *monitor) batchRows() []batchRow {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]batchRow, 0, len(m.mu.batches))
	for _, b := range m.mu.batches {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Time != out[j].Time {
			return out[i].Time < out[j].Time
		}
		return out[i].node < out[j].node
	})
	return out
}

// completedTwice lists the batch times that two drivers (two epochs)
// each completed as a first run, not as a replay to rebuild state: the
// metadata log must complete a batch once. The API shows each node's
// recent batches only, sampled every second: a check of what was seen.
func completedTwice(rows []batchRow) []string {
	epochs := map[int64]map[uint64]string{}
	for _, b := range rows {
		if b.Status != "done" || b.Replay {
			continue
		}
		if epochs[b.Time] == nil {
			epochs[b.Time] = map[uint64]string{}
		}
		epochs[b.Time][b.Epoch] = b.node
	}
	var out []string
	for t, es := range epochs {
		if len(es) > 1 {
			out = append(out, fmt.Sprintf("batch %d completed by drivers of %d epochs: %v", t, len(es), es))
		}
	}
	sort.Strings(out)
	return out
}
