package engine

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluice-stream/sluice/engine/rpc"
	"github.com/sluice-stream/sluice/recovery"
	"github.com/sluice-stream/sluice/wal"
	"github.com/vmihailenco/msgpack/v5"
)

// tasksOf returns the driver's tasks of kind (taskMap, taskState) over
// the last batches it ran (the log may have truncated them), by the node
// they ran on, and the failed ones.
func tasksOf(c *Context, kind string) (byNode map[string]int, failed []TaskInfo) {
	byNode = map[string]int{}
	last := Time(c.storage.meta.View().LastCompleted)
	for t := last; t > last.Add(-keepTracedBatches*simBatch); t = t.Add(-simBatch) {
		tasks, _ := c.BatchTasks(t)
		for _, ti := range tasks {
			if ti.Kind != kind {
				continue
			}
			if ti.Error != "" {
				failed = append(failed, ti)
				continue
			}
			byNode[ti.Node]++
		}
	}
	return byNode, failed
}

// loadFor runs three producers, first to first+2, for d. A producer id
// must not be used again: its sequences would start over with other
// lines.
func (s *sim) loadFor(first int, d time.Duration) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := first; p < first+3; p++ {
		wg.Add(1)
		go s.produce(p, stop, &wg)
	}
	time.Sleep(d)
	close(stop)
	wg.Wait()
}

// loadedSim starts a simulated cluster (skipped with -short), runs
// producers 0 to 2 for d, waits until it settles, and returns it with its
// driver. The caller closes it.
func loadedSim(t *testing.T, seed uint64, d time.Duration) (*sim, *simNode) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a simulated cluster for seconds")
	}
	s := newSim(t, seed)
	s.loadFor(0, d)
	s.settle()
	l := s.leader()
	if l == nil {
		s.close()
		t.Fatal("no driver")
	}
	return s, l
}

// In a cluster the map side of a shuffle over a receiver's blocks runs on
// the nodes holding the blocks, and the counts are exact. When a node
// holding blocks dies, its map tasks run on the driver within the same
// batch, and the counts stay exact.
func TestMapTasksRunWhereTheBlocksAre(t *testing.T) {
	s, l := loadedSim(t, 77, 1500*time.Millisecond)
	defer s.close()
	s.check()
	byNode, failed := tasksOf(l.ctx, taskMap)
	if len(failed) > 0 {
		t.Fatalf("map tasks failed with every node up: %+v", failed)
	}
	var elsewhere int
	for node, n := range byNode {
		if node != l.id {
			elsewhere += n
		}
	}
	if elsewhere == 0 {
		t.Fatalf("no map task ran on a node other than the driver %s: %v", l.id, byNode)
	}
	t.Logf("map tasks by node, driver %s: %v", l.id, byNode)

	// One block that another node took in, mapped three ways: on the
	// driver only, on that node, and on that node once it is dead (the
	// task fails there and runs on the driver). Same bytes every time.
	op, in := blockMappingOp(t, l.ctx)
	var victim *simNode
	for _, n := range s.nodes {
		if n != l {
			victim = n
			break
		}
	}
	line := "probe-1 ant bee ant"
	s.mu.Lock()
	s.sent["probe-1"] = line
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err := victim.ctx.Ingest(ctx, "lines", "probe", 1, []string{line})
	cancel()
	if err != nil {
		t.Fatalf("ingest through %s: %v", victim.id, err)
	}
	s.mu.Lock()
	s.acked["probe-1"] = line
	s.mu.Unlock()
	// The probe's block, mapped now: its batch cannot have been truncated
	// yet, which takes a checkpoint and ten batches after it completes.
	seq, ok, err := victim.ctx.storage.blocks.LastSeq("lines", victim.id)
	if err != nil || !ok {
		t.Fatalf("the probe's block on %s: %v", victim.id, err)
	}
	id := wal.BlockID{Stream: "lines", Node: victim.id, Seq: seq}
	if _, err := l.ctx.storage.blocks.Read(id); err != nil {
		t.Fatalf("the driver %s holds no copy of %v (copies go to the leader first): %v", l.id, id, err)
	}
	e := recovery.BlockEntry{Ref: recovery.BlockRef{Stream: id.Stream, Node: id.Node, Seq: id.Seq}, Records: 1, Replicas: []string{l.id}}
	// A batch time of its own, so that the trace holds only these tasks.
	at := Time(l.ctx.storage.meta.View().LastCompleted).Add(100000 * simBatch)
	b := &batchRun{t: at, c: l.ctx, exec: l.ctx.exec, epoch: l.ctx.node.status().Epoch}
	run := func(remote bool) []byte {
		t.Helper()
		task := func(sub *batchRun) (msgpack.RawMessage, error) { return op.blockMap(sub) }
		outs, err := runBlockMaps(b, op, in, []recovery.BlockEntry{e}, remote, task)
		if err != nil {
			t.Fatalf("map task (remote %v): %v", remote, err)
		}
		return outs[0]
	}
	here := run(false)
	if there := run(true); !bytes.Equal(here, there) {
		t.Fatalf("the map task of block %v output %x on %s and %x on the driver", e.Ref, there, victim.id, here)
	}
	// Stopped (its calls held): the driver does not wait for the task's
	// timeout, it runs the task too once it is slow, and takes its own
	// result while the node's is still to come.
	s.net.Pause(victim.id)
	b.t = b.t.Add(simBatch)
	if slow := run(true); !bytes.Equal(here, slow) {
		t.Fatalf("with %s stopped the map task output %x, before %x", victim.id, slow, here)
	}
	tasks, _ := l.ctx.BatchTasks(b.t)
	if len(tasks) != 1 || tasks[0].Node != l.id || tasks[0].Error != "" {
		t.Fatalf("with %s stopped, want one task, done on the driver %s, and the node's still out: %+v", victim.id, l.id, tasks)
	}
	// Reading the block, a node asks the stopped node first, then the
	// next holder without waiting for the first call's timeout: it has
	// the block before that call fails (which would mark the node down).
	var third *simNode
	for _, n := range s.nodes {
		if n != l && n != victim {
			third = n
		}
	}
	third.ctx.node.mu.Lock()
	delete(third.ctx.node.mu.down, victim.id)
	third.ctx.node.mu.Unlock()
	got, err := third.ctx.node.fetchBlock(context.Background(), e)
	if err != nil || len(got.Records) != 1 || got.Records[0] != line {
		t.Fatalf("%s fetching %v with %s stopped: %v, %v", third.id, e.Ref, victim.id, got.Records, err)
	}
	if third.ctx.node.isDown(victim.id) {
		t.Fatalf("%s fetching %v waited for the stopped %s's call to fail", third.id, e.Ref, victim.id)
	}
	s.net.Resume(victim.id)
	b.t = b.t.Add(simBatch)
	s.crash(victim)
	l.ctx.node.mu.Lock()
	delete(l.ctx.node.mu.down, victim.id) // as if it had not failed yet
	l.ctx.node.mu.Unlock()
	if again := run(true); !bytes.Equal(here, again) {
		t.Fatalf("after %s died the map task output %x, before %x", victim.id, again, here)
	}
	first, _ := l.ctx.BatchTasks(at)
	crashed, _ := l.ctx.BatchTasks(b.t)
	var ranThere, failedThere bool
	for _, ti := range append(first, crashed...) {
		if ti.Operator == op.label() && ti.Node == victim.id {
			ranThere = ranThere || ti.Error == ""
			failedThere = failedThere || ti.Error != ""
		}
	}
	if !ranThere || !failedThere {
		t.Fatalf("tasks on %s: ran %v, failed %v; want both: %+v, then %+v", victim.id, ranThere, failedThere, first, crashed)
	}
	s.start(victim)
	s.loadFor(3, 500*time.Millisecond)
	s.settle()
	s.check()
}

// A batch's delta waits for the other nodes only deltaGrace once one has
// taken it, and for every answer before that; a node that never answers
// does not hold it up (each case fails the test by never returning).
func TestAwaitTakenWaitsOnlyAMomentOnceOneHolds(t *testing.T) {
	within := func(name string, f func() int) int {
		t.Helper()
		got := make(chan int, 1)
		go func() { got <- f() }()
		select {
		case n := <-got:
			return n
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: still waiting after 10s", name)
			return 0
		}
	}
	// One node takes it, the other never answers (stopped).
	answers := make(chan bool, 2)
	answers <- true
	if n := within("one took it, one silent", func() int { return awaitTaken(answers, 2, 10*time.Millisecond) }); n != 1 {
		t.Fatalf("one took it, one silent: %d acked, want 1", n)
	}
	// The first answer is a refusal: it waits for the other.
	answers = make(chan bool, 2)
	answers <- false
	go func() {
		time.Sleep(50 * time.Millisecond)
		answers <- true
	}()
	if n := within("refused, then took it", func() int { return awaitTaken(answers, 2, time.Hour) }); n != 1 {
		t.Fatalf("refused, then took it: %d acked, want 1", n)
	}
	// Both answer: both counted, no grace needed.
	answers = make(chan bool, 2)
	answers <- true
	answers <- true
	if n := within("both took it", func() int { return awaitTaken(answers, 2, time.Hour) }); n != 2 {
		t.Fatalf("both took it: %d acked, want 2", n)
	}
}

// A stopped node does not stop the batches: with a follower stopped (its
// calls held), a line taken in by the other follower is counted, and the
// counts are exact once it resumes.
func TestStoppedNodeDoesNotHoldUpBatches(t *testing.T) {
	s, l := loadedSim(t, 78, 500*time.Millisecond)
	defer s.close()
	var stopped, other *simNode
	for _, n := range s.nodes {
		switch {
		case n == l:
		case stopped == nil:
			stopped = n
		default:
			other = n
		}
	}
	l.ctx.node.mu.Lock()
	delete(l.ctx.node.mu.down, stopped.id)
	l.ctx.node.mu.Unlock()
	s.net.Pause(stopped.id)
	defer s.net.Resume(stopped.id)
	// Taken in by the other follower, copied to the leader first: no call
	// of this batch but the delta goes to the stopped node.
	line := "probe-1 yak"
	s.mu.Lock()
	s.sent["probe-1"] = line
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := other.ctx.Ingest(ctx, "lines", "probe", 1, []string{line}); err != nil {
		t.Fatalf("ingest through %s: %v", other.id, err)
	}
	s.mu.Lock()
	s.acked["probe-1"] = line
	s.mu.Unlock()
	for {
		if got, err := l.ctx.QueryState("counts", "yak"); err == nil && got.Value == any(int64(1)) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the probe's batch did not complete with %s stopped", stopped.id)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.net.Resume(stopped.id)
	s.settle()
	s.check()
}

// blockMappingOp returns c's UpdateStateByKey operator, which maps the
// ingest stream's blocks.
func blockMappingOp(t *testing.T, c *Context) (*opNode, *receiverStream) {
	t.Helper()
	for _, o := range c.ops {
		if o.kind == "updateStateByKey" && o.blockMap != nil {
			if in := c.blockInput(o.parents[0]); in != nil {
				return o, in
			}
		}
	}
	t.Fatal("no operator maps blocks")
	return nil, nil
}

// A map task from a driver of an older epoch than the node has seen, of
// an operator that shuffles no blocks, or that does not decode, is
// refused with a code.
func TestMapTaskRefusesBadRequests(t *testing.T) {
	c, peer, ctx := soloClusterAndIntruder(t)
	epoch := c.node.status().Epoch
	block := recovery.BlockEntry{Ref: recovery.BlockRef{Stream: "lines", Node: "n1", Seq: 1}}
	cases := []struct {
		name string
		req  any
		code string
	}{
		{"garbage", []byte{0xc1}, codeRefused},
		{"old_epoch", &mapTaskMsg{Epoch: epoch - 1, Time: 5, Op: 0, Block: block}, codeFenced},
		{"no_such_operator", &mapTaskMsg{Epoch: epoch, Time: 5, Op: 999, Block: block}, codeRefused},
		{"operator_without_shuffle", &mapTaskMsg{Epoch: epoch, Time: 5, Op: 0, Block: block}, codeRefused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := peer.Call(ctx, "n1", methodMapTask, tc.req, nil); !rpc.IsCode(err, tc.code) {
				t.Fatalf("err %v, want code %s", err, tc.code)
			}
		})
	}
}
