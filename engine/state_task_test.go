package engine

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/sluice-stream/sluice/engine/rpc"
	"github.com/sluice-stream/sluice/state"
)

// stateOp returns c's UpdateStateByKey operator and its stores.
func stateOp(t *testing.T, c *Context) (*opNode, *stateStores[string, int64]) {
	t.Helper()
	for _, o := range c.ops {
		if o.kind == "updateStateByKey" && o.stateTask != nil {
			return o, o.state.(*stateStores[string, int64])
		}
	}
	t.Fatal("no operator runs state tasks")
	return nil, nil
}

// stateProbe is one run of the word counts' state step, outside the
// batches, over the driver's store as of the batch it has applied: every
// partition's writes, with remote on its primary (else on the driver).
type stateProbe struct {
	t      *testing.T
	l      *simNode
	op     *opNode
	n      int
	inputs [][]byte
	at     Time // the next probe's batch time, of its own so that the trace holds only its tasks
}

func newStateProbe(t *testing.T, l *simNode) *stateProbe {
	op, st := stateOp(t, l.ctx)
	pr := &stateProbe{t: t, l: l, op: op, n: st.n, at: Time(l.ctx.storage.meta.View().LastCompleted).Add(100000 * simBatch)}
	// Every word with two values, in its partition; one word new.
	parts := make([][]Pair[string, []int64], st.n)
	for _, w := range append(simVocab, "probe-word") {
		p := st.part.of(w)
		parts[p] = append(parts[p], Pair[string, []int64]{w, []int64{1, 2}})
	}
	for _, in := range parts {
		b, err := encodeValue(in)
		if err != nil {
			t.Fatal(err)
		}
		pr.inputs = append(pr.inputs, b)
	}
	return pr
}

// run runs the state step at a batch time of its own, with the tasks
// sent to the primaries, then on the driver alone, both over the driver's
// store as it is now (scratch batches over one snapshot), and returns
// every partition's writes, encoded, of both runs.
func (pr *stateProbe) run() (remote, local [][]byte, at Time) {
	pr.t.Helper()
	pr.at = pr.at.Add(simBatch)
	outer, err := pr.l.ctx.stateStore().Scratch(int64(pr.at))
	if err != nil {
		pr.t.Fatal(err)
	}
	defer outer.Close()
	return pr.once(outer, true), pr.once(outer, false), pr.at
}

func (pr *stateProbe) once(outer *state.Batch, remote bool) [][]byte {
	pr.t.Helper()
	sb, err := outer.Scratch()
	if err != nil {
		pr.t.Fatal(err)
	}
	b := &batchRun{t: pr.at, c: pr.l.ctx, exec: pr.l.ctx.exec, epoch: pr.l.ctx.node.status().Epoch,
		state: sb, prev: Time(sb.Base())}
	err = runStateTasks(b, pr.op, pr.n, remote, func(p int) ([]byte, error) { return pr.inputs[p], nil },
		func(sp *state.Part, p int) error { return pr.op.stateTask(b.t, sp, p, pr.inputs[p]) })
	if err != nil {
		pr.t.Fatalf("the state step (remote %v): %v", remote, err)
	}
	var out [][]byte
	for p := range pr.n {
		enc, _ := encodeValue(sb.Part(pr.op.id, p).Writes())
		out = append(out, enc)
	}
	return out
}

// same fails unless every partition's writes are the same both ways.
func (pr *stateProbe) same(what string, remote, local [][]byte) {
	pr.t.Helper()
	for p := range pr.n {
		if !bytes.Equal(remote[p], local[p]) {
			pr.t.Fatalf("%s: partition %d's writes: %x with the primaries, %x on the driver", what, p, remote[p], local[p])
		}
	}
}

// ranOn reports whether the state task of partition p at t ran on node,
// and whether one failed there.
func ranOn(c *Context, t Time, p int, node string) (ran, failed bool) {
	tasks, _ := c.BatchTasks(t)
	for _, ti := range tasks {
		if ti.Kind == taskState && ti.Partition == p && ti.Node == node {
			ran = ran || ti.Error == ""
			failed = failed || ti.Error != ""
		}
	}
	return ran, failed
}

// In a cluster the state step of UpdateStateByKey runs on each
// partition's primary, and the counts are exact. A partition's writes are
// the same bytes whether computed on its primary or on the driver, also
// when the primary is stopped (the driver does not wait for it past
// mapTaskSpeculate) or dead (the task fails there and runs on the
// driver).
func TestStateTasksRunOnPrimaries(t *testing.T) {
	s, l := loadedSim(t, 79, 1500*time.Millisecond)
	defer s.close()
	s.check()
	byNode, failed := tasksOf(l.ctx, taskState)
	elsewhere := 0
	for node, n := range byNode {
		if node != l.id {
			elsewhere += n
		}
	}
	t.Logf("state tasks by node, driver %s: %v; failed: %d", l.id, byNode, len(failed))
	if elsewhere == 0 {
		t.Fatalf("no state task ran on a node other than the driver %s: %v", l.id, byNode)
	}
	for _, ti := range failed {
		t.Logf("a state task failed with every node up: %+v", ti)
	}

	// The victim: the primary of some partition, not the driver.
	victimPart := -1
	var victim *simNode
	for p := range 3 {
		if id := l.ctx.node.partitionPrimary(p); id != l.id {
			victimPart = p
			for _, n := range s.nodes {
				if n.id == id {
					victim = n
				}
			}
			break
		}
	}
	if victim == nil {
		t.Fatalf("every partition's primary is the driver %s", l.id)
	}
	pr := newStateProbe(t, l)
	for try := 0; ; try++ {
		there, here, at := pr.run()
		pr.same("every node up", there, here)
		if len(here[victimPart]) < 10 {
			t.Fatalf("partition %d wrote nothing: %x", victimPart, here[victimPart])
		}
		if ran, _ := ranOn(l.ctx, at, victimPart, victim.id); ran {
			break
		}
		if try == 20 {
			t.Fatalf("the state task of partition %d never ran on its primary %s", victimPart, victim.id)
		}
	}

	// Stopped (its calls held): the driver computes the partition itself
	// once the task is slow, and takes its own writes.
	s.net.Pause(victim.id)
	start := time.Now()
	slow, here, at := pr.run()
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("with %s stopped the state step took %v", victim.id, took)
	}
	pr.same(victim.id+" stopped", slow, here)
	if ran, _ := ranOn(l.ctx, at, victimPart, l.id); !ran {
		tasks, _ := l.ctx.BatchTasks(at)
		t.Fatalf("with %s stopped, the state task of partition %d did not run on the driver %s: %+v", victim.id, victimPart, l.id, tasks)
	}
	s.net.Resume(victim.id)

	// Dead: the call fails, the driver computes the partition. (Each
	// batch's delta, which the dead node misses, marks it down again, and
	// a node marked down is no primary: try until a task went there.)
	s.crash(victim)
	for try := 0; ; try++ {
		l.ctx.node.mu.Lock()
		delete(l.ctx.node.mu.down, victim.id) // as if it had not failed yet
		l.ctx.node.mu.Unlock()
		dead, here, at := pr.run()
		pr.same(victim.id+" dead", dead, here)
		ranThere, failedThere := ranOn(l.ctx, at, victimPart, victim.id)
		if ranThere {
			t.Fatalf("a state task ran on the dead %s", victim.id)
		}
		if failedThere {
			if ran, _ := ranOn(l.ctx, at, victimPart, l.id); !ran {
				t.Fatalf("with %s dead, the state task of partition %d did not run on the driver", victim.id, victimPart)
			}
			break
		}
		if try == 20 {
			t.Fatalf("with %s dead, no state task of partition %d was sent there", victim.id, victimPart)
		}
	}
	s.start(victim)
	s.loadFor(3, 500*time.Millisecond)
	s.settle()
	s.check()
}

// A state task from a driver of an older epoch than the node has seen,
// of an operator that runs no state tasks, of a partition out of range,
// over a state the replica is not as of, or that does not decode, is
// refused with a code.
func TestStateTaskRefusesBadRequests(t *testing.T) {
	s, l := loadedSim(t, 80, 1500*time.Millisecond)
	defer s.close()
	var f *simNode
	for _, n := range s.nodes {
		if n != l {
			f = n
		}
	}
	op, _ := stateOp(t, l.ctx)
	peer := s.net.Endpoint("intruder")
	defer peer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	epoch := l.ctx.node.status().Epoch
	applied := int64(f.ctx.node.status().StateApplied)
	input, _ := encodeValue([]Pair[string, []int64]{{"ant", []int64{1}}})
	task := func(epoch uint64, t, prev int64, op, part int) *stateTaskMsg {
		return &stateTaskMsg{Epoch: epoch, Time: t, Prev: prev, Op: op, Part: part, Input: input}
	}
	far := applied + int64(1000*simBatch)
	cases := []struct {
		name string
		to   string
		req  any
		code string
	}{
		{"garbage", f.id, []byte{0xc1}, codeRefused},
		{"old_epoch", f.id, task(epoch-1, far+1, applied, op.id, 0), codeFenced},
		{"to_the_driver", l.id, task(epoch, far+1, applied, op.id, 0), codeFenced},
		{"no_such_operator", f.id, task(epoch, far+1, applied, 999, 0), codeRefused},
		{"operator_without_state", f.id, task(epoch, far+1, applied, 0, 0), codeRefused},
		{"partition_out_of_range", f.id, task(epoch, far+1, applied, op.id, 3), codeRefused},
		{"negative_partition", f.id, task(epoch, far+1, applied, op.id, -1), codeRefused},
		{"time_not_after_prev", f.id, task(epoch, applied, applied, op.id, 0), codeRefused},
		{"state_not_there_yet", f.id, task(epoch, far+1, far, op.id, 0), codeBehind},
		{"state_past_prev", f.id, task(epoch, far+1, 0, op.id, 0), codeBehind},
		{"input_garbage", f.id, &stateTaskMsg{Epoch: epoch, Time: far + 1, Prev: applied, Op: op.id, Part: 0, Input: []byte{0xc1}}, codeTaskFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "input_garbage" {
				// Needs the replica exactly as of prev: the batches move
				// on, so ask with the batch it is as of now, a few times.
				for range 10 {
					m := tc.req.(*stateTaskMsg)
					m.Prev = int64(f.ctx.node.status().StateApplied)
					m.Time = m.Prev + int64(1000*simBatch)
					err := peer.Call(ctx, f.id, methodStateTask, m, nil)
					if rpc.IsCode(err, tc.code) {
						return
					}
					t.Logf("not yet: %v", err)
				}
				t.Fatalf("never refused with code %s", tc.code)
			}
			if err := peer.Call(ctx, tc.to, methodStateTask, tc.req, nil); !rpc.IsCode(err, tc.code) {
				t.Fatalf("err %v, want code %s", err, tc.code)
			}
		})
	}
	s.settle()
	s.check()
}
