package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/sluice-stream/sluice/engine/rpc"
	"github.com/sluice-stream/sluice/recovery"
	"github.com/vmihailenco/msgpack/v5"
)

// Map tasks near their blocks (ARCHITECTURE.md §6). In a cluster, the map
// side of a shuffle whose input is a chain of record-wise operators over
// one receiver's blocks runs as one task per block, on a node that holds
// the block: the task reads the block from that node's write-ahead log,
// runs the chain, combines the values of each key and splits them by
// target partition. Only the combined pairs travel, to the driver, which
// reduces them in block order (the order BatchAllocated lists the blocks),
// never in arrival order.
//
// A task's output depends on its block alone, so where it ran changes
// nothing: a task that fails on another node (the node died, was too
// slow, or has seen a newer driver) runs again on the driver within the
// same batch, and a re-run of the batch yields the same bytes.
//
// Not distributed yet: reduce and state tasks run on the driver, as does
// the map side of a shuffle below another shuffle or over a cached,
// remembered or unioned stream, and every task on a single node.

const (
	methodMapTask  = "task.map" // run a map task over one block
	codeTaskFailed = "task-failed"

	// mapTaskTimeout bounds a map task on another node; mapTaskSpeculate
	// is how long the driver waits for it before running it too.
	mapTaskTimeout   = 3 * time.Second
	mapTaskSpeculate = 500 * time.Millisecond
	// mapTasksInFlight bounds the map tasks the driver has sent to one
	// node and not heard back from.
	mapTasksInFlight = 8
)

type mapTaskMsg struct {
	Epoch uint64              `msgpack:"e"`
	Time  int64               `msgpack:"t"`
	Op    int                 `msgpack:"o"` // the shuffling operator's id
	Block recovery.BlockEntry `msgpack:"b"`
}

// narrowKinds are the operators a map task pipelines: each record's
// output depends on that record alone. (mapPartitions and glom see
// partition boundaries, which a task per block would move.)
var narrowKinds = map[string]bool{
	"map": true, "flatMap": true, "filter": true, "mapToPair": true, "mapValues": true, "flatMapValues": true,
}

// blockInput returns the receiver whose blocks the chain ending at o
// reads, where every operator of the chain is record-wise and keeps
// nothing (not cached, not remembered for a window); nil otherwise.
func (c *Context) blockInput(o *opNode) *receiverStream {
	for {
		if o.remember > 0 || o.hooks.persisted() {
			return nil
		}
		if len(o.parents) == 0 {
			break
		}
		if !narrowKinds[o.kind] || len(o.parents) != 1 {
			return nil
		}
		o = o.parents[0]
	}
	for _, in := range c.inputs {
		if in.node() == o {
			rs, _ := in.(*receiverStream)
			return rs
		}
	}
	return nil
}

// blockMapper runs the map side of one shuffle per block. The operator
// that shuffles makes one at build time; it registers the task other
// nodes run (opNode.blockMap).
type blockMapper[K comparable, V, C any] struct {
	self   *opNode
	parent *DStream[Pair[K, V]]
	part   partitioner[K]
	create func(V) C
	mergeV func(C, V) C
	mergeC func(C, C) C
	// shippable: the combined pairs survive msgpack unchanged, so a task
	// may run on another node.
	shippable bool
}

func newBlockMapper[K comparable, V, C any](self *opNode, parent *DStream[Pair[K, V]], n int,
	create func(V) C, mergeV func(C, V) C, mergeC func(C, C) C) *blockMapper[K, V, C] {
	m := &blockMapper[K, V, C]{self: self, parent: parent, part: newPartitioner[K](n),
		create: create, mergeV: mergeV, mergeC: mergeC, shippable: travelsUnchanged[Pair[K, C]]()}
	self.blockMap = m.remoteTask
	return m
}

// shuffle is shuffleByKey of the parent at b.t, with the map side run per
// block where it can be.
func (m *blockMapper[K, V, C]) shuffle(b *batchRun, mapSide bool) (*rdd[Pair[K, C]], error) {
	label := m.self.label()
	if in := b.perBlockInput(m.parent.op); in != nil {
		entries, _ := b.inputs[in.op.id].([]recovery.BlockEntry)
		outs, err := runBlockMaps(b, m.self, in, entries, m.shippable, m.task)
		if err != nil {
			return nil, err
		}
		return reduceCombined(b, label, m.part.n, outs, m.mergeC)
	}
	r, err := m.parent.getOrEmpty(b)
	if err != nil {
		return nil, err
	}
	return shuffleByKey(b, label, r, m.part.n, m.create, m.mergeV, m.mergeC, mapSide)
}

// task is the map task over sub's one block: the parent chain's records
// combined by key, split by target partition. (Values are always
// combined here, also for GroupByKey: its combiner keeps the values in
// order, so the result is the same, and each key travels once.)
func (m *blockMapper[K, V, C]) task(sub *batchRun) ([][]Pair[K, C], error) {
	r, err := m.parent.getOrEmpty(sub)
	if err != nil {
		return nil, err
	}
	acc := newOrderedMap[K, C](0)
	for p := range r.n {
		r.iterate(p, func(kv Pair[K, V]) {
			slot, ok := acc.slot(kv.Key)
			if ok {
				*slot = m.mergeV(*slot, kv.Value)
			} else {
				*slot = m.create(kv.Value)
			}
		})
	}
	return splitCombined(acc, m.part), nil
}

// remoteTask is task for another node's driver, its output encoded.
func (m *blockMapper[K, V, C]) remoteTask(sub *batchRun) ([]byte, error) {
	if !m.shippable {
		return nil, fmt.Errorf("the pairs of %s do not travel between nodes unchanged", m.self.label())
	}
	out, err := m.task(sub)
	if err != nil {
		return nil, err
	}
	return encodeValue(out)
}

// travelsUnchanged reports whether values of T survive msgpack between
// nodes unchanged, so that a task over them may run on another node.
func travelsUnchanged[T any]() bool {
	t := reflect.TypeFor[T]()
	return storable(t) == "" && !holdsInterface(t, map[reflect.Type]bool{})
}

// holdsInterface reports whether values of t can hold an interface, which
// msgpack decodes as whatever type it likes (an int64 as an int8).
func holdsInterface(t reflect.Type, seen map[reflect.Type]bool) bool {
	if t == nil || seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return holdsInterface(t.Elem(), seen)
	case reflect.Map:
		return holdsInterface(t.Key(), seen) || holdsInterface(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if holdsInterface(t.Field(i).Type, seen) {
				return true
			}
		}
	}
	return false
}

// perBlockInput is blockInput for the driver's batch: nil on a single
// node, and for a task's own one-block batch.
func (b *batchRun) perBlockInput(parent *opNode) *receiverStream {
	if b.c == nil || b.c.node == nil || b.detached {
		return nil
	}
	return b.c.blockInput(parent)
}

// oneBlock is the batch a map task runs in: b's time, and of the input
// only block e. Its operators keep nothing (detached).
func oneBlock(c *Context, t Time, epoch uint64, in *receiverStream, e recovery.BlockEntry) *batchRun {
	return &batchRun{t: t, c: c, epoch: epoch, exec: newExecutor(1), detached: true,
		inputs: map[int]any{in.op.id: []recovery.BlockEntry{e}}}
}

// runBlockMaps runs the map tasks of self's shuffle, one per block of in
// in b, and returns their outputs in block order. With remote set, a task
// runs on a live node holding its block, spreading the blocks over their
// holders; a task that fails there runs here.
func runBlockMaps[C any](b *batchRun, self *opNode, in *receiverStream, entries []recovery.BlockEntry,
	remote bool, task func(*batchRun) (C, error)) ([]C, error) {
	n := b.c.node
	here := b.c.cfg.NodeID
	label := self.label()
	outs := make([]C, len(entries))
	errs := make([]error, len(entries))
	places := make([]string, len(entries))
	slots := make(map[string]chan struct{})
	for i, e := range entries {
		places[i] = here
		if remote {
			places[i] = n.mapPlace(i, e)
		}
		if places[i] != here && slots[places[i]] == nil {
			slots[places[i]] = make(chan struct{}, mapTasksInFlight)
		}
	}
	var wg sync.WaitGroup
	for i, e := range entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runLocal := func() (C, error) {
				b.exec.sem <- struct{}{}
				defer func() { <-b.exec.sem }()
				var out C
				err := b.exec.taskOn(b.t, label, taskMap, i, here, func() error {
					var err error
					out, err = task(oneBlock(b.c, b.t, b.epoch, in, e))
					return err
				})
				return out, err
			}
			node := places[i]
			if node == here {
				outs[i], errs[i] = runLocal()
				return
			}
			ref := taskRef{op: label, kind: taskMap, i: i, what: "block " + blockName(e)}
			outs[i], errs[i] = speculate(b, ref, node, slots[node], func(out *C) error {
				return n.remoteMap(b, self, e, node, out)
			}, runLocal)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return outs, nil
}

// Task kinds, as TaskInfo.Kind shows them.
const (
	taskMap   = "map"
	taskState = "state"
)

// taskRef names a task that speculate runs: its operator's label, its
// kind, its index (the block's in its batch, or the partition), and what
// it works on, for the log.
type taskRef struct {
	op, kind string
	i        int
	what     string
}

func blockName(e recovery.BlockEntry) string {
	return fmt.Sprintf("%s/%s/%d", e.Ref.Stream, e.Ref.Node, e.Ref.Seq)
}

// speculate runs a task on node and, should it fail there or not have
// answered within mapTaskSpeculate, here as well (Spark's speculative
// execution): the first success wins. Both runs compute the same output,
// from the same input, so which wins changes nothing. A stopped node
// (SIGSTOP) costs a batch mapTaskSpeculate, not mapTaskTimeout.
func speculate[C any](b *batchRun, ref taskRef, node string, slot chan struct{},
	remote func(*C) error, local func() (C, error)) (C, error) {
	type result struct {
		out C
		err error
	}
	done := make(chan result, 1)
	sent := make(chan struct{})
	go func() {
		slot <- struct{}{} // a free slot for node: the call goes out now
		defer func() { <-slot }()
		close(sent)
		var r result
		r.err = b.exec.taskOn(b.t, ref.op, ref.kind, ref.i, node, func() error { return remote(&r.out) })
		done <- r
	}()
	<-sent // a task queued behind others for the node is not slow yet
	timer := time.NewTimer(mapTaskSpeculate)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err == nil {
			return r.out, nil
		}
		b.c.log.Warn("a task failed on another node: running it here", "batch", b.t, "operator", ref.op, "task", ref.kind, "of", ref.what, "node", node, "err", r.err)
		return local()
	case <-timer.C:
		b.c.log.Info("a task is slow on another node: running it here too", "batch", b.t, "operator", ref.op, "task", ref.kind, "of", ref.what, "node", node, "after", mapTaskSpeculate)
	}
	out, err := local()
	if err == nil {
		return out, nil
	}
	if r := <-done; r.err == nil { // the node may still deliver
		return r.out, nil
	}
	return out, err
}

// mapPlace picks the node to run the map task over block e, the i-th of
// its batch: among the nodes holding it and not lately failed, the i-th
// in turn, so that a batch's blocks spread over their holders. The driver
// itself when no holder is live.
func (n *clusterNode) mapPlace(i int, e recovery.BlockEntry) string {
	here := n.c.cfg.NodeID
	var live []string
	for _, h := range append([]string{e.Ref.Node}, e.Replicas...) {
		if h == here || !n.isDown(h) {
			live = append(live, h)
		}
	}
	if len(live) == 0 {
		return here
	}
	return live[i%len(live)]
}

// remoteMap runs the map task of self over block e on node, decoding its
// output into out.
func (n *clusterNode) remoteMap(b *batchRun, self *opNode, e recovery.BlockEntry, node string, out any) error {
	ctx, cancel := context.WithTimeout(n.ctx, mapTaskTimeout)
	defer cancel()
	err := n.net.Call(ctx, node, methodMapTask, &mapTaskMsg{Epoch: b.epoch, Time: int64(b.t), Op: self.id, Block: e}, out)
	var rerr *rpc.Error
	if err != nil && !errors.As(err, &rerr) {
		n.markDown(node) // unreachable or too slow: not again for a while
	}
	return err
}

// serveMapTask runs a map task for the driver: over one block, which
// this node reads from its write-ahead log (or, missing there, from
// another node). A driver of an older epoch than one this node has seen
// is refused.
func (n *clusterNode) serveMapTask(_ context.Context, from string, body []byte) ([]byte, error) {
	var m mapTaskMsg
	if err := msgpack.Unmarshal(body, &m); err != nil {
		return nil, rpc.Errorf(codeRefused, "task.map does not decode: %v", err)
	}
	if e, driver := n.meta().Epoch(); m.Epoch < e || !n.noteEpoch(m.Epoch) {
		return nil, rpc.Errorf(codeFenced, "map task of batch %v from %s of epoch %d: driver %s started epoch %d", Time(m.Time), from, m.Epoch, driver, e)
	}
	var op *opNode
	if m.Op >= 0 && m.Op < len(n.c.ops) {
		op = n.c.ops[m.Op]
	}
	if op == nil || op.blockMap == nil || len(op.parents) != 1 {
		return nil, rpc.Errorf(codeRefused, "operator %d shuffles no blocks here: do the nodes run the same application?", m.Op)
	}
	in := n.c.blockInput(op.parents[0])
	if in == nil || in.stream != m.Block.Ref.Stream {
		return nil, rpc.Errorf(codeRefused, "%s does not read stream %q by blocks here", op.label(), m.Block.Ref.Stream)
	}
	n.c.exec.sem <- struct{}{}
	defer func() { <-n.c.exec.sem }()
	var out []byte
	t := Time(m.Time)
	err := n.c.exec.taskOn(t, op.label(), taskMap, -1, n.c.cfg.NodeID, func() error {
		var err error
		out, err = op.blockMap(oneBlock(n.c, t, m.Epoch, in, m.Block))
		return err
	})
	if err != nil {
		return nil, rpc.Errorf(codeTaskFailed, "%v", err)
	}
	return out, nil
}
