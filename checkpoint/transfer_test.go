package checkpoint

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// fetchFrom serves the files of ref's checkpoint in src, in 3-byte chunks
// as a remote reader would, with flip applied to what it returns.
func fetchFrom(src *Dir, ref Ref, flip func(rel string, b []byte)) Fetch {
	return func(rel string, w io.Writer) error {
		for off := int64(0); ; {
			b, err := src.ReadAt(ref, rel, off, 3)
			if err != nil {
				return err
			}
			if len(b) == 0 {
				return nil
			}
			if flip != nil {
				flip(rel, b)
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
			off += int64(len(b))
		}
	}
}

// A checkpoint installed on another node from Files and ReadAt verifies
// there against the same Ref, file for file.
func TestInstallCopiesACheckpoint(t *testing.T) {
	srcFS, dstFS := vfs.NewMem(), vfs.NewMem()
	src := openDir(t, srcFS, Options{})
	ref := mustWrite(t, src, srcFS, testMeta)
	files, err := src.Files(ref)
	if err != nil || files[0] != DescriptorFile || len(files) != 6 {
		t.Fatalf("Files: %q, %v", files, err)
	}
	dst := openDir(t, dstFS, Options{})
	want := Meta{App: testMeta.App, Fingerprint: testMeta.Fingerprint}
	if err := dst.Install(ref, want, fetchFrom(src, ref, nil)); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, dst, ref)
	for _, rel := range files {
		a, _ := src.ReadAt(ref, rel, 0, 1<<20)
		b, _ := dst.ReadAt(ref, rel, 0, 1<<20)
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs", rel)
		}
	}
	// Installing again is a no-op.
	if err := dst.Install(ref, want, func(string, io.Writer) error { return errors.New("fetched again") }); err != nil {
		t.Fatal(err)
	}
}

// A copy damaged on the way, a descriptor that is not the one referenced,
// and a fetch that fails publish nothing.
func TestInstallRefusesADamagedCopy(t *testing.T) {
	srcFS := vfs.NewMem()
	src := openDir(t, srcFS, Options{})
	ref := mustWrite(t, src, srcFS, testMeta)
	cases := []struct {
		name  string
		ref   Ref
		fetch Fetch
		err   error
	}{
		{"flipped_data_byte", ref, fetchFrom(src, ref, func(rel string, b []byte) {
			if rel == "data/000004.sst" {
				b[0] ^= 1
			}
		}), ErrCorrupt},
		{"other_descriptor", Ref{Time: ref.Time, Name: ref.Name, Sum: ref.Sum + 1}, fetchFrom(src, ref, nil), ErrSumMismatch},
		{"fetch_fails", ref, func(string, io.Writer) error { return io.ErrUnexpectedEOF }, io.ErrUnexpectedEOF},
		{"bad_name", Ref{Time: ref.Time, Name: "../x", Sum: ref.Sum}, fetchFrom(src, ref, nil), ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dstFS := vfs.NewMem()
			dst := openDir(t, dstFS, Options{})
			err := dst.Install(c.ref, Meta{}, c.fetch)
			if !errors.Is(err, c.err) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			if names, _ := dst.List(); len(names) != 0 {
				t.Fatalf("published %q", names)
			}
			if left, _ := dstFS.List(root); len(left) != 0 {
				t.Fatalf("left %q behind", left)
			}
		})
	}
	if _, err := src.ReadAt(ref, "../../etc/passwd", 0, 10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadAt outside: %v", err)
	}
}
