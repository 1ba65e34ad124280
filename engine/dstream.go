package engine

import (
	"fmt"
	"time"
)

// DStream is a discretized stream: a sequence of RDDs of T, one per batch
// time at which it is valid (every slide interval). Transformations that
// keep the element type are methods; those that change it are generic
// functions (Map, FlatMap, ReduceByKey, ...), as Go methods cannot take
// type parameters.
type DStream[T any] struct {
	op      *opNode
	compute func(b *batchRun) (*rdd[T], error) // called only at b.t, when valid
	persist bool
	cache   map[Time]*rdd[T] // generated RDDs; only the scheduler's run goroutine uses it
}

func newStream[T any](c *Context, kind string, parents []*opNode, slide time.Duration, params []string,
	compute func(b *batchRun) (*rdd[T], error)) *DStream[T] {
	d := &DStream[T]{compute: compute, cache: make(map[Time]*rdd[T])}
	d.op = c.addOp(kind, parents, slide, params...)
	d.op.hooks = d
	return d
}

// derive makes an operator over one parent with the parent's slide.
func derive[T, U any](parent *DStream[T], kind string, params []string,
	compute func(b *batchRun) (*rdd[U], error)) *DStream[U] {
	return newStream(parent.op.ctx, kind, []*opNode{parent.op}, parent.op.slide, params, compute)
}

// Context returns the context the stream belongs to.
func (d *DStream[T]) Context() *Context { return d.op.ctx }

// ID returns the operator id, its position in build order.
func (d *DStream[T]) ID() int { return d.op.id }

// SlideDuration is the interval at which the stream produces RDDs.
func (d *DStream[T]) SlideDuration() time.Duration { return d.op.slide }

// Named gives the operator a name, shown in logs and the UI and used by
// state queries for stateful operators. It returns d.
func (d *DStream[T]) Named(name string) *DStream[T] {
	d.op.name = name
	return d
}

// Cache keeps each batch's RDD in memory once computed, so that several
// consumers in the same batch do not recompute it (Spark's cache()).
func (d *DStream[T]) Cache() *DStream[T] {
	d.persist = true
	return d
}

// get returns the RDD of d at t: computed now if t is the batch being run,
// otherwise the one remembered from an earlier batch. ok is false where d
// has no RDD at t (t not valid, or before the stream started).
func (d *DStream[T]) get(b *batchRun, t Time) (r *rdd[T], ok bool, err error) {
	if !d.op.validAt(t) {
		return nil, false, nil
	}
	if b.detached { // a map task's one-block batch: keeps nothing
		if t != b.t {
			return nil, false, fmt.Errorf("engine: %s read batch %v from a map task of batch %v", d.op.label(), t, b.t)
		}
		r, err = d.compute(b)
		return r, err == nil, err
	}
	if r, ok := d.cache[t]; ok {
		return r, true, nil
	}
	if t != b.t {
		return d.loadSlice(b, t)
	}
	r, err = d.compute(b)
	if err != nil {
		return nil, false, err
	}
	if d.persist || d.op.remember > 0 {
		if r, err = materialize(b, d.op.label(), r); err != nil {
			return nil, false, err
		}
	}
	if d.op.remember > 0 {
		if err := d.saveSlice(b, r); err != nil {
			return nil, false, err
		}
	}
	d.cache[t] = r
	return r, true, nil
}

// saveSlice stores the RDD of a remembered operator at b.t with the
// batch's state, so that the windows of later batches find it after a
// restart.
func (d *DStream[T]) saveSlice(b *batchRun, r *rdd[T]) error {
	data, err := encodeValue(r.mat)
	if err != nil {
		return fmt.Errorf("engine: operator %s: encoding its records of batch %v for the windows that need them: %w",
			d.op.label(), b.t, err)
	}
	b.state.SetSlice(d.op.id, 0, data)
	return nil
}

// loadSlice reads the RDD of a remembered operator at an earlier batch
// time from the committed state (after a restart, the memory holds none).
func (d *DStream[T]) loadSlice(b *batchRun, t Time) (*rdd[T], bool, error) {
	if d.op.remember == 0 || b.t.Sub(t) > d.op.remember {
		return nil, false, nil
	}
	data, ok, err := b.c.storage.state.Slice(d.op.id, int64(t), 0)
	if err != nil || !ok {
		return nil, false, err
	}
	var parts [][]T
	if err := decodeValue(data, &parts); err != nil {
		return nil, false, fmt.Errorf("engine: operator %s: decoding its stored records of batch %v: %w", d.op.label(), t, err)
	}
	r := materialized(parts)
	d.cache[t] = r
	return r, true, nil
}

// getOrEmpty is get with an empty RDD where d has none.
func (d *DStream[T]) getOrEmpty(b *batchRun) (*rdd[T], error) {
	r, ok, err := d.get(b, b.t)
	if err != nil || ok {
		return r, err
	}
	return emptyRDD[T](), nil
}

// collect computes d at b.t and materialises it.
func (d *DStream[T]) collect(b *batchRun) (*rdd[T], error) {
	r, err := d.getOrEmpty(b)
	if err != nil {
		return nil, err
	}
	return materialize(b, d.op.label(), r)
}

func (d *DStream[T]) persisted() bool { return d.persist }

func (d *DStream[T]) force(b *batchRun) error {
	_, _, err := d.get(b, b.t)
	return err
}

func (d *DStream[T]) forget(before Time) {
	for t := range d.cache {
		if t <= before {
			delete(d.cache, t)
		}
	}
}

// slice returns the RDDs of d at its valid times in [from, to], oldest
// first (Spark's DStream.slice).
func (d *DStream[T]) slice(b *batchRun, from, to Time) ([]*rdd[T], error) {
	var out []*rdd[T]
	slide := d.op.slide
	start := from.floorTo(0, slide)
	if start < from {
		start = start.Add(slide)
	}
	for t := start; t <= to; t = t.Add(slide) {
		r, ok, err := d.get(b, t)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// checkMultiple records a build error unless d is a positive multiple of
// the stream's slide.
func checkMultiple(o *opNode, what string, d, of time.Duration, ofWhat string) bool {
	if !isMultiple(d, of) {
		o.ctx.buildError(o, "%s %v must be a positive multiple of the %s %v", what, d, ofWhat, of)
		return false
	}
	return true
}

func durParam(name string, d time.Duration) string { return fmt.Sprintf("%s=%s", name, d) }
