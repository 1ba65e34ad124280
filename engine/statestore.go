package engine

import (
	"bytes"
	"fmt"

	"github.com/sluice-stream/sluice/state"
)

// stateStores is the keyed state of a stateful operator: one partition of
// the node's state store per partition, loaded with the initial state at
// the operator's first batch. The running batch reads and writes it
// through typed parts over the batch's state.Part overlays.
type stateStores[K comparable, S any] struct {
	op      *opNode
	n       int
	initial []Pair[K, S]
	part    partitioner[K]
	keys    keyCodec[K]
}

func newStateStores[K comparable, S any](n int, initial []Pair[K, S]) *stateStores[K, S] {
	return &stateStores[K, S]{n: n, initial: initial, part: newPartitioner[K](n)}
}

// metaInitialized marks an operator whose initial state was loaded. Part
// of the on-disk format.
const metaInitialized = "initialized"

// loaded reports whether a batch before b loaded the initial state.
func (st *stateStores[K, S]) loaded(b *batchRun) (bool, error) {
	_, loaded, err := b.c.storage.state.OpMeta(st.op.id, metaInitialized)
	return loaded, err
}

// parts returns the typed parts of the batch b, loading the initial state
// as writes of b if no batch has loaded it yet.
func (st *stateStores[K, S]) parts(b *batchRun) ([]*statePart[K, S], error) {
	out := make([]*statePart[K, S], st.n)
	for p := range out {
		out[p] = &statePart[K, S]{st: st, p: b.state.Part(st.op.id, p), t: b.t}
	}
	_, loaded, err := b.c.storage.state.OpMeta(st.op.id, metaInitialized)
	if err != nil || loaded {
		return out, err
	}
	for _, kv := range st.initial {
		sp := out[st.part.of(kv.Key)]
		_, existed, err := sp.get(kv.Key)
		if err != nil {
			return nil, err
		}
		if err := sp.put(kv.Key, kv.Value, existed); err != nil {
			return nil, err
		}
	}
	b.state.SetOpMeta(st.op.id, metaInitialized, []byte{1})
	return out, nil
}

// stateEntry is one key's state and the batch time of its last update.
type stateEntry[S any] struct {
	val     S
	updated Time
}

// statePart is one partition of a stateful operator in one batch.
type statePart[K comparable, S any] struct {
	st *stateStores[K, S]
	p  *state.Part
	t  Time
}

// stateError names the operator and key whose state could not be stored
// or read.
func (st *stateStores[K, S]) stateError(k K, what string, err error) error {
	return fmt.Errorf("engine: operator %s: %s the state of key %v: %w", st.op.label(), what, k, err)
}

// get returns k's state as the batch sees it.
func (sp *statePart[K, S]) get(k K) (stateEntry[S], bool, error) {
	kb, err := sp.st.keys.encode(k)
	if err != nil {
		return stateEntry[S]{}, false, sp.st.stateError(k, "encoding the key of", err)
	}
	v, ok, err := sp.p.Get(kb)
	if err != nil || !ok {
		return stateEntry[S]{}, false, err
	}
	e, err := decodeEntry[S](v)
	if err != nil {
		return stateEntry[S]{}, false, sp.st.stateError(k, "decoding", err)
	}
	return e, true, nil
}

func decodeEntry[S any](v []byte) (stateEntry[S], error) {
	var se storedEntry[S]
	if err := decodeValue(v, &se); err != nil {
		return stateEntry[S]{}, err
	}
	return stateEntry[S]{val: se.Value, updated: Time(se.Updated)}, nil
}

// put sets k's state, updated at the batch's time. existed says whether
// k has committed state (as get or each reported it).
func (sp *statePart[K, S]) put(k K, v S, existed bool) error {
	return sp.putEntry(k, stateEntry[S]{val: v, updated: sp.t}, existed)
}

func (sp *statePart[K, S]) putEntry(k K, e stateEntry[S], existed bool) error {
	kb, err := sp.st.keys.encode(k)
	if err != nil {
		return sp.st.stateError(k, "encoding the key of", err)
	}
	vb, err := encodeValue(storedEntry[S]{Updated: int64(e.updated), Value: e.val})
	if err != nil {
		return sp.st.stateError(k, "encoding", err)
	}
	sp.p.Set(kb, vb, existed)
	return nil
}

func (sp *statePart[K, S]) del(k K, existed bool) error {
	kb, err := sp.st.keys.encode(k)
	if err != nil {
		return sp.st.stateError(k, "encoding the key of", err)
	}
	sp.p.Delete(kb, existed)
	return nil
}

// putIfChanged writes v, updated at the batch's time, unless it is the
// value stored (old, last updated at updated): then the key is left out
// of the batch's delta.
func (sp *statePart[K, S]) putIfChanged(k K, v S, updated Time, old []byte) error {
	vb, err := encodeValue(storedEntry[S]{Updated: int64(updated), Value: v})
	if err != nil {
		return sp.st.stateError(k, "encoding", err)
	}
	if bytes.Equal(vb, old) {
		return nil
	}
	return sp.put(k, v, true)
}

// each calls fn for every key as the batch sees it: the committed keys in
// the store's order with the batch's writes applied, then the keys the
// batch added, in the order it added them, with the bytes stored. fn may
// call put and del.
func (sp *statePart[K, S]) each(fn func(k K, e stateEntry[S], raw []byte) error) error {
	return sp.p.Scan(func(kb, vb []byte) error {
		k, err := sp.st.keys.decode(kb)
		if err != nil {
			return fmt.Errorf("engine: operator %s: decoding a stored key %q: %w", sp.st.op.label(), kb, err)
		}
		e, err := decodeEntry[S](vb)
		if err != nil {
			return sp.st.stateError(k, "decoding", err)
		}
		return fn(k, e, vb)
	})
}
