package wal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// walFault injects errorfs.ErrInjected into one kind of operation on
// Pebble's WAL files once armed, as a disk that starts failing would.
type walFault struct {
	kinds []errorfs.OpKind
	armed atomic.Bool
}

func (f *walFault) String() string { return fmt.Sprintf("walFault%v", f.kinds) }

func (f *walFault) MaybeError(op errorfs.Op) error {
	if f.armed.Load() && isWALFile(op.Path) {
		for _, k := range f.kinds {
			if op.Kind == k {
				return errorfs.ErrInjected
			}
		}
	}
	return nil
}

// TestIOErrorFailsTheLog injects a write or sync error into Pebble's WAL
// while an appender runs: the failing Appends and every later one return
// ErrFailed wrapping the cause, the failure is logged once at error level,
// Stats reports it, and every block acknowledged before it survives a crash.
func TestIOErrorFailsTheLog(t *testing.T) {
	cases := []struct {
		name  string
		kinds []errorfs.OpKind
	}{
		{"sync_error", []errorfs.OpKind{errorfs.OpFileSync, errorfs.OpFileSyncData}},
		{"write_error", []errorfs.OpKind{errorfs.OpFileWrite, errorfs.OpFileWriteAt}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			fault := &walFault{kinds: c.kinds}
			logs := &recordingHandler{}
			l := openLog(t, errorfs.Wrap(mem, fault), "wal", slog.New(logs))
			before := appendConcurrently(t, l, 4, 10)

			// One appender while the fault strikes: a second commit racing
			// the first failure may meet Pebble's other reaction to a
			// failed WAL, a bare panic inside its commit pipeline with
			// the pipeline's lock held, which ends the process (see
			// doc.go). Nothing is acknowledged after the failure either
			// way; this test checks the path that returns an error.
			acked := &ackedBlocks{}
			errs := make(chan error, 1)
			var wg sync.WaitGroup
			for w := range 1 {
				wg.Go(func() { errs <- appendUntilError(l, fmt.Sprintf("late%d", w), acked) })
			}
			for acked.len() < 20 {
				acked.waitForMore()
			}
			fault.armed.Store(true)
			wg.Wait()
			close(errs)
			for err := range errs {
				checkFailed(t, err)
			}
			fault.armed.Store(false) // the disk recovers; the log must not
			checkFailed(t, l.Append(testBlock("s", "after", 0, 1)))
			_, err := l.Read(before[0].ID)
			checkFailed(t, err)
			checkFailed(t, l.Delete([]BlockID{before[0].ID}))
			t.Logf("Append after the fault: %v", l.Append(testBlock("s", "after", 1, 1)))

			acks := append(before, acked.snapshot()...)
			if s := l.Stats(); !s.Failed || !strings.Contains(s.LastError, "injected error") || s.Blocks != uint64(len(acks)) {
				t.Errorf("Stats() = %+v, want Failed, the cause, and %d blocks", s, len(acks))
			}
			if errs := logs.atLevel(slog.LevelError); len(errs) != 1 || !strings.Contains(errs[0], "injected error") {
				t.Errorf("error-level log lines = %q, want one naming the cause", errs)
			}
			if err := l.Close(); err != nil {
				t.Logf("Close of the failed log: %v", err)
			}

			crashed := mem.CrashClone(vfs.CrashCloneCfg{})
			r := openLog(t, crashed, "wal", quietLogger())
			for _, b := range acks {
				mustRead(t, r, b)
			}
		})
	}
}

// appendUntilError appends blocks of node until an Append fails, records
// those acknowledged, and returns the failure.
func appendUntilError(l *Log, node string, acked *ackedBlocks) error {
	for seq := uint64(0); ; seq++ {
		b := testBlock("s", node, seq, 20)
		if err := l.Append(b); err != nil {
			return err
		}
		acked.add(b)
	}
}

// checkFailed checks err is a failure of the log wrapping the injected
// cause.
func checkFailed(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrFailed) || !errors.Is(err, errorfs.ErrInjected) {
		t.Errorf("err = %v, want ErrFailed wrapping errorfs.ErrInjected", err)
	}
}

func TestSecondOpenOfADirectoryFails(t *testing.T) {
	cases := []struct {
		name string
		fs   vfs.FS
		dir  string
	}{
		{"real_disk", vfs.Default, t.TempDir()},
		{"mem", vfs.NewMem(), "wal"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			openLog(t, c.fs, c.dir, quietLogger())
			_, err := Open(c.dir, Options{FS: c.fs, Logger: quietLogger()})
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "another process holds the directory") {
				t.Fatalf("second Open = %v, want ErrLocked", err)
			}
			t.Logf("second Open: %v", err)
		})
	}
}

// TestOpenHeldByAnotherProcess runs this test binary again as a second
// process, which must fail to open the directory this process holds.
func TestOpenHeldByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	openLog(t, vfs.Default, dir, quietLogger())
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOpenDir$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SLUICE_WAL_HELPER_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "ErrLocked: wal: another process holds the directory") {
		t.Fatalf("helper process opened a directory another process holds:\n%s", out)
	}
}

// TestHelperOpenDir is the second process of TestOpenHeldByAnotherProcess.
func TestHelperOpenDir(t *testing.T) {
	dir := os.Getenv("SLUICE_WAL_HELPER_DIR")
	if dir == "" {
		t.Skip("helper for TestOpenHeldByAnotherProcess")
	}
	l, err := Open(dir, Options{Logger: quietLogger()})
	if err == nil {
		_ = l.Close()
		t.Fatal("opened a directory another process holds")
	}
	if errors.Is(err, ErrLocked) {
		fmt.Println("ErrLocked:", err)
	}
}

func TestOpenUnwritableDirectory(t *testing.T) {
	t.Run("read_only_dir", func(t *testing.T) {
		if os.Geteuid() == 0 {
			runAsNobody(t, "^TestHelperOpenReadOnlyDir$")
			return
		}
		dir := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		checkNotWritable(t, vfs.Default, dir)
	})
	t.Run("injected_permission_error", func(t *testing.T) {
		denied := errorfs.InjectorFunc(func(op errorfs.Op) error {
			if op.Kind == errorfs.OpLock || op.Kind == errorfs.OpCreate {
				return &os.PathError{Op: "open", Path: op.Path, Err: syscall.EACCES}
			}
			return nil
		})
		checkNotWritable(t, errorfs.Wrap(vfs.NewMem(), denied), "wal")
	})
}

func checkNotWritable(t *testing.T, fs vfs.FS, dir string) {
	t.Helper()
	l, err := Open(dir, Options{FS: fs, Logger: quietLogger()})
	if err == nil {
		_ = l.Close()
		t.Fatal("Open of an unwritable directory succeeded")
	}
	if errors.Is(err, ErrLocked) || !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("Open = %v, want a permission error saying the directory is not writable", err)
	}
	t.Logf("Open: %v", err)
}

// runAsNobody runs the test named by pattern in a copy of this test binary
// as uid 65534, since root may write to a read-only directory. The test
// gets a directory it may read and not write, in SLUICE_WAL_RO_DIR.
func runAsNobody(t *testing.T, pattern string) {
	base, err := os.MkdirTemp("", "wal-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	bin, ro := filepath.Join(base, "wal.test"), filepath.Join(base, "ro")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{os.Chmod(base, 0o755), os.WriteFile(bin, self, 0o755), os.Mkdir(ro, 0o555)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run="+pattern, "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "SLUICE_WAL_RO_DIR="+ro)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(err.Error(), "operation not permitted") {
		t.Skipf("cannot run as another user here: %v", err)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: "+strings.Trim(pattern, "^$")) {
		t.Fatalf("%s as uid 65534: %v\n%s", pattern, err, out)
	}
	t.Logf("as uid 65534:\n%s", out)
}

// TestHelperOpenReadOnlyDir is the unprivileged half of
// TestOpenUnwritableDirectory/read_only_dir.
func TestHelperOpenReadOnlyDir(t *testing.T) {
	dir := os.Getenv("SLUICE_WAL_RO_DIR")
	if dir == "" {
		t.Skip("helper for TestOpenUnwritableDirectory")
	}
	checkNotWritable(t, vfs.Default, dir)
}
