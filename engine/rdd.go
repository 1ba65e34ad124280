package engine

// RDD is one batch's data of a DStream, split into partitions: what
// ForeachRDD and Transform hand to user code. An RDD given to user code is
// materialised and must be treated as read-only.
type RDD[T any] struct {
	time  Time
	parts [][]T
}

// NewRDD makes an RDD from partitions, for Transform functions that build
// their own. The slices are not copied.
func NewRDD[T any](t Time, parts ...[]T) RDD[T] {
	return RDD[T]{time: t, parts: parts}
}

// Time is the batch time the RDD belongs to.
func (r RDD[T]) Time() Time { return r.time }

// NumPartitions returns the number of partitions.
func (r RDD[T]) NumPartitions() int { return len(r.parts) }

// Partition returns partition i's records.
func (r RDD[T]) Partition(i int) []T { return r.parts[i] }

// Count returns the number of records in all partitions.
func (r RDD[T]) Count() int64 {
	var n int64
	for _, p := range r.parts {
		n += int64(len(p))
	}
	return n
}

// Collect returns every record, partition by partition, in order.
func (r RDD[T]) Collect() []T {
	out := make([]T, 0, r.Count())
	for _, p := range r.parts {
		out = append(out, p...)
	}
	return out
}

// IsEmpty reports whether the RDD holds no records.
func (r RDD[T]) IsEmpty() bool { return r.Count() == 0 }

// rdd is the engine's internal form of one batch of a DStream: partitions
// that are either materialised or computed on demand by a pipeline of
// narrow operators (each partition is one task; see exec.go). Only the
// driver goroutine builds rdds; tasks only run their each functions.
type rdd[T any] struct {
	n    int
	mat  [][]T                     // set when materialised
	each func(p int, emit func(T)) // set when lazy
}

func materialized[T any](parts [][]T) *rdd[T] {
	return &rdd[T]{n: len(parts), mat: parts}
}

func lazyRDD[T any](n int, each func(p int, emit func(T))) *rdd[T] {
	return &rdd[T]{n: n, each: each}
}

func emptyRDD[T any]() *rdd[T] { return materialized[T](nil) }

// iterate pushes partition p's records to emit.
func (r *rdd[T]) iterate(p int, emit func(T)) {
	if r.mat != nil {
		for _, v := range r.mat[p] {
			emit(v)
		}
		return
	}
	if r.each != nil {
		r.each(p, emit)
	}
}

func (r *rdd[T]) public(t Time) RDD[T] { return RDD[T]{time: t, parts: r.mat} }
