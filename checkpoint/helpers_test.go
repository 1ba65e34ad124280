package checkpoint

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// root is where the tests keep their checkpoints.
const root = "node/checkpoints"

var (
	testMeta = Meta{App: "clicks", Fingerprint: "9f86d081884c7d65", Time: 1764064800000}
	// testFiles is what fakeSource copies: a nested file and an empty one
	// are the shapes a walk gets wrong.
	testFiles = map[string]string{
		"000004.sst":      strings.Repeat("sstable ", 1000),
		"MANIFEST-000001": "manifest",
		"OPTIONS-000003":  "options",
		"empty":           "",
		"sub/nested.log":  "nested",
	}
)

// fakeSource writes files through the FS, as a Pebble DB's Checkpoint
// would.
type fakeSource struct {
	fs    vfs.FS
	files map[string]string
	err   error // returned instead of writing, when set
}

var _ Source = (*fakeSource)(nil)

func (s *fakeSource) Checkpoint(dest string) error {
	if s.err != nil {
		return s.err
	}
	if _, err := s.fs.Stat(dest); err == nil {
		return fmt.Errorf("fake source: %s exists", dest)
	}
	for name, body := range s.files {
		p := joinRel(s.fs, dest, name)
		if err := s.fs.MkdirAll(s.fs.PathDir(p), 0o755); err != nil {
			return err
		}
		if err := writeFile(s.fs, p, []byte(body)); err != nil {
			return err
		}
	}
	return nil
}

// pebbleSource adapts a Pebble DB to Source: DB.Checkpoint takes options,
// so *pebble.DB does not satisfy Source itself.
type pebbleSource struct{ db *pebble.DB }

var _ Source = pebbleSource{}

func (s pebbleSource) Checkpoint(dest string) error {
	return s.db.Checkpoint(dest, pebble.WithFlushedWAL())
}

// quietPebble keeps Pebble's chatter out of the test output.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)           {}
func (quietPebble) Errorf(string, ...any)          {}
func (quietPebble) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

// openPebble opens a Pebble DB in dir on fs, closed when the test ends.
func openPebble(t testing.TB, fs vfs.FS, dir string) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FS: fs, Logger: quietPebble{}})
	if err != nil {
		t.Fatalf("pebble.Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close %s: %v", dir, err)
		}
	})
	return db
}

// mustGet reads key from db and checks its value.
func mustGet(t testing.TB, db *pebble.DB, key, want string) {
	t.Helper()
	v, closer, err := db.Get([]byte(key))
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer closer.Close()
	if string(v) != want {
		t.Fatalf("Get(%q) = %q, want %q", key, v, want)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openDir opens the checkpoint directory root on fs.
func openDir(t testing.TB, fs vfs.FS, opts Options) *Dir {
	t.Helper()
	opts.FS = fs
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	d, err := Open(root, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", root, err)
	}
	return d
}

// mustWrite writes a checkpoint of the fake source's files at m.
func mustWrite(t testing.TB, d *Dir, fs vfs.FS, m Meta) Ref {
	t.Helper()
	ref, err := d.Write(&fakeSource{fs: fs, files: testFiles}, m)
	if err != nil {
		t.Fatalf("Write(%+v): %v", m, err)
	}
	return ref
}

// mustVerify verifies ref against testMeta's app and fingerprint.
func mustVerify(t testing.TB, d *Dir, ref Ref) Manifest {
	t.Helper()
	m, err := d.Verify(ref, Meta{App: testMeta.App, Fingerprint: testMeta.Fingerprint})
	if err != nil {
		t.Fatalf("Verify(%s): %v", ref.Name, err)
	}
	return m
}

// at returns testMeta at batch time ms.
func at(ms int64) Meta { m := testMeta; m.Time = ms; return m }

// readFile returns the contents of name.
func readFile(t testing.TB, fs vfs.FS, name string) []byte {
	t.Helper()
	b, err := readAll(fs, name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

// rewrite replaces name's contents with what edit returns.
func rewrite(t testing.TB, fs vfs.FS, name string, edit func([]byte) []byte) {
	t.Helper()
	b := edit(slices.Clone(readFile(t, fs, name)))
	if err := writeFile(fs, name, b); err != nil {
		t.Fatalf("rewrite %s: %v", name, err)
	}
}

// flipAt returns an edit that flips the low bit of byte i.
func flipAt(i int) func([]byte) []byte {
	return func(b []byte) []byte { b[i] ^= 1; return b }
}

// truncateBy returns an edit that drops the last n bytes.
func truncateBy(n int) func([]byte) []byte {
	return func(b []byte) []byte { return b[:len(b)-n] }
}

// list returns the sorted entries of dir, or nil if it does not exist.
func list(t testing.TB, fs vfs.FS, dir string) []string {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil && !isNotExist(err) {
		t.Fatalf("list %s: %v", dir, err)
	}
	slices.Sort(names)
	return names
}
