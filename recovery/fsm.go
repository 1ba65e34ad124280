package recovery

// The FSM: how each event changes the state. Raft calls it with committed
// entries, in log order, from one goroutine; after a restart it restores the
// newest snapshot and applies the entries after it again, so every rule is
// deterministic (a function of the state and the event only: no clock, no
// map order, no randomness) and idempotent (applying an event that is
// already reflected in the state changes nothing). An event that breaks a
// rule returns an error and leaves the state exactly as it was.
//
// Rule 1, BlockAdded{Block, Records, Bytes, Requests}:
//   - The event must be well formed (ErrInvalidEvent): non-empty stream and
//     node, Records and Bytes ≥ 0, every request with a producer and a
//     record range inside the block, no two requests overlapping.
//   - If the block was ever added before (the FSM remembers the block
//     sequences of every (stream, node) forever, as ranges), nothing
//     changes. Each request answers Duplicate if its (producer, seq) is
//     stored, else Rejected ("block ... was already added"): a retry learns
//     the truth and nothing is added twice.
//   - Otherwise, per request in order: a (producer, seq) already stored is
//     Duplicate; a seq lower than the producer's highest stored seq, never
//     stored, is Rejected ("sequences must increase", "older than the last
//     acknowledged"); else it is Stored and joins the producer's set.
//   - The block is recorded as unallocated, even when no request was Stored:
//     its Skip lists the ranges of every Duplicate and Rejected request
//     (sorted, merged), so those records are never counted, and the block
//     still takes part in allocation and in WAL truncation.
//
// Rule 2, BatchAllocated{Time}:
//   - Time > LastAllocated and Time ≥ TruncatedBefore: every unallocated
//     block moves, in add order, to a new batch at Time (possibly empty);
//     LastAllocated = Time.
//   - Time ≤ LastAllocated and the batch exists: nothing changes; the
//     result is the existing batch (a retried allocation).
//   - Otherwise ErrBatchOrder (an older time never allocated, or one
//     behind the truncation point).
//
// Rule 3, BatchCompleted{Time}:
//   - The batch must exist (ErrUnknownBatch: never allocated, or truncated).
//   - Already completed: only a Checkpoint reference newer than every one
//     kept is recorded (a checkpoint taken at a graceful stop); otherwise
//     nothing changes (idempotent).
//   - An earlier batch still pending: ErrBatchOrder (batches complete in
//     order, so the completed batches are always a prefix).
//   - Else it is marked completed and LastCompleted = Time; a Checkpoint
//     reference newer than every one kept is appended to Checkpoints, of
//     which only the newest CheckpointsKept stay.
//
// Rule 4, Truncated{Before}:
//   - Before ≤ TruncatedBefore: nothing changes (idempotent).
//   - A pending batch with Time < Before: ErrTruncatePending.
//   - Else the batches with Time < Before are dropped and TruncatedBefore =
//     Before. Producer and block tables are kept: dedupe needs them forever.
//
// Rule 6, FingerprintSet{App, Hash, Operators}: replaces the recorded
// graph (the engine checks it before an upgrade is recorded).
//
// Rule 7, DriverStarted{Epoch, Node}: Epoch > the recorded epoch records
// it and the node; the same epoch and node again changes nothing
// (idempotent); anything else is ErrFenced. BatchAllocated, BatchCompleted
// and Truncated with a non-zero Epoch below the recorded one are ErrFenced
// and change nothing (a deposed driver); Epoch 0 is not checked (logs of
// releases before clusters).
//
// Rule 8, PartitionAssigned{Epoch, Primaries, Backups}: fenced as the
// batch events (ErrFenced below the recorded epoch); one primary and one
// backup per partition, at least one partition, no primary empty, a
// backup other than its primary or "" (ErrInvalidEvent); it replaces the
// recorded assignment, and the same one again changes nothing.
//
// Rule 5: an entry that is not a known event (ErrUnknownEvent,
// ErrEventVersion, a payload that does not decode) changes nothing and its
// error is the entry's result; it never panics.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"

	"github.com/hashicorp/raft"
)

// apply runs one event against s.
func (s *state) apply(ev Event) (Result, error) {
	switch e := ev.(type) {
	case BlockAdded:
		return s.addBlock(e)
	case BatchAllocated:
		if err := s.fence(ev.Type(), e.Epoch); err != nil {
			return Result{}, err
		}
		return s.allocate(e.Time)
	case BatchCompleted:
		if err := s.fence(ev.Type(), e.Epoch); err != nil {
			return Result{}, err
		}
		return s.complete(e)
	case DriverStarted:
		return Result{}, s.startDriver(e)
	case PartitionAssigned:
		if err := s.fence(ev.Type(), e.Epoch); err != nil {
			return Result{}, err
		}
		if err := e.validate(); err != nil {
			return Result{}, err
		}
		a := clonePartitions(e)
		s.partitions = &a
		return Result{}, nil
	case FingerprintSet:
		fp := e
		fp.Operators = append([]string(nil), e.Operators...)
		s.fingerprint = &fp
		return Result{}, nil
	case Truncated:
		if err := s.fence(ev.Type(), e.Epoch); err != nil {
			return Result{}, err
		}
		dropped, err := s.truncate(e.Before)
		s.dropped = append(s.dropped, dropped...)
		return Result{}, err
	}
	return Result{}, fmt.Errorf("%w: %T", ErrUnknownEvent, ev)
}

// fence is rule 7 for a batch event of epoch.
func (s *state) fence(t EventType, epoch uint64) error {
	if epoch != 0 && epoch < s.epoch {
		return fmt.Errorf("%w: %s of epoch %d refused: driver %s started epoch %d", ErrFenced, t, epoch, s.driver, s.epoch)
	}
	return nil
}

// startDriver is rule 7 for DriverStarted.
func (s *state) startDriver(e DriverStarted) error {
	switch {
	case e.Epoch > s.epoch:
		s.epoch, s.driver = e.Epoch, e.Node
		return nil
	case e.Epoch == s.epoch && e.Node == s.driver:
		return nil
	}
	return fmt.Errorf("%w: driver %s of epoch %d refused: driver %s started epoch %d", ErrFenced, e.Node, e.Epoch, s.driver, s.epoch)
}

// addBlock is rule 1.
func (s *state) addBlock(e BlockAdded) (Result, error) {
	if err := e.validate(); err != nil {
		return Result{}, err
	}
	src := source{e.Block.Stream, e.Block.Node}
	if s.blocks[src].contains(e.Block.Seq) {
		return Result{Requests: s.readdedOutcomes(e)}, nil
	}
	out := make([]RequestOutcome, len(e.Requests))
	var skip []Range
	for i, r := range e.Requests {
		out[i] = s.admit(r)
		if out[i].Status != Stored && r.Count > 0 {
			skip = append(skip, Range{r.Offset, r.Count})
		}
	}
	s.blocks[src] = s.blocks[src].add(e.Block.Seq)
	entry := BlockEntry{Ref: e.Block, Records: e.Records, Bytes: e.Bytes, Skip: mergeRanges(skip)}
	if len(e.Replicas) > 0 {
		entry.Replicas = append([]string(nil), e.Replicas...)
	}
	s.unallocated = append(s.unallocated, entry)
	return Result{Requests: out}, nil
}

// admit decides one request of a new block and records it if Stored.
func (s *state) admit(r Request) RequestOutcome {
	set := s.producers[r.Producer]
	if set.contains(r.Seq) {
		return RequestOutcome{Status: Duplicate}
	}
	if hi, ok := set.max(); ok && r.Seq < hi {
		return RequestOutcome{Status: Rejected, Reason: rejectReason(r.Producer, r.Seq, hi)}
	}
	s.producers[r.Producer] = set.add(r.Seq)
	return RequestOutcome{Status: Stored}
}

// readdedOutcomes answers the requests of a block that was added before,
// without changing anything.
func (s *state) readdedOutcomes(e BlockAdded) []RequestOutcome {
	out := make([]RequestOutcome, len(e.Requests))
	for i, r := range e.Requests {
		if s.producers[r.Producer].contains(r.Seq) {
			out[i] = RequestOutcome{Status: Duplicate}
			continue
		}
		out[i] = RequestOutcome{Status: Rejected, Reason: fmt.Sprintf(
			"block %s was already added and this request was not stored with it", e.Block)}
	}
	return out
}

// allocate is rule 2.
func (s *state) allocate(t int64) (Result, error) {
	if t <= s.lastAllocated {
		if i := s.batchIndex(t); i >= 0 {
			b := cloneBatch(s.batches[i])
			return Result{Batch: &b}, nil
		}
		return Result{}, fmt.Errorf("%w: cannot allocate batch %d: the last allocated batch is %d", ErrBatchOrder, t, s.lastAllocated)
	}
	if t < s.truncatedBefore {
		return Result{}, fmt.Errorf("%w: cannot allocate batch %d: the log was truncated before %d", ErrBatchOrder, t, s.truncatedBefore)
	}
	s.batches = append(s.batches, Batch{Time: t, Blocks: s.unallocated})
	s.unallocated = nil
	s.lastAllocated = t
	b := cloneBatch(s.batches[len(s.batches)-1])
	return Result{Batch: &b}, nil
}

// complete is rule 3.
func (s *state) complete(e BatchCompleted) (Result, error) {
	t := e.Time
	i := s.batchIndex(t)
	if i < 0 {
		return Result{}, fmt.Errorf("%w: batch %d is not allocated (allocated up to %d, truncated before %d)",
			ErrUnknownBatch, t, s.lastAllocated, s.truncatedBefore)
	}
	if !s.batches[i].Completed {
		if i > 0 && !s.batches[i-1].Completed {
			return Result{}, fmt.Errorf("%w: cannot complete batch %d while batch %d is pending",
				ErrBatchOrder, t, s.batches[i-1].Time)
		}
		s.batches[i].Completed = true
		s.lastCompleted = t
	}
	s.addCheckpoint(e.Checkpoint)
	b := cloneBatch(s.batches[i])
	return Result{Batch: &b}, nil
}

// CheckpointsKept is how many checkpoint references the log keeps: the
// newest, and older ones to fall back to when the newest is damaged. Part
// of the FSM's rules: changing it changes what a replay computes.
const CheckpointsKept = 2

func (s *state) addCheckpoint(ref *CheckpointRef) {
	if ref == nil {
		return
	}
	if n := len(s.checkpoints); n > 0 && ref.Time <= s.checkpoints[n-1].Time {
		return
	}
	s.checkpoints = append(s.checkpoints, *ref)
	if n := len(s.checkpoints); n > CheckpointsKept {
		s.checkpoints = append([]CheckpointRef(nil), s.checkpoints[n-CheckpointsKept:]...)
	}
}

// truncate is rule 4. It returns the blocks of the batches it dropped.
func (s *state) truncate(before int64) ([]BlockRef, error) {
	if before <= s.truncatedBefore {
		return nil, nil
	}
	n := sort.Search(len(s.batches), func(i int) bool { return s.batches[i].Time >= before })
	var dropped []BlockRef
	for _, b := range s.batches[:n] {
		if !b.Completed {
			return nil, fmt.Errorf("%w: batch %d is pending, truncation before %d would drop it", ErrTruncatePending, b.Time, before)
		}
		for _, e := range b.Blocks {
			dropped = append(dropped, e.Ref)
		}
	}
	s.batches = append([]Batch(nil), s.batches[n:]...)
	if len(s.batches) == 0 {
		s.batches = nil
	}
	s.truncatedBefore = before
	return dropped, nil
}

// validate checks what rule 1 requires of the event alone.
// validate checks what rule 8 requires of the event alone.
func (e PartitionAssigned) validate() error {
	switch {
	case len(e.Primaries) == 0:
		return fmt.Errorf("%w: PartitionAssigned with no partition", ErrInvalidEvent)
	case len(e.Backups) != len(e.Primaries):
		return fmt.Errorf("%w: PartitionAssigned with %d primaries and %d backups", ErrInvalidEvent, len(e.Primaries), len(e.Backups))
	}
	for p, node := range e.Primaries {
		if node == "" {
			return fmt.Errorf("%w: PartitionAssigned: partition %d has no primary", ErrInvalidEvent, p)
		}
		if e.Backups[p] == node {
			return fmt.Errorf("%w: PartitionAssigned: partition %d has %s as primary and backup", ErrInvalidEvent, p, node)
		}
	}
	return nil
}

func clonePartitions(e PartitionAssigned) PartitionAssigned {
	e.Primaries = append([]string(nil), e.Primaries...)
	e.Backups = append([]string(nil), e.Backups...)
	return e
}

func (e BlockAdded) validate() error {
	switch {
	case e.Block.Stream == "" || e.Block.Node == "":
		return fmt.Errorf("%w: block %s needs a stream and a node", ErrInvalidEvent, e.Block)
	case e.Records < 0 || e.Bytes < 0:
		return fmt.Errorf("%w: block %s has %d records and %d bytes", ErrInvalidEvent, e.Block, e.Records, e.Bytes)
	}
	ranges := make([]Range, 0, len(e.Requests))
	for _, r := range e.Requests {
		if r.Producer == "" || r.Offset < 0 || r.Count < 0 || r.Offset > e.Records-r.Count {
			return fmt.Errorf("%w: block %s of %d records: request %+v is outside it or has no producer",
				ErrInvalidEvent, e.Block, e.Records, r)
		}
		ranges = append(ranges, Range{r.Offset, r.Count})
	}
	sortRanges(ranges)
	for i := 1; i < len(ranges); i++ {
		if ranges[i].Offset < ranges[i-1].Offset+ranges[i-1].Count {
			return fmt.Errorf("%w: block %s: requests overlap at record %d", ErrInvalidEvent, e.Block, ranges[i].Offset)
		}
	}
	return nil
}

func sortRanges(rs []Range) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Offset < rs[j].Offset })
}

// mergeRanges sorts rs by offset and merges adjacent ranges; nil if empty.
func mergeRanges(rs []Range) []Range {
	if len(rs) == 0 {
		return nil
	}
	sortRanges(rs)
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if last.Offset+last.Count == r.Offset {
			last.Count += r.Count
			continue
		}
		out = append(out, r)
	}
	return out
}

// fsm is the raft.FSM over a state. Raft calls Apply, ApplyBatch, Snapshot
// and Restore from its one FSM goroutine; View is called from any
// goroutine, so the state is guarded by mu (never held across I/O).
type fsm struct {
	logger *slog.Logger
	mu     struct {
		sync.RWMutex
		st *state
	}
	// persisted receives (without blocking) after each snapshot Persist
	// that succeeded; tests wait on it.
	persisted chan struct{}
	// onTruncate, when set, is called after a Truncated entry applied,
	// outside the lock, on raft's FSM goroutine, with the blocks of the
	// batches it dropped (Config.OnTruncate).
	onTruncate func([]BlockRef)
}

var _ raft.BatchingFSM = (*fsm)(nil)

// applyResponse is what the FSM returns to raft for a command entry; Apply
// unpacks it from the future.
type applyResponse struct {
	result Result
	err    error
}

func newFSM(logger *slog.Logger) *fsm {
	f := &fsm{logger: logger, persisted: make(chan struct{}, 1)}
	f.mu.st = newState()
	return f
}

// Apply applies one committed entry.
func (f *fsm) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch decodes the entries outside the lock, then applies them in
// order under one lock. Entries that are not commands get a nil response.
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	events := make([]Event, len(logs))
	out := make([]interface{}, len(logs))
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		ev, err := DecodeEvent(l.Data)
		if err != nil {
			out[i] = f.badEntry(l.Index, err)
			continue
		}
		events[i] = ev
	}
	var dropped []BlockRef
	f.mu.Lock()
	for i, ev := range events {
		if ev != nil {
			res, err := f.mu.st.apply(ev)
			out[i] = applyResponse{res, err}
		}
	}
	dropped, f.mu.st.dropped = f.mu.st.dropped, nil
	f.mu.Unlock()
	if len(dropped) > 0 && f.onTruncate != nil {
		f.onTruncate(dropped)
	}
	return out
}

func (f *fsm) badEntry(index uint64, err error) applyResponse {
	var ce *CorruptionError
	if errors.As(err, &ce) {
		ce.Index = index
	}
	f.logger.Error("recovery: log entry skipped: it changes nothing", "index", index, "err", err)
	return applyResponse{err: fmt.Errorf("log index %d: %w", index, err)}
}

// view returns a deep copy of the state.
func (f *fsm) view() View {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mu.st.view()
}

// Snapshot encodes the state now (Apply waits meanwhile, so it is a
// consistent cut); Persist only writes the bytes.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := encodeSnapshot(f.mu.st)
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{data: b, persisted: f.persisted}, nil
}

// Restore replaces the state with the snapshot's. On error the state is
// unchanged.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := decodeSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.mu.st = st
	f.mu.Unlock()
	return nil
}
