package engine

// keyed makes a key-partitioned operator over one pair stream: the
// parent's batch is shuffled into the operator's partitions and combined.
func keyed[K comparable, V, C any](ds *DStream[Pair[K, V]], kind string, opts []OpOption,
	create func(V) C, mergeV func(C, V) C, mergeC func(C, C) C, mapSide bool) *DStream[Pair[K, C]] {
	n, param := applyOptions(opts).partitionCount(ds.op.ctx)
	var m *blockMapper[K, V, C]
	out := derive(ds, kind, []string{param}, func(b *batchRun) (*rdd[Pair[K, C]], error) {
		return m.shuffle(b, mapSide)
	})
	m = newBlockMapper(out.op, ds, max(n, 1), create, mergeV, mergeC)
	checkPartitions(out.op, n)
	return out
}

// CombineByKey combines the values of each key in a batch with the three
// functions of Spark's combineByKey: create turns a key's first value into
// a combiner, mergeValue adds a value, and mergeCombiners merges the
// combiners built on different map tasks. Values are combined before the
// shuffle.
func CombineByKey[K comparable, V, C any](ds *DStream[Pair[K, V]], create func(V) C,
	mergeValue func(C, V) C, mergeCombiners func(C, C) C, opts ...OpOption) *DStream[Pair[K, C]] {
	return keyed(ds, "combineByKey", opts, create, mergeValue, mergeCombiners, true)
}

// ReduceByKey merges the values of each key in a batch with the
// associative function f.
func ReduceByKey[K comparable, V any](ds *DStream[Pair[K, V]], f func(V, V) V, opts ...OpOption) *DStream[Pair[K, V]] {
	return keyed(ds, "reduceByKey", opts, func(v V) V { return v }, f, f, true)
}

// GroupByKey gathers the values of each key in a batch, in input order.
func GroupByKey[K comparable, V any](ds *DStream[Pair[K, V]], opts ...OpOption) *DStream[Pair[K, []V]] {
	return keyed(ds, "groupByKey", opts,
		func(v V) []V { return []V{v} },
		func(c []V, v V) []V { return append(c, v) },
		func(c, d []V) []V { return append(c, d...) }, false)
}

// CountByValue counts the occurrences of each distinct record in a batch.
func CountByValue[T comparable](ds *DStream[T], opts ...OpOption) *DStream[Pair[T, int64]] {
	ones := MapToPair(ds, func(v T) (T, int64) { return v, 1 })
	return ReduceByKey(ones, addInt64, opts...)
}

func addInt64(a, b int64) int64 { return a + b }
func subInt64(a, b int64) int64 { return a - b }

// Count returns a stream with one record per batch: the number of records
// in the batch (0 for an empty batch, as in Spark).
func (d *DStream[T]) Count() *DStream[int64] {
	var out *DStream[int64]
	out = derive(d, "count", nil, func(b *batchRun) (*rdd[int64], error) {
		r, err := d.getOrEmpty(b)
		if err != nil {
			return nil, err
		}
		counts := make([]int64, r.n)
		err = b.exec.run(b.t, out.op.label(), r.n, func(p int) {
			r.iterate(p, func(T) { counts[p]++ })
		})
		var total int64
		for _, n := range counts {
			total += n
		}
		return materialized([][]int64{{total}}), err
	})
	return out
}

// Reduce returns a stream with one record per non-empty batch: its records
// merged with the associative function f, partition by partition in order.
// An empty batch yields no record, as in Spark.
func (d *DStream[T]) Reduce(f func(T, T) T) *DStream[T] {
	var out *DStream[T]
	out = derive(d, "reduce", nil, func(b *batchRun) (*rdd[T], error) {
		r, err := d.getOrEmpty(b)
		if err != nil {
			return nil, err
		}
		return reduceRDD(b, out.op.label(), r, f)
	})
	return out
}

// reduceRDD reduces each partition in a task, then the partial results in
// partition order.
func reduceRDD[T any](b *batchRun, op string, r *rdd[T], f func(T, T) T) (*rdd[T], error) {
	partial := make([]Option[T], r.n)
	err := b.exec.run(b.t, op, r.n, func(p int) {
		r.iterate(p, func(v T) {
			if partial[p].Valid {
				partial[p].Value = f(partial[p].Value, v)
			} else {
				partial[p] = Some(v)
			}
		})
	})
	if err != nil {
		return nil, err
	}
	var acc Option[T]
	err = guard(b.t, op, -1, func() error {
		for _, pv := range partial {
			if !pv.Valid {
				continue
			}
			if acc.Valid {
				acc.Value = f(acc.Value, pv.Value)
			} else {
				acc = pv
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !acc.Valid {
		return emptyRDD[T](), nil
	}
	return materialized([][]T{{acc.Value}}), nil
}
