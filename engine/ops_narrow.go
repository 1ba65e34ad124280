package engine

import (
	"fmt"
)

// pipe makes a narrow operator: each output partition is computed from the
// same partition of the parent, in the same task, with no intermediate
// slice (narrow operators are pipelined).
func pipe[T, U any](parent *DStream[T], kind string, params []string,
	step func(p int, in func(emit func(T)), emit func(U))) *DStream[U] {
	return derive(parent, kind, params, func(b *batchRun) (*rdd[U], error) {
		r, err := parent.getOrEmpty(b)
		if err != nil {
			return nil, err
		}
		return lazyRDD(r.n, func(p int, emit func(U)) {
			step(p, func(e func(T)) { r.iterate(p, e) }, emit)
		}), nil
	})
}

// Map returns a stream of f applied to every record.
func Map[T, U any](ds *DStream[T], f func(T) U) *DStream[U] {
	return pipe(ds, "map", nil, func(_ int, in func(func(T)), emit func(U)) {
		in(func(v T) { emit(f(v)) })
	})
}

// FlatMap returns a stream of every record of f applied to every record.
func FlatMap[T, U any](ds *DStream[T], f func(T) []U) *DStream[U] {
	return pipe(ds, "flatMap", nil, func(_ int, in func(func(T)), emit func(U)) {
		in(func(v T) {
			for _, u := range f(v) {
				emit(u)
			}
		})
	})
}

// FlatMapEmit is FlatMap for functions that push their results instead of
// returning a slice, which saves an allocation per record on hot paths
// (splitting lines into words).
func FlatMapEmit[T, U any](ds *DStream[T], f func(v T, emit func(U))) *DStream[U] {
	return pipe(ds, "flatMap", nil, func(_ int, in func(func(T)), emit func(U)) {
		in(func(v T) { f(v, emit) })
	})
}

// MapToPair maps every record to a key-value pair.
func MapToPair[T any, K comparable, V any](ds *DStream[T], f func(T) (K, V)) *DStream[Pair[K, V]] {
	return pipe(ds, "mapToPair", nil, func(_ int, in func(func(T)), emit func(Pair[K, V])) {
		in(func(v T) {
			k, val := f(v)
			emit(Pair[K, V]{k, val})
		})
	})
}

// MapValues maps the value of every pair, keeping its key.
func MapValues[K comparable, V, W any](ds *DStream[Pair[K, V]], f func(V) W) *DStream[Pair[K, W]] {
	return pipe(ds, "mapValues", nil, func(_ int, in func(func(Pair[K, V])), emit func(Pair[K, W])) {
		in(func(p Pair[K, V]) { emit(Pair[K, W]{p.Key, f(p.Value)}) })
	})
}

// FlatMapValues maps the value of every pair to any number of values, each
// paired with the original key.
func FlatMapValues[K comparable, V, W any](ds *DStream[Pair[K, V]], f func(V) []W) *DStream[Pair[K, W]] {
	return pipe(ds, "flatMapValues", nil, func(_ int, in func(func(Pair[K, V])), emit func(Pair[K, W])) {
		in(func(p Pair[K, V]) {
			for _, w := range f(p.Value) {
				emit(Pair[K, W]{p.Key, w})
			}
		})
	})
}

// MapPartitions applies f to each partition's records as a whole.
func MapPartitions[T, U any](ds *DStream[T], f func(records []T) []U) *DStream[U] {
	return pipe(ds, "mapPartitions", nil, func(_ int, in func(func(T)), emit func(U)) {
		var recs []T
		in(func(v T) { recs = append(recs, v) })
		for _, u := range f(recs) {
			emit(u)
		}
	})
}

// Glom turns each partition into one record holding the partition's
// records.
func Glom[T any](ds *DStream[T]) *DStream[[]T] {
	return pipe(ds, "glom", nil, func(_ int, in func(func(T)), emit func([]T)) {
		var recs []T
		in(func(v T) { recs = append(recs, v) })
		emit(recs)
	})
}

// Filter returns the records for which keep is true.
func (d *DStream[T]) Filter(keep func(T) bool) *DStream[T] {
	return pipe(d, "filter", nil, func(_ int, in func(func(T)), emit func(T)) {
		in(func(v T) {
			if keep(v) {
				emit(v)
			}
		})
	})
}

// Repartition spreads each batch's records over n partitions, round robin
// in record order, to change the parallelism of what follows.
func (d *DStream[T]) Repartition(n int) *DStream[T] {
	out := derive(d, "repartition", []string{fmt.Sprintf("partitions=%d", n)}, func(b *batchRun) (*rdd[T], error) {
		r, err := d.collect(b)
		if err != nil {
			return nil, err
		}
		parts := make([][]T, n)
		i := 0
		for p := 0; p < r.n; p++ {
			for _, v := range r.mat[p] {
				parts[i%n] = append(parts[i%n], v)
				i++
			}
		}
		return materialized(parts), nil
	})
	if n < 1 {
		out.op.ctx.buildError(out.op, "partition count %d must be at least 1", n)
	}
	return out
}

// Union returns the records of d and of every other stream, all of which
// must have the same slide duration.
func (d *DStream[T]) Union(others ...*DStream[T]) *DStream[T] {
	parents := []*opNode{d.op}
	all := append([]*DStream[T]{d}, others...)
	for _, o := range others {
		parents = append(parents, o.op)
	}
	out := newStream(d.op.ctx, "union", parents, d.op.slide, nil, func(b *batchRun) (*rdd[T], error) {
		var rs []*rdd[T]
		for _, s := range all {
			r, err := s.getOrEmpty(b)
			if err != nil {
				return nil, err
			}
			rs = append(rs, r)
		}
		return unionRDDs(rs), nil
	})
	for _, o := range others {
		if o.op.slide != d.op.slide {
			d.op.ctx.buildError(out.op, "all streams of a union must have the same slide duration: %v and %v", d.op.slide, o.op.slide)
		}
	}
	return out
}
