package engine

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-stream/sluice/checkpoint"
	"github.com/sluice-stream/sluice/engine/rpc"
	"github.com/sluice-stream/sluice/recovery"
	"github.com/sluice-stream/sluice/state"
	"github.com/sluice-stream/sluice/wal"
)

// replicaLoop keeps this node ready to drive while another one does:
// it applies the state deltas of completed batches, copies the
// checkpoints the log references, deletes the blocks the log truncated,
// and checks the graph against the one recorded.
func (n *clusterNode) replicaLoop() {
	defer n.wg.Done()
	n.awaitCaughtUp()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastCopy time.Time
	for {
		select {
		case <-n.ctx.Done():
			return
		case refs := <-n.truncs:
			n.deleteBlocks(refs)
			continue
		case <-tick.C:
		}
		if err := n.checkGraph(); err != nil {
			n.fatal(err)
			return
		}
		if n.driving() {
			continue
		}
		n.c.replicaMu.Lock()
		if store := n.c.stateStore(); store != nil && !n.driving() {
			if err := n.applyCompleted(store); err != nil {
				n.c.log.Warn("applying a state delta failed", "err", err)
			}
		}
		n.c.replicaMu.Unlock()
		if time.Since(lastCopy) > time.Second {
			lastCopy = time.Now()
			n.copyCheckpoints()
			n.restoreIfBehind()
		}
	}
}

// awaitCaughtUp waits until this node's log has applied what the leader
// committed, then numbers the ingest streams' blocks after every one the
// log and the WAL know of, and admits ingest.
func (n *clusterNode) awaitCaughtUp() {
	meta := n.meta()
	for n.ctx.Err() == nil {
		ri := meta.RaftInfo()
		leader := ri.LeaderID != ""
		recent := ri.LeaderID == n.c.cfg.NodeID || time.Since(ri.LastContact) < time.Second
		if leader && recent && ri.CommitIndex > 0 && ri.AppliedIndex >= ri.CommitIndex {
			break
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	if n.ctx.Err() != nil {
		return
	}
	for _, r := range ingestInputs(n.c.inputs) {
		last, _ := meta.LastBlock(r.stream, n.c.cfg.NodeID)
		if seq, ok, err := n.c.storage.blocks.LastSeq(r.stream, n.c.cfg.NodeID); err == nil && ok {
			last = max(last, seq)
		}
		r.nextSeq.Store(last + 1)
	}
	n.mu.Lock()
	n.mu.ready = true
	n.mu.Unlock()
	n.c.log.Info("the metadata log has caught up: ingest is open", "leader", meta.RaftInfo().LeaderID)
}

// ready reports whether ingest is admitted.
func (n *clusterNode) ready() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.ready
}

// applyCompleted applies the pending delta once its batch completed.
// The caller holds c.replicaMu.
func (n *clusterNode) applyCompleted(store *state.Store) error {
	p, ok, err := store.Pending()
	if err != nil || !ok || p > n.meta().LastCompleted() {
		return err
	}
	return store.ApplyDelta(p)
}

// copyCheckpoints installs the referenced checkpoints other nodes wrote,
// and deletes the copies no longer referenced.
func (n *clusterNode) copyCheckpoints() {
	sto := n.c.storage
	var keep []checkpoint.Ref
	for _, r := range n.meta().Checkpoints() {
		ref := checkpoint.Ref{Time: r.Time, Name: r.Name, Sum: r.Sum}
		keep = append(keep, ref)
		n.mu.Lock()
		have := n.mu.installed[r.Name]
		n.mu.Unlock()
		if have || r.Node == n.c.cfg.NodeID || r.Node == "" {
			continue
		}
		if err := n.fetchCheckpoint(n.ctx, r.Node, ref); err != nil {
			n.c.log.Debug("copying a checkpoint failed; retrying", "checkpoint", r.Name, "from", r.Node, "err", err)
			continue
		}
		n.mu.Lock()
		n.mu.installed[r.Name] = true
		n.mu.Unlock()
		n.c.log.Debug("checkpoint copied", "checkpoint", r.Name, "from", r.Node)
	}
	if len(keep) > 0 && !n.driving() {
		if err := sto.ckpts.Retain(keep); err != nil {
			n.c.log.Warn("deleting old checkpoint copies failed", "err", err)
		}
	}
}

// copyCheckpoint makes sure this node has ref's checkpoint before a
// restore: a copy made earlier verifies without fetching; else it is
// fetched from the node that wrote it, or from any node that copied it.
func (n *clusterNode) copyCheckpoint(r recovery.CheckpointRef) {
	ref := checkpoint.Ref{Time: r.Time, Name: r.Name, Sum: r.Sum}
	if _, err := n.c.storage.ckpts.Verify(ref, n.c.storage.ckptMeta); err == nil {
		return
	}
	from := []string{r.Node}
	for _, o := range n.others {
		if o != r.Node {
			from = append(from, o)
		}
	}
	for _, node := range from {
		if node == "" || node == n.c.cfg.NodeID {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 2*time.Minute)
		err := n.fetchCheckpoint(ctx, node, ref)
		cancel()
		if err == nil {
			return
		}
		n.c.log.Warn("copying a checkpoint failed; trying another node", "checkpoint", ref.Name, "from", node, "err", err)
	}
}

// restoreIfBehind replaces the state replica with the newest checkpoint
// copy when the replica is older than it (it missed deltas while down):
// the driver then sends it the deltas after the checkpoint.
func (n *clusterNode) restoreIfBehind() {
	refs := n.meta().Checkpoints()
	if len(refs) == 0 {
		return
	}
	r := refs[len(refs)-1]
	n.mu.Lock()
	have := n.mu.installed[r.Name] || r.Node == n.c.cfg.NodeID
	n.mu.Unlock()
	if !have {
		return
	}
	n.c.replicaMu.Lock()
	defer n.c.replicaMu.Unlock()
	if n.driving() || !n.c.running() {
		// A stopping context answers no store (stateStore): that is not
		// a replica missing, and there is nothing to restore it for.
		return
	}
	store := n.c.stateStore()
	applied := Time(-1)
	if store != nil {
		a, err := store.Applied()
		if err != nil {
			return
		}
		applied = Time(a)
	}
	if applied >= Time(r.Time) {
		return
	}
	sto := n.c.storage
	ref := checkpoint.Ref{Time: r.Time, Name: r.Name, Sum: r.Sum}
	dir := sto.fs.PathJoin(sto.dir, "state")
	n.closeReplicaLocked()
	if err := sto.fs.RemoveAll(dir); err != nil {
		n.c.log.Warn("removing the state replica to restore it failed", "err", err)
		return
	}
	if err := sto.ckpts.Restore(ref, sto.ckptMeta, dir); err != nil {
		n.c.log.Warn("restoring the state replica from a checkpoint failed", "checkpoint", ref.Name, "err", err)
		return
	}
	restored, err := state.Open(dir, state.Options{FS: sto.fs, Logger: n.c.log, CacheBytes: n.c.cfg.StateCacheBytes})
	if err != nil {
		n.c.log.Warn("opening the restored state replica failed", "checkpoint", ref.Name, "err", err)
		return
	}
	n.c.mu.Lock()
	sto.state = restored
	n.c.mu.Unlock()
	n.c.log.Info("the state replica was behind the newest checkpoint: restored from it", "checkpoint", ref.Name, "was_as_of", applied, "now_as_of", Time(r.Time))
}

// deleteBlocks deletes this node's copies of truncated blocks.
func (n *clusterNode) deleteBlocks(refs []recovery.BlockRef) {
	ids := make([]wal.BlockID, len(refs))
	for i, r := range refs {
		ids[i] = wal.BlockID{Stream: r.Stream, Node: r.Node, Seq: r.Seq}
	}
	if err := n.c.storage.blocks.Delete(ids); err != nil {
		n.c.log.Warn("deleting truncated blocks failed; the next start deletes them", "err", err)
	}
}

// checkGraph refuses to go on with a graph other than the recorded one
// (a node built from other code), unless a compatible upgrade is allowed.
func (n *clusterNode) checkGraph() error {
	rec := n.meta().Fingerprint()
	if rec == nil || n.c.cfg.AllowCompatibleUpgrade {
		return nil
	}
	if rec.App != n.c.cfg.AppName || rec.Hash != n.c.graphHash {
		return errors.Join(ErrGraphChanged, errors.New(graphDiff(rec.Operators, n.c.lines)),
			errors.New("this node runs other code than the cluster's driver: run the same binary and application on every node"))
	}
	return nil
}

// closeReplica closes the replica's handle on the state store before
// the driver opens it.
func (n *clusterNode) closeReplica() {
	n.c.replicaMu.Lock()
	defer n.c.replicaMu.Unlock()
	n.closeReplicaLocked()
}

// closeReplicaLocked is closeReplica with c.replicaMu held.
func (n *clusterNode) closeReplicaLocked() {
	n.c.mu.Lock()
	st := n.c.storage.state
	n.c.storage.state = nil
	n.c.mu.Unlock()
	if st != nil {
		st.Sync()
		st.Close()
	}
}

// openReplica opens the state store as a replica at start: as it is, its
// pending delta left for the replica loop (or the driver) to settle. Nil
// when it does not open.
func (n *clusterNode) openReplica() *state.Store {
	sto := n.c.storage
	dir := sto.fs.PathJoin(sto.dir, "state")
	store, err := state.Open(dir, state.Options{FS: sto.fs, Logger: n.c.log, CacheBytes: n.c.cfg.StateCacheBytes, CreateIfMissing: true})
	if err != nil {
		n.c.log.Warn("the state replica does not open; the driver will rebuild it if this node drives", "dir", dir, "err", err)
		return nil
	}
	return store
}

// status is how this node sees itself.
func (n *clusterNode) status() NodeStatus {
	meta := n.meta()
	ri := meta.RaftInfo()
	epoch, _ := meta.Epoch()
	st := NodeStatus{ID: n.c.cfg.NodeID, Role: ri.State, Term: ri.Term, Leader: ri.LeaderID, LastContact: ri.LastContact,
		Driving: n.driving(), Epoch: epoch, LastCompleted: Time(meta.LastCompleted()), AppliedIndex: ri.AppliedIndex}
	if store := n.c.stateStore(); store != nil {
		if a, err := store.Applied(); err == nil {
			st.StateApplied = Time(a)
		}
	}
	if err := n.failure(); err != nil {
		st.Error = err.Error()
	}
	return st
}

// ClusterStatus returns every node's status as it reports it, asking the
// others (bounded by ctx); a node that does not answer is "unreachable".
// A single node returns its own.
func (c *Context) ClusterStatus(ctx context.Context) []NodeStatus {
	return c.clusterStatus(ctx, false)
}

// NodeStatus is this node's view of itself alone: ClusterStatus without
// asking the others, so it answers at once when one of them is stopped.
func (c *Context) NodeStatus() NodeStatus {
	return c.clusterStatus(context.Background(), true)[0]
}

func (c *Context) clusterStatus(ctx context.Context, self bool) []NodeStatus {
	c.mu.Lock()
	n := c.node
	c.mu.Unlock()
	if n == nil {
		ci := c.Cluster()
		return []NodeStatus{{ID: ci.NodeID, Role: ci.State, Term: ci.Term, Leader: ci.LeaderID, Driving: ci.Leading(), AppliedIndex: ci.AppliedIndex}}
	}
	out := []NodeStatus{n.status()}
	if self {
		return out
	}
	results := make([]NodeStatus, len(n.others))
	done := make(chan struct{})
	for i, node := range n.others {
		go func() {
			defer func() { done <- struct{}{} }()
			cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			var st NodeStatus
			if err := n.net.Call(cctx, node, methodStatus, nil, &st); err != nil {
				st = NodeStatus{ID: node, Role: "unreachable", Error: err.Error()}
				if errors.Is(err, rpc.ErrUnknownPeer) {
					st.Role = "unknown"
				}
			}
			results[i] = st
		}()
	}
	for range n.others {
		<-done
	}
	return append(out, results...)
}
