package main

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// The JSON API behind the web UI. Every error is a JSON object
// {"error": "..."} with the status code (writeError, ingest.go).

// batchesDoc is the body of /api/batches.
type batchesDoc struct {
	BatchDurationMS int64      `json:"batch_duration_ms"`
	Batches         []batchRow `json:"batches"` // newest first: queued, running, then finished
}

func (s *status) serveBatches(w http.ResponseWriter, r *http.Request) {
	rows := s.rows(false)
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: give a whole number of batches, 1 or more", v))
			return
		}
		rows = rows[:min(n, len(rows))]
	}
	writeJSON(w, http.StatusOK, batchesDoc{BatchDurationMS: s.c.Config().BatchDuration.Milliseconds(), Batches: rows})
}

// batchDetail is the body of /api/batches/{t}: the batch, its operators'
// times and records, and its tasks.
type batchDetail struct {
	batchRow
	Operators []operatorRow `json:"operators"`
	Tasks     []taskRow     `json:"tasks"`
}

// operatorRow sums one operator's tasks in a batch.
type operatorRow struct {
	Operator string  `json:"operator"`
	Tasks    int     `json:"tasks"`
	Failed   int     `json:"failed,omitempty"`
	WallMS   float64 `json:"wall_ms"`      // from its first task's start to its last task's end
	TaskMS   float64 `json:"task_time_ms"` // the sum of its tasks' times
	Records  int64   `json:"records"`      // produced, -1 where its tasks do not count them
}

type taskRow struct {
	Operator   string    `json:"operator"`
	Partition  int       `json:"partition"`
	Start      time.Time `json:"start"`
	DurationMS float64   `json:"duration_ms"`
	Records    int64     `json:"records"` // -1: not counted
	Error      string    `json:"error,omitempty"`
	Node       string    `json:"node,omitempty"` // in a cluster, the node a map task ran on
}

// parseBatchTime reads {t}, a batch time in ms since the Unix epoch.
func parseBatchTime(v string) (int64, error) {
	t, err := strconv.ParseInt(v, 10, 64)
	if err != nil || t < 0 {
		return 0, fmt.Errorf("batch time %q: give a batch time in milliseconds since the Unix epoch, as /api/batches lists them", v)
	}
	return t, nil
}

func (s *status) detail(t int64) (batchDetail, bool) {
	row, ok := s.batch(t)
	if !ok {
		return batchDetail{}, false
	}
	d := batchDetail{batchRow: row}
	tasks, _ := s.c.BatchTasks(engine.Time(t))
	index := map[string]int{}
	ends := map[string]time.Time{}
	starts := map[string]time.Time{}
	for _, ti := range tasks {
		d.Tasks = append(d.Tasks, taskRow{Operator: ti.Operator, Partition: ti.Partition, Start: ti.Start,
			DurationMS: ms(ti.Duration), Records: ti.Records, Error: ti.Error, Node: ti.Node})
		i, seen := index[ti.Operator]
		if !seen {
			i = len(d.Operators)
			index[ti.Operator] = i
			d.Operators = append(d.Operators, operatorRow{Operator: ti.Operator, Records: -1})
			starts[ti.Operator] = ti.Start
		}
		op := &d.Operators[i]
		op.Tasks++
		op.TaskMS += ms(ti.Duration)
		if ti.Error != "" {
			op.Failed++
		}
		if ti.Records >= 0 {
			op.Records = max(op.Records, 0) + ti.Records
		}
		if ti.Start.Before(starts[ti.Operator]) {
			starts[ti.Operator] = ti.Start
		}
		if end := ti.Start.Add(ti.Duration); end.After(ends[ti.Operator]) {
			ends[ti.Operator] = end
		}
	}
	for i := range d.Operators {
		op := &d.Operators[i]
		op.WallMS = ms(ends[op.Operator].Sub(starts[op.Operator]))
		op.TaskMS = math.Round(op.TaskMS*1000) / 1000 // a sum of µs-rounded times
	}
	return d, true
}

func (s *status) serveBatch(w http.ResponseWriter, r *http.Request) {
	t, err := parseBatchTime(r.PathValue("t"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	d, ok := s.detail(t)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no batch at time %d: the node keeps the last %d batches (see /api/batches)", t, keepBatches))
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// receiverRow is one receiver as /api/receivers shows it.
type receiverRow struct {
	engine.ReceiverInfo
	Node string  `json:"node"`
	Rate float64 `json:"rate"` // input records per second over the last batches
}

func (s *status) receivers() []receiverRow {
	rows := s.rows(true)
	cfg := s.c.Config()
	var out []receiverRow
	for _, ri := range s.c.Receivers() {
		out = append(out, receiverRow{ReceiverInfo: ri, Node: cfg.NodeID, Rate: inputRate(rows, ri.Stream, cfg.BatchDuration)})
	}
	return out
}

func (s *status) serveReceivers(w http.ResponseWriter, _ *http.Request) {
	if !s.running.Load() {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the node is starting: its receivers are not running yet")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"receivers": s.receivers()})
}

func (s *status) serveCluster(w http.ResponseWriter, r *http.Request) {
	switch v := r.URL.Query().Get("local"); v {
	case "", "0", "false":
		writeJSON(w, http.StatusOK, s.cluster.doc(false))
	case "1", "true":
		writeJSON(w, http.StatusOK, s.cluster.doc(true))
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("local=%q: give local=1 for this node's view of itself alone, or leave it out", v))
	}
}

// serveReady answers /readyz: 200 once the node has a leader and has
// applied what is committed, 503 with the reason before.
func (s *status) serveReady(w http.ResponseWriter, _ *http.Request) {
	ci, _, _ := s.cluster.info()
	ok, why := readiness(ci)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready:", why)
		return
	}
	fmt.Fprintf(w, "ready: leader %s, term %d, applied %d of %d committed\n", ci.LeaderID, ci.Term, ci.AppliedIndex, ci.CommitIndex)
}

func (s *status) serveStatus(w http.ResponseWriter, _ *http.Request) {
	if !s.running.Load() {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the node is starting")
		return
	}
	writeJSON(w, http.StatusOK, s.doc())
}
