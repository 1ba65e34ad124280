package state

import (
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Scratch batches: a node other than the driver computes a partition's
// writes of batch t against its own replica, for the driver to copy into
// its batch (Part.Writes, Part.Put). A scratch batch reads the committed
// state as of one applied batch (Base) through a Pebble snapshot, so
// that a delta the replica applies meanwhile changes nothing it reads;
// it is not the open batch (Begin is untouched, and the replica's own
// writers, ImportDelta and ApplyDelta, neither wait for it nor see it),
// and it can never be written or applied.

// scratchRead is what a scratch batch reads: a snapshot, registered
// with its store so that Close can release it.
type scratchRead struct {
	snap   *pebble.Snapshot
	base   int64
	shared bool // another scratch batch's snapshot, which that one releases
}

// scratches are the snapshots of the open scratch batches. Lock order:
// closeMu, then scratches.
type scratches struct {
	mu   sync.Mutex
	open map[*scratchRead]struct{}
}

// Scratch returns a batch of time t that reads the committed state as of
// the last applied batch (its Base) plus its own writes, and that
// WriteDelta and Apply refuse. Its Parts are used as a Batch's are.
// Close it.
func (s *Store) Scratch(t int64) (*Batch, error) {
	done, err := s.reading()
	if err != nil {
		return nil, err
	}
	defer done()
	snap := s.db.NewSnapshot()
	base, err := s.appliedIn(snap)
	if err != nil {
		snap.Close()
		return nil, err
	}
	if t <= base {
		snap.Close()
		return nil, fmt.Errorf("%w: scratch batch %d over batch %d", ErrBatch, t, base)
	}
	sr := &scratchRead{snap: snap, base: base}
	s.scratch.mu.Lock()
	if s.scratch.open == nil {
		s.scratch.open = make(map[*scratchRead]struct{})
	}
	s.scratch.open[sr] = struct{}{}
	s.scratch.mu.Unlock()
	return &Batch{s: s, t: t, parts: make(map[partID]*Part), trunc: make(map[int]int64), scratch: sr}, nil
}

// Scratch returns a scratch batch of b's time that reads the committed
// state b reads: for a batch Begin made, the store's (Store.Scratch); for
// a scratch batch, its snapshot, valid until b is closed.
func (b *Batch) Scratch() (*Batch, error) {
	if b.scratch == nil {
		return b.s.Scratch(b.t)
	}
	sr := &scratchRead{snap: b.scratch.snap, base: b.scratch.base, shared: true}
	return &Batch{s: b.s, t: b.t, parts: make(map[partID]*Part), trunc: make(map[int]int64), scratch: sr}, nil
}

// Base is the batch whose committed state a scratch batch reads (for a
// batch Begin made: 0).
func (b *Batch) Base() int64 {
	if b.scratch == nil {
		return 0
	}
	return b.scratch.base
}

// Close releases a scratch batch's snapshot; its Parts read nothing
// after. It does nothing for a batch Begin made, and nothing twice.
func (b *Batch) Close() {
	if b.scratch == nil || b.scratch.shared {
		return
	}
	s := b.s
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closeMu.closed {
		return // Store.Close released it
	}
	s.scratch.mu.Lock()
	_, open := s.scratch.open[b.scratch]
	delete(s.scratch.open, b.scratch)
	s.scratch.mu.Unlock()
	if open {
		b.scratch.snap.Close()
	}
}

// closeScratches releases every scratch snapshot; Close calls it with
// closeMu held exclusively, so no read is using one.
func (s *Store) closeScratches() {
	s.scratch.mu.Lock()
	defer s.scratch.mu.Unlock()
	for sr := range s.scratch.open {
		sr.snap.Close()
	}
	s.scratch.open = nil
}

// reader is what the batch's parts read committed state from.
func (b *Batch) reader() pebble.Reader {
	if b.scratch != nil {
		return b.scratch.snap
	}
	return b.s.db
}

// Write is one key a Part wrote: its value, or its deletion, and whether
// the key had committed state.
type Write struct {
	Key     []byte
	Val     []byte // nil for a deletion
	Del     bool
	Existed bool
}

// Writes returns the part's writes, in the order their keys were first
// touched: what the part contributes to its batch's delta.
func (p *Part) Writes() []Write {
	var out []Write
	for _, e := range p.entries {
		if !e.dirty {
			continue
		}
		out = append(out, Write{Key: []byte(e.key), Val: append([]byte(nil), e.val...), Del: e.del, Existed: e.existed})
		if e.del {
			out[len(out)-1].Val = nil
		}
	}
	return out
}

// Put applies a write of another batch's part (Writes) to p, as Set or
// Delete would: Writes of one part, Put in order into an untouched part
// of the same (operator, partition), give it the same delta and the same
// Scan.
func (p *Part) Put(w Write) {
	p.write(w.Key, w.Val, w.Del, w.Existed)
}
