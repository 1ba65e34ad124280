package engine

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// output registers an output operation on d: a job at every batch time d
// is valid. It returns the operation's node, which build errors name. run
// gets d's RDD as computed, which may be lazy: an output that streams it
// partition by partition (Print, SaveAsTextFiles, ForeachSink) never
// holds a whole batch in memory, which matters for a state stream of
// millions of keys.
func (d *DStream[T]) output(kind string, params []string, run func(b *batchRun, label string, r *rdd[T]) error) *opNode {
	o := d.op.ctx.addOp(kind, []*opNode{d.op}, d.op.slide, params...)
	o.hooks = noHooks{}
	d.op.ctx.addOutput(o, func(b *batchRun) error {
		r, err := d.getOrEmpty(b)
		if err != nil {
			return err
		}
		return run(b, o.label(), r)
	})
	return o
}

// partition returns partition p of r as a slice, computing it if r is
// lazy.
func (r *rdd[T]) partition(p int) []T {
	if r.mat != nil {
		return r.mat[p]
	}
	var out []T
	r.iterate(p, func(v T) { out = append(out, v) })
	return out
}

// noHooks is the hooks of an operator that keeps nothing between batches.
type noHooks struct{}

func (noHooks) force(*batchRun) error { return nil }
func (noHooks) forget(Time)           {}
func (noHooks) persisted() bool       { return false }

// printRule is the line Spark prints around a batch's header.
const printRule = "-------------------------------------------"

// Print prints the first n records of every batch, in Spark's format: a
// rule, "Time: <ms> ms", a rule, up to n records one per line, "..." when
// there are more, and an empty line. Print is for people: a batch re-run
// after a failure prints again.
func (d *DStream[T]) Print(n int) {
	o := d.output("print", []string{fmt.Sprintf("n=%d", n)}, func(b *batchRun, _ string, r *rdd[T]) error {
		w := bufio.NewWriter(b.c.cfg.Stdout)
		fmt.Fprintf(w, "%s\nTime: %v\n%s\n", printRule, b.t, printRule)
		shown := 0
		for p := 0; p < r.n && shown <= n; p++ {
			r.iterate(p, func(v T) {
				switch {
				case shown < n:
					fmt.Fprintln(w, v)
				case shown == n:
					fmt.Fprintln(w, "...")
				default:
					return
				}
				shown++
			})
		}
		fmt.Fprintln(w)
		return w.Flush()
	})
	if n < 0 {
		d.op.ctx.buildError(o, "Print count %d must not be negative", n)
	}
}

// ForeachRDD calls f with every batch's RDD, on the driver, in batch order.
// An error fails the batch (and stops the context).
func (d *DStream[T]) ForeachRDD(f func(t Time, rdd RDD[T]) error) {
	d.output("foreachRDD", nil, func(b *batchRun, label string, r *rdd[T]) error {
		r, err := materialize(b, d.op.label(), r) // tasks of a lazy r are d's
		if err != nil {
			return err
		}
		return guard(b.t, label, -1, func() error { return f(b.t, r.public(b.t)) })
	})
}

// SaveAsTextFiles writes every batch to a directory named
// "<prefix>-<batch time ms>[.<suffix>]", one file "part-NNNNN" per
// partition with a record per line and an empty "_SUCCESS" file. The
// directory is written under a temporary name, synced and renamed into
// place, so a reader sees a whole batch or none, and a re-run of the same
// batch replaces the directory whole.
//
// Only the last element of prefix is part of the graph's fingerprint: the
// directory it is in is where this node keeps its files, which nodes of a
// cluster choose each for itself.
func (d *DStream[T]) SaveAsTextFiles(prefix, suffix string) {
	o := d.output("saveAsTextFiles", []string{"prefix=…/" + filepath.Base(prefix), "suffix=" + suffix}, func(b *batchRun, label string, r *rdd[T]) error {
		return saveTextDir(b, label, batchDirName(prefix, suffix, b.t), r)
	})
	if prefix == "" {
		d.op.ctx.buildError(o, "SaveAsTextFiles needs a prefix (a path such as out/counts)")
	}
}

func batchDirName(prefix, suffix string, t Time) string {
	name := fmt.Sprintf("%s-%d", prefix, int64(t))
	if suffix != "" {
		name += "." + suffix
	}
	return name
}

func saveTextDir[T any](b *batchRun, label, final string, r *rdd[T]) error {
	parent, base := filepath.Dir(final), filepath.Base(final)
	tmp := filepath.Join(parent, "."+base+".tmp")
	old := filepath.Join(parent, "."+base+".old")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("engine: %s: %w", label, err)
	}
	// A temporary left by a crash is garbage: the batch is being re-run.
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("engine: %s: removing stale %s: %w", label, tmp, err)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("engine: %s: %w", label, err)
	}
	err := b.exec.runE(b.t, label, r.n, func(p int) error {
		return writeSynced(filepath.Join(tmp, fmt.Sprintf("part-%05d", p)), func(emit func(T)) { r.iterate(p, emit) })
	})
	if err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(tmp, "_SUCCESS"), func(func(string)) {}); err != nil {
		return fmt.Errorf("engine: %s: %w", label, err)
	}
	if err := syncDir(tmp); err != nil {
		return fmt.Errorf("engine: %s: %w", label, err)
	}
	if err := replaceDir(final, tmp, old); err != nil {
		return fmt.Errorf("engine: %s: %w", label, err)
	}
	return nil
}

// replaceDir moves tmp to final, moving an existing final aside first (a
// directory cannot be renamed over a non-empty one), and syncs the parent.
func replaceDir(final, tmp, old string) error {
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := os.Rename(final, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// writeSynced writes the records each yields, one a line, to path, and
// syncs it.
func writeSynced[T any](path string, each func(emit func(T))) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	each(func(v T) { fmt.Fprintln(w, v) })
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
