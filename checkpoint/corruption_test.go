package checkpoint

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestCorruptionIsDetected damages a written checkpoint in one way each and
// checks that Verify and Restore refuse it with a *CorruptionError naming
// the checkpoint and the damaged file, and that Restore leaves nothing
// behind.
func TestCorruptionIsDetected(t *testing.T) {
	desc := func(fs vfs.FS, r Ref) string { return fs.PathJoin(root, r.Name, descriptorName) }
	data := func(fs vfs.FS, r Ref, name string) string {
		return joinRel(fs, fs.PathJoin(root, r.Name, dataDirName), name)
	}
	cases := []struct {
		name     string
		damage   func(t *testing.T, fs vfs.FS, r Ref)
		file     string // the file the error must name
		reason   string // what the error must say
		alsoWant error  // a more precise sentinel, if any
	}{
		{"descriptor_bad_magic", func(t *testing.T, fs vfs.FS, r Ref) { rewrite(t, fs, desc(fs, r), flipAt(0)) }, descriptorName, "bad magic", nil},
		{"descriptor_version_zero", func(t *testing.T, fs vfs.FS, r Ref) { rewrite(t, fs, desc(fs, r), flipAt(4)) }, descriptorName, "bad version 0", nil},
		{"descriptor_newer_version", func(t *testing.T, fs vfs.FS, r Ref) {
			rewrite(t, fs, desc(fs, r), func(b []byte) []byte { b[4] = formatVersion + 1; return b })
		}, descriptorName, "upgrade this binary", ErrVersion},
		{"descriptor_flipped_length", func(t *testing.T, fs vfs.FS, r Ref) { rewrite(t, fs, desc(fs, r), flipAt(5)) }, descriptorName, "truncated descriptor: header says", nil},
		{"descriptor_flipped_crc", func(t *testing.T, fs vfs.FS, r Ref) { rewrite(t, fs, desc(fs, r), flipAt(12)) }, descriptorName, "checksum mismatch", nil},
		{"descriptor_flipped_payload", func(t *testing.T, fs vfs.FS, r Ref) { rewrite(t, fs, desc(fs, r), flipAt(headerLen+5)) }, descriptorName, "checksum mismatch", nil},
		{"descriptor_truncated_payload", func(t *testing.T, fs vfs.FS, r Ref) { rewrite(t, fs, desc(fs, r), truncateBy(1)) }, descriptorName, "truncated descriptor: header says", nil},
		{"descriptor_truncated_header", func(t *testing.T, fs vfs.FS, r Ref) {
			rewrite(t, fs, desc(fs, r), func(b []byte) []byte { return b[:headerLen-1] })
		}, descriptorName, "shorter than the 13-byte header", nil},
		{"descriptor_empty", func(t *testing.T, fs vfs.FS, r Ref) {
			rewrite(t, fs, desc(fs, r), func([]byte) []byte { return nil })
		}, descriptorName, "truncated descriptor", nil},
		{"descriptor_trailing_bytes", func(t *testing.T, fs vfs.FS, r Ref) {
			rewrite(t, fs, desc(fs, r), func(b []byte) []byte { return append(b, 0) })
		}, descriptorName, "unexpected bytes", nil},
		{"descriptor_replaced_by_another_valid_one", func(t *testing.T, fs vfs.FS, r Ref) {
			m := readManifest(t, fs, r)
			m.Files = m.Files[1:] // as a later Write of the same batch time would
			rewrite(t, fs, desc(fs, r), func([]byte) []byte { b, _ := encodeDescriptor(m); return b })
		}, descriptorName, "not the descriptor the log references", ErrSumMismatch},
		{"data_flipped_byte", func(t *testing.T, fs vfs.FS, r Ref) { rewrite(t, fs, data(fs, r, "000004.sst"), flipAt(4000)) }, "000004.sst", "crc32c", nil},
		{"data_nested_flipped_byte", func(t *testing.T, fs vfs.FS, r Ref) { rewrite(t, fs, data(fs, r, "sub/nested.log"), flipAt(0)) }, "nested.log", "crc32c", nil},
		{"data_truncated", func(t *testing.T, fs vfs.FS, r Ref) { rewrite(t, fs, data(fs, r, "000004.sst"), truncateBy(1)) }, "000004.sst", "size 7999 bytes, the descriptor says 8000", nil},
		{"data_grown", func(t *testing.T, fs vfs.FS, r Ref) {
			rewrite(t, fs, data(fs, r, "empty"), func([]byte) []byte { return []byte{0} })
		}, "empty", "size 1 bytes, the descriptor says 0", nil},
		{"data_file_missing", func(t *testing.T, fs vfs.FS, r Ref) { mustRemove(t, fs, data(fs, r, "MANIFEST-000001")) }, "MANIFEST-000001", "listed in the descriptor but missing", nil},
		{"data_last_file_missing", func(t *testing.T, fs vfs.FS, r Ref) { mustRemove(t, fs, data(fs, r, "sub/nested.log")) }, "nested.log", "listed in the descriptor but missing", nil},
		{"data_directory_missing", func(t *testing.T, fs vfs.FS, r Ref) {
			if err := fs.RemoveAll(fs.PathJoin(root, r.Name, dataDirName)); err != nil {
				t.Fatal(err)
			}
		}, "000004.sst", "listed in the descriptor but missing", nil},
		{"data_extra_file", func(t *testing.T, fs vfs.FS, r Ref) { mustCreate(t, fs, data(fs, r, "000099.sst")) }, "000099.sst", "not listed in the descriptor", nil},
		{"data_extra_file_sorting_last", func(t *testing.T, fs vfs.FS, r Ref) { mustCreate(t, fs, data(fs, r, "zzz")) }, "zzz", "not listed in the descriptor", nil},
		{"data_extra_nested_file", func(t *testing.T, fs vfs.FS, r Ref) { mustCreate(t, fs, data(fs, r, "sub/extra")) }, "extra", "not listed in the descriptor", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := vfs.NewMem()
			d := openDir(t, mem, Options{})
			ref := mustWrite(t, d, mem, testMeta)
			mustVerify(t, d, ref)
			c.damage(t, mem, ref)

			_, err := d.Verify(ref, testMeta)
			checkCorruption(t, "Verify", err, ref, c.file, c.reason, c.alsoWant)
			err = d.Restore(ref, testMeta, "node/state")
			checkCorruption(t, "Restore", err, ref, c.file, c.reason, c.alsoWant)
			if got := list(t, mem, "node"); !slices.Equal(got, []string{"checkpoints"}) {
				t.Errorf("after a failed Restore node/ holds %q", got)
			}
		})
	}
}

// checkCorruption checks that err is a *CorruptionError naming ref's
// checkpoint and file, saying reason.
func checkCorruption(t *testing.T, op string, err error, ref Ref, file, reason string, also error) {
	t.Helper()
	var ce *CorruptionError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) {
		t.Fatalf("%s = %v, want a *CorruptionError", op, err)
	}
	if also != nil && !errors.Is(err, also) {
		t.Errorf("%s = %v, want errors.Is(err, %v) too", op, err, also)
	}
	if ce.Name != ref.Name || !strings.HasSuffix(ce.Path, file) || !strings.Contains(ce.Reason, reason) {
		t.Errorf("%s = %+v, want checkpoint %s, a path ending in %s, a reason saying %q", op, ce, ref.Name, file, reason)
	}
}

// TestCorruptionErrorSaysWhatToDo checks the message a user sees.
func TestCorruptionErrorSaysWhatToDo(t *testing.T) {
	err := error(&CorruptionError{Name: "ckpt-00000000000000001000", Path: "checkpoints/ckpt-00000000000000001000/data/000004.sst", Reason: "crc32c 0x1, the descriptor says 0x2"})
	for _, s := range []string{
		"checkpoint: corrupt checkpoint ckpt-00000000000000001000",
		"data/000004.sst",
		"crc32c 0x1, the descriptor says 0x2",
		"fall back to an older checkpoint the metadata log references",
		"move it aside or delete the data directory's checkpoints/ckpt-00000000000000001000",
	} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not say %q", err, s)
		}
	}
	if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrSumMismatch) || errors.Is(err, ErrNotFound) {
		t.Errorf("a plain CorruptionError must be ErrCorrupt and nothing else")
	}
}

func readManifest(t *testing.T, fs vfs.FS, r Ref) Manifest {
	t.Helper()
	payload, err := openFrame(readFile(t, fs, fs.PathJoin(root, r.Name, descriptorName)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeManifest(payload)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustRemove(t *testing.T, fs vfs.FS, name string) {
	t.Helper()
	if err := fs.Remove(name); err != nil {
		t.Fatal(err)
	}
}

func mustCreate(t *testing.T, fs vfs.FS, name string) {
	t.Helper()
	if err := writeFile(fs, name, []byte("x")); err != nil {
		t.Fatal(err)
	}
}
