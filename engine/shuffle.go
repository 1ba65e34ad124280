package engine

// shuffleByKey redistributes a pair RDD into n partitions by the key's
// hash and combines the values of each key (Spark's combineByKey over a
// ShuffledRDD). The map side runs one task per input partition; with
// mapSide set, values are combined there before the shuffle, so only one
// record per key and target partition crosses it. The reduce side merges
// map outputs in map-task order, never in arrival order, so that a
// key's values, and the order of keys in the output, are the same on every
// run of the batch.
func shuffleByKey[K comparable, V, C any](b *batchRun, op string, r *rdd[Pair[K, V]], n int,
	create func(V) C, mergeV func(C, V) C, mergeC func(C, C) C, mapSide bool) (*rdd[Pair[K, C]], error) {
	part := newPartitioner[K](n)
	m := r.n
	combined := make([][]*orderedMap[K, C], m) // [map task][target partition]
	raw := make([][][]Pair[K, V], m)
	err := b.exec.run(b.t, op, m, func(i int) {
		if mapSide {
			buckets := make([]*orderedMap[K, C], n)
			for p := range buckets {
				buckets[p] = newOrderedMap[K, C](0)
			}
			r.iterate(i, func(kv Pair[K, V]) {
				slot, ok := buckets[part.of(kv.Key)].slot(kv.Key)
				if ok {
					*slot = mergeV(*slot, kv.Value)
				} else {
					*slot = create(kv.Value)
				}
			})
			combined[i] = buckets
			return
		}
		buckets := make([][]Pair[K, V], n)
		r.iterate(i, func(kv Pair[K, V]) {
			p := part.of(kv.Key)
			buckets[p] = append(buckets[p], kv)
		})
		raw[i] = buckets
	})
	if err != nil {
		return nil, err
	}
	out := make([][]Pair[K, C], n)
	err = b.exec.run(b.t, op, n, func(p int) {
		acc := newOrderedMap[K, C](0)
		for i := 0; i < m; i++ {
			if mapSide {
				combined[i][p].each(func(k K, c C) {
					slot, ok := acc.slot(k)
					if ok {
						*slot = mergeC(*slot, c)
					} else {
						*slot = c
					}
				})
				continue
			}
			for _, kv := range raw[i][p] {
				slot, ok := acc.slot(kv.Key)
				if ok {
					*slot = mergeV(*slot, kv.Value)
				} else {
					*slot = create(kv.Value)
				}
			}
		}
		pairs := make([]Pair[K, C], 0, acc.len())
		acc.each(func(k K, c C) { pairs = append(pairs, Pair[K, C]{k, c}) })
		out[p] = pairs
	})
	if err != nil {
		return nil, err
	}
	traceRecords(b, op, out)
	return materialized(out), nil
}

// groupByKeyRDD groups the values of each key into n partitions, keeping
// the values in input order. Values are grouped on the map side too: that
// does not make them fewer, but each key crosses the shuffle once per map
// task instead of once per value.
func groupByKeyRDD[K comparable, V any](b *batchRun, op string, r *rdd[Pair[K, V]], n int) (*rdd[Pair[K, []V]], error) {
	return shuffleByKey(b, op, r, n,
		func(v V) []V { return []V{v} },
		func(c []V, v V) []V { return append(c, v) },
		func(c, d []V) []V { return append(c, d...) }, true)
}

// unionRDDs concatenates the partitions of several rdds.
func unionRDDs[T any](rs []*rdd[T]) *rdd[T] {
	total := 0
	for _, r := range rs {
		total += r.n
	}
	return lazyRDD(total, func(p int, emit func(T)) {
		for _, r := range rs {
			if p < r.n {
				r.iterate(p, emit)
				return
			}
			p -= r.n
		}
	})
}

// partitionByKey redistributes a pair RDD into n partitions by the key's
// hash without combining, keeping every record: partition p holds the
// records of map task 0, then of map task 1, and so on, each in its
// original order.
func partitionByKey[K comparable, V any](b *batchRun, op string, r *rdd[Pair[K, V]], n int) ([][]Pair[K, V], error) {
	part := newPartitioner[K](n)
	buckets := make([][][]Pair[K, V], r.n)
	err := b.exec.run(b.t, op, r.n, func(i int) {
		out := make([][]Pair[K, V], n)
		r.iterate(i, func(kv Pair[K, V]) {
			p := part.of(kv.Key)
			out[p] = append(out[p], kv)
		})
		buckets[i] = out
	})
	if err != nil {
		return nil, err
	}
	parts := make([][]Pair[K, V], n)
	for p := range parts {
		for i := range buckets {
			parts[p] = append(parts[p], buckets[i][p]...)
		}
	}
	return parts, nil
}
