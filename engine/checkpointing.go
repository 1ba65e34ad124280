package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-stream/sluice/checkpoint"
	"github.com/sluice-stream/sluice/recovery"
)

// maybeCheckpoint writes a checkpoint of the state as of the batch before
// t, when CheckpointInterval has passed since the last one, and returns
// the reference BatchCompleted{t} records. A checkpoint that fails to
// write is logged and skipped: the state itself is durable without it;
// only the truncation of older blocks waits for the next one.
func (st *storage) maybeCheckpoint(c *Context, t Time) *recovery.CheckpointRef {
	if t.Sub(st.lastCkpt) < c.cfg.CheckpointInterval {
		return nil
	}
	st.lastCkpt = t
	applied, err := st.state.Applied()
	if err != nil {
		c.log.Error("checkpoint skipped: reading the state store", "batch", t, "err", err)
		return nil
	}
	meta := st.ckptMeta
	meta.Time = applied
	ref, err := st.ckpts.Write(st.state, meta)
	if err != nil {
		c.log.Error("checkpoint skipped: writing it failed; the next interval tries again", "batch", t, "err", err)
		return nil
	}
	c.log.Debug("checkpoint written", "name", ref.Name, "as_of", Time(applied))
	return &recovery.CheckpointRef{Time: ref.Time, Name: ref.Name, Sum: ref.Sum, Node: st.node}
}

// finalCheckpoint checkpoints the last committed state at a graceful
// stop, referenced from the last completed batch, so that a restart finds
// a checkpoint of exactly the state it stopped with.
func (st *storage) finalCheckpoint(c *Context, epoch uint64) error {
	applied, err := st.state.Applied()
	if err != nil || applied == 0 {
		return err
	}
	view := st.meta.View()
	if n := len(view.Checkpoints); n > 0 && view.Checkpoints[n-1].Time >= applied {
		return nil
	}
	if err := st.state.Sync(); err != nil {
		return err
	}
	meta := st.ckptMeta
	meta.Time = applied
	ref, err := st.ckpts.Write(st.state, meta)
	if err != nil {
		return fmt.Errorf("engine: the checkpoint at stop: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ev := recovery.BatchCompleted{Time: applied, Epoch: epoch,
		Checkpoint: &recovery.CheckpointRef{Time: ref.Time, Name: ref.Name, Sum: ref.Sum, Node: st.node}}
	if _, err := st.meta.Apply(ctx, ev); err != nil {
		return fmt.Errorf("engine: recording the checkpoint at stop: %w", err)
	}
	st.retainCheckpoints(c)
	c.log.Info("state checkpointed at stop", "checkpoint", ref.Name, "as_of", Time(applied))
	return nil
}

// retainCheckpoints deletes the checkpoints the log no longer references.
func (st *storage) retainCheckpoints(c *Context) {
	var keep []checkpoint.Ref
	for _, r := range st.meta.View().Checkpoints {
		keep = append(keep, checkpoint.Ref{Time: r.Time, Name: r.Name, Sum: r.Sum})
	}
	if err := st.ckpts.Retain(keep); err != nil {
		c.log.Warn("deleting old checkpoints failed; retrying at the next one", "err", err)
	}
}
