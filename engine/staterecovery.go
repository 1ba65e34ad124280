package engine

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sluice-stream/sluice/checkpoint"
	"github.com/sluice-stream/sluice/recovery"
	"github.com/sluice-stream/sluice/state"
)

// ErrNoValidState is returned by Start when the state store cannot be
// used and no checkpoint the metadata log references can replace it.
var ErrNoValidState = errors.New("engine: no valid state to start from")

// openState opens the state store in line with the metadata log and
// returns the batch time its state is as of: batches completed after it
// must be re-run (replayed) before any other. In order of preference:
//
//  1. the store in DIR/state, its deltas redone or dropped against the
//     log's last completed batch;
//  2. the newest valid checkpoint the log references, when the store is
//     missing, corrupt, or behind by batches the log no longer holds;
//  3. an empty store, when the log still holds every batch since the
//     first (nothing has been truncated).
//
// Otherwise Start fails: the node never serves state it cannot trust. A
// corrupt store or checkpoint is moved aside, never deleted.
func (st *storage) openState(c *Context, view recovery.View) (Time, error) {
	dir := st.fs.PathJoin(st.dir, "state")
	fresh := view.LastAllocated == 0 && view.LastCompleted == 0
	opts := state.Options{FS: st.fs, Logger: c.log, CacheBytes: c.cfg.StateCacheBytes, CreateIfMissing: fresh}
	if len(c.stLines) == 1 {
		return st.openStateless(c, dir, opts, view)
	}
	store, applied, err := st.tryStore(c, dir, opts, view)
	if err != nil {
		return 0, err
	}
	if store == nil {
		if store, applied, err = st.restore(c, dir, opts, view); err != nil {
			return 0, err
		}
	}
	st.publishState(c, store)
	st.lastCkpt = applied
	if n := len(view.Checkpoints); n > 0 {
		st.lastCkpt = max(st.lastCkpt, Time(view.Checkpoints[n-1].Time))
	}
	return applied, nil
}

// openStateless opens the state store of a graph that keeps nothing
// between batches: there is nothing to rebuild, so a missing store is
// created and no completed batch is re-run.
func (st *storage) openStateless(c *Context, dir string, opts state.Options, view recovery.View) (Time, error) {
	opts.CreateIfMissing = true
	store, err := state.Open(dir, opts)
	if errors.Is(err, state.ErrCorrupt) {
		c.log.Error("the state store is corrupt; this graph keeps no state, so it is moved aside and replaced", "dir", dir, "err", err)
		if err := st.moveAside(dir, "broken"); err != nil {
			return 0, err
		}
		store, err = state.Open(dir, opts)
	}
	if err != nil {
		return 0, fmt.Errorf("engine: opening the state store: %w", err)
	}
	if _, err := store.Recover(view.LastCompleted); err != nil {
		store.Close()
		return 0, fmt.Errorf("engine: recovering the state store: %w", err)
	}
	st.publishState(c, store)
	st.lastCkpt = Time(view.LastCompleted)
	return Time(view.LastCompleted), nil
}

// tryStore opens the store in dir and recovers it. It returns a nil store
// (and no error) when the store must be rebuilt.
func (st *storage) tryStore(c *Context, dir string, opts state.Options, view recovery.View) (*state.Store, Time, error) {
	store, err := state.Open(dir, opts)
	switch {
	case errors.Is(err, state.ErrNotExist):
		c.log.Warn("the state store is missing although batches completed; rebuilding it from a checkpoint",
			"dir", dir, "last_completed", Time(view.LastCompleted))
		return nil, 0, nil
	case errors.Is(err, state.ErrCorrupt):
		c.log.Error("the state store is corrupt; moving it aside and rebuilding it from a checkpoint", "dir", dir, "err", err)
		return nil, 0, st.moveAside(dir, "broken")
	case err != nil:
		return nil, 0, fmt.Errorf("engine: opening the state store: %w", err)
	}
	res, err := store.Recover(view.LastCompleted)
	switch {
	case errors.Is(err, state.ErrCorrupt):
		store.Close()
		c.log.Error("the state store is corrupt; moving it aside and rebuilding it from a checkpoint", "dir", dir, "err", err)
		return nil, 0, st.moveAside(dir, "broken")
	case err != nil:
		store.Close()
		return nil, 0, fmt.Errorf("engine: recovering the state store: %w", err)
	}
	if len(res.Redone)+len(res.Dropped) > 0 {
		c.log.Info("state store recovered", "redone", res.Redone, "dropped", res.Dropped, "applied", Time(res.Applied))
	}
	applied := Time(res.Applied)
	if !st.replayable(c, view, applied) {
		store.Close()
		c.log.Warn("the state store is behind the metadata log by batches the log no longer holds; rebuilding it from a checkpoint",
			"applied", applied, "last_completed", Time(view.LastCompleted), "log_truncated_before", Time(view.TruncatedBefore))
		return nil, 0, st.moveAside(dir, "stale")
	}
	return store, applied, nil
}

// replayable reports whether the log still holds every completed batch
// after applied, so that they can be re-run.
func (st *storage) replayable(c *Context, view recovery.View, applied Time) bool {
	if int64(applied) >= view.LastCompleted {
		return true
	}
	return Time(view.TruncatedBefore) <= applied.Add(c.cfg.BatchDuration)
}

// restore rebuilds the store in dir from the newest valid checkpoint the
// log references, or empty when the log holds every batch.
func (st *storage) restore(c *Context, dir string, opts state.Options, view recovery.View) (*state.Store, Time, error) {
	var tried []string
	refs := slices.Clone(view.Checkpoints)
	slices.Reverse(refs)
	for _, r := range refs {
		ref := checkpoint.Ref{Time: r.Time, Name: r.Name, Sum: r.Sum}
		if !st.replayable(c, view, Time(ref.Time)) {
			tried = append(tried, fmt.Sprintf("%s: older than the batches the log holds", ref.Name))
			continue
		}
		if c.node != nil {
			c.node.copyCheckpoint(r)
		}
		if _, err := st.ckpts.Verify(ref, st.ckptMeta); err != nil {
			c.log.Error("a checkpoint the metadata log references is not valid; trying an older one", "checkpoint", ref.Name, "err", err)
			tried = append(tried, fmt.Sprintf("%s: %v", ref.Name, err))
			if errors.Is(err, checkpoint.ErrCorrupt) {
				st.ckpts.MoveAside(ref.Name)
			}
			continue
		}
		if err := st.ckpts.Restore(ref, st.ckptMeta, dir); err != nil {
			return nil, 0, fmt.Errorf("engine: restoring checkpoint %s: %w", ref.Name, err)
		}
		opts.CreateIfMissing = false
		store, err := state.Open(dir, opts)
		if err != nil {
			return nil, 0, fmt.Errorf("engine: opening the state restored from checkpoint %s: %w", ref.Name, err)
		}
		res, err := store.Recover(view.LastCompleted)
		if err != nil {
			store.Close()
			return nil, 0, fmt.Errorf("engine: recovering the state restored from checkpoint %s: %w", ref.Name, err)
		}
		c.log.Warn("state restored from a checkpoint; re-running the batches completed after it",
			"checkpoint", ref.Name, "as_of", Time(res.Applied), "last_completed", Time(view.LastCompleted))
		return store, Time(res.Applied), nil
	}
	if view.TruncatedBefore == 0 {
		opts.CreateIfMissing = true
		store, err := state.Open(dir, opts)
		if err != nil {
			return nil, 0, fmt.Errorf("engine: creating the state store: %w", err)
		}
		c.log.Warn("state rebuilt from the first batch: the metadata log holds every batch", "last_completed", Time(view.LastCompleted))
		return store, 0, nil
	}
	return nil, 0, fmt.Errorf("%w: the state store in %s cannot be used and no checkpoint can replace it (%d referenced: %v); "+
		"restore the data directory from a backup, or start with a fresh --data-dir", ErrNoValidState, dir, len(refs), tried)
}

// moveAside renames path to path.<why>-<unix seconds>: what cannot be
// used is kept for a person to look at, never deleted.
func (st *storage) moveAside(path, why string) error {
	to := fmt.Sprintf("%s.%s-%d", path, why, time.Now().Unix())
	if err := st.fs.Rename(path, to); err != nil {
		return fmt.Errorf("engine: moving %s aside to %s: %w", path, to, err)
	}
	return nil
}

// publishState sets the open state store. In a cluster the driver opens it
// while the node serves, whose status and state queries read it under
// c.mu; on a single node Start holds c.mu while it opens the store, and
// nothing reads it before Start returns.
func (st *storage) publishState(c *Context, store *state.Store) {
	if c.node != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
	}
	st.state = store
}
