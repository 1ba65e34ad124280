package state

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Batch is the writes of one batch time, held in memory until WriteDelta.
type Batch struct {
	s *Store
	t int64

	mu      sync.Mutex
	parts   map[partID]*Part
	slices  []change
	opMeta  []change
	trunc   map[int]int64 // operator → delete slices before this time, at Apply
	written bool
	delta   []change // what WriteDelta wrote: exactly what Apply commits
	// scratch: a batch Scratch made, reading snap; never written.
	scratch *scratchRead
}

type partID struct{ op, part int }

// change is one key to set or delete.
type change struct {
	key []byte
	val []byte
	del bool
}

// Begin starts the writes of batch t. Only one batch is open at a time;
// Begin drops an open batch that was neither applied nor aborted (a batch
// that failed).
func (s *Store) Begin(t int64) (*Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return nil, ErrClosed
	}
	if s.mu.failed != nil {
		return nil, s.mu.failed
	}
	if applied, err := s.Applied(); err != nil {
		return nil, err
	} else if t <= applied {
		return nil, fmt.Errorf("%w: batch %d begun after batch %d was applied", ErrBatch, t, applied)
	}
	b := &Batch{s: s, t: t, parts: make(map[partID]*Part), trunc: make(map[int]int64)}
	s.mu.open = b
	return b, nil
}

// Time is the batch's time.
func (b *Batch) Time() int64 { return b.t }

// Part returns the writer of (op, part) in this batch, the same one on
// every call. Parts of one batch may be used concurrently; one Part may
// not.
func (b *Batch) Part(op, part int) *Part {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := partID{op, part}
	p, ok := b.parts[id]
	if !ok {
		p = &Part{b: b, prefix: partPrefix(op, part), idx: make(map[string]int)}
		b.parts[id] = p
	}
	return p
}

// SetSlice stores a window's data of operator op at this batch's time.
func (b *Batch) SetSlice(op, part int, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.slices = append(b.slices, change{key: sliceKey(op, b.t, part), val: data})
}

// SetOpMeta sets metadata of operator op (for instance that its initial
// state was loaded), committed with the batch.
func (b *Batch) SetOpMeta(op int, name string, val []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opMeta = append(b.opMeta, change{key: opMetaKey(op, name), val: val})
}

// TruncateSlices deletes, when the batch is applied, operator op's slices
// at times before before. Truncation is not part of the delta: a redo
// after a crash leaves the old slices to the next batch's truncation.
func (b *Batch) TruncateSlices(op int, before int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trunc[op] = max(b.trunc[op], before)
}

// Part is the writes of one (operator, partition) in a batch: an overlay
// over the committed state that its own reads see.
type Part struct {
	b       *Batch
	prefix  []byte
	idx     map[string]int
	entries []entry
	added   int64 // keys created less keys deleted
}

type entry struct {
	key     string
	val     []byte
	del     bool
	existed bool // the key has committed state
	dirty   bool // written by the batch (else only read)
}

// Get returns key's value as the batch sees it: its own write, else the
// committed value. A lookup is remembered, so reading a key twice costs
// one Pebble read.
func (p *Part) Get(key []byte) ([]byte, bool, error) {
	if i, ok := p.idx[string(key)]; ok {
		e := &p.entries[i]
		return e.val, !e.del, nil
	}
	v, ok, err := p.b.s.get(p.b.reader(), append(p.prefix, key...))
	if err != nil {
		return nil, false, err
	}
	p.add(entry{key: string(key), val: v, del: !ok, existed: ok})
	return v, ok, nil
}

func (p *Part) add(e entry) *entry {
	p.idx[e.key] = len(p.entries)
	p.entries = append(p.entries, e)
	return &p.entries[len(p.entries)-1]
}

// Set writes key's value. existed says whether the key has committed
// state, as Get or Scan reported it (it counts keys and orders Scan);
// when the key was read with Get it is known already.
func (p *Part) Set(key, val []byte, existed bool) {
	p.write(key, val, false, existed)
}

// Delete removes key. existed is as for Set.
func (p *Part) Delete(key []byte, existed bool) {
	p.write(key, nil, true, existed)
}

func (p *Part) write(key, val []byte, del, existed bool) {
	i, ok := p.idx[string(key)]
	if !ok {
		p.add(entry{key: string(key), existed: existed, del: !existed})
		i = len(p.entries) - 1
	}
	e := &p.entries[i]
	was := !e.del
	e.val, e.del, e.dirty = val, del, true
	switch {
	case was && del:
		p.added--
	case !was && !del:
		p.added++
	}
}

// Scan calls fn for every key as the batch sees it: the committed keys in
// key order, with the batch's writes applied, then the keys the batch
// added (before the call), in the order they were added. fn may call Set
// and Delete. The slices are valid only during the call.
func (p *Part) Scan(fn func(key, value []byte) error) error {
	n := len(p.entries)
	err := p.b.s.scan(p.b.reader(), p.prefix, func(k, v []byte) error {
		if i, ok := p.idx[string(k)]; ok {
			if e := p.entries[i]; e.del {
				return nil
			} else {
				v = e.val
			}
		}
		return fn(k, v)
	})
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if e := p.entries[i]; !e.existed && !e.del {
			if err := fn([]byte(e.key), e.val); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteDelta writes the batch's changes as its delta, synced, replacing a
// delta of the same time written before (by a run that crashed). When it
// returns nil the batch's writes survive a crash, but are not visible
// until Apply.
func (b *Batch) WriteDelta() (err error) {
	if b.scratch != nil {
		return fmt.Errorf("%w: WriteDelta of a scratch batch (%d)", ErrBatch, b.t)
	}
	if err := b.s.enter(b); err != nil {
		return err
	}
	defer b.s.recoverFatal(&err)
	pb := b.s.db.NewBatch()
	defer pb.Close()
	prefix := deltaPrefix(b.t)
	if err := pb.DeleteRange(prefix, prefixEnd(prefix), nil); err != nil {
		return err
	}
	if err := pb.Set(prefix, []byte{deltaMarker}, nil); err != nil {
		return err
	}
	var delta []change
	if err := b.each(func(c change) error {
		delta = append(delta, c)
		return pb.Set(deltaKey(b.t, c.key), deltaValue(c), nil)
	}); err != nil {
		return err
	}
	if err := pb.Commit(pebble.Sync); err != nil {
		return b.s.fail(fmt.Errorf("state: writing the delta of batch %d: %w", b.t, err))
	}
	b.mu.Lock()
	b.written, b.delta = true, delta
	b.mu.Unlock()
	return nil
}

func deltaValue(c change) []byte {
	if c.del {
		return []byte{deltaDelete}
	}
	return append([]byte{deltaSet}, c.val...)
}

// each calls fn with every change of the batch, in a fixed order: parts
// by (operator, partition) with their keys in the order written, slices,
// operator metadata (with each operator's new key count).
func (b *Batch) each(fn func(change) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]partID, 0, len(b.parts))
	for id := range b.parts {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y partID) int { return cmp.Or(cmp.Compare(x.op, y.op), cmp.Compare(x.part, y.part)) })
	added := make(map[int]int64)
	var ops []int
	for _, id := range ids {
		p := b.parts[id]
		for _, e := range p.entries {
			if !e.dirty {
				continue
			}
			if err := fn(change{key: append(append([]byte(nil), p.prefix...), e.key...), val: e.val, del: e.del}); err != nil {
				return err
			}
		}
		if _, ok := added[id.op]; !ok {
			ops = append(ops, id.op)
		}
		added[id.op] += p.added
	}
	for _, c := range b.slices {
		if err := fn(c); err != nil {
			return err
		}
	}
	for _, c := range b.opMeta {
		if err := fn(c); err != nil {
			return err
		}
	}
	for _, op := range ops {
		if added[op] == 0 {
			continue
		}
		n, err := b.s.keyCount(op)
		if err != nil {
			return err
		}
		n += added[op]
		if err := fn(change{key: opPrefix(prefixCount, op), val: encodeTime(n)}); err != nil {
			return err
		}
	}
	return nil
}

// Apply makes the batch's writes the committed state, once the metadata
// log says the batch completed: the changes go to the main keys, the
// delta is deleted and the applied time set, in one Pebble batch. It is
// not synced (see the package documentation).
func (b *Batch) Apply() (err error) {
	if b.scratch != nil {
		return fmt.Errorf("%w: Apply of a scratch batch (%d)", ErrBatch, b.t)
	}
	if err := b.s.enter(b); err != nil {
		return err
	}
	defer b.s.recoverFatal(&err)
	b.mu.Lock()
	written, delta := b.written, b.delta
	b.mu.Unlock()
	if !written {
		return fmt.Errorf("%w: Apply of batch %d before its delta was written", ErrBatch, b.t)
	}
	pb := b.s.db.NewBatch()
	defer pb.Close()
	for _, c := range delta {
		if err := applyChange(pb, c); err != nil {
			return err
		}
	}
	if err := b.s.finishApply(pb, b.t, b.trunc); err != nil {
		return err
	}
	b.s.mu.Lock()
	if b.s.mu.open == b {
		b.s.mu.open = nil
	}
	b.s.mu.Unlock()
	return nil
}

func applyChange(pb *pebble.Batch, c change) error {
	if c.del {
		return pb.Delete(c.key, nil)
	}
	return pb.Set(c.key, c.val, nil)
}

// finishApply deletes the delta of t, truncates slices, sets the applied
// time and commits pb.
func (s *Store) finishApply(pb *pebble.Batch, t int64, trunc map[int]int64) error {
	prefix := deltaPrefix(t)
	if err := pb.DeleteRange(prefix, prefixEnd(prefix), nil); err != nil {
		return err
	}
	for op, before := range trunc {
		if err := pb.DeleteRange(sliceKey(op, 0, 0), sliceKey(op, before, 0), nil); err != nil {
			return err
		}
	}
	if err := pb.Set(keyApplied, encodeTime(t), nil); err != nil {
		return err
	}
	if err := pb.Commit(pebble.NoSync); err != nil {
		return s.fail(fmt.Errorf("state: applying batch %d: %w", t, err))
	}
	return nil
}

// Abort drops the batch's writes. A delta already written stays until a
// re-run of the batch replaces it or Recover drops it.
func (b *Batch) Abort() {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if b.s.mu.open == b {
		b.s.mu.open = nil
	}
}

// enter admits a write of batch b.
func (s *Store) enter(b *Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.mu.closed:
		return ErrClosed
	case s.mu.failed != nil:
		return s.mu.failed
	case b != nil && s.mu.open != b:
		return fmt.Errorf("%w: batch %d is not the open batch", ErrBatch, b.t)
	}
	return nil
}

// fail marks the store failed: after a write error nothing is known to be
// durable, so no later write is accepted.
func (s *Store) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.failed == nil {
		s.mu.failed = fmt.Errorf("%w: %w", ErrFailed, err)
		s.log.Error("state store failed: refusing every later write; restart to recover from disk", "err", err)
	}
	return s.mu.failed
}

// recoverFatal turns Pebble's Fatalf (a failed WAL write or sync inside a
// commit) on this goroutine into the store's failure.
func (s *Store) recoverFatal(err *error) {
	if r := recover(); r != nil {
		e, ok := r.(error)
		if !ok || !errors.Is(e, ErrFailed) {
			panic(r)
		}
		*err = s.fail(e)
	}
}
