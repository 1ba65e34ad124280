package recovery

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// Tests in the manner of raft-boltdb's bolt_store_test.go: the contract of
// raft.LogStore and raft.StableStore.

func memStore(t *testing.T) *PebbleStore {
	t.Helper()
	s, err := OpenPebbleStore("raft", vfs.NewMem(), discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testLog(idx uint64, data string) *raft.Log {
	return &raft.Log{Index: idx, Term: idx / 3, Type: raft.LogCommand, Data: []byte(data),
		Extensions: []byte("ext"), AppendedAt: time.Unix(1700000000, int64(idx))}
}

func indexes(t *testing.T, s *PebbleStore) (uint64, uint64) {
	t.Helper()
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return first, last
}

func TestPebbleStoreEmpty(t *testing.T) {
	s := memStore(t)
	if first, last := indexes(t, s); first != 0 || last != 0 {
		t.Fatalf("empty store: first %d last %d", first, last)
	}
	var l raft.Log
	if err := s.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog on empty: %v", err)
	}
}

func TestPebbleStoreLogs(t *testing.T) {
	s := memStore(t)
	if err := s.StoreLog(testLog(1, "one")); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs([]*raft.Log{testLog(2, "two"), testLog(3, "three"), testLog(4, "")}); err != nil {
		t.Fatal(err)
	}
	if first, last := indexes(t, s); first != 1 || last != 4 {
		t.Fatalf("first %d last %d, want 1 4", first, last)
	}
	for i, data := range []string{"one", "two", "three", ""} {
		var got raft.Log
		if err := s.GetLog(uint64(i+1), &got); err != nil {
			t.Fatal(err)
		}
		want := testLog(uint64(i+1), data)
		if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
			!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
			!got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("index %d: got %+v want %+v", i+1, got, want)
		}
	}
	var got raft.Log
	if err := s.GetLog(5, &got); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog past the end: %v", err)
	}
}

// raft may store entries with a gap (after installing a snapshot).
func TestPebbleStoreGap(t *testing.T) {
	s := memStore(t)
	if err := s.StoreLogs([]*raft.Log{testLog(1, "a"), testLog(1000, "b")}); err != nil {
		t.Fatal(err)
	}
	if first, last := indexes(t, s); first != 1 || last != 1000 {
		t.Fatalf("first %d last %d", first, last)
	}
}

func TestPebbleStoreDeleteRange(t *testing.T) {
	s := memStore(t)
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, testLog(i, "x"))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 4); err != nil {
		t.Fatal(err)
	}
	if first, last := indexes(t, s); first != 5 || last != 10 {
		t.Fatalf("after DeleteRange(1,4): first %d last %d", first, last)
	}
	var l raft.Log
	if err := s.GetLog(4, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("deleted entry: %v", err)
	}
	if err := s.DeleteRange(8, math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	if first, last := indexes(t, s); first != 5 || last != 7 {
		t.Fatalf("after DeleteRange(8,max): first %d last %d", first, last)
	}
	if err := s.DeleteRange(5, 7); err != nil {
		t.Fatal(err)
	}
	if first, last := indexes(t, s); first != 0 || last != 0 {
		t.Fatalf("after deleting all: first %d last %d", first, last)
	}
}

func TestPebbleStoreStable(t *testing.T) {
	s := memStore(t)
	if _, err := s.Get([]byte("k")); !errors.Is(err, ErrKeyNotFound) || err.Error() != "not found" {
		t.Fatalf("Get missing: %v (raft needs exactly \"not found\")", err)
	}
	if _, err := s.GetUint64([]byte("n")); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("GetUint64 missing: %v", err)
	}
	if err := s.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("Get: %q %v", v, err)
	}
	if err := s.SetUint64([]byte("n"), math.MaxUint64-1); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetUint64([]byte("n")); err != nil || v != math.MaxUint64-1 {
		t.Fatalf("GetUint64: %d %v", v, err)
	}
	// Stable keys never show up as log entries.
	if first, last := indexes(t, s); first != 0 || last != 0 {
		t.Fatalf("stable keys seen as log: first %d last %d", first, last)
	}
	if err := s.Set([]byte("k"), []byte("w")); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get([]byte("k")); string(v) != "w" {
		t.Fatalf("overwrite: %q", v)
	}
}

// What was stored survives a close and reopen (on the same filesystem).
func TestPebbleStoreReopen(t *testing.T) {
	fs := vfs.NewMem()
	s, err := OpenPebbleStore("raft", fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs([]*raft.Log{testLog(1, "a"), testLog(2, "b")}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("term"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s, err = OpenPebbleStore("raft", fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if first, last := indexes(t, s); first != 1 || last != 2 {
		t.Fatalf("after reopen: first %d last %d", first, last)
	}
	if n, err := s.GetUint64([]byte("term")); err != nil || n != 7 {
		t.Fatalf("term after reopen: %d %v", n, err)
	}
}

// A synced write survives a crash: StoreLogs is durable when it returns,
// all its entries or none.
func TestPebbleStoreCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s, err := OpenPebbleStore("raft", fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs([]*raft.Log{testLog(1, "a"), testLog(2, "b"), testLog(3, "c")}); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	_ = s.Close()
	s, err = OpenPebbleStore("raft", crashed, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if first, last := indexes(t, s); first != 1 || last != 3 {
		t.Fatalf("after crash: first %d last %d, want 1 3", first, last)
	}
}

// A value that is not a log record is corruption naming the index.
func TestPebbleStoreBadValue(t *testing.T) {
	s := memStore(t)
	if err := s.db.Set(logKey(5), []byte{9, 1, 2}, nil); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	err := s.GetLog(5, &l)
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Index != 5 {
		t.Fatalf("err %v, want corruption at index 5", err)
	}
}
