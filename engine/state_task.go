package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluice-stream/sluice/engine/rpc"
	"github.com/sluice-stream/sluice/state"
	"github.com/vmihailenco/msgpack/v5"
)

// State tasks on partition primaries (ARCHITECTURE.md §5 step 4). In a
// cluster every node holds a full replica of the state, as of the last
// batch the log says completed. The state step of UpdateStateByKey for
// partition p of batch t runs on p's primary (partitionPrimary): the
// driver sends it p's reduce input (the combined values of every key of
// p, in the order the driver reduced them) with the batch the state must
// be as of (prev, the last completed batch before t); the primary, once
// its replica is exactly as of prev, computes the partition against a
// scratch batch over its replica (state.Store.Scratch: a snapshot, never
// written) and replies with the partition's writes, which the driver puts
// into its own batch's part p. The batch then goes on as before: its
// delta is written, shipped and applied by the driver.
//
// The writes depend on the state as of prev and the input alone, so where
// they were computed changes nothing: a task that fails, is refused (the
// replica is not as of prev, the driver is deposed) or is slow
// (speculate) is computed on the driver, against a scratch batch over its
// own store, and the first success wins; either way the same bytes reach
// the batch's delta.
//
// Still on the driver: an operator's first batch (it loads the initial
// state), partitions whose primary is the driver, inputs that do not
// travel unchanged (holdsInterface), MapWithState (its per-record outputs
// would travel too), and every state step on a single node.

const (
	methodStateTask = "task.state" // compute one partition of a state step
	// stateTaskWait bounds how long a primary waits for its replica to be
	// as of the batch a task needs (the driver committed it just before;
	// the log's entry and the delta's apply are on their way).
	stateTaskWait = 300 * time.Millisecond
)

// stateTaskMsg asks a primary for the writes of one partition of a
// state step. Part of the wire format between nodes.
type stateTaskMsg struct {
	Epoch uint64 `msgpack:"e"`
	Time  int64  `msgpack:"t"`
	Prev  int64  `msgpack:"p"` // the batch the state must be as of
	Op    int    `msgpack:"o"` // the stateful operator's id
	Part  int    `msgpack:"n"`
	Input []byte `msgpack:"i"` // the partition's reduce input, msgpack ([]Pair[K, []V] for UpdateStateByKey)
}

// stateWriteMsg is one write of the reply (a list of them, in the order
// the partition wrote them: state.Part.Writes). Part of the wire format.
type stateWriteMsg struct {
	Key     []byte `msgpack:"k"`
	Val     []byte `msgpack:"v,omitempty"`
	Del     bool   `msgpack:"d,omitempty"`
	Existed bool   `msgpack:"x,omitempty"`
}

// runStateTasks runs the state step of self in b, one task per partition:
// compute(sp, p) writes partition p into sp. With remote set (a cluster's
// driver), a partition whose primary is another node is sent there, with
// input(p), its reduce input encoded, and its writes put into b's part.
func runStateTasks(b *batchRun, self *opNode, n int, remote bool,
	input func(p int) ([]byte, error), compute func(sp *state.Part, p int) error) error {
	label := self.label()
	if !remote {
		return b.exec.runE(b.t, label, n, func(p int) error { return compute(b.state.Part(self.id, p), p) })
	}
	node := b.c.node
	here := b.c.cfg.NodeID
	places := make([]string, n)
	slots := make(map[string]chan struct{})
	for p := range n {
		places[p] = node.partitionPrimary(p)
		if places[p] != here && slots[places[p]] == nil {
			slots[places[p]] = make(chan struct{}, mapTasksInFlight)
		}
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for p := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if places[p] == here {
				b.exec.sem <- struct{}{}
				defer func() { <-b.exec.sem }()
				errs[p] = b.exec.task(b.t, label, p, func() error { return compute(b.state.Part(self.id, p), p) })
				return
			}
			errs[p] = remoteStateTask(b, self, p, places[p], slots[places[p]], input, compute)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// remoteStateTask computes partition p of self's state step on primary,
// and here too should it fail there or be slow, and puts the writes of
// the run that succeeded first into b's part p.
func remoteStateTask(b *batchRun, self *opNode, p int, primary string, slot chan struct{},
	input func(p int) ([]byte, error), compute func(sp *state.Part, p int) error) error {
	label := self.label()
	here := b.c.cfg.NodeID
	local := func() ([]state.Write, error) {
		b.exec.sem <- struct{}{}
		defer func() { <-b.exec.sem }()
		var ws []state.Write
		err := b.exec.taskOn(b.t, label, taskState, p, here, func() error {
			var err error
			ws, err = scratchWrites(b.state, b.prev, self.id, p, compute)
			return err
		})
		return ws, err
	}
	ref := taskRef{op: label, kind: taskState, i: p, what: fmt.Sprintf("partition %d", p)}
	ws, err := speculate(b, ref, primary, slot, func(out *[]state.Write) error {
		in, err := input(p)
		if err != nil {
			return err
		}
		return b.c.node.remoteState(b, self, p, primary, in, out)
	}, local)
	if err != nil {
		return err
	}
	sp := b.state.Part(self.id, p)
	for _, w := range ws {
		sp.Put(w)
	}
	return nil
}

// scratchWrites computes partition p of operator op against a scratch
// batch over the state batch reads, which must be as of prev (the
// driver's store does not move while its batch runs), and returns its
// writes.
func scratchWrites(batch *state.Batch, prev Time, op, p int, compute func(sp *state.Part, p int) error) ([]state.Write, error) {
	sb, err := batch.Scratch()
	if err != nil {
		return nil, err
	}
	defer sb.Close()
	if sb.Base() != int64(prev) {
		return nil, fmt.Errorf("engine: the state is as of batch %v, the state step of batch %v needs batch %v", Time(sb.Base()), Time(batch.Time()), prev)
	}
	sp := sb.Part(op, p)
	if err := compute(sp, p); err != nil {
		return nil, err
	}
	return sp.Writes(), nil
}

// remoteState sends partition p of self's state step in b to primary and
// decodes its writes into out.
func (n *clusterNode) remoteState(b *batchRun, self *opNode, p int, primary string, input []byte, out *[]state.Write) error {
	ctx, cancel := context.WithTimeout(n.ctx, mapTaskTimeout)
	defer cancel()
	msg := &stateTaskMsg{Epoch: b.epoch, Time: int64(b.t), Prev: int64(b.prev), Op: self.id, Part: p, Input: input}
	var reply []stateWriteMsg
	err := n.net.Call(ctx, primary, methodStateTask, msg, &reply)
	var rerr *rpc.Error
	if err != nil && !errors.As(err, &rerr) {
		n.markDown(primary) // unreachable or too slow: not again for a while
	}
	if err != nil {
		return err
	}
	ws := make([]state.Write, len(reply))
	for i, w := range reply {
		ws[i] = state.Write{Key: w.Key, Val: w.Val, Del: w.Del, Existed: w.Existed}
	}
	*out = ws
	return nil
}

// serveStateTask computes one partition of a state step for the driver,
// against this node's replica once it is as of the batch the task names.
// A driver of an older epoch than one this node has seen is refused, as
// is a task whose batch the replica is not as of within stateTaskWait.
func (n *clusterNode) serveStateTask(ctx context.Context, from string, body []byte) ([]byte, error) {
	var m stateTaskMsg
	if err := msgpack.Unmarshal(body, &m); err != nil {
		return nil, rpc.Errorf(codeRefused, "task.state does not decode: %v", err)
	}
	if e, driver := n.meta().Epoch(); m.Epoch < e || !n.noteEpoch(m.Epoch) || n.driving() {
		return nil, rpc.Errorf(codeFenced, "state task of batch %v from %s of epoch %d: driver %s started epoch %d", Time(m.Time), from, m.Epoch, driver, e)
	}
	var op *opNode
	if m.Op >= 0 && m.Op < len(n.c.ops) {
		op = n.c.ops[m.Op]
	}
	if op == nil || op.stateTask == nil {
		return nil, rpc.Errorf(codeRefused, "operator %d runs no state tasks here: do the nodes run the same application?", m.Op)
	}
	if m.Part < 0 || m.Part >= op.state.partitions() {
		return nil, rpc.Errorf(codeRefused, "%s has %d partitions, not partition %d", op.label(), op.state.partitions(), m.Part)
	}
	t, prev := Time(m.Time), Time(m.Prev)
	if t <= prev {
		return nil, rpc.Errorf(codeRefused, "state task of batch %v over the state as of batch %v", t, prev)
	}
	sb, err := n.scratchAsOf(ctx, op, t, prev)
	if err != nil {
		return nil, err
	}
	defer sb.Close()
	n.c.exec.sem <- struct{}{}
	defer func() { <-n.c.exec.sem }()
	err = n.c.exec.taskOn(t, op.label(), taskState, m.Part, n.c.cfg.NodeID, func() error {
		return op.stateTask(t, sb.Part(op.id, m.Part), m.Part, m.Input)
	})
	if err != nil {
		return nil, rpc.Errorf(codeTaskFailed, "%v", err)
	}
	ws := sb.Part(op.id, m.Part).Writes()
	reply := make([]stateWriteMsg, len(ws))
	for i, w := range ws {
		reply[i] = stateWriteMsg{Key: w.Key, Val: w.Val, Del: w.Del, Existed: w.Existed}
	}
	return msgpack.Marshal(reply)
}

// scratchAsOf returns a scratch batch of t over this node's replica,
// once the replica is as of prev with op's initial state loaded: it
// applies the pending delta of prev as soon as the log says prev
// completed, waiting up to stateTaskWait for that. A replica already past
// prev, or short of more than prev's delta, is refused at once.
func (n *clusterNode) scratchAsOf(ctx context.Context, op *opNode, t, prev Time) (*state.Batch, error) {
	ctx, cancel := context.WithTimeout(ctx, stateTaskWait)
	defer cancel()
	as := Time(-1)
	for {
		n.c.replicaMu.Lock()
		if n.driving() {
			n.c.replicaMu.Unlock()
			return nil, rpc.Errorf(codeFenced, "this node drives now")
		}
		store := n.c.stateStore()
		if store != nil {
			if err := n.applyCompleted(store); err != nil {
				n.c.log.Warn("applying a state delta failed", "err", err)
			}
		}
		n.c.replicaMu.Unlock()
		if store != nil {
			// Pending before Applied: a delta applied in between shows
			// as applied, not as missing.
			pending, ok, perr := store.Pending()
			if a, err := store.Applied(); err == nil {
				as = Time(a)
			}
			if as > prev {
				return nil, rpc.Errorf(codeBehind, "this node's state is as of batch %v, past batch %v the task needs", as, prev)
			}
			if as < prev && perr == nil && (!ok || Time(pending) != prev) {
				// Not one delta short: it missed some, and is sent them
				// (or restores a checkpoint) after this batch, not before.
				return nil, rpc.Errorf(codeBehind, "this node's state is as of batch %v, without the delta of batch %v the task needs", as, prev)
			}
			if as == prev {
				if sb, err := store.Scratch(int64(t)); err == nil && sb.Base() == int64(prev) {
					if _, loaded, err := store.OpMeta(op.id, metaInitialized); err == nil && loaded {
						return sb, nil
					}
					sb.Close()
					return nil, rpc.Errorf(codeBehind, "the initial state of %s is not loaded here", op.label())
				} else if err == nil {
					sb.Close()
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, rpc.Errorf(codeBehind, "this node's state is as of batch %v, the task needs batch %v", as, prev)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
