package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestWriteVerifyRestoreRoundTrip writes a checkpoint of a fake source and
// checks that Verify lists every file with its size and CRC, and that
// Restore reproduces the files byte for byte.
func TestWriteVerifyRestoreRoundTrip(t *testing.T) {
	mem := vfs.NewMem()
	d := openDir(t, mem, Options{})
	ref := mustWrite(t, d, mem, testMeta)

	if want := (Ref{Time: testMeta.Time, Name: "ckpt-00000001764064800000", Sum: ref.Sum}); ref != want {
		t.Fatalf("Write returned %+v, want %+v", ref, want)
	}
	m := mustVerify(t, d, ref)
	if m.Meta != testMeta {
		t.Errorf("manifest meta = %+v, want %+v", m.Meta, testMeta)
	}
	var names []string
	for _, f := range m.Files {
		names = append(names, f.Name)
		if body := testFiles[f.Name]; f.Size != int64(len(body)) {
			t.Errorf("file %s: size %d, want %d", f.Name, f.Size, len(body))
		}
	}
	if want := []string{"000004.sst", "MANIFEST-000001", "OPTIONS-000003", "empty", "sub/nested.log"}; !slices.Equal(names, want) {
		t.Errorf("manifest files = %q, want %q", names, want)
	}
	if got := list(t, mem, d.Path(ref)); !slices.Equal(got, []string{"000004.sst", "MANIFEST-000001", "OPTIONS-000003", "empty", "sub"}) {
		t.Errorf("Path(ref) holds %q", got)
	}

	dest := "node/state"
	if err := d.Restore(ref, testMeta, dest); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	for name, body := range testFiles {
		if got := string(readFile(t, mem, joinRel(mem, dest, name))); got != body {
			t.Errorf("restored %s = %q, want %q", name, got, body)
		}
	}
	if got := list(t, mem, "node"); !slices.Equal(got, []string{"checkpoints", "state"}) {
		t.Errorf("after Restore node/ holds %q, want no temporary directory", got)
	}
}

// TestWriteVerifyRestorePebble checkpoints a real Pebble DB, restores it
// elsewhere, and reads every key back from the restored DB; writes made to
// the source after the checkpoint are not in it.
func TestWriteVerifyRestorePebble(t *testing.T) {
	mem := vfs.NewMem()
	src := openPebble(t, mem, "node/state")
	for i := range 100 {
		if err := src.Set(fmt.Appendf(nil, "key-%03d", i), fmt.Appendf(nil, "value-%d", i), nil); err != nil {
			t.Fatal(err)
		}
		if i == 50 {
			if err := src.Flush(); err != nil { // some keys in an sstable, some in the WAL
				t.Fatal(err)
			}
		}
	}
	d := openDir(t, mem, Options{})
	ref, err := d.Write(pebbleSource{src}, testMeta)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := src.Set([]byte("after"), []byte("checkpoint"), nil); err != nil {
		t.Fatal(err)
	}
	m := mustVerify(t, d, ref)
	t.Logf("checkpoint of %d files", len(m.Files))

	if err := d.Restore(ref, testMeta, "node/restored"); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	restored := openPebble(t, mem, "node/restored")
	for i := range 100 {
		mustGet(t, restored, fmt.Sprintf("key-%03d", i), fmt.Sprintf("value-%d", i))
	}
	if _, _, err := restored.Get([]byte("after")); err == nil {
		t.Errorf("the restored DB holds a key written after the checkpoint")
	}
	// The source keeps running and compacting; the checkpoint's hard links
	// keep its files intact.
	if err := src.Compact(t.Context(), []byte("a"), []byte("z"), true); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, d, ref)
}

// TestWriteFails checks that a failed Write returns no Ref and leaves no
// directory behind.
func TestWriteFails(t *testing.T) {
	cases := []struct {
		name string
		src  func(vfs.FS) Source
		meta Meta
		want string
	}{
		{"source_fails", func(fs vfs.FS) Source { return &fakeSource{fs: fs, err: errors.New("disk on fire")} }, testMeta, "disk on fire"},
		{"source_writes_nothing", func(fs vfs.FS) Source { return &fakeSource{fs: vfs.NewMem()} }, testMeta, "checksum the copy"},
		{"negative_time", func(fs vfs.FS) Source { return &fakeSource{fs: fs, files: testFiles} }, at(-1), "negative batch time"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := vfs.NewMem()
			d := openDir(t, mem, Options{})
			ref, err := d.Write(c.src(mem), c.meta)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Write = %+v, %v; want an error containing %q", ref, err, c.want)
			}
			if got := list(t, mem, root); len(got) != 0 {
				t.Errorf("after a failed Write the root holds %q", got)
			}
		})
	}
}

// TestWriteReplaces checks the two leftovers Write replaces: a stale
// temporary directory (its junk must not end up in the checkpoint), and a
// checkpoint of the same batch time, which an older Ref then no longer
// verifies against.
func TestWriteReplaces(t *testing.T) {
	mem := vfs.NewMem()
	d := openDir(t, mem, Options{})
	tmp := mem.PathJoin(root, nameFor(testMeta.Time)+tmpSuffix)
	if err := mem.MkdirAll(mem.PathJoin(tmp, dataDirName), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(mem, mem.PathJoin(tmp, dataDirName, "junk"), []byte("junk")); err != nil {
		t.Fatal(err)
	}
	first := mustWrite(t, d, mem, testMeta)
	mustVerify(t, d, first)

	files := map[string]string{"000009.sst": "other content"}
	second, err := d.Write(&fakeSource{fs: mem, files: files}, testMeta)
	if err != nil {
		t.Fatalf("second Write: %v", err)
	}
	if second.Name != first.Name || second.Sum == first.Sum {
		t.Fatalf("second Write returned %+v after %+v: want the same name and another sum", second, first)
	}
	mustVerify(t, d, second)
	_, err = d.Verify(first, Meta{})
	if !errors.Is(err, ErrSumMismatch) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify(first ref) after the replacement = %v, want ErrSumMismatch inside ErrCorrupt", err)
	}
}

// TestOpenRemovesLeftovers checks that Open removes the temporary
// directories of unfinished Writes and nothing else.
func TestOpenRemovesLeftovers(t *testing.T) {
	mem := vfs.NewMem()
	d := openDir(t, mem, Options{})
	ref := mustWrite(t, d, mem, testMeta)
	stale := nameFor(testMeta.Time+1000) + tmpSuffix
	for _, dir := range []string{stale, "other.tmp", nameFor(1) + brokenSuffix + "1700000000"} {
		if err := mem.MkdirAll(mem.PathJoin(root, dir, dataDirName), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeFile(mem, mem.PathJoin(root, "notes"+tmpSuffix), nil); err != nil {
		t.Fatal(err)
	}

	d = openDir(t, mem, Options{})
	want := []string{ref.Name, nameFor(1) + brokenSuffix + "1700000000", "notes.tmp", "other.tmp"}
	slices.Sort(want)
	if got := list(t, mem, root); !slices.Equal(got, want) {
		t.Errorf("after Open the root holds %q, want %q", got, want)
	}
	mustVerify(t, d, ref)
}

// TestVerifyMismatch checks that a sound checkpoint is refused, with both
// values named, when it is not the one asked for.
func TestVerifyMismatch(t *testing.T) {
	cases := []struct {
		name    string
		ref     func(Ref) Ref
		want    Meta
		wantErr error
		say     []string
	}{
		{"same_app_and_graph", func(r Ref) Ref { return r }, Meta{App: testMeta.App, Fingerprint: testMeta.Fingerprint}, nil, nil},
		{"nothing_wanted", func(r Ref) Ref { return r }, Meta{}, nil, nil},
		{"another_app", func(r Ref) Ref { return r }, Meta{App: "orders"}, ErrMismatch, []string{`"clicks"`, `"orders"`}},
		{"another_fingerprint", func(r Ref) Ref { return r }, Meta{App: testMeta.App, Fingerprint: "deadbeef"}, ErrMismatch, []string{testMeta.Fingerprint, "deadbeef"}},
		{"ref_time_not_its_name", func(r Ref) Ref { r.Time++; return r }, Meta{}, ErrMismatch, []string{"1764064800000", "1764064800001"}},
		{"ref_of_another_time", func(r Ref) Ref { r.Time = 5; r.Name = nameFor(5); return r }, Meta{}, ErrNotFound, nil},
		{"name_not_a_checkpoint", func(r Ref) Ref { r.Name = "../state"; return r }, Meta{}, ErrNotFound, []string{"../state"}},
	}
	mem := vfs.NewMem()
	d := openDir(t, mem, Options{})
	ref := mustWrite(t, d, mem, testMeta)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := d.Verify(c.ref(ref), c.want)
			if !errors.Is(err, c.wantErr) || (c.wantErr == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, c.wantErr)
			}
			if errors.Is(err, ErrCorrupt) {
				t.Errorf("Verify = %v: a mismatch is not corruption", err)
			}
			for _, s := range c.say {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %s", err, s)
				}
			}
		})
	}
}

// TestVerifyNotFound checks ErrNotFound for a checkpoint that is gone or
// was never finished.
func TestVerifyNotFound(t *testing.T) {
	cases := []struct {
		name   string
		damage func(vfs.FS, Ref)
	}{
		{"directory_removed", func(fs vfs.FS, r Ref) { _ = fs.RemoveAll(fs.PathJoin(root, r.Name)) }},
		{"descriptor_removed", func(fs vfs.FS, r Ref) { _ = fs.Remove(fs.PathJoin(root, r.Name, descriptorName)) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := vfs.NewMem()
			d := openDir(t, mem, Options{})
			ref := mustWrite(t, d, mem, testMeta)
			c.damage(mem, ref)
			if _, err := d.Verify(ref, Meta{}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Verify = %v, want ErrNotFound", err)
			}
			if err := d.Restore(ref, Meta{}, "node/state"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Restore = %v, want ErrNotFound", err)
			}
		})
	}
}

// TestRestoreRefusesExistingDest checks that Restore never overwrites.
func TestRestoreRefusesExistingDest(t *testing.T) {
	mem := vfs.NewMem()
	d := openDir(t, mem, Options{})
	ref := mustWrite(t, d, mem, testMeta)
	if err := mem.MkdirAll("node/state", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := d.Restore(ref, testMeta, "node/state"); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Restore into an existing directory = %v, want fs.ErrExist", err)
	}
}

// TestRestoreRemovesStaleTmp checks that Restore replaces the temporary
// directory a crashed Restore left, junk and all.
func TestRestoreRemovesStaleTmp(t *testing.T) {
	mem := vfs.NewMem()
	d := openDir(t, mem, Options{})
	ref := mustWrite(t, d, mem, testMeta)
	if err := mem.MkdirAll("node/state.tmp", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(mem, "node/state.tmp/junk", []byte("junk")); err != nil {
		t.Fatal(err)
	}
	if err := d.Restore(ref, testMeta, "node/state"); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := list(t, mem, "node/state"); slices.Contains(got, "junk") {
		t.Errorf("the restored directory holds the stale temporary's junk: %q", got)
	}
}

// TestRetain checks that Retain keeps exactly the referenced checkpoints
// and leaves temporary and moved-aside directories alone.
func TestRetain(t *testing.T) {
	times := []int64{1000, 2000, 3000, 4000}
	cases := []struct {
		name string
		keep []int // indexes into times
	}{
		{"keep_all", []int{0, 1, 2, 3}},
		{"keep_newest_two", []int{2, 3}},
		{"keep_one_in_the_middle", []int{1}},
		{"keep_none", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := vfs.NewMem()
			d := openDir(t, mem, Options{})
			var refs []Ref
			for _, ms := range times {
				refs = append(refs, mustWrite(t, d, mem, at(ms)))
			}
			aside, err := d.MoveAside(mustWrite(t, d, mem, at(9000)).Name)
			if err != nil {
				t.Fatal(err)
			}
			var keep []Ref
			var want []string
			for _, i := range c.keep {
				keep = append(keep, refs[i])
				want = append(want, refs[i].Name)
			}
			keep = append(keep, Ref{Time: 7, Name: nameFor(7)}) // kept but absent: ignored
			if err := d.Retain(keep); err != nil {
				t.Fatalf("Retain: %v", err)
			}
			got, err := d.List()
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("after Retain List = %q, %v; want %q", got, err, want)
			}
			for _, r := range keep[:len(keep)-1] {
				mustVerify(t, d, r)
			}
			if !slices.Contains(list(t, mem, root), aside) {
				t.Errorf("Retain removed %s, a moved-aside checkpoint", aside)
			}
		})
	}
}

// TestMoveAside checks the name a checkpoint is moved to, that it is no
// longer listed nor found, and that two moves in one second do not clash.
func TestMoveAside(t *testing.T) {
	mem := vfs.NewMem()
	now := time.Unix(1764065000, 0)
	d := openDir(t, mem, Options{Now: func() time.Time { return now }})
	ref := mustWrite(t, d, mem, testMeta)

	aside, err := d.MoveAside(ref.Name)
	if want := ref.Name + ".broken-1764065000"; err != nil || aside != want {
		t.Fatalf("MoveAside = %q, %v; want %q", aside, err, want)
	}
	if got, _ := d.List(); len(got) != 0 {
		t.Errorf("List after MoveAside = %q, want none", got)
	}
	if _, err := d.Verify(ref, Meta{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Verify after MoveAside = %v, want ErrNotFound", err)
	}
	ref = mustWrite(t, d, mem, testMeta)
	if aside, err := d.MoveAside(ref.Name); err != nil || aside != ref.Name+".broken-1764065000-1" {
		t.Errorf("second MoveAside in the same second = %q, %v", aside, err)
	}
	for _, name := range []string{ref.Name, "../node", ""} {
		if _, err := d.MoveAside(name); !errors.Is(err, ErrNotFound) {
			t.Errorf("MoveAside(%q) = %v, want ErrNotFound", name, err)
		}
	}
}

// TestDiskUsage checks that DiskUsage adds up every file under the root.
func TestDiskUsage(t *testing.T) {
	mem := vfs.NewMem()
	d := openDir(t, mem, Options{})
	if n, err := d.DiskUsage(); err != nil || n != 0 {
		t.Fatalf("DiskUsage of an empty root = %d, %v", n, err)
	}
	ref := mustWrite(t, d, mem, testMeta)
	var want int64
	for _, body := range testFiles {
		want += int64(len(body))
	}
	want += int64(len(readFile(t, mem, mem.PathJoin(root, ref.Name, descriptorName))))
	if n, err := d.DiskUsage(); err != nil || n != want {
		t.Fatalf("DiskUsage = %d, %v; want %d", n, err, want)
	}
}

// TestOnDisk runs Write, Verify, Restore and MoveAside on the operating
// system's filesystem, where fsyncs of files opened for reading and of
// directories are real calls that can fail.
func TestOnDisk(t *testing.T) {
	tmp := t.TempDir()
	fs := vfs.Default
	d, err := Open(fs.PathJoin(tmp, "node", "checkpoints"), Options{FS: fs, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ref, err := d.Write(&fakeSource{fs: fs, files: testFiles}, testMeta)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if _, err := d.Verify(ref, testMeta); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	dest := fs.PathJoin(tmp, "node", "state")
	if err := d.Restore(ref, testMeta, dest); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := string(readFile(t, fs, joinRel(fs, dest, "sub/nested.log"))); got != testFiles["sub/nested.log"] {
		t.Errorf("restored sub/nested.log = %q", got)
	}
	if _, err := d.MoveAside(ref.Name); err != nil {
		t.Fatalf("MoveAside: %v", err)
	}
}
