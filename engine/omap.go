package engine

// orderedMap is a map that remembers insertion order. The engine uses it
// wherever records are grouped by key, so that the order of a batch's output
// follows the order of its input and never Go's randomised map iteration:
// a re-run of a batch must produce the same bytes.
type orderedMap[K comparable, V any] struct {
	idx  map[K]int32
	keys []K
	vals []V
}

func newOrderedMap[K comparable, V any](sizeHint int) *orderedMap[K, V] {
	return &orderedMap[K, V]{idx: make(map[K]int32, sizeHint)}
}

func (m *orderedMap[K, V]) len() int { return len(m.keys) }

// slot returns a pointer to k's value, inserting the zero value first if k
// is new; the bool reports whether k was present.
func (m *orderedMap[K, V]) slot(k K) (*V, bool) {
	if i, ok := m.idx[k]; ok {
		return &m.vals[i], true
	}
	m.idx[k] = int32(len(m.keys))
	m.keys = append(m.keys, k)
	var zero V
	m.vals = append(m.vals, zero)
	return &m.vals[len(m.vals)-1], false
}

func (m *orderedMap[K, V]) each(fn func(K, V)) {
	for i, k := range m.keys {
		fn(k, m.vals[i])
	}
}

// reset empties m and keeps its memory, for the next use of a map that is
// filled and drained over and over.
func (m *orderedMap[K, V]) reset() {
	clear(m.idx)
	clear(m.keys) // let the garbage collector have what the keys point to
	clear(m.vals)
	m.keys, m.vals = m.keys[:0], m.vals[:0]
}
