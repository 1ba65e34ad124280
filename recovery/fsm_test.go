package recovery

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// Rule 1 (fsm.go): BlockAdded.
func TestBlockAdded(t *testing.T) {
	st, dup, rej := Stored, Duplicate, Rejected
	cases := []struct {
		name   string
		before []Event
		ev     BlockAdded
		want   []Status
		skip   []Range // of the newest unallocated block
		blocks int     // unallocated blocks after
	}{
		{name: "new_requests_are_stored", ev: block(1, req("a", 1), req("b", 7), req("a", 2)),
			want: []Status{st, st, st}, blocks: 1},
		{name: "producerless_block", ev: BlockAdded{Block: ref(1), Records: 5, Bytes: 50},
			want: []Status{}, blocks: 1},
		{name: "seq_stored_in_an_earlier_block_is_duplicate", before: []Event{block(1, req("a", 1), req("a", 2))},
			ev: block(2, req("a", 2), req("a", 3)), want: []Status{dup, st}, skip: []Range{{0, 1}}, blocks: 2},
		{name: "duplicate_inside_one_block", ev: block(1, req("a", 1), req("a", 1)),
			want: []Status{st, dup}, skip: []Range{{1, 1}}, blocks: 1},
		{name: "older_never_stored_seq_is_rejected", before: []Event{block(1, req("a", 5))},
			ev: block(2, req("a", 3), req("a", 6)), want: []Status{rej, st}, skip: []Range{{0, 1}}, blocks: 2},
		{name: "a_gap_is_allowed_but_not_filled_later", before: []Event{block(1, req("a", 1)), block(2, req("a", 4))},
			ev: block(3, req("a", 2), req("a", 5)), want: []Status{rej, st}, skip: []Range{{0, 1}}, blocks: 3},
		{name: "producers_are_independent", before: []Event{block(1, req("a", 9))},
			ev: block(2, req("b", 1)), want: []Status{st}, blocks: 2},
		{name: "all_duplicate_block_is_recorded_with_everything_skipped", before: []Event{block(1, req("a", 1), req("a", 2))},
			ev: block(2, req("a", 1), req("a", 2)), want: []Status{dup, dup}, skip: []Range{{0, 2}}, blocks: 2},
		{name: "readded_block_changes_nothing", before: []Event{block(1, req("a", 1), req("a", 2))},
			ev: block(1, req("a", 1), req("a", 2)), want: []Status{dup, dup}, blocks: 1},
		{name: "readded_block_keeps_a_rejected_request_rejected", before: []Event{block(1, req("a", 5)), block(2, req("a", 3))},
			ev: block(2, req("a", 3)), want: []Status{rej}, skip: []Range{{0, 1}}, blocks: 2},
		{name: "readded_block_after_its_batch_was_truncated", before: []Event{
			block(1, req("a", 1)), BatchAllocated{Time: 10}, BatchCompleted{Time: 10}, Truncated{Before: 11}},
			ev: block(1, req("a", 1)), want: []Status{dup}, blocks: 0},
		{name: "same_seq_on_another_node_is_another_block", before: []Event{block(1)},
			ev: BlockAdded{Block: BlockRef{"s", "other", 1}, Records: 1}, want: []Status{}, blocks: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newState()
			applyOK(t, s, c.before...)
			res := applyOK(t, s, c.ev)
			got := make([]Status, len(res.Requests))
			for i, o := range res.Requests {
				got[i] = o.Status
				if (o.Status == Rejected) != (o.Reason != "") {
					t.Errorf("request %d: status %v with reason %q", i, o.Status, o.Reason)
				}
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("outcomes %v, want %v", got, c.want)
			}
			if len(s.unallocated) != c.blocks {
				t.Fatalf("%d unallocated blocks, want %d", len(s.unallocated), c.blocks)
			}
			if c.blocks > 0 && !reflect.DeepEqual(s.unallocated[c.blocks-1].Skip, c.skip) {
				t.Errorf("skip %v, want %v", s.unallocated[c.blocks-1].Skip, c.skip)
			}
		})
	}
}

func TestRejectReasonSaysWhy(t *testing.T) {
	s := newState()
	applyOK(t, s, block(1, req("a", 5)))
	res := applyOK(t, s, block(2, req("a", 3)))
	reason := res.Requests[0].Reason
	for _, want := range []string{"sequences must increase", "older than the last acknowledged", "5", "3"} {
		if !strings.Contains(reason, want) {
			t.Errorf("reason %q lacks %q", reason, want)
		}
	}
	if seen, r := s.view().ProducerSeen("a", 3); seen || r != reason {
		t.Errorf("ProducerSeen(a, 3) = %v, %q; want false, %q", seen, r, reason)
	}
	if seen, r := s.view().ProducerSeen("a", 5); !seen || r != "" {
		t.Errorf("ProducerSeen(a, 5) = %v, %q; want true", seen, r)
	}
	if seen, r := s.view().ProducerSeen("a", 6); seen || r != "" {
		t.Errorf("ProducerSeen(a, 6) = %v, %q; want false, no reason", seen, r)
	}
}

// Skipped ranges merge, and the counted records never include a duplicate
// or rejected request; records outside every request count.
func TestSkipAndCounted(t *testing.T) {
	s := newState()
	applyOK(t, s, block(1, req("a", 1), req("a", 2)))
	ev := BlockAdded{Block: ref(2), Records: 10, Requests: []Request{
		{Producer: "a", Seq: 2, Offset: 4, Count: 2}, // duplicate
		{Producer: "a", Seq: 1, Offset: 0, Count: 3}, // duplicate
		{Producer: "a", Seq: 3, Offset: 6, Count: 2}, // stored
		{Producer: "b", Seq: 1, Offset: 3, Count: 1}, // stored
	}}
	applyOK(t, s, ev)
	e := s.unallocated[1]
	if want := []Range{{0, 3}, {4, 2}}; !reflect.DeepEqual(e.Skip, want) {
		t.Errorf("skip %v, want %v", e.Skip, want)
	}
	if e.Counted() != 5 { // 2 + 1 stored, 2 outside requests
		t.Errorf("counted %d, want 5", e.Counted())
	}
}

func TestBlockAddedInvalid(t *testing.T) {
	cases := map[string]BlockAdded{
		"no_stream":          {Block: BlockRef{Node: "n", Seq: 1}},
		"no_node":            {Block: BlockRef{Stream: "s", Seq: 1}},
		"negative_records":   {Block: ref(1), Records: -1},
		"negative_bytes":     {Block: ref(1), Bytes: -1},
		"no_producer":        {Block: ref(1), Records: 1, Requests: []Request{{Seq: 1, Count: 1}}},
		"request_past_end":   {Block: ref(1), Records: 2, Requests: []Request{{Producer: "a", Offset: 1, Count: 2}}},
		"negative_offset":    {Block: ref(1), Records: 2, Requests: []Request{{Producer: "a", Offset: -1, Count: 1}}},
		"negative_count":     {Block: ref(1), Records: 2, Requests: []Request{{Producer: "a", Count: -1}}},
		"overlapping_ranges": {Block: ref(1), Records: 4, Requests: []Request{{Producer: "a", Seq: 1, Offset: 0, Count: 3}, {Producer: "a", Seq: 2, Offset: 2, Count: 2}}},
	}
	for name, ev := range cases {
		t.Run(name, func(t *testing.T) {
			s := newState()
			before := encoded(t, s)
			if _, err := s.apply(ev); !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("err %v, want ErrInvalidEvent", err)
			}
			sameStateBytes(t, s, before)
		})
	}
}

func sameStateBytes(t *testing.T, s *state, want []byte) {
	t.Helper()
	if string(encoded(t, s)) != string(want) {
		t.Fatalf("a refused event changed the state: %+v", s.view())
	}
}

// Rules 2-4 (fsm.go): batches.
func TestBatchEvents(t *testing.T) {
	base := []Event{block(1, req("a", 1)), BatchAllocated{Time: 10}, block(2, req("a", 2)), BatchAllocated{Time: 20}, block(3)}
	cases := []struct {
		name    string
		evs     []Event // after base; the last may fail
		err     error
		batches []int64 // times after
		done    []int64 // completed times after
		unalloc int
	}{
		{name: "allocate_takes_every_unallocated_block", evs: []Event{BatchAllocated{Time: 30}}, batches: []int64{10, 20, 30}},
		{name: "allocate_empty_batch", evs: []Event{BatchAllocated{Time: 30}, BatchAllocated{Time: 40}}, batches: []int64{10, 20, 30, 40}},
		{name: "allocate_existing_is_idempotent", evs: []Event{BatchAllocated{Time: 20}}, batches: []int64{10, 20}, unalloc: 1},
		{name: "allocate_unknown_older_time", evs: []Event{BatchAllocated{Time: 15}}, err: ErrBatchOrder, batches: []int64{10, 20}, unalloc: 1},
		{name: "allocate_time_zero", evs: []Event{BatchAllocated{Time: 0}}, err: ErrBatchOrder, batches: []int64{10, 20}, unalloc: 1},
		{name: "complete_in_order", evs: []Event{BatchCompleted{Time: 10}, BatchCompleted{Time: 20}}, batches: []int64{10, 20}, done: []int64{10, 20}, unalloc: 1},
		{name: "complete_is_idempotent", evs: []Event{BatchCompleted{Time: 10}, BatchCompleted{Time: 10}}, batches: []int64{10, 20}, done: []int64{10}, unalloc: 1},
		{name: "complete_out_of_order", evs: []Event{BatchCompleted{Time: 20}}, err: ErrBatchOrder, batches: []int64{10, 20}, unalloc: 1},
		{name: "complete_unknown", evs: []Event{BatchCompleted{Time: 15}}, err: ErrUnknownBatch, batches: []int64{10, 20}, unalloc: 1},
		{name: "complete_unallocated_future", evs: []Event{BatchCompleted{Time: 30}}, err: ErrUnknownBatch, batches: []int64{10, 20}, unalloc: 1},
		{name: "truncate_drops_completed", evs: []Event{BatchCompleted{Time: 10}, Truncated{Before: 11}}, batches: []int64{20}, unalloc: 1},
		{name: "truncate_is_idempotent", evs: []Event{BatchCompleted{Time: 10}, Truncated{Before: 11}, Truncated{Before: 11}, Truncated{Before: 5}}, batches: []int64{20}, unalloc: 1},
		{name: "truncate_pending", evs: []Event{BatchCompleted{Time: 10}, Truncated{Before: 21}}, err: ErrTruncatePending, batches: []int64{10, 20}, done: []int64{10}, unalloc: 1},
		{name: "truncate_ahead_of_allocations", evs: []Event{BatchCompleted{Time: 10}, BatchCompleted{Time: 20}, Truncated{Before: 30}}, unalloc: 1},
		{name: "allocate_behind_truncation_point", evs: []Event{BatchCompleted{Time: 10}, BatchCompleted{Time: 20}, Truncated{Before: 30}, BatchAllocated{Time: 25}}, err: ErrBatchOrder, unalloc: 1},
		{name: "allocate_at_truncation_point", evs: []Event{BatchCompleted{Time: 10}, BatchCompleted{Time: 20}, Truncated{Before: 30}, BatchAllocated{Time: 30}}, batches: []int64{30}},
		{name: "truncate_everything_completed", evs: []Event{BatchCompleted{Time: 10}, BatchCompleted{Time: 20}, Truncated{Before: 21}}, unalloc: 1},
		{name: "complete_truncated", evs: []Event{BatchCompleted{Time: 10}, Truncated{Before: 11}, BatchCompleted{Time: 10}}, err: ErrUnknownBatch, batches: []int64{20}, unalloc: 1},
		{name: "allocate_truncated", evs: []Event{BatchCompleted{Time: 10}, Truncated{Before: 11}, BatchAllocated{Time: 10}}, err: ErrBatchOrder, batches: []int64{20}, unalloc: 1},
		// Rule 7: fencing by the driver's epoch.
		{name: "driver_started_then_own_epoch_commits", evs: []Event{DriverStarted{Epoch: 5, Node: "n2"}, BatchCompleted{Time: 10, Epoch: 5}}, batches: []int64{10, 20}, done: []int64{10}, unalloc: 1},
		{name: "deposed_driver_cannot_complete", evs: []Event{DriverStarted{Epoch: 5, Node: "n2"}, BatchCompleted{Time: 10, Epoch: 4}}, err: ErrFenced, batches: []int64{10, 20}, unalloc: 1},
		{name: "deposed_driver_cannot_allocate", evs: []Event{DriverStarted{Epoch: 5, Node: "n2"}, BatchAllocated{Time: 30, Epoch: 3}}, err: ErrFenced, batches: []int64{10, 20}, unalloc: 1},
		{name: "deposed_driver_cannot_truncate", evs: []Event{BatchCompleted{Time: 10}, DriverStarted{Epoch: 5, Node: "n2"}, Truncated{Before: 11, Epoch: 4}}, err: ErrFenced, batches: []int64{10, 20}, done: []int64{10}, unalloc: 1},
		{name: "older_driver_cannot_start", evs: []Event{DriverStarted{Epoch: 5, Node: "n2"}, DriverStarted{Epoch: 4, Node: "n1"}}, err: ErrFenced, batches: []int64{10, 20}, unalloc: 1},
		{name: "same_epoch_other_node_cannot_start", evs: []Event{DriverStarted{Epoch: 5, Node: "n2"}, DriverStarted{Epoch: 5, Node: "n1"}}, err: ErrFenced, batches: []int64{10, 20}, unalloc: 1},
		{name: "driver_started_is_idempotent", evs: []Event{DriverStarted{Epoch: 5, Node: "n2"}, DriverStarted{Epoch: 5, Node: "n2"}}, batches: []int64{10, 20}, unalloc: 1},
		{name: "newer_epoch_commits", evs: []Event{DriverStarted{Epoch: 5, Node: "n2"}, BatchAllocated{Time: 30, Epoch: 6}}, batches: []int64{10, 20, 30}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newState()
			applyOK(t, s, base...)
			last := len(c.evs) - 1
			applyOK(t, s, c.evs[:last]...)
			before := encoded(t, s)
			_, err := s.apply(c.evs[last])
			checkState(t, s)
			if !errors.Is(err, c.err) || (err == nil) != (c.err == nil) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			if err != nil {
				sameStateBytes(t, s, before)
			}
			v := s.view()
			checkBatches(t, v, c.batches, c.done)
			if len(v.Unallocated) != c.unalloc {
				t.Errorf("%d unallocated, want %d", len(v.Unallocated), c.unalloc)
			}
		})
	}
}

func checkBatches(t *testing.T, v View, times, done []int64) {
	t.Helper()
	var gotT, gotD []int64
	for _, b := range v.Batches {
		gotT = append(gotT, b.Time)
		if b.Completed {
			gotD = append(gotD, b.Time)
		}
	}
	if !reflect.DeepEqual(gotT, times) || !reflect.DeepEqual(gotD, done) {
		t.Errorf("batches %v completed %v, want %v completed %v", gotT, gotD, times, done)
	}
}

// Blocks go to the first batch allocated after them, in add order, and the
// idempotent re-allocation returns that same batch.
func TestAllocationContents(t *testing.T) {
	s := newState()
	applyOK(t, s, block(1), block(3), block(2))
	res := applyOK(t, s, BatchAllocated{Time: 10})
	applyOK(t, s, block(4))
	again := applyOK(t, s, BatchAllocated{Time: 10})
	if !reflect.DeepEqual(res.Batch, again.Batch) {
		t.Fatalf("re-allocation %+v, first %+v", again.Batch, res.Batch)
	}
	var seqs []uint64
	for _, e := range res.Batch.Blocks {
		seqs = append(seqs, e.Ref.Seq)
	}
	if !reflect.DeepEqual(seqs, []uint64{1, 3, 2}) {
		t.Errorf("batch blocks %v, want add order [1 3 2]", seqs)
	}
	v := s.view()
	if v.LastAllocated != 10 || len(v.Unallocated) != 1 || len(v.Pending()) != 1 {
		t.Errorf("view %+v", v)
	}
}

// Producer tables survive truncation: a retry of a request whose batch is
// long gone is still a Duplicate.
func TestProducersOutliveTruncation(t *testing.T) {
	s := newState()
	applyOK(t, s, block(1, req("a", 1)), BatchAllocated{Time: 10}, BatchCompleted{Time: 10}, Truncated{Before: 11})
	res := applyOK(t, s, block(2, req("a", 1)))
	if res.Requests[0].Status != Duplicate {
		t.Fatalf("retry after truncation: %v", res.Requests[0].Status)
	}
	if v := s.view(); v.TruncatedBefore != 11 || len(v.Batches) != 0 || v.LastCompleted != 10 {
		t.Errorf("view %+v", v)
	}
}

// A View is a copy: applies after it do not change it, and changing it
// does not change the state.
func TestViewIsACopy(t *testing.T) {
	s := newState()
	applyOK(t, s, block(1, req("a", 1), req("a", 1)), BatchAllocated{Time: 10})
	v := s.view()
	v.Batches[0].Blocks[0].Skip[0].Count = 99
	v.Batches[0].Completed = true
	applyOK(t, s, block(2, req("a", 2)), BatchCompleted{Time: 10})
	if s.batches[0].Blocks[0].Skip[0].Count != 1 {
		t.Error("changing a View changed the state")
	}
	if len(v.Unallocated) != 0 {
		t.Error("an apply changed an earlier View")
	}
	if seen, _ := v.ProducerSeen("a", 2); seen {
		t.Error("an apply changed an earlier View's producer table")
	}
}

// Determinism: the same log applied to two fresh states gives the same
// bytes, whatever map order Go picks.
func TestDeterminism(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		evs := randomLog(seed, 300)
		a, b := replayStrict(t, evs), replayStrict(t, evs)
		sameState(t, a, b)
		if !reflect.DeepEqual(a.view(), b.view()) {
			t.Fatalf("seed %d: views differ", seed)
		}
	}
}

// Idempotence: raft restores a snapshot taken after entry k and applies the
// entries from some j ≤ k+1 again; the result equals a single pass.
func TestReplayOnSnapshotIsIdempotent(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		evs := randomLog(seed, 200)
		want := replay(t, nil, evs)
		for k := 0; k <= len(evs); k += 17 {
			snap := restoreState(t, encoded(t, replay(t, nil, evs[:k])))
			for _, j := range []int{0, k / 2, k} {
				got := replay(t, restoreState(t, encoded(t, snap)), evs[j:])
				sameState(t, got, want)
			}
		}
	}
}

func restoreState(t testing.TB, b []byte) *state {
	t.Helper()
	f := newFSM(discardLogger())
	if err := f.Restore(readCloser(b)); err != nil {
		t.Fatal(err)
	}
	return f.mu.st
}

// The FSM as raft drives it: ApplyBatch gives one response per entry, in
// order, skips non-command entries, and equals applying one by one.
func TestFSMApplyBatch(t *testing.T) {
	evs := randomLog(7, 100)
	logs := entries(t, evs)
	logs = append(logs, &raft.Log{Index: 101, Type: raft.LogConfiguration, Data: []byte{1}})
	one, batch := newFSM(discardLogger()), newFSM(discardLogger())
	for _, l := range logs {
		one.Apply(l)
	}
	resps := batch.ApplyBatch(logs)
	if len(resps) != len(logs) || resps[100] != nil {
		t.Fatalf("%d responses, last %v", len(resps), resps[100])
	}
	if _, ok := resps[0].(applyResponse); !ok {
		t.Fatalf("response %T", resps[0])
	}
	sameState(t, one.mu.st, batch.mu.st)
}

// Rule 5: an entry of an unknown type, version, or undecodable payload is
// an error result and changes nothing, without a panic.
func TestFSMBadEntries(t *testing.T) {
	good, _ := EncodeEvent(BatchAllocated{Time: 5})
	cases := []struct {
		name string
		data []byte
		err  error
	}{
		{"unknown_event_type", []byte{eventVersion, 99, 0x80}, ErrUnknownEvent},
		{"reserved_event_type", []byte{eventVersion, byte(typeReceiverAssigned), 0x80}, ErrUnknownEvent},
		{"newer_envelope_version", append([]byte{2}, good[1:]...), ErrEventVersion},
		{"empty_entry", nil, ErrCorrupt},
		{"garbage_payload", []byte{eventVersion, byte(TypeBatchAllocated), 0xc1}, ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFSM(discardLogger())
			f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: good})
			before := encoded(t, f.mu.st)
			resp := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: c.data}).(applyResponse)
			if !errors.Is(resp.err, c.err) {
				t.Fatalf("err %v, want %v", resp.err, c.err)
			}
			if !strings.Contains(resp.err.Error(), "log index 2") {
				t.Errorf("error %q does not name the index", resp.err)
			}
			sameStateBytes(t, f.mu.st, before)
		})
	}
}

// Rule 3's checkpoint references: only one newer than those kept is
// recorded (also on a batch already completed), and only the newest CheckpointsKept stay,
// through a snapshot too. Rule 6 replaces the recorded graph.
func TestCheckpointReferencesAndFingerprint(t *testing.T) {
	s := newState()
	ref := func(t int64) *CheckpointRef {
		return &CheckpointRef{Time: t, Name: fmt.Sprint("ckpt-", t), Sum: uint32(t)}
	}
	evs := []Event{
		BatchAllocated{Time: 10}, BatchCompleted{Time: 10, Checkpoint: ref(5)},
		BatchCompleted{Time: 10, Checkpoint: ref(9)},                           // already completed: ignored
		BatchAllocated{Time: 20}, BatchCompleted{Time: 20, Checkpoint: ref(4)}, // older: ignored
		BatchAllocated{Time: 30}, BatchCompleted{Time: 30, Checkpoint: ref(20)},
		BatchAllocated{Time: 40}, BatchCompleted{Time: 40, Checkpoint: ref(30)},
		FingerprintSet{App: "a", Hash: "h1", Operators: []string{"op 0"}},
		FingerprintSet{App: "a", Hash: "h2", Operators: []string{"op 0", "op 1"}},
	}
	for _, ev := range evs {
		if _, err := s.apply(ev); err != nil {
			t.Fatalf("%#v: %v", ev, err)
		}
	}
	want := []CheckpointRef{*ref(20), *ref(30)}
	if got := stateFromImage(s.image()); len(got.checkpoints) != CheckpointsKept {
		t.Fatalf("kept %d references, want %d", len(got.checkpoints), CheckpointsKept)
	}
	for _, v := range []View{s.view(), stateFromImage(s.image()).view()} {
		if !reflect.DeepEqual(v.Checkpoints, want) {
			t.Errorf("checkpoints %+v, want %+v", v.Checkpoints, want)
		}
		if v.Fingerprint == nil || v.Fingerprint.Hash != "h2" || len(v.Fingerprint.Operators) != 2 {
			t.Errorf("fingerprint %+v, want h2 with 2 operators", v.Fingerprint)
		}
	}
}

// Rule 8: an assignment replaces the previous one; a deposed driver's and
// a malformed one change nothing; it survives a snapshot.
func TestPartitionAssigned(t *testing.T) {
	a := PartitionAssigned{Epoch: 5, Primaries: []string{"n1", "n2", "n3"}, Backups: []string{"n2", "n3", "n1"}}
	b := PartitionAssigned{Epoch: 6, Primaries: []string{"n2", "n2", "n3"}, Backups: []string{"n3", "n3", "n2"}}
	cases := []struct {
		name string
		evs  []Event
		err  error
		want *PartitionAssigned
	}{
		{"first", []Event{a}, nil, &a},
		{"replaced", []Event{a, b}, nil, &b},
		{"idempotent", []Event{a, a}, nil, &a},
		{"deposed_driver", []Event{DriverStarted{Epoch: 6, Node: "n2"}, a}, ErrFenced, nil},
		{"no_partition", []Event{PartitionAssigned{Epoch: 5}}, ErrInvalidEvent, nil},
		{"backups_missing", []Event{PartitionAssigned{Epoch: 5, Primaries: []string{"n1"}}}, ErrInvalidEvent, nil},
		{"no_primary", []Event{PartitionAssigned{Epoch: 5, Primaries: []string{""}, Backups: []string{"n1"}}}, ErrInvalidEvent, nil},
		{"primary_is_backup", []Event{a, PartitionAssigned{Epoch: 5, Primaries: []string{"n1"}, Backups: []string{"n1"}}}, ErrInvalidEvent, &a},
		{"one_node_left", []Event{PartitionAssigned{Epoch: 5, Primaries: []string{"n1"}, Backups: []string{""}}}, nil,
			&PartitionAssigned{Epoch: 5, Primaries: []string{"n1"}, Backups: []string{""}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newState()
			var err error
			for _, ev := range tc.evs {
				_, err = s.apply(ev)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("last event: %v, want %v", err, tc.err)
			}
			if got := s.view().Partitions; !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("assignment %+v, want %+v", got, tc.want)
			}
			restored := restoreState(t, encoded(t, s))
			if got := restored.view().Partitions; !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("after a snapshot %+v, want %+v", got, tc.want)
			}
			ev, err := DecodeEvent(mustEncode(t, tc.evs[len(tc.evs)-1]))
			if err != nil || !reflect.DeepEqual(ev, tc.evs[len(tc.evs)-1]) {
				t.Fatalf("round trip: %+v, %v", ev, err)
			}
		})
	}
}

func mustEncode(t *testing.T, ev Event) []byte {
	t.Helper()
	b, err := EncodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
