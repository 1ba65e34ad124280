package engine

import (
	"fmt"
	"time"

	"github.com/sluice-stream/sluice/state"
)

// opNode is one operator of the DStream graph, stripped of its element
// type. Operator ids come from the build order, so every node that builds
// the graph from the same code names every operator the same way; a task
// is named by (operator id, partition, batch time).
type opNode struct {
	ctx       *Context
	id        int
	kind      string   // "map", "reduceByKeyAndWindow", ...
	name      string   // user-given (Named), used by state queries
	params    []string // what, besides kind and parents, defines the operator
	parents   []*opNode
	slide     time.Duration // the interval at which the operator produces an RDD
	remember  time.Duration // how long computed RDDs are kept for windows
	stateful  bool
	readsPast bool          // a window: reads its parent's earlier RDDs
	state     stateOperator // set for UpdateStateByKey and MapWithState
	hooks     opHooks
	// blockMap, set on an operator that shuffles a record-wise chain over
	// one receiver, runs its map task over a one-block batch, for
	// another node's driver (dist_map.go).
	blockMap func(sub *batchRun) ([]byte, error)
	// stateTask, set on UpdateStateByKey, computes partition p of batch
	// t from its reduce input (encoded) into sp, a part of a scratch
	// batch over this node's replica, for another node's driver
	// (state_task.go).
	stateTask func(t Time, sp *state.Part, p int, input []byte) error
}

// opHooks is what the scheduler needs from a typed DStream.
type opHooks interface {
	// force computes the operator at b.t if it is valid then, keeping
	// the result for the operators that will need it later.
	force(b *batchRun) error
	// forget drops computed RDDs at times <= before.
	forget(before Time)
	// persisted reports whether the stream keeps its RDDs (Cache).
	persisted() bool
}

// label names an operator in logs and errors.
func (o *opNode) label() string {
	if o.name != "" {
		return fmt.Sprintf("#%d %s %q", o.id, o.kind, o.name)
	}
	return fmt.Sprintf("#%d %s", o.id, o.kind)
}

// validAt reports whether the operator produces an RDD at t: t must be a
// whole number of slides since the Unix epoch (Spark's isTimeValid, with
// zero time at the epoch). Batch times and window boundaries are thus the
// same on every node and across restarts, whenever the context started.
func (o *opNode) validAt(t Time) bool {
	return t > 0 && t.Sub(0)%o.slide == 0
}

// rememberAtLeast makes the operator keep its RDDs for d; they are stored
// with the state, so a window finds them after a restart.
func (o *opNode) rememberAtLeast(d time.Duration) {
	if d > o.remember {
		o.remember = d
	}
}

// outputOp is a registered output operation (Print, SaveAsTextFiles,
// ForeachRDD). It generates a job at every batch time its DStream is valid.
type outputOp struct {
	node *opNode
	run  func(b *batchRun) error
}

// OperatorInfo describes one operator of a built graph.
type OperatorInfo struct {
	ID       int      `json:"id"`
	Kind     string   `json:"kind"`
	Name     string   `json:"name,omitempty"`
	Params   []string `json:"params,omitempty"`
	Parents  []int    `json:"parents,omitempty"`
	Slide    string   `json:"slide"`
	Stateful bool     `json:"stateful,omitempty"`
	Output   bool     `json:"output,omitempty"`
}

// Operators lists the graph's operators in build order.
func (c *Context) Operators() []OperatorInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]OperatorInfo, 0, len(c.ops))
	for _, o := range c.ops {
		info := OperatorInfo{ID: o.id, Kind: o.kind, Name: o.name, Params: o.params,
			Slide: o.slide.String(), Stateful: o.stateful}
		for _, p := range o.parents {
			info.Parents = append(info.Parents, p.id)
		}
		for _, out := range c.outputs {
			if out.node == o {
				info.Output = true
			}
		}
		out = append(out, info)
	}
	return out
}
