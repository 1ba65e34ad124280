package engine

import "sync"

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
	combined := make([][][]Pair[K, C], m) // [map task][target partition]
	raw := make([][][]Pair[K, V], m)
	var maps sync.Pool // of *orderedMap[K, C], reused by the map tasks of this shuffle
	err := b.exec.run(b.t, op, m, func(i int) {
		if mapSide {
			acc, _ := maps.Get().(*orderedMap[K, C])
			if acc == nil {
				acc = newOrderedMap[K, C](0)
			}
			r.iterate(i, func(kv Pair[K, V]) {
				slot, ok := acc.slot(kv.Key)
				if ok {
					*slot = mergeV(*slot, kv.Value)
				} else {
					*slot = create(kv.Value)
				}
			})
			combined[i] = splitCombined(acc, part)
			acc.reset()
			maps.Put(acc)
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
	if !mapSide {
		return reduceShuffled(b, op, n, func(p int, acc *orderedMap[K, C]) {
			for i := 0; i < m; i++ {
				for _, kv := range raw[i][p] {
					slot, ok := acc.slot(kv.Key)
					if ok {
						*slot = mergeV(*slot, kv.Value)
					} else {
						*slot = create(kv.Value)
					}
				}
			}
		})
	}
	return reduceCombined(b, op, n, combined, mergeC)
}

// reduceCombined is the reduce side of a shuffle whose map tasks combined
// their values: reduce task p merges the combiners of partition p of
// every map task, in map-task order.
func reduceCombined[K comparable, C any](b *batchRun, op string, n int, combined [][][]Pair[K, C], mergeC func(C, C) C) (*rdd[Pair[K, C]], error) {
	return reduceShuffled(b, op, n, func(p int, acc *orderedMap[K, C]) {
		for i := range combined {
			if p >= len(combined[i]) {
				continue // an empty map task's output
			}
			for _, kc := range combined[i][p] {
				slot, ok := acc.slot(kc.Key)
				if ok {
					*slot = mergeC(*slot, kc.Value)
				} else {
					*slot = kc.Value
				}
			}
		}
	})
}

// reduceShuffled runs the n reduce tasks of a shuffle: merge fills a
// task's map with its partition's combiners, and the output partition
// holds them in the order their keys first came.
func reduceShuffled[K comparable, C any](b *batchRun, op string, n int, merge func(p int, acc *orderedMap[K, C])) (*rdd[Pair[K, C]], error) {
	out := make([][]Pair[K, C], n)
	err := b.exec.run(b.t, op, n, func(p int) {
		acc := newOrderedMap[K, C](0)
		merge(p, acc)
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

// splitCombined splits a map task's combined values by target partition,
// each in the order its keys first appeared. A task combines into one map
// and hashes each distinct key once here, rather than hashing every
// record to pick one of n maps: on a word count, a map lookup per word
// instead of a partition hash and a map lookup per word.
func splitCombined[K comparable, C any](acc *orderedMap[K, C], part partitioner[K]) [][]Pair[K, C] {
	buckets := make([][]Pair[K, C], part.n)
	if part.n == 1 {
		buckets[0] = make([]Pair[K, C], 0, acc.len())
	}
	acc.each(func(k K, c C) {
		p := part.of(k)
		buckets[p] = append(buckets[p], Pair[K, C]{k, c})
	})
	return buckets
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
