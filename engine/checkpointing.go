package engine

import (
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
	return &recovery.CheckpointRef{Time: ref.Time, Name: ref.Name, Sum: ref.Sum}
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
