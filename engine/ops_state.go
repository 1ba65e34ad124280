package engine

import (
	"fmt"
	"time"

	"github.com/sluice-stream/sluice/state"
)

// statefulStream is a DStream whose operator keeps state between batches.
type statefulStream[T any, K comparable, S any] struct {
	*DStream[T]
	stores *stateStores[K, S]
}

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
	var m *blockMapper[K, V, []V]
	travels := travelsUnchanged[Pair[K, []V]]()
	s.DStream = derive(ds, "updateStateByKey", []string{param}, func(b *batchRun) (*rdd[Pair[K, S]], error) {
		grouped, err := m.shuffle(b, true)
		if err != nil {
			return nil, err
		}
		// An operator's first batch loads the initial state, on the
		// driver; from the next one on, a partition's state step runs
		// on its primary (state_task.go).
		loaded, err := s.stores.loaded(b)
		if err != nil {
			return nil, err
		}
		parts, err := s.stores.parts(b)
		if err != nil {
			return nil, err
		}
		// A replayed batch rebuilds a new driver's state: the other
		// nodes' replicas are past it.
		remote := loaded && travels && b.c.node != nil && !b.detached && !b.replay
		err = runStateTasks(b, s.op, n, remote,
			func(p int) ([]byte, error) { return encodeValue(grouped.mat[p]) },
			func(sp *state.Part, p int) error {
				return updatePartition(&statePart[K, S]{st: s.stores, p: sp, t: b.t}, grouped.mat[p], f)
			})
		if err != nil {
			return nil, err
		}
		// The stream holds every key's state: read back from the store
		// with the batch's writes applied, not kept in memory, so that
		// memory stays bounded by the keys the batch changed.
		return stateRDD(parts), nil
	})
	s.op.stateTask = func(t Time, sp *state.Part, p int, input []byte) error {
		if !travels {
			return fmt.Errorf("the values of %s do not travel between nodes unchanged", s.op.label())
		}
		var in []Pair[K, []V]
		if err := decodeValue(input, &in); err != nil {
			return fmt.Errorf("the reduce input of partition %d does not decode: %w", p, err)
		}
		return updatePartition(&statePart[K, S]{st: s.stores, p: sp, t: t}, in, f)
	}
	m = newBlockMapper(s.op, ds, max(n, 1),
		func(v V) []V { return []V{v} },
		func(c []V, v V) []V { return append(c, v) },
		func(c, d []V) []V { return append(c, d...) })
	s.stores.op = s.op
	checkStorable[K](s.op, "key type")
	checkStorable[S](s.op, "state type")
	s.op.stateful = true
	s.op.state = s.stores
	checkPartitions(s.op, n)
	if o.initial != nil && !ok {
		c.buildError(s.op, "initial state is %T, want %T", o.initial, initial)
	}
	return s.DStream
}

// updatePartition applies f to every key of one partition: first the keys
// with state, in the store's order, then the keys new in this batch, in
// input order. A key whose state f leaves as it was is not written, so
// the batch's delta holds only the keys it changed.
func updatePartition[K comparable, V, S any](st *statePart[K, S], batch []Pair[K, []V],
	f func([]V, S, bool) (S, bool)) error {
	vals := make(map[K]int, len(batch))
	for i, kv := range batch {
		vals[kv.Key] = i
	}
	err := st.each(func(k K, e stateEntry[S], raw []byte) error {
		var vs []V
		if i, ok := vals[k]; ok {
			vs = batch[i].Value
			delete(vals, k)
		}
		ns, keep := f(vs, e.val, true)
		if !keep {
			return st.del(k, true)
		}
		return st.putIfChanged(k, ns, e.updated, raw)
	})
	if err != nil {
		return err
	}
	for _, kv := range batch {
		if _, ok := vals[kv.Key]; !ok {
			continue
		}
		var zero S
		if ns, keep := f(kv.Value, zero, false); keep {
			if err := st.put(kv.Key, ns, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// stateRDD is every key's state as the batch sees it, partition by
// partition, read from the store when iterated (in the store's order,
// then the keys the batch added, in the order it added them).
func stateRDD[K comparable, S any](parts []*statePart[K, S]) *rdd[Pair[K, S]] {
	return lazyRDD(len(parts), func(p int, emit func(Pair[K, S])) {
		err := parts[p].each(func(k K, e stateEntry[S], _ []byte) error {
			emit(Pair[K, S]{k, e.val})
			return nil
		})
		if err != nil {
			panic(err) // the task's guard turns it into the batch's error
		}
	})
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
	cur    []*statePart[K, S] // the parts of the batch running; only its tasks use them
}

// StateSnapshots returns a stream of every key's state after each batch.
func (m *MapWithStateStream[K, S, M]) StateSnapshots() *DStream[Pair[K, S]] {
	return derive(m.DStream, "stateSnapshots", nil, func(b *batchRun) (*rdd[Pair[K, S]], error) {
		if _, err := m.getOrEmpty(b); err != nil { // the state step of b.t runs first
			return nil, err
		}
		return stateRDD(m.cur), nil
	})
}

// MapWithState keeps a state per key and calls spec.Function for every
// record with the record's key state (Spark's mapWithState), emitting
// what the function returns. Unlike UpdateStateByKey, only keys with
// records (or timing out) are touched in a batch.
//
// In a cluster its state step stays on the driver, unlike
// UpdateStateByKey's (state_task.go): its records and what the function
// emits would have to travel too.
func MapWithState[K comparable, V, S, M any](ds *DStream[Pair[K, V]], spec StateSpec[K, V, S, M]) *MapWithStateStream[K, S, M] {
	c := ds.op.ctx
	opts := []OpOption{}
	if spec.Partitions != 0 {
		opts = append(opts, WithPartitions(spec.Partitions))
	}
	n, param := applyOptions(opts).partitionCount(c)
	stores := newStateStores(max(n, 1), spec.InitialState)
	s := &statefulStream[M, K, S]{stores: stores}
	ms := &MapWithStateStream[K, S, M]{stores: stores, n: n}
	s.DStream = derive(ds, "mapWithState", []string{param, durParam("timeout", spec.Timeout)}, func(b *batchRun) (*rdd[M], error) {
		r, err := ds.getOrEmpty(b)
		if err != nil {
			return nil, err
		}
		parts, err := partitionByKey(b, s.op.label(), r, n)
		if err != nil {
			return nil, err
		}
		sparts, err := stores.parts(b)
		if err != nil {
			return nil, err
		}
		ms.cur = sparts
		out := make([][]M, n)
		err = b.exec.runE(b.t, s.op.label(), n, func(p int) (err error) {
			out[p], err = mapPartitionWithState(b.t, sparts[p], parts[p], spec)
			return err
		})
		return materialized(out), err
	})
	stores.op = s.op
	checkStorable[K](s.op, "key type")
	checkStorable[S](s.op, "state type")
	s.op.stateful = true
	s.op.state = stores
	checkPartitions(s.op, n)
	if spec.Function == nil {
		c.buildError(s.op, "StateSpec.Function is nil")
	}
	if spec.Timeout != 0 {
		checkMultiple(s.op, "timeout", spec.Timeout, c.cfg.BatchDuration, "batch duration")
	}
	ms.DStream = s.DStream
	return ms
}

// mapPartitionWithState runs one partition of a MapWithState batch: every
// record in order, then the timeouts, in the store's order.
func mapPartitionWithState[K comparable, V, S, M any](t Time, st *statePart[K, S], records []Pair[K, V],
	spec StateSpec[K, V, S, M]) ([]M, error) {
	var out []M
	timeouts := spec.Timeout > 0
	for _, kv := range records {
		e, exists, err := st.get(kv.Key)
		if err != nil {
			return nil, err
		}
		state := State[S]{value: e.val, exists: exists}
		m, emit := spec.Function(t, kv.Key, Some(kv.Value), &state)
		switch {
		case state.removed:
			err = st.del(kv.Key, exists)
		case state.updated || (state.exists && timeouts):
			// With timeouts, a record refreshes the key's idle time even
			// when the function leaves the state as it was.
			err = st.put(kv.Key, state.value, exists)
		}
		if err != nil {
			return nil, err
		}
		if emit {
			out = append(out, m)
		}
	}
	if !timeouts {
		return out, nil
	}
	threshold := t.Add(-spec.Timeout)
	var idle []Pair[K, S]
	err := st.each(func(k K, e stateEntry[S], _ []byte) error {
		if e.updated < threshold {
			idle = append(idle, Pair[K, S]{k, e.val})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, kv := range idle {
		state := State[S]{value: kv.Value, exists: true, timingOut: true}
		m, emit := spec.Function(t, kv.Key, None[V](), &state)
		if err := st.del(kv.Key, true); err != nil {
			return nil, err
		}
		if emit {
			out = append(out, m)
		}
	}
	return out, nil
}
