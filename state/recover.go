package state

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// RecoveryResult says what Recover did.
type RecoveryResult struct {
	Redone  []int64 // deltas of completed batches applied now
	Dropped []int64 // deltas of batches the log does not say completed, or already applied
	Applied int64   // the applied batch time after recovery
}

// Recover brings the store in line with the metadata log, whose last
// completed batch is lastCompleted: the deltas of batches after the
// applied one and up to lastCompleted are applied, in time order; the
// others are dropped. It fails with ErrAhead when the store has applied a
// batch after lastCompleted. Call it after Open, before Begin.
func (s *Store) Recover(lastCompleted int64) (res RecoveryResult, err error) {
	if err := s.enter(nil); err != nil {
		return res, err
	}
	defer s.recoverFatal(&err)
	applied, err := s.Applied()
	if err != nil {
		return res, err
	}
	if applied > lastCompleted {
		return res, fmt.Errorf("%w: %s has applied batch %d but the metadata log's last completed batch is %d; "+
			"this state store belongs to another data directory, or the metadata log lost entries: "+
			"restore the data directory whole, or start with a fresh one", ErrAhead, s.dir, applied, lastCompleted)
	}
	times, err := s.deltaTimes()
	if err != nil {
		return res, err
	}
	for _, t := range times {
		if t <= applied || t > lastCompleted {
			if err := s.dropDelta(t); err != nil {
				return res, err
			}
			res.Dropped = append(res.Dropped, t)
			continue
		}
		if err := s.redo(t); err != nil {
			return res, err
		}
		applied = t
		res.Redone = append(res.Redone, t)
	}
	res.Applied = applied
	return res, nil
}

// deltaTimes lists the batch times that have a delta, ascending.
func (s *Store) deltaTimes() ([]int64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixDelta}, UpperBound: []byte{prefixDelta + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []int64
	for it.First(); it.Valid(); {
		k := it.Key()
		if len(k) < deltaHeader {
			return nil, &CorruptionError{Dir: s.dir, Key: k, Reason: "delta key too short"}
		}
		t := int64(binary.BigEndian.Uint64(k[1:deltaHeader]))
		out = append(out, t)
		it.SeekGE(prefixEnd(deltaPrefix(t)))
	}
	if err := it.Error(); err != nil {
		return nil, s.readError([]byte{prefixDelta}, err)
	}
	return out, nil
}

func (s *Store) dropDelta(t int64) error {
	p := deltaPrefix(t)
	if err := s.db.DeleteRange(p, prefixEnd(p), pebble.Sync); err != nil {
		return s.fail(fmt.Errorf("state: dropping the delta of batch %d: %w", t, err))
	}
	return nil
}

// redo applies the delta of t from disk.
func (s *Store) redo(t int64) error {
	pb := s.db.NewBatch()
	defer pb.Close()
	err := s.scan(s.db, deltaPrefix(t), func(k, v []byte) error {
		if len(k) == 0 && len(v) == 1 && v[0] == deltaMarker {
			return nil
		}
		if len(v) == 0 || (v[0] != deltaSet && v[0] != deltaDelete) || (v[0] == deltaDelete && len(v) != 1) {
			return &CorruptionError{Dir: s.dir, Key: deltaKey(t, k), Reason: "delta value of the wrong shape"}
		}
		return applyChange(pb, change{key: append([]byte(nil), k...), val: append([]byte(nil), v[1:]...), del: v[0] == deltaDelete})
	})
	if err != nil {
		return err
	}
	return s.finishApply(pb, t, nil)
}
