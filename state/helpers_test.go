package state

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The operator and partitions most tests write to.
const (
	opA = 1
	opB = 2
)

// storeDir is where tests put a store on an in-memory filesystem.
const storeDir = "state"

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// openFS opens (creating it) the store on fs and closes it when the test
// ends.
func openFS(tb testing.TB, fs vfs.FS) *Store {
	tb.Helper()
	s, err := Open(storeDir, Options{FS: fs, CreateIfMissing: true, Logger: quietLogger(), CacheBytes: 8 << 20})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// openMem opens a new store on a fresh in-memory filesystem.
func openMem(tb testing.TB) *Store {
	tb.Helper()
	return openFS(tb, vfs.NewMem())
}

// write is one change of a test batch: a Set of val, or a Delete when del.
type write struct {
	op, part int
	key      string
	val      string
	del      bool
}

func set(op, part int, key, val string) write { return write{op: op, part: part, key: key, val: val} }
func del(op, part int, key string) write      { return write{op: op, part: part, key: key, del: true} }

// writeAll applies ws to b as the engine does: Get first to learn whether
// the key has committed state, then Set or Delete.
func writeAll(tb testing.TB, b *Batch, ws ...write) {
	tb.Helper()
	for _, w := range ws {
		p := b.Part(w.op, w.part)
		_, existed, err := p.Get([]byte(w.key))
		if err != nil {
			tb.Fatalf("batch %d: Get(%d/%d, %q): %v", b.Time(), w.op, w.part, w.key, err)
		}
		if w.del {
			p.Delete([]byte(w.key), existed)
		} else {
			p.Set([]byte(w.key), []byte(w.val), existed)
		}
	}
}

// commit runs batch t through Begin, the writes, WriteDelta and Apply.
func commit(tb testing.TB, s *Store, t int64, ws ...write) {
	tb.Helper()
	b, err := s.Begin(t)
	if err != nil {
		tb.Fatalf("Begin(%d): %v", t, err)
	}
	writeAll(tb, b, ws...)
	if err := b.WriteDelta(); err != nil {
		tb.Fatalf("WriteDelta(%d): %v", t, err)
	}
	if err := b.Apply(); err != nil {
		tb.Fatalf("Apply(%d): %v", t, err)
	}
}

// kv is one key and value as a scan yields them.
type kv struct{ key, val string }

func (x kv) String() string { return fmt.Sprintf("%q=%q", x.key, x.val) }

// collect is what scan yields, in order; scan is the Scan of a Store,
// View or Part bound to one (op, part).
func collect(tb testing.TB, scan func(fn func(k, v []byte) error) error) []kv {
	tb.Helper()
	var out []kv
	if err := scan(func(k, v []byte) error {
		out = append(out, kv{string(k), string(v)})
		return nil
	}); err != nil {
		tb.Fatalf("Scan: %v", err)
	}
	return out
}

// committed is the committed content of (op, part), as Store.Scan sees it.
func committed(tb testing.TB, s *Store, op, part int) map[string]string {
	tb.Helper()
	m := make(map[string]string)
	for _, x := range collect(tb, func(fn func(k, v []byte) error) error { return s.Scan(op, part, fn) }) {
		m[x.key] = x.val
	}
	return m
}

// sortedKVs is m in key order, for readable diffs.
func sortedKVs(m map[string]string) []kv {
	var out []kv
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, kv{k, m[k]})
	}
	return out
}

// checkCommitted fails unless (op, part) holds exactly want, by Scan and
// by Get of every key of want.
func checkCommitted(tb testing.TB, s *Store, op, part int, want map[string]string) {
	tb.Helper()
	if got := committed(tb, s, op, part); !maps.Equal(got, want) {
		tb.Fatalf("committed %d/%d:\n got  %v\n want %v", op, part, sortedKVs(got), sortedKVs(want))
	}
	for k, v := range want {
		got, ok, err := s.Get(op, part, []byte(k))
		if err != nil || !ok || !bytes.Equal(got, []byte(v)) {
			tb.Fatalf("Get(%d/%d, %q) = %q, %v, %v; want %q", op, part, k, got, ok, err, v)
		}
	}
}

// wantErr fails unless errors.Is(err, target).
func wantErr(tb testing.TB, what string, err, target error) {
	tb.Helper()
	if !errors.Is(err, target) {
		tb.Fatalf("%s: got error %v, want one that is %v", what, err, target)
	}
}
