package engine

// Transform applies f to each batch's RDD (Spark's transform): arbitrary
// per-batch logic over the whole RDD, run on the driver. f must be
// deterministic: a re-run of the batch must return the same RDD.
func Transform[T, U any](ds *DStream[T], f func(t Time, rdd RDD[T]) (RDD[U], error)) *DStream[U] {
	var out *DStream[U]
	out = derive(ds, "transform", nil, func(b *batchRun) (*rdd[U], error) {
		r, err := ds.collect(b)
		if err != nil {
			return nil, err
		}
		var res RDD[U]
		err = guard(b.t, out.op.label(), -1, func() (ferr error) {
			res, ferr = f(b.t, r.public(b.t))
			return ferr
		})
		if err != nil {
			return nil, err
		}
		return materialized(res.parts), nil
	})
	return out
}

// TransformWith applies f to each batch's RDDs of ds and other (Spark's
// transformWith); both streams must have the same slide duration.
func TransformWith[T, U, V any](ds *DStream[T], other *DStream[U], f func(t Time, a RDD[T], b RDD[U]) (RDD[V], error)) *DStream[V] {
	c := ds.op.ctx
	var out *DStream[V]
	out = newStream(c, "transformWith", []*opNode{ds.op, other.op}, ds.op.slide, nil, func(b *batchRun) (*rdd[V], error) {
		left, err := ds.collect(b)
		if err != nil {
			return nil, err
		}
		right, err := other.collect(b)
		if err != nil {
			return nil, err
		}
		var res RDD[V]
		err = guard(b.t, out.op.label(), -1, func() (ferr error) {
			res, ferr = f(b.t, left.public(b.t), right.public(b.t))
			return ferr
		})
		if err != nil {
			return nil, err
		}
		return materialized(res.parts), nil
	})
	if other.op.slide != ds.op.slide {
		c.buildError(out.op, "both streams must have the same slide duration: %v and %v", ds.op.slide, other.op.slide)
	}
	return out
}
