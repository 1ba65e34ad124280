package main

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// status keeps what the web UI, the JSON API and /metrics show of the
// batches: totals and the recent batches, fed by the engine's listener
// events (the same events any engine.Listener sees).
type status struct {
	engine.NopListener
	app, source string
	c           *engine.Context
	started     time.Time
	log         loggerFunc
	metrics     *metrics
	cluster     *clusterWatch
	// stateSummary lists the stateful operators for the state panel and
	// /metrics. It is the seam for the state store: nil rows (the
	// default) show "no stateful operators".
	stateSummary func() []stateRow

	// running is set once Context.Start has returned: until then the
	// context's lock is held by Start, and the UI says the node is starting.
	running atomic.Bool

	mu struct {
		sync.Mutex
		batches   []*batchRecord // newest last, at most keepBatches
		byTime    map[int64]*batchRecord
		completed int64
		failed    int64
		records   int64
	}
}

// keepBatches is how many batches the UI and the API remember.
const keepBatches = 100

// batchRecord is one batch as the UI knows it, from its submission on.
type batchRecord struct {
	info   engine.BatchInfo
	status string // queued, running, done, failed
	epoch  uint64 // the driver's Raft term when the batch started
	replay bool   // allocated by an earlier driver and re-run by this one
}

// Batch statuses.
const (
	batchQueued  = "queued"
	batchRunning = "running"
	batchDone    = "done"
	batchFailed  = "failed"
)

// loggerFunc logs at info with key-value pairs.
type loggerFunc func(msg string, args ...any)

func newStatus(c *engine.Context, app, source string, m *metrics, cw *clusterWatch) *status {
	s := &status{c: c, app: app, source: source, started: time.Now(), metrics: m, cluster: cw,
		log: c.Logger().Info, stateSummary: func() []stateRow { return nil }}
	s.mu.byTime = make(map[int64]*batchRecord)
	return s
}

func (s *status) OnBatchSubmitted(b engine.BatchInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record(b).status = batchQueued
}

// OnBatchStarted notes the driver's epoch. A batch that starts without
// having been submitted was allocated by an earlier driver (before a
// restart or a failover) and is being replayed from the metadata log.
func (s *status) OnBatchStarted(b engine.BatchInfo) {
	epoch := s.c.Cluster().Term
	s.mu.Lock()
	_, submitted := s.mu.byTime[int64(b.Time)]
	r := s.record(b)
	r.status, r.epoch, r.replay = batchRunning, epoch, !submitted
	s.mu.Unlock()
	if !submitted {
		s.metrics.replayed.Inc()
		s.cluster.noteReplay(epoch, int64(b.Time))
		s.log("replaying a batch allocated by an earlier driver", "batch", b.Time, "epoch", epoch, "records", b.Records)
	}
}

func (s *status) OnBatchCompleted(b engine.BatchInfo) {
	// Metrics first: once the API shows the batch done, /metrics has it.
	s.metrics.observeBatch(b)
	s.mu.Lock()
	r := s.record(b)
	if b.Err != nil {
		r.status = batchFailed
		s.mu.failed++
	} else {
		r.status = batchDone
		s.mu.completed++
	}
	s.mu.records += b.Records
	s.mu.Unlock()
}

// record returns the batch's record, made or updated with b. s.mu is held.
func (s *status) record(b engine.BatchInfo) *batchRecord {
	t := int64(b.Time)
	r, ok := s.mu.byTime[t]
	if !ok {
		r = &batchRecord{}
		s.mu.byTime[t] = r
		s.mu.batches = append(s.mu.batches, r)
		if len(s.mu.batches) > keepBatches {
			delete(s.mu.byTime, int64(s.mu.batches[0].info.Time))
			s.mu.batches = s.mu.batches[1:]
		}
	}
	r.info = b
	return r
}

// batchRow is one batch as the API shows it.
type batchRow struct {
	Time            int64                `json:"time"` // batch time, ms since the Unix epoch
	Status          string               `json:"status"`
	Records         int64                `json:"records"`
	SchedulingDelay float64              `json:"scheduling_delay_ms"`
	ProcessingTime  float64              `json:"processing_time_ms"`
	TotalDelay      float64              `json:"total_delay_ms"`
	Epoch           uint64               `json:"epoch,omitempty"`
	Replay          bool                 `json:"replay,omitempty"`
	SubmittedAt     time.Time            `json:"submitted_at"`
	StartedAt       time.Time            `json:"started_at,omitzero"`
	CompletedAt     time.Time            `json:"completed_at,omitzero"`
	Inputs          []engine.StreamInput `json:"inputs,omitempty"`
	Error           string               `json:"error,omitempty"`
}

func (r *batchRecord) row() batchRow {
	b := r.info
	row := batchRow{Time: int64(b.Time), Status: r.status, Records: b.Records,
		SchedulingDelay: ms(b.SchedulingDelay()), ProcessingTime: ms(b.ProcessingDelay()), TotalDelay: ms(b.TotalDelay()),
		Epoch: r.epoch, Replay: r.replay, SubmittedAt: b.SubmittedAt, StartedAt: b.StartedAt, CompletedAt: b.CompletedAt,
		Inputs: b.Inputs}
	if b.Err != nil {
		row.Error = b.Err.Error()
	}
	return row
}

// rows returns the batches kept, newest first; with finished set, only
// those that completed or failed.
func (s *status) rows(finished bool) []batchRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]batchRow, 0, len(s.mu.batches))
	for i := len(s.mu.batches) - 1; i >= 0; i-- {
		r := s.mu.batches[i]
		if finished && r.status != batchDone && r.status != batchFailed {
			continue
		}
		out = append(out, r.row())
	}
	return out
}

// batch returns the batch of time t (ms), if it is kept.
func (s *status) batch(t int64) (batchRow, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.mu.byTime[t]
	if !ok {
		return batchRow{}, false
	}
	return r.row(), true
}

// rateWindow is how many of the last batches "the rate now" averages.
const rateWindow = 10

// overview is the summary at the top of the UI.
type overview struct {
	App              string  `json:"app"`
	Source           string  `json:"source"`
	NodeID           string  `json:"node_id"`
	BatchDuration    string  `json:"batch_duration"`
	Partitions       int     `json:"partitions"`
	UptimeSeconds    float64 `json:"uptime_seconds"`
	BatchesCompleted int64   `json:"batches_completed"`
	BatchesFailed    int64   `json:"batches_failed"`
	Records          int64   `json:"records"`
	RecordsPerSecond float64 `json:"records_per_second"` // over the last rateWindow batches
	Fingerprint      string  `json:"graph_fingerprint"`
}

func (s *status) overview() overview {
	cfg := s.c.Config()
	o := overview{App: s.app, Source: s.source, NodeID: cfg.NodeID, BatchDuration: cfg.BatchDuration.String(),
		Partitions: cfg.Partitions, UptimeSeconds: time.Since(s.started).Seconds()}
	if s.running.Load() { // Start holds the context's lock until then
		o.Fingerprint = s.c.Fingerprint()
	}
	s.mu.Lock()
	o.BatchesCompleted, o.BatchesFailed, o.Records = s.mu.completed, s.mu.failed, s.mu.records
	s.mu.Unlock()
	o.RecordsPerSecond = inputRate(s.rows(true), "", cfg.BatchDuration)
	return o
}

// inputRate is the records per second of the last rateWindow finished
// batches (rows newest first), of one stream or, with stream "", of all.
func inputRate(rows []batchRow, stream string, batch time.Duration) float64 {
	n := min(len(rows), rateWindow)
	if n == 0 {
		return 0
	}
	var records int64
	for _, r := range rows[:n] {
		if stream == "" {
			records += r.Records
			continue
		}
		for _, in := range r.Inputs {
			if in.Stream == stream {
				records += in.Records
			}
		}
	}
	return float64(records) / (float64(n) * batch.Seconds())
}

// statusDoc is the body of /api/status: the overview, the recent finished
// batches, the receivers and the graph, in one document.
type statusDoc struct {
	overview
	Recent    []batchRow            `json:"recent_batches"`
	Receivers []engine.ReceiverInfo `json:"receivers"`
	Operators []engine.OperatorInfo `json:"operators"`
}

func (s *status) doc() statusDoc {
	return statusDoc{overview: s.overview(), Recent: s.rows(true), Receivers: s.c.Receivers(), Operators: s.c.Operators()}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
