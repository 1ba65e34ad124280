package checkpoint

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// crashPoints wraps a crashable MemFS and takes a crash image before every
// call that changes something under prefix: each image is a state the disk
// could be in if the process died at that point of a Write.
type crashPoints struct {
	vfs.FS
	mem    *vfs.MemFS
	prefix string
	cfg    vfs.CrashCloneCfg

	mu     sync.Mutex
	images []crashImage
}

type crashImage struct {
	at string // the call about to run, e.g. "Rename node/checkpoints/ckpt-….tmp"
	fs *vfs.MemFS
}

func (c *crashPoints) crash(op string, names ...string) {
	for _, n := range names {
		if strings.HasPrefix(n, c.prefix) {
			c.take(op + " " + n)
			return
		}
	}
}

func (c *crashPoints) take(at string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.images = append(c.images, crashImage{at: at, fs: c.mem.CrashClone(c.cfg)})
}

func (c *crashPoints) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	c.crash("Create", name)
	return c.FS.Create(name, cat)
}

func (c *crashPoints) Link(oldname, newname string) error {
	c.crash("Link", newname)
	return c.FS.Link(oldname, newname)
}

func (c *crashPoints) Remove(name string) error {
	c.crash("Remove", name)
	return c.FS.Remove(name)
}

func (c *crashPoints) RemoveAll(name string) error {
	c.crash("RemoveAll", name)
	return c.FS.RemoveAll(name)
}

func (c *crashPoints) Rename(oldname, newname string) error {
	c.crash("Rename", oldname, newname)
	return c.FS.Rename(oldname, newname)
}

func (c *crashPoints) MkdirAll(dir string, perm os.FileMode) error {
	c.crash("MkdirAll", dir)
	return c.FS.MkdirAll(dir, perm)
}

func (c *crashPoints) Unwrap() vfs.FS { return c.FS }

// TestCrashDuringWrite takes a crash image before every change Write makes
// (the last one just before the rename into place) and one in AfterRename,
// with none, some or all unsynced data surviving. In every image Open must
// succeed and remove the temporary directory, the checkpoint the log
// already references must verify (and, from Pebble, restore and read), and
// the new checkpoint must either verify whole or be absent. Rewriting the
// same batch time may lose the old checkpoint (ErrNotFound) or show the
// new one under its name (ErrSumMismatch), but never passes it off as the
// old one.
func TestCrashDuringWrite(t *testing.T) {
	type source int
	const (
		fake source = iota
		real
	)
	cases := []struct {
		name     string
		src      source
		sameTime bool // the second Write is of the referenced checkpoint's batch time
	}{
		{"fake_source_new_time", fake, false},
		{"fake_source_same_time", fake, true},
		{"pebble_source_new_time", real, false},
		{"pebble_source_same_time", real, true},
	}
	for _, c := range cases {
		for _, pct := range []int{0, 50, 100} {
			t.Run(fmt.Sprintf("%s/unsynced_%d", c.name, pct), func(t *testing.T) {
				mem := vfs.NewCrashableMem()
				cp := &crashPoints{FS: mem, mem: mem, prefix: root}
				var src Source = &fakeSource{fs: cp, files: testFiles}
				if c.src == real {
					db := openPebble(t, cp, "node/state")
					for i := range 20 {
						if err := db.Set(fmt.Appendf(nil, "k%02d", i), []byte("v"), nil); err != nil {
							t.Fatal(err)
						}
					}
					src = pebbleSource{db}
				}
				d := openDir(t, cp, Options{AfterRename: func() { cp.take("AfterRename") }})
				referenced, err := d.Write(src, at(1000))
				if err != nil {
					t.Fatal(err)
				}
				cp.images = nil
				cp.cfg = vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(uint64(pct), 1))}
				second := at(2000)
				if c.sameTime {
					second = at(1000)
				}
				written, err := d.Write(src, second)
				if err != nil {
					t.Fatal(err)
				}
				if last := cp.images[len(cp.images)-1].at; last != "AfterRename" {
					t.Fatalf("the last crash image was taken at %q, want AfterRename", last)
				}
				tmps := 0
				for _, img := range cp.images {
					tmps += checkCrashImage(t, img, c.src == real, referenced, written)
				}
				if pct == 100 && tmps == 0 {
					t.Errorf("no crash image held a temporary directory for Open to remove")
				}
				t.Logf("%d crash images, %d with a temporary directory", len(cp.images), tmps)
			})
		}
	}
}

// checkCrashImage opens the checkpoints in one crash image and checks them
// (see TestCrashDuringWrite). It returns 1 if the image held a temporary
// directory.
func checkCrashImage(t *testing.T, img crashImage, restore bool, referenced, written Ref) (tmps int) {
	t.Helper()
	for _, n := range list(t, img.fs, root) {
		if strings.HasSuffix(n, tmpSuffix) {
			tmps = 1
		}
	}
	d, err := Open(root, Options{FS: img.fs, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("crash at %s: Open: %v", img.at, err)
	}
	for _, n := range list(t, img.fs, root) {
		if strings.HasSuffix(n, tmpSuffix) {
			t.Errorf("crash at %s: Open left %s", img.at, n)
		}
	}
	_, err = d.Verify(written, Meta{})
	switch {
	case img.at == "AfterRename" && err != nil:
		t.Errorf("crash after the rename: the new checkpoint does not verify: %v", err)
	case err != nil && !errors.Is(err, ErrNotFound) && (referenced.Name != written.Name || !errors.Is(err, ErrSumMismatch)):
		t.Errorf("crash at %s: the new checkpoint is there but does not verify: %v", img.at, err)
	}
	_, err = d.Verify(referenced, Meta{})
	switch {
	case referenced.Name != written.Name && err != nil:
		t.Fatalf("crash at %s: the referenced checkpoint does not verify: %v", img.at, err)
	case err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrSumMismatch):
		t.Fatalf("crash at %s: the replaced checkpoint is damaged instead of gone or replaced: %v", img.at, err)
	case err != nil || !restore:
		return tmps
	}
	if err := d.Restore(referenced, Meta{}, "node/restored"); err != nil {
		t.Fatalf("crash at %s: Restore: %v", img.at, err)
	}
	db := openPebble(t, img.fs, "node/restored")
	mustGet(t, db, "k19", "v")
	return tmps
}
