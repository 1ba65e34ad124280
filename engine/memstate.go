package engine

// memStore is the keyed state of one partition of a stateful operator,
// held in memory. A batch's writes go to an overlay that reads see at
// once but that becomes the committed state only when the batch commits;
// abort drops it, so a batch that fails leaves the state of the batch
// before. Iteration order is insertion order, with new keys after the
// committed ones, so it never depends on Go's map order.
//
// Only the task that owns the partition uses a store during a batch; the
// scheduler commits or aborts it after every task has finished.
type memStore[K comparable, S any] struct {
	idx   map[K]int
	keys  []K
	vals  []stateEntry[S]
	live  []bool
	dead  int
	delta *orderedMap[K, pendingEntry[S]]
}

type stateEntry[S any] struct {
	val     S
	updated Time // batch time of the last update
}

type pendingEntry[S any] struct {
	stateEntry[S]
	deleted bool
}

func newMemStore[K comparable, S any]() *memStore[K, S] {
	return &memStore[K, S]{idx: make(map[K]int), delta: newOrderedMap[K, pendingEntry[S]](0)}
}

func (m *memStore[K, S]) get(k K) (stateEntry[S], bool) {
	if pe, ok := m.delta.get(k); ok {
		return pe.stateEntry, !pe.deleted
	}
	if i, ok := m.idx[k]; ok {
		return m.vals[i], true
	}
	return stateEntry[S]{}, false
}

func (m *memStore[K, S]) put(k K, v S, t Time) {
	slot, _ := m.delta.slot(k)
	*slot = pendingEntry[S]{stateEntry: stateEntry[S]{val: v, updated: t}}
}

func (m *memStore[K, S]) del(k K) {
	slot, _ := m.delta.slot(k)
	*slot = pendingEntry[S]{deleted: true}
}

// each calls fn for every live key as the batch sees it: committed keys in
// order with the batch's writes applied, then keys the batch added.
func (m *memStore[K, S]) each(fn func(k K, e stateEntry[S])) {
	for i, k := range m.keys {
		if !m.live[i] {
			continue
		}
		if pe, ok := m.delta.get(k); ok {
			if !pe.deleted {
				fn(k, pe.stateEntry)
			}
			continue
		}
		fn(k, m.vals[i])
	}
	m.delta.each(func(k K, pe pendingEntry[S]) {
		if _, committed := m.idx[k]; !committed && !pe.deleted {
			fn(k, pe.stateEntry)
		}
	})
}

// commit makes the batch's writes the committed state.
func (m *memStore[K, S]) commit() {
	m.delta.each(func(k K, pe pendingEntry[S]) {
		i, ok := m.idx[k]
		switch {
		case ok && pe.deleted:
			delete(m.idx, k)
			m.live[i] = false
			var zero stateEntry[S]
			m.vals[i] = zero
			m.dead++
		case ok:
			m.vals[i] = pe.stateEntry
		case !pe.deleted:
			m.idx[k] = len(m.keys)
			m.keys = append(m.keys, k)
			m.vals = append(m.vals, pe.stateEntry)
			m.live = append(m.live, true)
		}
	})
	m.delta = newOrderedMap[K, pendingEntry[S]](0)
	if m.dead > 64 && m.dead > len(m.keys)/2 {
		m.compact()
	}
}

func (m *memStore[K, S]) abort() { m.delta = newOrderedMap[K, pendingEntry[S]](0) }

// compact drops the slots of deleted keys, keeping the order of the rest.
func (m *memStore[K, S]) compact() {
	keys := make([]K, 0, len(m.idx))
	vals := make([]stateEntry[S], 0, len(m.idx))
	for i, k := range m.keys {
		if m.live[i] {
			m.idx[k] = len(keys)
			keys = append(keys, k)
			vals = append(vals, m.vals[i])
		}
	}
	m.keys, m.vals, m.dead = keys, vals, 0
	m.live = make([]bool, len(keys))
	for i := range m.live {
		m.live[i] = true
	}
}
