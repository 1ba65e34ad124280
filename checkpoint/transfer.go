package checkpoint

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Transfer: a node copies a checkpoint another node wrote, so that it can
// restore from it when it becomes the driver. The copy is trusted only as
// the original is: Install verifies it against the Ref the metadata log
// holds, byte for byte.

// DescriptorFile is the name Files gives the descriptor, next to the data
// files' names (which are under "data/").
const DescriptorFile = descriptorName

// Files returns the files of ref's checkpoint to copy, relative to its
// directory: the descriptor first, then every data file the descriptor
// lists. The checkpoint is checked (not its contents) first.
func (d *Dir) Files(ref Ref) ([]string, error) {
	m, err := d.check(ref, Meta{})
	if err != nil {
		return nil, err
	}
	out := []string{descriptorName}
	for _, f := range m.Files {
		out = append(out, dataDirName+"/"+f.Name)
	}
	return out, nil
}

// ReadAt reads up to n bytes at off of the file rel (a name Files
// returned) of ref's checkpoint; fewer at the end, none past it.
func (d *Dir) ReadAt(ref Ref, rel string, off int64, n int) ([]byte, error) {
	if _, ok := parseName(ref.Name); !ok || !safeRel(rel) {
		return nil, fmt.Errorf("%w: %q of %q is not a checkpoint file", ErrNotFound, rel, ref.Name)
	}
	f, err := d.fs.Open(joinRel(d.fs, d.fs.PathJoin(d.root, ref.Name), rel))
	if err != nil {
		if isNotExist(err) {
			return nil, fmt.Errorf("%w: %s of checkpoint %s: %w", ErrNotFound, rel, ref.Name, err)
		}
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	got, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:got], nil
}

// safeRel accepts the relative names Files returns: no absolute path, no
// "..", no empty element.
func safeRel(rel string) bool {
	if rel == "" || strings.HasPrefix(rel, "/") {
		return false
	}
	for _, p := range strings.Split(rel, "/") {
		if p == "" || p == "." || p == ".." {
			return false
		}
	}
	return true
}

// Fetch copies one file of a checkpoint being installed into w.
type Fetch func(rel string, w io.Writer) error

// Install makes a local copy of ref's checkpoint from another node's:
// fetch is called for the descriptor and then for each file it lists,
// written into root/<name>.tmp, synced, checked against the descriptor's
// sizes and CRCs and against ref (Sum, App and fingerprint in want), then
// renamed into place. A checkpoint already installed and sound is left
// as is. On error nothing is published.
func (d *Dir) Install(ref Ref, want Meta, fetch Fetch) (err error) {
	if _, err := d.Verify(ref, want); err == nil {
		return nil
	}
	if _, ok := parseName(ref.Name); !ok {
		return fmt.Errorf("%w: %q is not a checkpoint name", ErrNotFound, ref.Name)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	tmp := d.fs.PathJoin(d.root, ref.Name+tmpSuffix)
	defer func() {
		if err != nil {
			d.fs.RemoveAll(tmp)
			err = fmt.Errorf("checkpoint: install %s: %w", ref.Name, err)
		}
	}()
	if err := d.fs.RemoveAll(tmp); err != nil {
		return err
	}
	m, err := d.fetchDescriptor(ref, tmp, fetch)
	if err != nil {
		return err
	}
	for _, f := range m.Files {
		if err := d.fetchFile(tmp, f, fetch); err != nil {
			return err
		}
	}
	if err := walkTree(d.fs, tmp, nil, func(dir string) error { return syncDir(d.fs, dir) }); err != nil {
		return err
	}
	if err := d.publish(ref.Name, tmp); err != nil {
		return err
	}
	_, err = d.verifyLocked(ref, want)
	return err
}

// fetchDescriptor fetches the descriptor into tmp and checks it is the
// one ref references.
func (d *Dir) fetchDescriptor(ref Ref, tmp string, fetch Fetch) (Manifest, error) {
	var b strings.Builder
	if err := fetch(descriptorName, &b); err != nil {
		return Manifest{}, err
	}
	raw := []byte(b.String())
	if got := crc32.Checksum(raw, castagnoli); got != ref.Sum {
		return Manifest{}, &CorruptionError{Name: ref.Name, Path: descriptorName, Err: ErrSumMismatch,
			Reason: fmt.Sprintf("fetched descriptor crc32c %#08x, the metadata log references %#08x", got, ref.Sum)}
	}
	payload, err := openFrame(raw)
	if err != nil {
		return Manifest{}, &CorruptionError{Name: ref.Name, Path: descriptorName, Reason: err.Error()}
	}
	m, err := decodeManifest(payload)
	if err != nil {
		return Manifest{}, &CorruptionError{Name: ref.Name, Path: descriptorName, Reason: err.Error()}
	}
	if err := mkdirAllSynced(d.fs, d.fs.PathJoin(tmp, dataDirName)); err != nil {
		return Manifest{}, err
	}
	return m, writeFile(d.fs, d.fs.PathJoin(tmp, descriptorName), raw)
}

// fetchFile fetches one data file into tmp/data, checking its size and
// CRC as it is written.
func (d *Dir) fetchFile(tmp string, f File, fetch Fetch) (err error) {
	if !safeRel(f.Name) {
		return &CorruptionError{Name: tmp, Path: f.Name, Reason: "file name outside the checkpoint"}
	}
	p := joinRel(d.fs, d.fs.PathJoin(tmp, dataDirName), f.Name)
	if err := mkdirAllSynced(d.fs, d.fs.PathDir(p)); err != nil {
		return err
	}
	out, err := d.fs.Create(p, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	h := crc32.New(castagnoli)
	cw := &countWriter{w: io.MultiWriter(h, out)} // summed before the write: a File may scribble on the buffer once Write returns
	if err := fetch(dataDirName+"/"+f.Name, cw); err != nil {
		return err
	}
	if err := checkFile(tmp, p, f, cw.n, h.Sum32()); err != nil {
		return err
	}
	return out.Sync()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
