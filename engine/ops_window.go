package engine

import (
	"fmt"
	"time"
)

// Window returns a stream whose RDD at time t holds every record of d in
// the window (t-window, t], every slide (Spark's window). Both durations
// must be multiples of d's slide duration. The first windows after start
// are partial: they hold only the batches there are.
func (d *DStream[T]) Window(window, slide time.Duration) *DStream[T] {
	c := d.op.ctx
	ps := d.op.slide
	out := newStream(c, "window", []*opNode{d.op}, slide,
		[]string{durParam("window", window), durParam("slide", slide)},
		func(b *batchRun) (*rdd[T], error) {
			rs, err := d.slice(b, b.t.Add(-window+ps), b.t)
			if err != nil {
				return nil, err
			}
			return unionRDDs(rs), nil
		})
	checkWindow(out.op, d.op, window, slide)
	checkStorable[T](out.op, "record type (kept for the window)")
	out.op.readsPast = true
	d.op.rememberAtLeast(window)
	return out
}

// checkWindow records build errors for durations that are not multiples
// of the parent's slide.
func checkWindow(o, parent *opNode, window, slide time.Duration) {
	checkMultiple(o, "window duration", window, parent.slide, "parent's slide duration")
	checkMultiple(o, "slide duration", slide, parent.slide, "parent's slide duration")
	if slide <= 0 {
		o.slide = parent.slide // keep validAt well defined; Start fails anyway
	}
}

// CountByWindow counts the records in each window (Spark's countByWindow,
// which is computed incrementally and so yields 0 for a window that
// emptied after holding records).
func (d *DStream[T]) CountByWindow(window, slide time.Duration) *DStream[int64] {
	ones := Map(d, func(T) int64 { return 1 })
	return ones.ReduceByWindowInv(addInt64, subInt64, window, slide)
}

// ReduceByWindow reduces the records in each window with the associative
// function f.
func (d *DStream[T]) ReduceByWindow(f func(T, T) T, window, slide time.Duration) *DStream[T] {
	return d.Reduce(f).Window(window, slide).Reduce(f)
}

// ReduceByWindowInv is ReduceByWindow computed incrementally: each window
// is the previous one, with the batches that left it removed by inv (the
// inverse of f) and the batches that entered it added by f. Once the
// stream has held a record, every window yields one, which may be the
// neutral element (Spark's reduceByWindow with an inverse function).
func (d *DStream[T]) ReduceByWindowInv(f, inv func(T, T) T, window, slide time.Duration) *DStream[T] {
	c := d.op.ctx
	ps := d.op.slide
	reduced := d.Reduce(f)
	var out *DStream[T]
	out = newStream(c, "reduceByWindow", []*opNode{reduced.op}, slide,
		[]string{durParam("window", window), durParam("slide", slide), "inverse=true"},
		func(b *batchRun) (*rdd[T], error) {
			olds, news, prev, err := windowInputs(b, reduced, out, window, slide, ps)
			if err != nil {
				return nil, err
			}
			// One key for the whole stream: the keyed algorithm applies.
			var res []T
			slideWindow(0, asKeyed(prev), mapSlice(olds, asKeyed[T]), mapSlice(news, asKeyed[T]), f, inv, nil,
				func(kv Pair[int, T]) { res = append(res, kv.Value) })
			if len(res) == 0 {
				return emptyRDD[T](), nil
			}
			return materialized([][]T{res}), nil
		})
	checkWindow(out.op, d.op, window, slide)
	checkStorable[T](out.op, "record type (kept for the window)")
	reduced.op.rememberAtLeast(window + slide)
	out.op.rememberAtLeast(slide)
	return out
}

// windowInputs returns what an incremental window at b.t is computed
// from: the per-batch reductions that left the window since the previous
// one (olds) and those that entered it (news), oldest first, and the
// previous window's result (empty at the start).
func windowInputs[T any](b *batchRun, reduced, self *DStream[T], window, slide, ps time.Duration) (olds, news []*rdd[T], prev *rdd[T], err error) {
	curBegin, curEnd := b.t.Add(-window+ps), b.t
	prevBegin, prevEnd := curBegin.Add(-slide), curEnd.Add(-slide)
	// With a slide longer than the window, the batches between the two
	// windows are in neither: they must be neither removed nor added.
	// (Spark's ReducedWindowedDStream takes them as both, which adds them
	// to every key missing from the previous window.)
	if olds, err = reduced.slice(b, prevBegin, min(curBegin.Add(-ps), prevEnd)); err != nil {
		return nil, nil, nil, err
	}
	if news, err = reduced.slice(b, max(prevEnd.Add(ps), curBegin), curEnd); err != nil {
		return nil, nil, nil, err
	}
	prev, ok, err := self.get(b, prevEnd)
	if err != nil {
		return nil, nil, nil, err
	}
	if !ok {
		prev = emptyRDD[T]()
	}
	return olds, news, prev, nil
}

func asKeyed[T any](r *rdd[T]) *rdd[Pair[int, T]] {
	return lazyRDD(r.n, func(p int, emit func(Pair[int, T])) {
		r.iterate(p, func(v T) { emit(Pair[int, T]{0, v}) })
	})
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// ReduceByKeyAndWindow merges the values of each key over each window with
// the associative function f, recomputing the whole window every slide.
func ReduceByKeyAndWindow[K comparable, V any](ds *DStream[Pair[K, V]], f func(V, V) V, window, slide time.Duration, opts ...OpOption) *DStream[Pair[K, V]] {
	return ReduceByKey(ReduceByKey(ds, f, opts...).Window(window, slide), f, opts...)
}

// ReduceByKeyAndWindowInv merges the values of each key over each window
// incrementally (Spark's reduceByKeyAndWindow with an inverse function):
// the previous window's value, less the batches that left the window
// (removed with inv), plus those that entered it (added with f). A key
// whose value returns to the neutral element stays in the output unless
// filter (which may be nil) drops it: pass a filter such as "count != 0"
// to get the same keys as ReduceByKeyAndWindow.
func ReduceByKeyAndWindowInv[K comparable, V any](ds *DStream[Pair[K, V]], f, inv func(V, V) V, window, slide time.Duration,
	filter func(K, V) bool, opts ...OpOption) *DStream[Pair[K, V]] {
	c := ds.op.ctx
	ps := ds.op.slide
	n, param := applyOptions(opts).partitionCount(c)
	reduced := ReduceByKey(ds, f, opts...)
	params := []string{durParam("window", window), durParam("slide", slide), param,
		fmt.Sprintf("filter=%v", filter != nil)}
	var out *DStream[Pair[K, V]]
	out = newStream(c, "reduceByKeyAndWindow", []*opNode{reduced.op}, slide, params,
		func(b *batchRun) (*rdd[Pair[K, V]], error) {
			olds, news, prev, err := windowInputs(b, reduced, out, window, slide, ps)
			if err != nil {
				return nil, err
			}
			return lazyRDD(n, func(p int, emit func(Pair[K, V])) {
				slideWindow(p, prev, olds, news, f, inv, filter, emit)
			}), nil
		})
	checkPartitions(out.op, n)
	checkWindow(out.op, ds.op, window, slide)
	checkStorable[Pair[K, V]](out.op, "record type (kept for the window)")
	reduced.op.rememberAtLeast(window + slide)
	out.op.rememberAtLeast(slide)
	return out
}

// windowAcc is what the incremental window knows of one key.
type windowAcc[V any] struct {
	prev, old, new Option[V]
}

// slideWindow computes partition p of an incremental window from the
// previous window's partition p and the per-batch reductions that left
// and entered the window; all of them are partitioned alike, so no
// shuffle is needed. It follows Spark's ReducedWindowedDStream.
func slideWindow[K comparable, V any](p int, prev *rdd[Pair[K, V]], olds, news []*rdd[Pair[K, V]],
	f, inv func(V, V) V, filter func(K, V) bool, emit func(Pair[K, V])) {
	acc := newOrderedMap[K, windowAcc[V]](0)
	fold := func(o *Option[V], v V) {
		if o.Valid {
			o.Value = f(o.Value, v)
		} else {
			*o = Some(v)
		}
	}
	if p < prev.n {
		prev.iterate(p, func(kv Pair[K, V]) { slot, _ := acc.slot(kv.Key); slot.prev = Some(kv.Value) })
	}
	for _, r := range olds {
		if p >= r.n {
			continue
		}
		r.iterate(p, func(kv Pair[K, V]) { slot, _ := acc.slot(kv.Key); fold(&slot.old, kv.Value) })
	}
	for _, r := range news {
		if p >= r.n {
			continue
		}
		r.iterate(p, func(kv Pair[K, V]) { slot, _ := acc.slot(kv.Key); fold(&slot.new, kv.Value) })
	}
	acc.each(func(k K, a windowAcc[V]) {
		var v V
		switch {
		case !a.prev.Valid && !a.new.Valid:
			panic(fmt.Sprintf("engine: key %v has neither a value in the previous window nor new values; "+
				"its hash or the filter is inconsistent", k))
		case !a.prev.Valid:
			v = a.new.Value
		default:
			v = a.prev.Value
			if a.old.Valid {
				v = inv(v, a.old.Value)
			}
			if a.new.Valid {
				v = f(v, a.new.Value)
			}
		}
		if filter == nil || filter(k, v) {
			emit(Pair[K, V]{k, v})
		}
	})
}

// CountByValueAndWindow counts each distinct record over each window,
// incrementally; values whose count returns to zero are dropped (Spark's
// countByValueAndWindow).
func CountByValueAndWindow[T comparable](ds *DStream[T], window, slide time.Duration, opts ...OpOption) *DStream[Pair[T, int64]] {
	ones := MapToPair(ds, func(v T) (T, int64) { return v, 1 })
	return ReduceByKeyAndWindowInv(ones, addInt64, subInt64, window, slide,
		func(_ T, n int64) bool { return n != 0 }, opts...)
}

// GroupByKeyAndWindow gathers the values of each key over each window,
// oldest batch first.
func GroupByKeyAndWindow[K comparable, V any](ds *DStream[Pair[K, V]], window, slide time.Duration, opts ...OpOption) *DStream[Pair[K, []V]] {
	grouped := GroupByKey(ds, opts...).Window(window, slide)
	return CombineByKey(grouped,
		func(vs []V) []V { return append([]V(nil), vs...) },
		func(acc, vs []V) []V { return append(acc, vs...) },
		func(a, b []V) []V { return append(a, b...) }, opts...)
}
