package engine

// Cogroup groups, for every key in a batch of either stream, the values of
// that key in ds and in other (Spark's cogroup). Keys come in the order
// they first appear in ds, then those only in other.
func Cogroup[K comparable, V, W any](ds *DStream[Pair[K, V]], other *DStream[Pair[K, W]], opts ...OpOption) *DStream[Pair[K, Tuple2[[]V, []W]]] {
	return cogroup(ds, other, "cogroup", opts)
}

func cogroup[K comparable, V, W any](ds *DStream[Pair[K, V]], other *DStream[Pair[K, W]], kind string, opts []OpOption) *DStream[Pair[K, Tuple2[[]V, []W]]] {
	type out = Pair[K, Tuple2[[]V, []W]]
	c := ds.op.ctx
	n, param := applyOptions(opts).partitionCount(c)
	var res *DStream[out]
	res = newStream(c, kind, []*opNode{ds.op, other.op}, ds.op.slide, []string{param}, func(b *batchRun) (*rdd[out], error) {
		left, err := ds.getOrEmpty(b)
		if err != nil {
			return nil, err
		}
		right, err := other.getOrEmpty(b)
		if err != nil {
			return nil, err
		}
		lg, err := groupByKeyRDD(b, res.op.label(), left, n)
		if err != nil {
			return nil, err
		}
		rg, err := groupByKeyRDD(b, res.op.label(), right, n)
		if err != nil {
			return nil, err
		}
		return lazyRDD(n, func(p int, emit func(out)) {
			acc := newOrderedMap[K, Tuple2[[]V, []W]](len(lg.mat[p]))
			for _, kv := range lg.mat[p] {
				slot, _ := acc.slot(kv.Key)
				slot.First = kv.Value
			}
			for _, kw := range rg.mat[p] {
				slot, _ := acc.slot(kw.Key)
				slot.Second = kw.Value
			}
			acc.each(func(k K, t Tuple2[[]V, []W]) { emit(out{k, t}) })
		}), nil
	})
	checkPartitions(res.op, n)
	if other.op.slide != ds.op.slide {
		c.buildError(res.op, "both streams must have the same slide duration: %v and %v", ds.op.slide, other.op.slide)
	}
	return res
}

// joinWith makes a join from a cogroup and a function that emits the joined
// records of one key.
func joinWith[K comparable, V, W, R any](ds *DStream[Pair[K, V]], other *DStream[Pair[K, W]], kind string, opts []OpOption,
	each func(k K, vs []V, ws []W, emit func(Pair[K, R]))) *DStream[Pair[K, R]] {
	cg := cogroup(ds, other, kind, opts)
	return pipe(cg, kind+".flatten", nil, func(_ int, in func(func(Pair[K, Tuple2[[]V, []W]])), emit func(Pair[K, R])) {
		in(func(g Pair[K, Tuple2[[]V, []W]]) { each(g.Key, g.Value.First, g.Value.Second, emit) })
	})
}

// Join returns, for every key in both streams' batch, every pair of a
// value from ds and one from other (an inner join).
func Join[K comparable, V, W any](ds *DStream[Pair[K, V]], other *DStream[Pair[K, W]], opts ...OpOption) *DStream[Pair[K, Tuple2[V, W]]] {
	return joinWith(ds, other, "join", opts, func(k K, vs []V, ws []W, emit func(Pair[K, Tuple2[V, W]])) {
		for _, v := range vs {
			for _, w := range ws {
				emit(Pair[K, Tuple2[V, W]]{k, Tuple2[V, W]{v, w}})
			}
		}
	})
}

// LeftOuterJoin is Join that also keeps the values of ds whose key is not
// in other, paired with None.
func LeftOuterJoin[K comparable, V, W any](ds *DStream[Pair[K, V]], other *DStream[Pair[K, W]], opts ...OpOption) *DStream[Pair[K, Tuple2[V, Option[W]]]] {
	type r = Tuple2[V, Option[W]]
	return joinWith(ds, other, "leftOuterJoin", opts, func(k K, vs []V, ws []W, emit func(Pair[K, r])) {
		for _, v := range vs {
			if len(ws) == 0 {
				emit(Pair[K, r]{k, r{v, None[W]()}})
			}
			for _, w := range ws {
				emit(Pair[K, r]{k, r{v, Some(w)}})
			}
		}
	})
}

// RightOuterJoin is Join that also keeps the values of other whose key is
// not in ds, paired with None.
func RightOuterJoin[K comparable, V, W any](ds *DStream[Pair[K, V]], other *DStream[Pair[K, W]], opts ...OpOption) *DStream[Pair[K, Tuple2[Option[V], W]]] {
	type r = Tuple2[Option[V], W]
	return joinWith(ds, other, "rightOuterJoin", opts, func(k K, vs []V, ws []W, emit func(Pair[K, r])) {
		for _, w := range ws {
			if len(vs) == 0 {
				emit(Pair[K, r]{k, r{None[V](), w}})
			}
			for _, v := range vs {
				emit(Pair[K, r]{k, r{Some(v), w}})
			}
		}
	})
}

// FullOuterJoin is Join that also keeps the values of either stream whose
// key is missing from the other, paired with None.
func FullOuterJoin[K comparable, V, W any](ds *DStream[Pair[K, V]], other *DStream[Pair[K, W]], opts ...OpOption) *DStream[Pair[K, Tuple2[Option[V], Option[W]]]] {
	type r = Tuple2[Option[V], Option[W]]
	return joinWith(ds, other, "fullOuterJoin", opts, func(k K, vs []V, ws []W, emit func(Pair[K, r])) {
		switch {
		case len(vs) == 0:
			for _, w := range ws {
				emit(Pair[K, r]{k, r{None[V](), Some(w)}})
			}
		case len(ws) == 0:
			for _, v := range vs {
				emit(Pair[K, r]{k, r{Some(v), None[W]()}})
			}
		default:
			for _, v := range vs {
				for _, w := range ws {
					emit(Pair[K, r]{k, r{Some(v), Some(w)}})
				}
			}
		}
	})
}
