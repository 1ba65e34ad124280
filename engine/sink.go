package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// SinkPartition names one partition of one batch's output: what a sink
// commits once.
type SinkPartition struct {
	Time       Time // the batch time
	Partition  int  // 0 ≤ Partition < Partitions
	Partitions int  // how many partitions the batch's output has
}

func (p SinkPartition) String() string {
	return fmt.Sprintf("batch %v partition %d/%d", p.Time, p.Partition, p.Partitions)
}

// Sink receives a stream's output one (batch, partition) at a time, so
// that it can commit each exactly once.
//
// The contract: Write is called for every partition of every batch the
// stream is valid at, empty ones included (a batch with no partitions at
// all is written as one empty partition 0 of 1), partitions of one batch
// concurrently, batches in order. A batch that fails, or whose node dies
// before the metadata log records it completed, is re-run from the same
// input and state, and its partitions are written again with the same
// records in the same order. A sink that must not apply a partition twice
// records the SinkPartition it committed atomically with the data (a
// database transaction, a Kafka transaction, a file renamed into place)
// and returns nil for one it has already committed. An error fails the
// batch, which stops the context; nothing after it runs until it is
// re-run.
type Sink[T any] interface {
	Write(ctx context.Context, part SinkPartition, records []T) error
}

// SinkFunc makes a function a Sink.
type SinkFunc[T any] func(ctx context.Context, part SinkPartition, records []T) error

// Write calls f.
func (f SinkFunc[T]) Write(ctx context.Context, part SinkPartition, records []T) error {
	return f(ctx, part, records)
}

// ForeachSink writes every batch of d to s, partition by partition (see
// Sink for the exactly-once contract).
func (d *DStream[T]) ForeachSink(s Sink[T]) {
	o := d.output("foreachSink", []string{fmt.Sprintf("sink=%T", s)}, func(b *batchRun, label string, r *rdd[T]) error {
		if r.n == 0 {
			// An empty batch of an unpartitioned stream: the sink still
			// hears of the batch, as partition 0 of 1.
			r = materialized([][]T{nil})
		}
		return b.exec.runE(b.t, label, r.n, func(p int) error {
			part := SinkPartition{Time: b.t, Partition: p, Partitions: r.n}
			if err := s.Write(context.Background(), part, r.partition(p)); err != nil {
				return fmt.Errorf("engine: %s: writing %v: %w", label, part, err)
			}
			return nil
		})
	})
	if s == nil {
		d.op.ctx.buildError(o, "ForeachSink needs a sink, not nil")
	}
}

// FileSink is a Sink that writes each (batch, partition) exactly once, as
// the file DIR/batch-<batch ms>/part-NNNNN, a record per line formatted
// with Format (fmt's %v when nil). A partition is written to a temporary
// file, synced, and linked into place only if no file has that name: the
// first complete write commits it, and a re-run finds it and writes
// nothing. Readers never see a partial file.
type FileSink[T any] struct {
	Dir    string
	Format func(T) string
}

var _ Sink[string] = (*FileSink[string])(nil)

// Write commits one partition, unless it is committed already.
func (s *FileSink[T]) Write(_ context.Context, part SinkPartition, records []T) error {
	dir := filepath.Join(s.Dir, fmt.Sprintf("batch-%d", int64(part.Time)))
	final := filepath.Join(dir, fmt.Sprintf("part-%05d", part.Partition))
	if _, err := os.Lstat(final); err == nil {
		return nil // committed by an earlier run of the batch
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".part-%05d.tmp", part.Partition))
	err := writeSynced(tmp, func(emit func(string)) {
		for _, r := range records {
			if s.Format != nil {
				emit(s.Format(r))
			} else {
				emit(fmt.Sprint(r))
			}
		}
	})
	if err != nil {
		return err
	}
	// Link fails if final exists: of two writers, exactly one commits.
	if err := os.Link(tmp, final); err != nil && !os.IsExist(err) {
		return err
	}
	if err := os.Remove(tmp); err != nil {
		return err
	}
	return syncDir(dir)
}
