package engine

import (
	"sync"
	"time"
)

// TaskInfo is one task of a batch as it ran: an operator's work on one
// partition (narrow operators are pipelined into the task of the operator
// that consumes them, as in exec.go).
type TaskInfo struct {
	Operator  string        `json:"operator"`
	Partition int           `json:"partition"`
	Start     time.Time     `json:"start"`
	Duration  time.Duration `json:"duration_ns"`
	// Records is the number of records the task produced, -1 where the
	// task does not materialise its output (a shuffle's map side, an
	// output) and so counts nothing.
	Records int64  `json:"records"`
	Error   string `json:"error,omitempty"`
	// Node ran the task, where it is not the node that shows it: a
	// shuffle's map task sent to the node holding its block, a state task
	// sent to its partition's primary.
	Node string `json:"node,omitempty"`
	// Kind is "map" for a shuffle's map task over one block, "state" for
	// an UpdateStateByKey partition computed for a driver that sends it
	// to its primary (Partition is then the state partition), "" else.
	Kind string `json:"kind,omitempty"`
}

// BatchTasks returns the tasks batch t ran, in the order they finished,
// while t is among the last batches the context keeps (keepTracedBatches);
// ok is false for a batch it does not know. A batch re-run after a restart
// shows the tasks of its last run.
func (c *Context) BatchTasks(t Time) (tasks []TaskInfo, ok bool) {
	return c.exec.trace.get(t)
}

// keepTracedBatches is how many batches' tasks are kept for BatchTasks.
const keepTracedBatches = 200

// taskTrace records the tasks of the last batches. The executor calls it
// from every task goroutine. Task times are read from the wall clock, not
// the context's Clock: they are for people, and nothing a batch computes
// depends on them.
type taskTrace struct {
	mu      sync.Mutex
	batches map[Time][]TaskInfo
	order   []Time // batch times in the order first seen, oldest first
}

// task runs one task through guard, timing it and recording its outcome.
func (x *executor) task(t Time, op string, p int, fn func() error) error {
	return x.taskOn(t, op, "", p, "", fn)
}

// taskOn is task for a task of kind (TaskInfo.Kind) run on node (or for
// node).
func (x *executor) taskOn(t Time, op, kind string, p int, node string, fn func() error) error {
	start := time.Now()
	err := guard(t, op, p, fn)
	ti := TaskInfo{Operator: op, Partition: p, Start: start, Duration: time.Since(start), Records: -1, Node: node, Kind: kind}
	if err != nil {
		ti.Error = err.Error()
	}
	x.trace.add(t, ti)
	return err
}

func (tr *taskTrace) add(t Time, ti TaskInfo) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.batches == nil {
		tr.batches = make(map[Time][]TaskInfo)
	}
	if _, seen := tr.batches[t]; !seen {
		tr.order = append(tr.order, t)
		if len(tr.order) > keepTracedBatches {
			delete(tr.batches, tr.order[0])
			tr.order = tr.order[1:]
		}
	}
	tr.batches[t] = append(tr.batches[t], ti)
}

// records sets the record count of the task (t, op, p) recorded last.
func (tr *taskTrace) records(t Time, op string, p int, n int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tasks := tr.batches[t]
	for i := len(tasks) - 1; i >= 0; i-- {
		if tasks[i].Operator == op && tasks[i].Partition == p {
			tasks[i].Records = int64(n)
			return
		}
	}
}

func (tr *taskTrace) get(t Time) ([]TaskInfo, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tasks, ok := tr.batches[t]
	return append([]TaskInfo(nil), tasks...), ok
}

// traceRecords notes how many records each partition's task produced.
func traceRecords[T any](b *batchRun, op string, parts [][]T) {
	for p, part := range parts {
		b.exec.trace.records(b.t, op, p, len(part))
	}
}
