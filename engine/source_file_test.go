package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// fileHarness runs TextFileStream(dir) into a recorder on the manual
// clock. The receiver lists the directory once per block interval of
// the clock; scan moves the clock to the next listing and waits for it,
// batch to the next batch time, so a test decides which listing sees a
// file and which batch holds it.
type fileHarness struct {
	*harness
	fr     *fileReceiver
	out    *recorder[string]
	events eventRecorder
}

func newFileHarness(t *testing.T, dir string, setup func(*fileReceiver), mod ...func(*Config)) *fileHarness {
	t.Helper()
	h := newHarness(t, mod...)
	f := &fileHarness{harness: h, events: newEventRecorder(h.c)}
	f.out = record(TextFileStream(h.c, dir))
	f.fr = h.c.inputs[0].(*receiverStream).recv.(*fileReceiver)
	if setup != nil {
		setup(f.fr)
	}
	h.start()
	f.waitScan()
	return f
}

// waitScan waits for the listing due at the clock's time to complete.
func (f *fileHarness) waitScan() {
	f.t.Helper()
	due := f.clock.Now().Truncate(f.c.cfg.BlockInterval).UnixNano()
	waitFor(f.t.(*testing.T), "the directory listed", func() bool { return f.fr.scannedAt.Load() >= due })
}

// scan moves the clock to the next listing and waits for it.
func (f *fileHarness) scan() {
	f.t.Helper()
	every := f.c.cfg.BlockInterval
	f.clock.Set(f.clock.Now().Truncate(every).Add(every))
	f.waitScan()
}

// settle runs the two listings that read a file written before it.
func (f *fileHarness) settle() { f.scan(); f.scan() }

// batch moves the clock to the next batch time and waits for that batch
// and that listing. Tests settle their files before, so that the listing
// stores nothing the batch could race with.
func (f *fileHarness) batch() {
	f.t.Helper()
	d := f.c.cfg.BatchDuration
	f.clock.Set(f.clock.Now().Truncate(d).Add(d))
	select {
	case b := <-f.done:
		if b.Err != nil {
			f.t.Fatalf("batch %v: %v", b.Time, b.Err)
		}
	case <-time.After(waitTimeout):
		f.t.Fatalf("batch at %v did not complete", TimeOf(f.clock.Now()))
	}
	f.waitScan()
}

// receiverErrors waits for n receiver errors to reach the listeners
// (they are told asynchronously) and returns every one told by then.
func (f *fileHarness) receiverErrors(n int) []lifecycleEvent {
	f.t.Helper()
	return receiverErrors(f.events.wait(f.t, fmt.Sprintf("%d receiver errors", n), func(evs []lifecycleEvent) bool {
		return len(receiverErrors(evs)) >= n
	}))
}

// TestTextFileStreamReadsEachFileOnce checks Spark's textFileStream
// semantics: a new file is read whole into one batch, oldest first, and
// never again although every later listing sees it.
func TestTextFileStreamReadsEachFileOnce(t *testing.T) {
	dir := t.TempDir()
	f := newFileHarness(t, dir, nil)
	old := time.Now().Add(-time.Hour)
	writeTestFile(t, dir, "b.txt", "b1\nb2\n")
	writeTestFile(t, dir, "a.txt", "a1") // no final newline
	if err := os.Chtimes(filepath.Join(dir, "b.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	f.settle()
	f.batch()
	f.batch()
	writeTestFile(t, dir, "c.txt", "c1\n\nc3\n")
	f.settle()
	f.batch()
	f.batch()
	writeTestFile(t, dir, "d.txt", "")
	writeTestFile(t, dir, "e.txt", "e1\n")
	f.settle()
	f.batch()

	checkBatches(t, f.out.get(), [][]string{
		{"b1", "b2", "a1"}, // b.txt is older
		{},
		{"c1", "", "c3"},
		{},
		{"e1"},
	}, true)
	ri := f.c.Receivers()
	// d.txt is empty: no block.
	want := ReceiverInfo{Stream: "dir:" + dir, Operator: 0, Records: 7, Blocks: 4, Running: true}
	if len(ri) != 1 || ri[0] != want {
		t.Errorf("receivers %+v, want [%+v]", ri, want)
	}
	if errs := receiverErrors(f.events.get()); len(errs) != 0 {
		t.Errorf("receiver errors: %v", errs)
	}
}

// TestTextFileStreamIgnoresHiddenFiles checks that names starting with "."
// or "_" are ignored, as Spark ignores them, until renamed into place, and
// that directories are not read.
func TestTextFileStreamIgnoresHiddenFiles(t *testing.T) {
	dir := t.TempDir()
	f := newFileHarness(t, dir, nil)
	writeTestFile(t, dir, ".a.txt", "dot\n")
	writeTestFile(t, dir, "_b.txt", "underscore\n")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "sub"), "c.txt", "nested\n")
	f.settle()
	f.batch()
	renameTestFile(t, dir, ".a.txt", "a.txt")
	f.settle()
	f.batch()
	renameTestFile(t, dir, "_b.txt", "b.txt")
	f.settle()
	f.batch()
	f.batch()
	checkBatches(t, f.out.get(), [][]string{{}, {"dot"}, {"underscore"}, {}}, true)
}

// TestTextFileStreamLines checks that files follow the line rules of the
// line sources: CRLF stripped, empty lines kept, an over-long line
// dropped and reported with its file, its neighbours read.
func TestTextFileStreamLines(t *testing.T) {
	dir := t.TempDir()
	f := newFileHarness(t, dir, nil, func(c *Config) { c.MaxLineBytes = 8 })
	writeTestFile(t, dir, "crlf.txt", "x\r\ny\r\n\r\nlast\r")
	f.settle()
	f.batch()
	path := writeTestFile(t, dir, "long.txt", "ok\r\n"+strings.Repeat("z", 20)+"\r\nfine\n")
	f.settle()
	f.batch()

	checkBatches(t, f.out.get(), [][]string{{"x", "y", "", "last\r"}, {"ok", "fine"}}, true)
	ri := f.c.Receivers()[0]
	if ri.Errors != 1 || !strings.Contains(ri.LastError, path) || !strings.Contains(ri.LastError, ": 20 bytes") {
		t.Errorf("receiver info %+v, want 1 error naming %s and the line's 20 bytes", ri, path)
	}
	errs := f.receiverErrors(1)
	if len(errs) != 1 || !errors.Is(errs[0].err, ErrLineTooLong) || errs[0].stream != "dir:"+dir {
		t.Errorf("receiver errors %v, want one ErrLineTooLong for dir:%s", errs, dir)
	}
}

// TestTextFileStreamRetriesUnreadableFile checks that a file that cannot
// be opened (permission denied) is reported at every listing, stores
// nothing, holds up no other file, and is read once, whole, when it can
// be. The denial is injected at open, so that the test runs as root too.
func TestTextFileStreamRetriesUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	var locked atomic.Bool
	locked.Store(true)
	f := newFileHarness(t, dir, func(fr *fileReceiver) {
		fr.open = func(p string) (io.ReadCloser, error) {
			if filepath.Base(p) == "locked.txt" && locked.Load() {
				return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrPermission}
			}
			return os.Open(p)
		}
	})
	writeTestFile(t, dir, "locked.txt", "secret\n")
	writeTestFile(t, dir, "open.txt", "open\n")
	f.settle() // the second listing tries locked.txt
	f.batch()  // and so does the one at the batch time
	if ri := f.c.Receivers()[0]; ri.Errors != 2 || ri.Records != 1 || !strings.Contains(ri.LastError, "locked.txt") {
		t.Errorf("receiver info %+v, want 2 errors naming locked.txt and 1 record", ri)
	}
	locked.Store(false)
	f.scan()
	f.batch()
	f.batch()

	checkBatches(t, f.out.get(), [][]string{{"open"}, {"secret"}, {}}, true)
	errs := f.receiverErrors(2)
	if len(errs) != 2 {
		t.Fatalf("receiver errors %v, want 2", errs)
	}
	for _, e := range errs {
		if !errors.Is(e.err, fs.ErrPermission) {
			t.Errorf("receiver error %v, want a permission error", e.err)
		}
	}
}

// TestTextFileStreamUnreadableByMode is the real permission case: a file
// with mode 000 is retried until its mode allows reading.
func TestTextFileStreamUnreadableByMode(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads a file with mode 000; TestTextFileStreamRetriesUnreadableFile covers the denial")
	}
	dir := t.TempDir()
	f := newFileHarness(t, dir, nil)
	locked := writeTestFile(t, dir, "locked.txt", "secret\n")
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o644) })
	f.settle()
	f.batch()
	if err := os.Chmod(locked, 0o644); err != nil {
		t.Fatal(err)
	}
	f.scan()
	f.batch()
	checkBatches(t, f.out.get(), [][]string{{}, {"secret"}}, true)
	if errs := f.receiverErrors(2); len(errs) != 2 || !errors.Is(errs[0].err, fs.ErrPermission) {
		t.Errorf("receiver errors %v, want 2 permission errors", errs)
	}
}

// TestTextFileStreamMissingDirectory checks that a directory that cannot
// be listed is reported at every listing, that batches go on, and that
// files are read once it exists.
func TestTextFileStreamMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "incoming")
	f := newFileHarness(t, dir, nil) // the first listing fails
	f.scan()                         // and the second
	ri := f.c.Receivers()[0]
	if ri.Errors != 2 || !strings.Contains(ri.LastError, "listing "+dir) {
		t.Errorf("receiver info %+v, want 2 errors listing %s", ri, dir)
	}
	f.batch() // a third error
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, dir, "a.txt", "a\n")
	f.settle()
	f.batch()

	checkBatches(t, f.out.get(), [][]string{{}, {"a"}}, true)
	errs := f.receiverErrors(3)
	if len(errs) != 3 || !errors.Is(errs[0].err, fs.ErrNotExist) {
		t.Errorf("receiver errors %v, want 3 not-exist errors", errs)
	}
	if ri := f.c.Receivers()[0]; ri.Errors != 3 || ri.Records != 1 {
		t.Errorf("receiver info %+v, want 3 errors and 1 record", ri)
	}
}

// TestTextFileStreamWaitsForAFileToSettle checks that a file whose size
// changes between two listings is not read until a listing finds it as
// the one before did, and is then read whole, once.
func TestTextFileStreamWaitsForAFileToSettle(t *testing.T) {
	dir := t.TempDir()
	f := newFileHarness(t, dir, nil)
	path := writeTestFile(t, dir, "growing.txt", "g1\n")
	f.scan() // seen once
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString("g2\n"); err != nil {
		t.Fatal(err)
	}
	f.scan() // grown: seen again, not read
	if ri := f.c.Receivers()[0]; ri.Records != 0 {
		t.Fatalf("receiver info %+v: a file still growing was read", ri)
	}
	if _, err := fh.WriteString("g3\n"); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	f.scan()
	f.scan() // unchanged since the listing before: read
	f.batch()
	f.batch()
	checkBatches(t, f.out.get(), [][]string{{"g1", "g2", "g3"}, {}}, true)
	if errs := receiverErrors(f.events.get()); len(errs) != 0 {
		t.Errorf("receiver errors: %v", errs)
	}
}

// TestTextFileStreamFileDisappears checks the two ways a file can vanish
// before it is read — between two listings, and between a listing and
// its opening — each reported and skipped, the other files read.
func TestTextFileStreamFileDisappears(t *testing.T) {
	dir := t.TempDir()
	f := newFileHarness(t, dir, func(fr *fileReceiver) {
		fr.open = func(p string) (io.ReadCloser, error) {
			if filepath.Base(p) == "b.txt" {
				os.Remove(p) // removed after the listing, before the open
			}
			return os.Open(p)
		}
	})
	writeTestFile(t, dir, "a.txt", "a\n")
	writeTestFile(t, dir, "b.txt", "b\n")
	writeTestFile(t, dir, "c.txt", "c\n")
	f.scan() // all three seen
	if err := os.Remove(filepath.Join(dir, "a.txt")); err != nil {
		t.Fatal(err)
	}
	f.scan() // a.txt is gone; b.txt goes while it is opened; c.txt is read
	f.batch()
	f.scan()
	f.batch()
	checkBatches(t, f.out.get(), [][]string{{"c"}, {}}, true)
	errs := f.receiverErrors(2)
	if len(errs) != 2 {
		t.Fatalf("receiver errors %v, want 2", errs)
	}
	for i, name := range []string{"a.txt", "b.txt"} {
		if msg := errs[i].err.Error(); !strings.Contains(msg, name) || !strings.Contains(msg, "disappeared") {
			t.Errorf("receiver error %d: %q, want %s disappeared", i, msg, name)
		}
	}
	if ri := f.c.Receivers()[0]; ri.Errors != 2 || ri.Records != 1 {
		t.Errorf("receiver info %+v, want 2 errors and 1 record", ri)
	}
}

// setChunkBytes makes files split into blocks of about n bytes for one
// test.
func setChunkBytes(t *testing.T, n int) {
	old := fileChunkBytes
	fileChunkBytes = n
	t.Cleanup(func() { fileChunkBytes = old })
}

// numberedLines is "<prefix>0".."<prefix>n-1" and the file text holding them.
func numberedLines(prefix string, n int) ([]string, string) {
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf("%s%02d", prefix, i))
	}
	return lines, strings.Join(lines, "\n") + "\n"
}

// TestTextFileStreamLargeFileInChunks checks that a file larger than a
// chunk is stored as several blocks, in order, at positions 1..K.
func TestTextFileStreamLargeFileInChunks(t *testing.T) {
	setChunkBytes(t, 20) // five 4-byte lines a chunk
	dir := t.TempDir()
	f := newFileHarness(t, dir, nil)
	lines, text := numberedLines("L", 12)
	writeTestFile(t, dir, "big.txt", text)
	f.settle()
	f.batch()
	checkBatches(t, f.out.get(), [][]string{lines}, true)
	out := &ReceiverOutput{s: f.c.inputs[0].(*receiverStream)}
	if pos, ok := out.Position("file/dir:" + dir + "/big.txt"); !ok || pos != 3 {
		t.Errorf("position of big.txt = %d, %v; want 3 chunks", pos, ok)
	}
	if ri := f.c.Receivers()[0]; ri.Blocks != 3 || ri.Records != 12 {
		t.Errorf("receiver info %+v, want 3 blocks of 12 records", ri)
	}
}

// TestTextFileStreamCrashBeforeBatchCompleted is the exactly-once check
// across a crash: files are stored (one of them only in part, the crash
// coming between two of its chunks), the context stops without running
// their batch, a file is moved in while nothing runs, and the restarted
// context — its listing finding the stored files in the metadata log —
// counts every line of every file once.
func TestTextFileStreamCrashBeforeBatchCompleted(t *testing.T) {
	setChunkBytes(t, 20)
	data, dir := t.TempDir(), t.TempDir()
	var want []string
	addFile := func(name string, n int) {
		lines, text := numberedLines(name+"-", n)
		writeTestFile(t, dir, name+".txt", text)
		want = append(want, lines...)
	}
	open := func(setup func(*fileReceiver)) *fileHarness {
		return newFileHarness(t, dir, setup, func(c *Config) { c.DataDir = data })
	}

	addFile("a", 3)
	var crashing atomic.Bool
	crash := errors.New("crash")
	f := open(func(fr *fileReceiver) {
		fr.failStore = func(producer string, seq uint64) error {
			if crashing.Load() && strings.HasSuffix(producer, "/c.txt") && seq == 3 {
				return crash
			}
			return nil
		}
	})
	f.settle()
	f.batch() // a.txt is in a completed batch
	addFile("b", 4)
	addFile("c", 12) // three chunks of four lines
	crashing.Store(true)
	f.settle()
	waitFor(t, "b.txt and two chunks of c.txt stored", func() bool { return storedRecords(f.c) == 3+4+8 })
	if e := f.events.waitReceiverError(t, "crash"); !errors.Is(e.err, crash) {
		t.Fatalf("receiver error %v, want the injected crash", e.err)
	}
	f.c.Stop(context.Background(), false) // b and c's blocks stored, no batch ran them
	got := f.out.get()
	addFile("d", 2) // moved in while no context runs

	f2 := open(nil)
	f2.clock.Set(f.clock.Now())
	f2.settle()
	waitFor(t, "the third chunk of c.txt and d.txt stored", func() bool { return storedRecords(f2.c) == 4+2 })
	f2.batch()
	f2.batch()
	got = append(got, f2.out.get()...)
	var flat []string
	for _, b := range got {
		flat = append(flat, b...)
	}
	checkOnce(t, "lines of all files", flat, want)
}
