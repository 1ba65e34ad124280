package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sluice-stream/sluice/engine/rpc"
	"github.com/sluice-stream/sluice/recovery"
)

// A cluster is three (or more) nodes running the same binary and graph.
// Every node:
//
//  1. is a voter of the metadata log (raft over Config.Cluster.Network);
//  2. serves ingest: a block it receives is written to its WAL, copied to
//     Replication−1 other nodes' WALs, then registered with BlockAdded,
//     forwarded to the leader; only then is the producer acknowledged;
//  3. holds a replica of the state: the driver ships each batch's delta
//     to every node before the batch completes, and a node applies it once
//     the log says the batch completed;
//  4. copies the checkpoints the log references from the node that wrote
//     them, and deletes its copies of blocks the log truncates.
//
// The driver runs on the raft leader only. A node that becomes the leader
// waits for the log to be applied (a barrier), records DriverStarted with
// its term as the epoch (fencing every older driver: the FSM refuses
// their batch events, and nodes refuse their deltas), recovers the state
// (its replica, or a checkpoint copy and the batches after it, read from
// any node holding their blocks), re-runs the batches allocated and not
// completed, in order, and goes on generating. It stops driving when it
// loses leadership. Receivers other than ingest run on the driver.

// ClusterConfig makes a Context one node of a cluster.
type ClusterConfig struct {
	// Network connects this node to the others: raft's traffic and the
	// engine's calls.
	Network rpc.Endpoint
	// Peers are every voter, this node included: id and raft address.
	Peers []recovery.Peer
	// Replication is how many nodes hold each block, this one included.
	// Default min(2, len(Peers)).
	Replication int
}

func (cc *ClusterConfig) validate(self string) error {
	switch {
	case cc.Network == nil:
		return errors.New("engine: a cluster needs Cluster.Network")
	case len(cc.Peers) == 0:
		return errors.New("engine: a cluster needs Cluster.Peers, this node included")
	case cc.Replication < 0 || cc.Replication > len(cc.Peers):
		return fmt.Errorf("engine: replication %d must be between 1 and the %d peers (0: the default, 2)", cc.Replication, len(cc.Peers))
	case !slices.ContainsFunc(cc.Peers, func(p recovery.Peer) bool { return p.ID == self }):
		return fmt.Errorf("engine: this node's id %q is not among the peers", self)
	}
	return nil
}

// clusterNode is the cluster side of a Context.
type clusterNode struct {
	c           *Context
	net         rpc.Endpoint
	others      []string // the other nodes' ids, in ring order after this one
	replication int

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	done      chan struct{} // closed when the node has stopped (Stop, or a fatal error)
	closeDone sync.Once
	truncs    chan []recovery.BlockRef

	mu struct {
		sync.Mutex
		sched     *scheduler // the driver, while this node drives
		driving   bool
		stopping  bool   // Stop has begun: no driver starts again
		epoch     uint64 // the newest epoch seen in a delta or DriverStarted
		err       error  // fatal: the node stopped because of it
		ready     bool   // the log has caught up: ingest is admitted
		down      map[string]time.Time
		installed map[string]bool // checkpoint copies verified here
		// recent: the deltas this driver shipped lately (keepDelta).
		recent      []*deltaMsg
		recentBytes int
	}
}

func newClusterNode(c *Context) *clusterNode {
	cc := c.cfg.Cluster
	n := &clusterNode{c: c, net: cc.Network, replication: cc.Replication, done: make(chan struct{}),
		truncs: make(chan []recovery.BlockRef, 1024)}
	if n.replication == 0 {
		n.replication = min(2, len(cc.Peers))
	}
	ids := make([]string, 0, len(cc.Peers))
	for _, p := range cc.Peers {
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	i := slices.Index(ids, c.cfg.NodeID)
	for k := 1; k < len(ids); k++ {
		n.others = append(n.others, ids[(i+k)%len(ids)])
	}
	n.mu.down = map[string]time.Time{}
	n.mu.installed = map[string]bool{}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n
}

// onTruncate is the metadata log's truncation hook: it must not block.
func (n *clusterNode) onTruncate(refs []recovery.BlockRef) {
	select {
	case n.truncs <- refs:
	default:
		n.c.log.Warn("truncated blocks not deleted: the queue is full; the next start deletes them", "blocks", len(refs))
	}
}

// startNode starts a cluster node: its state replica, its ingest
// streams, and its goroutines. c.mu is held.
func (c *Context) startNode(fingerprint string) error {
	c.storage.ckptMeta.App = c.cfg.AppName
	c.storage.ckptMeta.Fingerprint = hashLines(c.stLines)
	c.storage.state = c.node.openReplica()
	for _, r := range ingestInputs(c.inputs) {
		r.start(c.node.ctx)
	}
	c.state = active
	c.bus.start()
	c.node.start()
	c.log.Info("cluster node started", "node", c.cfg.NodeID, "peers", len(c.cfg.Cluster.Peers), "replication", c.node.replication,
		"batch", c.cfg.BatchDuration, "partitions", c.cfg.Partitions, "data_dir", c.cfg.DataDir, "fingerprint", fingerprint[:12])
	return nil
}

// stopNode stops the node: the driver if it drives (gracefully: with the
// checkpoint at stop), then the ingest streams and the goroutines.
func (c *Context) stopNode(ctx context.Context, graceful bool) error {
	n := c.node
	n.mu.Lock()
	s := n.mu.sched
	n.mu.stopping = true
	n.mu.Unlock()
	var err error
	if s != nil {
		err = n.stopDriver(ctx, s, graceful)
		if graceful && err == nil && s.failure() == nil {
			err = c.storage.finalCheckpoint(c, s.epoch)
			if errors.Is(err, recovery.ErrNotLeader) || errors.Is(err, recovery.ErrFenced) {
				// The others stopped first, or another node leads now: the
				// checkpoint is not needed, the new driver has the state.
				c.log.Warn("no checkpoint at stop: this node no longer leads", "err", err)
				err = nil
			}
		}
	}
	for _, r := range ingestInputs(c.inputs) {
		r.stop(graceful)
	}
	return errors.Join(err, n.stop(ctx))
}

// start registers the handlers and starts the node's goroutines.
func (n *clusterNode) start() {
	n.handle()
	n.wg.Add(2)
	go n.replicaLoop()
	go n.driverLoop()
}

// stop stops the node's goroutines, and a driver that started meanwhile.
func (n *clusterNode) stop(ctx context.Context) error {
	n.cancel()
	n.wg.Wait()
	var err error
	n.mu.Lock()
	s := n.mu.sched
	n.mu.Unlock()
	if s != nil {
		err = n.stopDriver(ctx, s, false)
	}
	n.closeDone.Do(func() { close(n.done) })
	return err
}

// fatal stops the node for good: it cannot take part in the cluster.
func (n *clusterNode) fatal(err error) {
	n.mu.Lock()
	first := n.mu.err == nil
	if first {
		n.mu.err = err
	}
	n.mu.Unlock()
	if first {
		n.c.log.Error("this node cannot take part in the cluster; stopping it", "err", err)
		n.cancel()
		go func() {
			n.wg.Wait()
			n.closeDone.Do(func() { close(n.done) })
		}()
	}
}

func (n *clusterNode) failure() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.err
}

// driverLoop drives while this node leads.
func (n *clusterNode) driverLoop() {
	defer n.wg.Done()
	meta := n.meta()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for n.ctx.Err() == nil {
		if !meta.IsLeader() || n.isStopping() {
			select {
			case <-meta.LeaderCh():
			case <-tick.C:
			case <-n.ctx.Done():
			}
			continue
		}
		err := n.drive()
		switch {
		case n.ctx.Err() != nil, n.isStopping():
		case errors.Is(err, ErrGraphChanged):
			n.stepDown(err)
			n.fatal(err)
			return
		case errors.Is(err, ErrNoValidState):
			// This node's replica is behind and no checkpoint copy can
			// serve: another node can drive; this one goes on as a
			// replica, which restores a checkpoint once it has a copy.
			n.stepDown(err)
		case err != nil:
			n.c.log.Warn("driver stopped; driving again while this node leads", "err", err)
			select {
			case <-time.After(200 * time.Millisecond):
			case <-n.ctx.Done():
			}
		}
	}
}

// stepDown hands the leadership to another node, because this one cannot
// drive (err says why).
func (n *clusterNode) stepDown(why error) {
	n.c.log.Warn("this node leads but cannot drive: handing the leadership to another node", "why", why)
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	if err := n.meta().TransferLeadership(ctx); err != nil {
		n.c.log.Warn("handing the leadership over failed; trying again", "err", err)
	}
}

func (n *clusterNode) meta() *recovery.Log { return n.c.storage.meta.(*recovery.Log) }

// drive takes over as the driver and runs until leadership is lost, the
// node stops, or the driver fails.
func (n *clusterNode) drive() error {
	meta := n.meta()
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	started := time.Now()
	if err := meta.Barrier(ctx); err != nil {
		return err
	}
	epoch := meta.Term()
	if _, err := meta.Apply(ctx, recovery.DriverStarted{Epoch: epoch, Node: n.c.cfg.NodeID}); err != nil {
		return err
	}
	n.noteEpoch(epoch)
	n.c.log.Info("this node leads: taking over as the driver", "epoch", epoch, "last_completed", Time(meta.LastCompleted()))
	// Driving from here on: the replica's writers (deltas arriving, the
	// replica loop) check it under c.replicaMu, which closeReplica takes,
	// so none of them touches the store once the driver owns it.
	n.mu.Lock()
	n.mu.driving = true
	n.mu.Unlock()
	n.closeReplica()
	s := newScheduler(n.c, n.c.inputs, n.c.outputs, n.c.ops)
	s.epoch = epoch
	s.owned = driverInputs(n.c.inputs)
	s.tookOver = started
	if err := s.start(); err != nil {
		n.mu.Lock()
		n.mu.driving = false
		n.mu.Unlock()
		return err
	}
	n.mu.Lock()
	n.mu.sched = s
	n.mu.Unlock()
	actx, stopAssigning := context.WithCancel(n.ctx)
	assigned := make(chan struct{})
	go func() {
		defer close(assigned)
		n.assignLoop(actx, epoch)
	}()
	defer func() {
		stopAssigning()
		<-assigned
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			n.clearDriver(s)
			if err := s.failure(); err != nil {
				return err
			}
			return errors.New("engine: the driver stopped")
		case <-n.ctx.Done():
			return nil // stop stops the driver
		case <-tick.C:
			if !meta.IsLeader() {
				n.c.log.Warn("this node lost the leadership: the driver stops", "epoch", epoch)
				return n.stopDriver(context.Background(), s, false)
			}
		}
	}
}

// stopDriver stops s and forgets it.
func (n *clusterNode) stopDriver(ctx context.Context, s *scheduler, graceful bool) error {
	err := s.stopOnce(ctx, graceful)
	n.clearDriver(s)
	return err
}

func (n *clusterNode) clearDriver(s *scheduler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.sched == s {
		n.mu.sched = nil
	}
	n.mu.driving = false
}

func (n *clusterNode) isStopping() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.stopping
}

// driving reports whether this node runs the driver now.
func (n *clusterNode) driving() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.driving
}

// noteEpoch records an epoch seen; it reports false if it is older than
// one seen before (a deposed driver's).
func (n *clusterNode) noteEpoch(e uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if e < n.mu.epoch {
		return false
	}
	n.mu.epoch = e
	return true
}

// driverInputs are the inputs the driver starts and stops: every
// receiver but ingest streams, which run on every node for the node's
// life.
func driverInputs(inputs []inputStream) []inputStream {
	var out []inputStream
	for _, in := range inputs {
		if r, ok := in.(*receiverStream); ok && r.recv == nil {
			continue
		}
		out = append(out, in)
	}
	return out
}

// ingestInputs are the ingest streams.
func ingestInputs(inputs []inputStream) []*receiverStream {
	var out []*receiverStream
	for _, in := range inputs {
		if r, ok := in.(*receiverStream); ok && r.recv == nil {
			out = append(out, r)
		}
	}
	return out
}
