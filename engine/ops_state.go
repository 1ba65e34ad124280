package engine

import "time"

// stateStores is the keyed state of a stateful operator: one store per
// partition, loaded with the initial state at the operator's first batch.
type stateStores[K comparable, S any] struct {
	parts       []*memStore[K, S]
	initial     []Pair[K, S]
	initialized bool // the initial state is committed
	loading     bool // the running batch loaded the initial state
	part        partitioner[K]
}

func newStateStores[K comparable, S any](n int, initial []Pair[K, S]) *stateStores[K, S] {
	st := &stateStores[K, S]{parts: make([]*memStore[K, S], n), initial: initial, part: newPartitioner[K](n)}
	for i := range st.parts {
		st.parts[i] = newMemStore[K, S]()
	}
	return st
}

// begin loads the initial state as writes of batch t, the first batch.
func (st *stateStores[K, S]) begin(t Time) {
	if st.initialized {
		return
	}
	st.loading = true
	for _, kv := range st.initial {
		st.parts[st.part.of(kv.Key)].put(kv.Key, kv.Value, t)
	}
}

// commit runs after every batch, including those at which the operator
// is not valid (after a window): only a batch that loaded the initial
// state marks it loaded.
func (st *stateStores[K, S]) commit(Time) {
	st.initialized = st.initialized || st.loading
	st.loading = false
	for _, p := range st.parts {
		p.commit()
	}
}

func (st *stateStores[K, S]) abort() {
	st.loading = false
	for _, p := range st.parts {
		p.abort()
	}
}

// statefulStream is a DStream whose operator keeps state between batches.
type statefulStream[T any, K comparable, S any] struct {
	*DStream[T]
	stores *stateStores[K, S]
}

func (s *statefulStream[T, K, S]) commit(t Time) { s.stores.commit(t) }
func (s *statefulStream[T, K, S]) abort()        { s.stores.abort() }

// UpdateStateByKey keeps a state per key and updates it every batch
// (Spark's updateStateByKey): f is called for every key that has state or
// values in the batch, with the key's values in input order (none for a
// key without new values) and its state (exists false for a new key). It
// returns the new state, or keep false to remove the key. The stream
// holds every key's state after each batch. WithInitialState sets the
// state keys start with.
func UpdateStateByKey[K comparable, V, S any](ds *DStream[Pair[K, V]],
	f func(values []V, state S, exists bool) (newState S, keep bool), opts ...OpOption) *DStream[Pair[K, S]] {
	o := applyOptions(opts)
	c := ds.op.ctx
	n, param := o.partitionCount(c)
	initial, ok := o.initial.([]Pair[K, S])
	s := &statefulStream[Pair[K, S], K, S]{stores: newStateStores(max(n, 1), initial)}
	s.DStream = derive(ds, "updateStateByKey", []string{param}, func(b *batchRun) (*rdd[Pair[K, S]], error) {
		r, err := ds.getOrEmpty(b)
		if err != nil {
			return nil, err
		}
		grouped, err := groupByKeyRDD(b, s.op.label(), r, n)
		if err != nil {
			return nil, err
		}
		s.stores.begin(b.t)
		out := make([][]Pair[K, S], n)
		err = b.exec.run(b.t, s.op.label(), n, func(p int) {
			out[p] = updatePartition(b.t, s.stores.parts[p], grouped.mat[p], f)
		})
		return materialized(out), err
	})
	s.op.stateful = true
	s.op.hooks = s
	checkPartitions(s.op, n)
	if o.initial != nil && !ok {
		c.buildError(s.op, "initial state is %T, want %T", o.initial, initial)
	}
	return s.DStream
}

// updatePartition applies f to every key of one partition: first the keys
// with state, in state order, then the keys new in this batch, in input
// order.
func updatePartition[K comparable, V, S any](t Time, st *memStore[K, S], batch []Pair[K, []V],
	f func([]V, S, bool) (S, bool)) []Pair[K, S] {
	vals := make(map[K]int, len(batch))
	for i, kv := range batch {
		vals[kv.Key] = i
	}
	var out []Pair[K, S]
	apply := func(k K, vs []V, old S, exists bool) {
		ns, keep := f(vs, old, exists)
		if keep {
			st.put(k, ns, t)
			out = append(out, Pair[K, S]{k, ns})
		} else if exists {
			st.del(k)
		}
	}
	type existing struct {
		k K
		e stateEntry[S]
	}
	var olds []existing
	st.each(func(k K, e stateEntry[S]) { olds = append(olds, existing{k, e}) })
	for _, x := range olds {
		var vs []V
		if i, ok := vals[x.k]; ok {
			vs = batch[i].Value
			delete(vals, x.k)
		}
		apply(x.k, vs, x.e.val, true)
	}
	for _, kv := range batch {
		if _, ok := vals[kv.Key]; ok {
			var zero S
			apply(kv.Key, kv.Value, zero, false)
		}
	}
	return out
}

// State is the state of one key as MapWithState's function sees it
// (Spark's State): read it, update it, or remove it.
type State[S any] struct {
	value                    S
	exists, updated, removed bool
	timingOut                bool
}

// Exists reports whether the key has state.
func (s *State[S]) Exists() bool { return s.exists }

// Get returns the state; it panics if there is none (check Exists).
func (s *State[S]) Get() S {
	if !s.exists {
		panic("engine: State.Get on a key without state (check Exists first)")
	}
	return s.value
}

// Option returns the state as an Option.
func (s *State[S]) Option() Option[S] {
	if !s.exists {
		return None[S]()
	}
	return Some(s.value)
}

// Update sets the key's state. It panics when the state is timing out or
// has been removed in this call.
func (s *State[S]) Update(v S) {
	switch {
	case s.timingOut:
		panic("engine: cannot update the state of a key that is timing out")
	case s.removed:
		panic("engine: cannot update the state after it has been removed")
	}
	s.value, s.exists, s.updated = v, true, true
}

// Remove removes the key's state. It panics when the state is timing out
// (it is removed anyway) or has already been removed.
func (s *State[S]) Remove() {
	switch {
	case s.timingOut:
		panic("engine: cannot remove the state of a key that is timing out; it is removed after the call")
	case s.removed:
		panic("engine: cannot remove the state that has already been removed")
	}
	var zero S
	s.value, s.exists, s.removed, s.updated = zero, false, true, false
}

// IsTimingOut reports whether the call is the key's timeout call: the key
// received no record for the spec's timeout and its state is about to be
// removed.
func (s *State[S]) IsTimingOut() bool { return s.timingOut }

// StateSpec configures MapWithState (Spark's StateSpec).
type StateSpec[K comparable, V, S, M any] struct {
	// Function is called for every record of a batch, in input order, with
	// value set, and for every key that timed out, with value None and
	// state.IsTimingOut() true. It returns a record to emit when emit is
	// true.
	Function func(t Time, key K, value Option[V], state *State[S]) (out M, emit bool)
	// InitialState is the state keys have before the first batch.
	InitialState []Pair[K, S]
	// Timeout removes a key that received no record for this long,
	// measured in batch time (0: never). It must be a multiple of the
	// batch duration. A key updated at batch u times out at the first
	// batch t with u < t - Timeout.
	Timeout time.Duration
	// Partitions sets the partition count (0: the context's default).
	Partitions int
}

// MapWithStateStream is the stream of records that MapWithState's
// function emitted, with access to the state itself.
type MapWithStateStream[K comparable, S, M any] struct {
	*DStream[M]
	stores *stateStores[K, S]
	n      int
}

// StateSnapshots returns a stream of every key's state after each batch.
func (m *MapWithStateStream[K, S, M]) StateSnapshots() *DStream[Pair[K, S]] {
	return derive(m.DStream, "stateSnapshots", nil, func(b *batchRun) (*rdd[Pair[K, S]], error) {
		if _, err := m.getOrEmpty(b); err != nil { // the state step of b.t runs first
			return nil, err
		}
		return lazyRDD(m.n, func(p int, emit func(Pair[K, S])) {
			m.stores.parts[p].each(func(k K, e stateEntry[S]) { emit(Pair[K, S]{k, e.val}) })
		}), nil
	})
}

// MapWithState keeps a state per key and calls spec.Function for every
// record with the record's key state (Spark's mapWithState), emitting
// what the function returns. Unlike UpdateStateByKey, only keys with
// records (or timing out) are touched in a batch.
func MapWithState[K comparable, V, S, M any](ds *DStream[Pair[K, V]], spec StateSpec[K, V, S, M]) *MapWithStateStream[K, S, M] {
	c := ds.op.ctx
	opts := []OpOption{}
	if spec.Partitions != 0 {
		opts = append(opts, WithPartitions(spec.Partitions))
	}
	n, param := applyOptions(opts).partitionCount(c)
	stores := newStateStores(max(n, 1), spec.InitialState)
	s := &statefulStream[M, K, S]{stores: stores}
	s.DStream = derive(ds, "mapWithState", []string{param, durParam("timeout", spec.Timeout)}, func(b *batchRun) (*rdd[M], error) {
		r, err := ds.getOrEmpty(b)
		if err != nil {
			return nil, err
		}
		parts, err := partitionByKey(b, s.op.label(), r, n)
		if err != nil {
			return nil, err
		}
		stores.begin(b.t)
		out := make([][]M, n)
		err = b.exec.run(b.t, s.op.label(), n, func(p int) {
			out[p] = mapPartitionWithState(b.t, stores.parts[p], parts[p], spec)
		})
		return materialized(out), err
	})
	s.op.stateful = true
	s.op.hooks = s
	checkPartitions(s.op, n)
	if spec.Function == nil {
		c.buildError(s.op, "StateSpec.Function is nil")
	}
	if spec.Timeout != 0 {
		checkMultiple(s.op, "timeout", spec.Timeout, c.cfg.BatchDuration, "batch duration")
	}
	return &MapWithStateStream[K, S, M]{DStream: s.DStream, stores: stores, n: n}
}

// mapPartitionWithState runs one partition of a MapWithState batch: every
// record in order, then the timeouts, in state order.
func mapPartitionWithState[K comparable, V, S, M any](t Time, st *memStore[K, S], records []Pair[K, V],
	spec StateSpec[K, V, S, M]) []M {
	var out []M
	timeouts := spec.Timeout > 0
	for _, kv := range records {
		e, exists := st.get(kv.Key)
		state := State[S]{value: e.val, exists: exists}
		m, emit := spec.Function(t, kv.Key, Some(kv.Value), &state)
		switch {
		case state.removed:
			st.del(kv.Key)
		case state.updated || (state.exists && timeouts):
			// With timeouts, a record refreshes the key's idle time even
			// when the function leaves the state as it was.
			st.put(kv.Key, state.value, t)
		}
		if emit {
			out = append(out, m)
		}
	}
	if !timeouts {
		return out
	}
	threshold := t.Add(-spec.Timeout)
	var idle []Pair[K, S]
	st.each(func(k K, e stateEntry[S]) {
		if e.updated < threshold {
			idle = append(idle, Pair[K, S]{k, e.val})
		}
	})
	for _, kv := range idle {
		state := State[S]{value: kv.Value, exists: true, timingOut: true}
		m, emit := spec.Function(t, kv.Key, None[V](), &state)
		st.del(kv.Key)
		if emit {
			out = append(out, m)
		}
	}
	return out
}
