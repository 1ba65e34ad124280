package state

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	corruptBatches = 3
	corruptKeys    = 4000 // per batch: enough for many blocks per sstable
)

func corruptValue(k int) string { return fmt.Sprintf("value-%06d-%s", k, strings.Repeat("x", 64)) }

// writeCorruptible writes a store on the real filesystem, closes it, and
// opens and closes it again so that everything is in sstables (Open
// flushes what it replays from the WAL).
func writeCorruptible(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir, Options{CreateIfMissing: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for bt := int64(1); bt <= corruptBatches; bt++ {
		b, err := s.Begin(bt)
		if err != nil {
			t.Fatal(err)
		}
		p := b.Part(opA, 0)
		for k := int(bt-1) * corruptKeys; k < int(bt)*corruptKeys; k++ {
			p.Set([]byte(fmt.Sprintf("k%06d", k)), []byte(corruptValue(k)), false)
		}
		if err := b.WriteDelta(); err != nil {
			t.Fatal(err)
		}
		if err := b.Apply(); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s, err = Open(dir, Options{Logger: quietLogger()}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	return dir
}

// storeFiles returns the files of dir whose names match pattern; for the
// MANIFEST, only the current one.
func storeFiles(t *testing.T, dir, pattern string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(names) == 0 {
		t.Fatalf("no %s in %s (%v): the test needs to be updated to the store's layout", pattern, dir, err)
	}
	if pattern != "MANIFEST-*" {
		return names
	}
	markers, _ := filepath.Glob(filepath.Join(dir, "marker.manifest.*"))
	if len(markers) != 1 {
		t.Fatalf("want one manifest marker in %s, found %v", dir, markers)
	}
	parts := strings.SplitN(filepath.Base(markers[0]), ".", 4)
	return []string{filepath.Join(dir, parts[3])}
}

func flipMiddle(t *testing.T, name string) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	mid := len(b) / 2
	for i := mid; i < min(mid+16, len(b)); i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func truncateHalf(t *testing.T, name string) {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(name, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptStore damages the files of a closed store and checks that
// the damage is reported, by Open or by a read, and never turns into
// wrong data: a read that succeeds returns what was written.
func TestCorruptStore(t *testing.T) {
	cases := []struct {
		name    string
		pattern string
		damage  func(t *testing.T, name string)
		// wantCorrupt: the error must be ErrCorrupt, not only an error.
		wantCorrupt bool
	}{
		{name: "sstable bytes flipped in the middle", pattern: "*.sst", damage: flipMiddle, wantCorrupt: true},
		{name: "sstable truncated to half", pattern: "*.sst", damage: truncateHalf, wantCorrupt: true},
		{name: "sstable removed", pattern: "*.sst", damage: func(t *testing.T, name string) { os.Remove(name) }, wantCorrupt: true},
		{name: "MANIFEST bytes flipped in the middle", pattern: "MANIFEST-*", damage: flipMiddle, wantCorrupt: true},
		{name: "MANIFEST truncated to half", pattern: "MANIFEST-*", damage: truncateHalf, wantCorrupt: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeCorruptible(t)
			for _, name := range storeFiles(t, dir, tc.pattern) {
				tc.damage(t, name)
			}
			err := readAllCorrupt(t, dir)
			if err == nil {
				t.Fatal("the damage went unnoticed: every read returned the data written")
			}
			t.Logf("reported as: %v (ErrCorrupt: %v)", err, errors.Is(err, ErrCorrupt))
			if errors.Is(err, ErrNotExist) {
				// A caller would take the store for absent and create
				// an empty one: the very loss CreateIfMissing guards.
				t.Fatalf("a damaged store reported as missing: %v", err)
			}
			if tc.wantCorrupt && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want an error that is ErrCorrupt", err)
			}
		})
	}
}

// readAllCorrupt opens dir and reads back everything writeCorruptible
// wrote. It returns the first error Open or a read returns, and fails the
// test on a read that returns wrong data without an error.
func readAllCorrupt(t *testing.T, dir string) error {
	t.Helper()
	s, err := Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		return fmt.Errorf("Open: %w", err)
	}
	defer s.Close()
	if applied, err := s.Applied(); err != nil {
		return err
	} else if applied != corruptBatches {
		t.Fatalf("silently wrong: Applied = %d, want %d", applied, corruptBatches)
	}
	var firstErr error
	for k := range corruptBatches * corruptKeys {
		key := fmt.Sprintf("k%06d", k)
		v, ok, err := s.Get(opA, 0, []byte(key))
		switch {
		case err != nil:
			firstErr = cmpErr(firstErr, fmt.Errorf("Get: %w", err))
		case !ok || !bytes.Equal(v, []byte(corruptValue(k))):
			t.Fatalf("silently wrong: Get(%q) = %.20q, %v", key, v, ok)
		}
	}
	next := 0
	err = s.Scan(opA, 0, func(k, v []byte) error {
		if want := fmt.Sprintf("k%06d", next); string(k) != want || string(v) != corruptValue(next) {
			t.Fatalf("silently wrong: Scan yielded %q, want %q", k, want)
		}
		next++
		return nil
	})
	if err == nil && next != corruptBatches*corruptKeys {
		t.Fatalf("silently wrong: Scan yielded %d keys, want %d", next, corruptBatches*corruptKeys)
	}
	if err != nil {
		firstErr = cmpErr(firstErr, fmt.Errorf("Scan: %w", err))
	}
	if n := s.Keys(opA); firstErr == nil && n != corruptBatches*corruptKeys {
		t.Fatalf("silently wrong: Keys = %d, want %d", n, corruptBatches*corruptKeys)
	}
	return firstErr
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
