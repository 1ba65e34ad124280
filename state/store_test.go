package state

import (
	"fmt"
	"maps"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestOpen checks that Open creates a store only when asked: a lost
// directory must never be silently replaced by an empty store.
func TestOpen(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(fs vfs.FS) // what is on disk before Open
		create  bool
		wantErr error // nil: Open succeeds
	}{
		{name: "missing dir without CreateIfMissing", wantErr: ErrNotExist},
		{name: "empty dir without CreateIfMissing", prepare: func(fs vfs.FS) { fs.MkdirAll(storeDir, 0o755) }, wantErr: ErrNotExist},
		{name: "missing dir with CreateIfMissing", create: true},
		{name: "existing store without CreateIfMissing", prepare: func(fs vfs.FS) {
			s, err := Open(storeDir, Options{FS: fs, CreateIfMissing: true, Logger: quietLogger()})
			if err != nil {
				panic(err)
			}
			s.Close()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			if tc.prepare != nil {
				tc.prepare(fs)
			}
			s, err := Open(storeDir, Options{FS: fs, CreateIfMissing: tc.create, Logger: quietLogger()})
			if tc.wantErr != nil {
				if err == nil {
					s.Close()
				}
				wantErr(t, "Open", err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if applied, err := s.Applied(); err != nil || applied != 0 {
				t.Fatalf("Applied of a new store = %d, %v; want 0", applied, err)
			}
			if s.Dir() != storeDir {
				t.Fatalf("Dir() = %q, want %q", s.Dir(), storeDir)
			}
		})
	}
}

// TestBatchOutOfTurn checks that a batch used out of turn fails with
// ErrBatch and leaves the committed state alone.
func TestBatchOutOfTurn(t *testing.T) {
	cases := []struct {
		name string
		run  func(s *Store) error // returns the error of the call out of turn
	}{
		{name: "WriteDelta of a batch replaced by a second Begin", run: func(s *Store) error {
			b1, _ := s.Begin(2)
			b1.Part(opA, 0).Set([]byte("k"), []byte("b1"), false)
			if _, err := s.Begin(3); err != nil {
				return err
			}
			return b1.WriteDelta()
		}},
		{name: "Apply of a batch replaced by a second Begin", run: func(s *Store) error {
			b1, _ := s.Begin(2)
			b1.Part(opA, 0).Set([]byte("k"), []byte("b1"), false)
			if err := b1.WriteDelta(); err != nil {
				return err
			}
			if _, err := s.Begin(2); err != nil {
				return err
			}
			return b1.Apply()
		}},
		{name: "Apply before WriteDelta", run: func(s *Store) error {
			b, _ := s.Begin(2)
			b.Part(opA, 0).Set([]byte("k"), []byte("b"), false)
			return b.Apply()
		}},
		{name: "WriteDelta after Abort", run: func(s *Store) error {
			b, _ := s.Begin(2)
			b.Part(opA, 0).Set([]byte("k"), []byte("b"), false)
			b.Abort()
			return b.WriteDelta()
		}},
		{name: "Apply twice", run: func(s *Store) error {
			b, _ := s.Begin(2)
			if err := b.WriteDelta(); err != nil {
				return err
			}
			if err := b.Apply(); err != nil {
				return err
			}
			b.Part(opA, 0).Set([]byte("k"), []byte("b"), false)
			return b.Apply()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openMem(t)
			commit(t, s, 1, set(opA, 0, "k", "1"))
			wantErr(t, tc.name, tc.run(s), ErrBatch)
			checkCommitted(t, s, opA, 0, map[string]string{"k": "1"})
		})
	}
}

// TestApplyOfOldBatchFails checks that a batch at or before the applied
// one cannot be applied: Applied would go back while the main keys hold
// the later batch's state, and the engine would then re-run (and apply
// twice) the batches after it.
func TestApplyOfOldBatchFails(t *testing.T) {
	s := openMem(t)
	commit(t, s, 5, set(opA, 0, "k", "5"))
	for _, old := range []int64{5, 4} {
		b, err := s.Begin(old)
		if err == nil {
			b.Part(opA, 0).Set([]byte("k"), []byte("old"), true)
			if err = b.WriteDelta(); err == nil {
				err = b.Apply()
			}
		}
		wantErr(t, fmt.Sprintf("batch %d after batch 5 was applied", old), err, ErrBatch)
		if applied, _ := s.Applied(); applied != 5 {
			t.Fatalf("Applied = %d after running batch %d, want 5", applied, old)
		}
		checkCommitted(t, s, opA, 0, map[string]string{"k": "5"})
	}
}

// TestClosed checks that a closed store refuses writes with ErrClosed,
// and that its read methods, documented as safe at any time, return
// ErrClosed rather than panic.
func TestClosed(t *testing.T) {
	s := openMem(t)
	commit(t, s, 1, set(opA, 0, "k", "1"))
	open, err := s.Begin(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, err = s.Begin(3)
	wantErr(t, "Begin after Close", err, ErrClosed)
	wantErr(t, "WriteDelta of a batch open at Close", open.WriteDelta(), ErrClosed)
	_, err = s.Recover(1)
	wantErr(t, "Recover after Close", err, ErrClosed)

	reads := []struct {
		name   string
		read   func() error
		hasErr bool // the method returns an error: it must be ErrClosed
	}{
		{"Get", func() error { _, _, err := s.Get(opA, 0, []byte("k")); return err }, true},
		{"Scan", func() error { return s.Scan(opA, 0, func(k, v []byte) error { return nil }) }, true},
		{"Applied", func() error { _, err := s.Applied(); return err }, true},
		{"Stats", func() error { s.Stats(); return nil }, false},
	}
	for _, r := range reads {
		t.Run(r.name, func(t *testing.T) {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("%s after Close panicked: %v", r.name, p)
				}
			}()
			if err := r.read(); r.hasErr {
				wantErr(t, r.name+" after Close", err, ErrClosed)
			}
		})
	}
}

// TestKeys checks that Keys(op) counts an operator's committed keys over
// all its partitions through creates, updates and deletes across batches,
// that a batch's count is committed only at Apply, and that it survives a
// reopen.
func TestKeys(t *testing.T) {
	fs := vfs.NewMem()
	s := openFS(t, fs)
	steps := []struct {
		name   string
		writes []write
		wantA  int64
		wantB  int64
	}{
		{name: "creates in two partitions and two operators",
			writes: []write{set(opA, 0, "a", "1"), set(opA, 0, "b", "1"), set(opA, 1, "a", "1"), set(opB, 0, "x", "1")},
			wantA:  3, wantB: 1},
		{name: "updates do not count",
			writes: []write{set(opA, 0, "a", "2"), set(opA, 1, "a", "2")},
			wantA:  3, wantB: 1},
		{name: "deletes and creates in one batch",
			writes: []write{del(opA, 0, "a"), set(opA, 0, "c", "1"), set(opA, 0, "d", "1"), del(opB, 0, "x")},
			wantA:  4, wantB: 0},
		{name: "delete of a missing key does not count",
			writes: []write{del(opA, 0, "missing"), del(opB, 0, "x")},
			wantA:  4, wantB: 0},
		{name: "created and deleted in one batch does not count",
			writes: []write{set(opA, 2, "tmp", "1"), del(opA, 2, "tmp")},
			wantA:  4, wantB: 0},
		{name: "delete then create again of one key",
			writes: []write{del(opA, 0, "c"), set(opA, 0, "c", "again")},
			wantA:  4, wantB: 0},
	}
	for i, st := range steps {
		bt := int64(i + 1)
		b, err := s.Begin(bt)
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, b, st.writes...)
		if err := b.WriteDelta(); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			prev := steps[i-1]
			if a, bb := s.Keys(opA), s.Keys(opB); a != prev.wantA || bb != prev.wantB {
				t.Fatalf("%s: before Apply Keys = %d, %d; want the previous batch's %d, %d", st.name, a, bb, prev.wantA, prev.wantB)
			}
		}
		if err := b.Apply(); err != nil {
			t.Fatal(err)
		}
		if a, bb := s.Keys(opA), s.Keys(opB); a != st.wantA || bb != st.wantB {
			t.Fatalf("%s: Keys(opA), Keys(opB) = %d, %d; want %d, %d", st.name, a, bb, st.wantA, st.wantB)
		}
	}
	var counted int
	for part := range 3 {
		counted += len(committed(t, s, opA, part))
	}
	if last := steps[len(steps)-1]; int64(counted) != last.wantA {
		t.Fatalf("the test is wrong: opA holds %d keys, the steps say %d", counted, last.wantA)
	}
	s.Close()
	s2, err := Open(storeDir, Options{FS: fs, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if a, b := s2.Keys(opA), s2.Keys(opB); a != 4 || b != 0 {
		t.Fatalf("after reopen Keys = %d, %d; want 4, 0", a, b)
	}
}

// TestKeysNotClobberedByOpMeta checks that an operator's metadata cannot
// overwrite the key count the store keeps for it: "keys" is a name the
// engine may well use, and a count read back wrong is silently wrong
// forever after (each batch adds to it).
func TestKeysNotClobberedByOpMeta(t *testing.T) {
	s := openMem(t)
	commit(t, s, 1, set(opA, 0, "a", "1"), set(opA, 0, "b", "1"), set(opA, 0, "c", "1"))
	b, err := s.Begin(2)
	if err != nil {
		t.Fatal(err)
	}
	b.SetOpMeta(opA, "keys", []byte("loaded"))
	if err := b.WriteDelta(); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(); err != nil {
		t.Fatal(err)
	}
	if n := s.Keys(opA); n != 3 {
		t.Fatalf("Keys(opA) = %d after SetOpMeta(opA, %q, ...), want 3", n, "keys")
	}
	if v, ok, err := s.OpMeta(opA, "keys"); err != nil || !ok || string(v) != "loaded" {
		t.Fatalf("OpMeta(opA, keys) = %q, %v, %v; want %q", v, ok, err, "loaded")
	}
}

// TestSlices checks that slices are committed with their batch, and that
// TruncateSlices deletes, at Apply, exactly the slices of its operator at
// times before the given one.
func TestSlices(t *testing.T) {
	s := openMem(t)
	for bt := int64(1); bt <= 5; bt++ {
		b, err := s.Begin(bt)
		if err != nil {
			t.Fatal(err)
		}
		for part := range 2 {
			b.SetSlice(opA, part, []byte(fmt.Sprintf("A%d/%d", bt, part)))
			b.SetSlice(opB, part, []byte(fmt.Sprintf("B%d/%d", bt, part)))
		}
		if err := b.WriteDelta(); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Slice(opA, bt, 0); ok {
			t.Fatalf("slice of batch %d visible before Apply", bt)
		}
		if err := b.Apply(); err != nil {
			t.Fatal(err)
		}
	}
	b, err := s.Begin(6)
	if err != nil {
		t.Fatal(err)
	}
	b.SetSlice(opA, 0, []byte("A6/0"))
	b.TruncateSlices(opA, 2) // a smaller bound: the larger one wins
	b.TruncateSlices(opA, 4)
	if err := b.WriteDelta(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Slice(opA, 1, 0); !ok {
		t.Fatal("TruncateSlices took effect before Apply")
	}
	if err := b.Apply(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		op   int
		t    int64
		part int
		want string // "" for none
	}{
		{"opA before the bound is gone", opA, 1, 0, ""},
		{"opA before the bound, other partition, is gone", opA, 3, 1, ""},
		{"opA at the bound stays", opA, 4, 0, "A4/0"},
		{"opA at the bound, other partition, stays", opA, 4, 1, "A4/1"},
		{"opA after the bound stays", opA, 5, 1, "A5/1"},
		{"opA of the truncating batch stays", opA, 6, 0, "A6/0"},
		{"opB is untouched", opB, 1, 0, "B1/0"},
		{"opB is untouched, last partition", opB, 3, 1, "B3/1"},
		{"never written", opA, 6, 1, ""},
	}
	for _, tc := range cases {
		v, ok, err := s.Slice(tc.op, tc.t, tc.part)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := map[bool]string{true: string(v)}[ok]; got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: Slice(%d, %d, %d) = %q, %v; want %q", tc.name, tc.op, tc.t, tc.part, v, ok, tc.want)
		}
	}
}

// TestOpMeta checks that operator metadata round-trips, is committed with
// its batch, is kept per operator and name, and is overwritten by a later
// batch.
func TestOpMeta(t *testing.T) {
	s := openMem(t)
	b, err := s.Begin(1)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"init": "\x00\x01loaded", "": "empty name", "in": "prefix of init"}
	for name, v := range want {
		b.SetOpMeta(opA, name, []byte(v))
	}
	b.SetOpMeta(opB, "init", []byte("other operator"))
	if err := b.WriteDelta(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.OpMeta(opA, "init"); ok {
		t.Fatal("OpMeta visible before Apply")
	}
	if err := b.Apply(); err != nil {
		t.Fatal(err)
	}
	for name, v := range want {
		got, ok, err := s.OpMeta(opA, name)
		if err != nil || !ok || string(got) != v {
			t.Errorf("OpMeta(opA, %q) = %q, %v, %v; want %q", name, got, ok, err, v)
		}
	}
	if _, ok, _ := s.OpMeta(opA, "missing"); ok {
		t.Error("OpMeta of a name never set was found")
	}
	b, _ = s.Begin(2)
	b.SetOpMeta(opB, "init", []byte("first"))
	b.SetOpMeta(opB, "init", []byte("last write wins"))
	if err := b.WriteDelta(); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.OpMeta(opB, "init"); string(got) != "last write wins" {
		t.Errorf("OpMeta(opB, init) = %q, want the batch's last write", got)
	}
	if got, _, _ := s.OpMeta(opA, "init"); string(got) != want["init"] {
		t.Errorf("OpMeta(opA, init) = %q after opB's was set, want %q", got, want["init"])
	}
}

// TestCheckpoint checks that a checkpoint holds the committed state as of
// its time and opens as a store of its own.
func TestCheckpoint(t *testing.T) {
	fs := vfs.NewMem()
	s := openFS(t, fs)
	commit(t, s, 1, set(opA, 0, "a", "1"), set(opA, 0, "b", "1"))
	if err := s.Checkpoint("ckpt"); err != nil {
		t.Fatal(err)
	}
	commit(t, s, 2, set(opA, 0, "a", "2"), set(opA, 0, "c", "2"))
	c, err := Open("ckpt", Options{FS: fs, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if applied, err := c.Applied(); err != nil || applied != 1 {
		t.Fatalf("checkpoint Applied = %d, %v; want 1", applied, err)
	}
	checkCommitted(t, c, opA, 0, map[string]string{"a": "1", "b": "1"})
	if got := committed(t, s, opA, 0); !maps.Equal(got, map[string]string{"a": "2", "b": "1", "c": "2"}) {
		t.Fatalf("the store after its checkpoint holds %v", sortedKVs(got))
	}
	if err := s.Checkpoint("ckpt"); err == nil {
		t.Fatal("Checkpoint into an existing directory succeeded")
	}
}
