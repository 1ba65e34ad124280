package engine

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeTestFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func renameTestFile(t testing.TB, dir, from, to string) {
	t.Helper()
	if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
		t.Fatal(err)
	}
}

// fileStreamHarness is a harness running TextFileStream(dir) into a
// recorder, with a listener for receiver errors.
func fileStreamHarness(t *testing.T, dir string, mod ...func(*Config)) (*harness, *recorder[string], eventRecorder) {
	t.Helper()
	h := newHarness(t, mod...)
	events := newEventRecorder(h.c)
	out := record(TextFileStream(h.c, dir))
	h.start()
	return h, out, events
}

// TestTextFileStreamReadsEachFileOnce checks Spark's textFileStream
// semantics: the files in the directory at a batch time are read whole
// into that batch, oldest first, and never again although every later
// batch lists the directory again.
func TestTextFileStreamReadsEachFileOnce(t *testing.T) {
	dir := t.TempDir()
	h, out, events := fileStreamHarness(t, dir)
	old := time.Now().Add(-time.Hour)
	writeTestFile(t, dir, "b.txt", "b1\nb2\n")
	writeTestFile(t, dir, "a.txt", "a1") // no final newline
	if err := os.Chtimes(filepath.Join(dir, "b.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	h.run(2)
	writeTestFile(t, dir, "c.txt", "c1\n\nc3\n")
	h.run(2)
	writeTestFile(t, dir, "d.txt", "")
	writeTestFile(t, dir, "e.txt", "e1\n")
	h.run(1)

	checkBatches(t, out.get(), [][]string{
		{"b1", "b2", "a1"}, // b.txt is older
		{},
		{"c1", "", "c3"},
		{},
		{"e1"},
	}, true)
	ri := h.c.Receivers()
	want := ReceiverInfo{Stream: "dir:" + dir, Operator: 0, Records: 7, Blocks: 5, Running: true}
	if len(ri) != 1 || ri[0] != want {
		t.Errorf("receivers %+v, want [%+v]", ri, want)
	}
	if errs := receiverErrors(events.get()); len(errs) != 0 {
		t.Errorf("receiver errors: %v", errs)
	}
}

// TestTextFileStreamIgnoresHiddenFiles checks that names starting with "."
// or "_" are ignored, as Spark ignores them, until renamed into place, and
// that directories are not read.
func TestTextFileStreamIgnoresHiddenFiles(t *testing.T) {
	dir := t.TempDir()
	h, out, _ := fileStreamHarness(t, dir)
	writeTestFile(t, dir, ".a.txt", "dot\n")
	writeTestFile(t, dir, "_b.txt", "underscore\n")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "sub"), "c.txt", "nested\n")
	h.run(1)
	renameTestFile(t, dir, ".a.txt", "a.txt")
	h.run(1)
	renameTestFile(t, dir, "_b.txt", "b.txt")
	h.run(2)
	checkBatches(t, out.get(), [][]string{{}, {"dot"}, {"underscore"}, {}}, true)
}

// TestTextFileStreamLines checks that files follow the line rules of the
// line sources: CRLF stripped, empty lines kept, an over-long line
// dropped and reported with its file, its neighbours read.
func TestTextFileStreamLines(t *testing.T) {
	dir := t.TempDir()
	h, out, events := fileStreamHarness(t, dir, func(c *Config) { c.MaxLineBytes = 8 })
	writeTestFile(t, dir, "crlf.txt", "x\r\ny\r\n\r\nlast\r")
	h.run(1)
	path := writeTestFile(t, dir, "long.txt", "ok\r\n"+strings.Repeat("z", 20)+"\r\nfine\n")
	h.run(1)

	checkBatches(t, out.get(), [][]string{{"x", "y", "", "last\r"}, {"ok", "fine"}}, true)
	ri := h.c.Receivers()[0]
	if ri.Errors != 1 || !strings.Contains(ri.LastError, path) || !strings.Contains(ri.LastError, ": 20 bytes") {
		t.Errorf("receiver info %+v, want 1 error naming %s and the line's 20 bytes", ri, path)
	}
	errs := receiverErrors(events.get())
	if len(errs) != 1 || !errors.Is(errs[0].err, ErrLineTooLong) || errs[0].stream != "dir:"+dir {
		t.Errorf("receiver errors %v, want one ErrLineTooLong for dir:%s", errs, dir)
	}
}

// TestTextFileStreamRetriesUnreadableFile checks that a file that cannot
// be read is reported at every batch and read once it can be.
func TestTextFileStreamRetriesUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads a file with mode 000")
	}
	dir := t.TempDir()
	h, out, events := fileStreamHarness(t, dir)
	locked := writeTestFile(t, dir, "locked.txt", "secret\n")
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o644) })
	writeTestFile(t, dir, "open.txt", "open\n")
	h.run(2)
	if ri := h.c.Receivers()[0]; ri.Errors != 2 || !strings.Contains(ri.LastError, "locked.txt") {
		t.Errorf("receiver info %+v, want 2 errors naming locked.txt", ri)
	}
	if err := os.Chmod(locked, 0o644); err != nil {
		t.Fatal(err)
	}
	h.run(2)

	checkBatches(t, out.get(), [][]string{{"open"}, {}, {"secret"}, {}}, true)
	errs := receiverErrors(events.get())
	if len(errs) != 2 {
		t.Fatalf("receiver errors %v, want 2", errs)
	}
	for _, e := range errs {
		if !errors.Is(e.err, fs.ErrPermission) {
			t.Errorf("receiver error %v, want a permission error", e.err)
		}
	}
}

// TestTextFileStreamMissingDirectory checks that a directory that cannot
// be listed is reported at every batch, that batches go on, and that
// files are read once it exists.
func TestTextFileStreamMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "incoming")
	h, out, events := fileStreamHarness(t, dir)
	h.run(2)
	ri := h.c.Receivers()[0]
	if ri.Errors != 2 || !strings.Contains(ri.LastError, "listing "+dir) {
		t.Errorf("receiver info %+v, want 2 errors listing %s", ri, dir)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, dir, "a.txt", "a\n")
	h.run(1)

	checkBatches(t, out.get(), [][]string{{}, {}, {"a"}}, true)
	errs := receiverErrors(events.get())
	if len(errs) != 2 || !errors.Is(errs[0].err, fs.ErrNotExist) {
		t.Errorf("receiver errors %v, want 2 not-exist errors", errs)
	}
	if ri := h.c.Receivers()[0]; ri.Errors != 2 || ri.Records != 1 {
		t.Errorf("receiver info %+v, want 2 errors and 1 record", ri)
	}
}
