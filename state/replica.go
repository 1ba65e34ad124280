package state

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"
)

// Replicas: the driver ships each batch's delta to the other nodes before
// the batch completes, so a node that takes over as driver already holds
// the state. A replica store takes the delta of batch t only on top of the
// batch it was computed from (prev), writes it synced like WriteDelta, and
// applies it once the metadata log says t completed (ApplyDelta), as
// Recover would. At most one delta is pending on a replica: the next one
// needs this one applied.

// ErrBehind is returned by ImportDelta when the store has not applied the
// batch the delta was computed from: it needs a copy of the state (a
// checkpoint and the batches after it) before deltas can follow.
var ErrBehind = errors.New("state: the store is behind the delta's batch")

// DeltaImage is a batch's delta as it travels between nodes: its changes
// in WriteDelta's order and the window slices Apply truncates. Part of
// the wire format between nodes (msgpack, as_array).
type DeltaImage struct {
	//lint:ignore U1000 msgpack reads the tag of this field
	_msgpack struct{} `msgpack:",as_array"`
	Keys     [][]byte
	Vals     [][]byte // nil for a deletion
	Del      []bool
	Trunc    map[int]int64 // operator → slices before this time are deleted
}

// Export returns the delta WriteDelta wrote. It fails before WriteDelta.
func (b *Batch) Export() ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.written {
		return nil, fmt.Errorf("%w: Export of batch %d before its delta was written", ErrBatch, b.t)
	}
	img := DeltaImage{Trunc: b.trunc}
	for _, c := range b.delta {
		img.Keys = append(img.Keys, c.key)
		img.Vals = append(img.Vals, c.val)
		img.Del = append(img.Del, c.del)
	}
	return msgpack.Marshal(&img)
}

// ImportDelta writes the delta of batch t, computed on top of batch prev,
// synced, replacing one of the same t. It fails with ErrBehind unless the
// store has applied prev, and with ErrBatch when it has applied t or
// later. Window slices before the delta's truncation points are deleted
// now: no batch from t on reads them.
func (s *Store) ImportDelta(t, prev int64, data []byte) (err error) {
	if err := s.enter(nil); err != nil {
		return err
	}
	defer s.recoverFatal(&err)
	var img DeltaImage
	if err := msgpack.Unmarshal(data, &img); err != nil || len(img.Vals) != len(img.Keys) || len(img.Del) != len(img.Keys) {
		return fmt.Errorf("state: the delta of batch %d does not decode (%v)", t, err)
	}
	applied, err := s.Applied()
	if err != nil {
		return err
	}
	switch {
	case applied >= t:
		return fmt.Errorf("%w: delta of batch %d after batch %d was applied", ErrBatch, t, applied)
	case applied != prev:
		return fmt.Errorf("%w: it has applied batch %d, the delta of batch %d needs batch %d", ErrBehind, applied, t, prev)
	}
	pb := s.db.NewBatch()
	defer pb.Close()
	if err := pb.DeleteRange([]byte{prefixDelta}, prefixEnd([]byte{prefixDelta}), nil); err != nil {
		return err
	}
	if err := pb.Set(deltaPrefix(t), []byte{deltaMarker}, nil); err != nil {
		return err
	}
	for i, k := range img.Keys {
		if err := pb.Set(deltaKey(t, k), deltaValue(change{key: k, val: img.Vals[i], del: img.Del[i]}), nil); err != nil {
			return err
		}
	}
	for op, before := range img.Trunc {
		if err := pb.DeleteRange(sliceKey(op, 0, 0), sliceKey(op, before, 0), nil); err != nil {
			return err
		}
	}
	if err := pb.Commit(pebble.Sync); err != nil {
		return s.fail(fmt.Errorf("state: writing the imported delta of batch %d: %w", t, err))
	}
	return nil
}

// Pending returns the batch time of the delta written and not applied,
// and false if there is none.
func (s *Store) Pending() (int64, bool, error) {
	if err := s.enter(nil); err != nil {
		return 0, false, err
	}
	times, err := s.deltaTimes()
	if err != nil || len(times) == 0 {
		return 0, false, err
	}
	return times[len(times)-1], true, nil
}

// ApplyDelta applies the delta of batch t written by ImportDelta, once the
// metadata log says t completed. Without a delta of t it does nothing.
func (s *Store) ApplyDelta(t int64) (err error) {
	if err := s.enter(nil); err != nil {
		return err
	}
	defer s.recoverFatal(&err)
	times, err := s.deltaTimes()
	if err != nil {
		return err
	}
	for _, d := range times {
		if d == t {
			return s.redo(t)
		}
	}
	return nil
}
