package checkpoint

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Source is what a checkpoint copies: the state store.
type Source interface {
	// Checkpoint writes a consistent copy of the store into destDir, which
	// does not exist yet, through the filesystem the Dir was opened on (a
	// Pebble DB's Checkpoint, which hard-links its immutable sstables). It
	// must return only once the copy is complete; Write then fsyncs it.
	Checkpoint(destDir string) error
}

// Options configure Open. The zero value is ready to use.
type Options struct {
	// FS is the filesystem the checkpoints live on; nil means vfs.Default.
	// It must be the state store's, since the copy hard-links its files.
	FS vfs.FS
	// Logger receives the package's messages; nil discards them.
	Logger *slog.Logger
	// AfterRename, when set, is called right after a new checkpoint's
	// directory has been renamed into place and the root synced, before
	// Write returns: crash tests take their crash image there.
	AfterRename func()
	// Now is the clock MoveAside stamps its names with; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Dir is the directory holding a node's checkpoints, one subdirectory each.
// See doc.go for its contract.
type Dir struct {
	fs          vfs.FS
	root        string
	logger      *slog.Logger
	afterRename func()
	now         func() time.Time

	// mu serializes the calls that change the root (Write, Retain,
	// MoveAside), so that two Writes of one batch time do not share a
	// temporary directory. Reads do not take it.
	mu sync.Mutex
}

// Open opens the checkpoint directory root, creating it if needed, and
// removes the temporary directories a crash left behind (root/<name>.tmp
// for a checkpoint name). It never deletes anything else.
func Open(root string, opts Options) (*Dir, error) {
	opts = opts.withDefaults()
	d := &Dir{
		fs:          opts.FS,
		root:        root,
		logger:      opts.Logger.With("component", "checkpoint", "dir", root),
		afterRename: opts.AfterRename,
		now:         opts.Now,
	}
	if err := mkdirAllSynced(d.fs, root); err != nil {
		return nil, fmt.Errorf("checkpoint: create %s: %w", root, err)
	}
	names, err := d.fs.List(root)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: list %s: %w", root, err)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := d.removeLeftover(n); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// removeLeftover removes root/n if it is the temporary directory of an
// unfinished Write. The removal is not synced: if a crash brings it back,
// the next Open removes it again.
func (d *Dir) removeLeftover(n string) error {
	stem, ok := strings.CutSuffix(n, tmpSuffix)
	if _, valid := parseName(stem); !ok || !valid {
		return nil
	}
	p := d.fs.PathJoin(d.root, n)
	if info, err := d.fs.Stat(p); err != nil || !info.IsDir() {
		return nil
	}
	if err := d.fs.RemoveAll(p); err != nil {
		return fmt.Errorf("checkpoint: remove leftover %s: %w", p, err)
	}
	d.logger.Warn("removed a checkpoint a crash left unfinished", "name", n)
	return nil
}

// Write writes a checkpoint of src at batch time m.Time and returns the
// Ref to store in the metadata log. It builds the checkpoint in
// root/<name>.tmp, fsyncs every file and directory in it, renames it to
// root/<name> and fsyncs the root: the checkpoint is on disk whole or not
// at all. A checkpoint already at root/<name> (a re-run after a crash, or
// an unreferenced one) is replaced. After an error nothing may reference
// the checkpoint; a later Write may be tried.
func (d *Dir) Write(src Source, m Meta) (_ Ref, err error) {
	if m.Time < 0 {
		return Ref{}, fmt.Errorf("checkpoint: negative batch time %d", m.Time)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	name := nameFor(m.Time)
	tmp := d.fs.PathJoin(d.root, name+tmpSuffix)
	defer func() {
		if err != nil {
			_ = d.fs.RemoveAll(tmp)
			err = fmt.Errorf("checkpoint: write %s: %w", name, err)
		}
	}()
	sum, err := d.build(src, m, tmp)
	if err != nil {
		return Ref{}, err
	}
	if err := d.publish(name, tmp); err != nil {
		return Ref{}, err
	}
	d.logger.Debug("wrote a checkpoint", "name", name, "time", m.Time)
	if d.afterRename != nil {
		d.afterRename()
	}
	return Ref{Time: m.Time, Name: name, Sum: sum}, nil
}

// build writes a complete, synced checkpoint into tmp and returns the
// CRC-32C of its descriptor.
func (d *Dir) build(src Source, m Meta, tmp string) (uint32, error) {
	if err := d.fs.RemoveAll(tmp); err != nil {
		return 0, fmt.Errorf("remove stale %s: %w", tmp, err)
	}
	if err := d.fs.MkdirAll(tmp, 0o755); err != nil {
		return 0, err
	}
	data := d.fs.PathJoin(tmp, dataDirName)
	if err := src.Checkpoint(data); err != nil {
		return 0, fmt.Errorf("copy the state store: %w", err)
	}
	files, err := d.describe(data)
	if err != nil {
		return 0, err
	}
	desc, err := encodeDescriptor(Manifest{Meta: m, Files: files})
	if err != nil {
		return 0, err
	}
	// Summed before the write: a File may scribble on the buffer it was
	// given once Write returns (Pebble's in-memory FS does, in race builds).
	sum := crc32.Checksum(desc, castagnoli)
	if err := writeFile(d.fs, d.fs.PathJoin(tmp, descriptorName), desc); err != nil {
		return 0, err
	}
	if err := syncDir(d.fs, tmp); err != nil {
		return 0, err
	}
	return sum, nil
}

// describe returns every file under data with its size and CRC, fsyncing
// each file and then each directory on the way.
func (d *Dir) describe(data string) ([]File, error) {
	var files []File
	err := walkTree(d.fs, data, func(rel string, _ fs.FileInfo) error {
		size, crc, err := checksum(d.fs, joinRel(d.fs, data, rel), nil, true)
		files = append(files, File{Name: rel, Size: size, CRC: crc})
		return err
	}, func(dir string) error { return syncDir(d.fs, dir) })
	if err != nil {
		return nil, fmt.Errorf("checksum the copy: %w", err)
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

// publish renames tmp to root/name, replacing what is there, and fsyncs
// the root.
func (d *Dir) publish(name, tmp string) error {
	final := d.fs.PathJoin(d.root, name)
	ok, err := exists(d.fs, final)
	if err != nil {
		return err
	}
	if ok {
		// Write returned no Ref for it, or is replacing it for the same
		// batch time: an older Ref to it stops verifying (ErrSumMismatch).
		d.logger.Warn("replacing a checkpoint of the same batch time", "name", name)
		if err := d.fs.RemoveAll(final); err != nil {
			return fmt.Errorf("remove the previous %s: %w", final, err)
		}
	}
	if err := d.fs.Rename(tmp, final); err != nil {
		return err
	}
	return syncDir(d.fs, d.root)
}

// Verify checks the checkpoint ref points at and returns its manifest: the
// descriptor's framing, that it is the descriptor ref references (Sum),
// that it was written at ref.Time for want.App and want.Fingerprint (each
// checked when not empty), that every listed file has its size and CRC,
// and that data/ holds no other file. It reads every byte of the copy.
func (d *Dir) Verify(ref Ref, want Meta) (Manifest, error) {
	return d.verifyLocked(ref, want)
}

// verifyLocked is Verify; it takes no lock, so Install can call it.
func (d *Dir) verifyLocked(ref Ref, want Meta) (Manifest, error) {
	m, err := d.check(ref, want)
	if err != nil {
		return Manifest{}, err
	}
	data := d.fs.PathJoin(d.root, ref.Name, dataDirName)
	for _, f := range m.Files {
		p := joinRel(d.fs, data, f.Name)
		size, crc, err := checksum(d.fs, p, nil, false)
		if err != nil {
			return Manifest{}, fmt.Errorf("checkpoint: verify %s: %w", ref.Name, err)
		}
		if err := checkFile(ref.Name, p, f, size, crc); err != nil {
			return Manifest{}, err
		}
	}
	return m, nil
}

// check does Verify's checks but for the files' contents.
func (d *Dir) check(ref Ref, want Meta) (Manifest, error) {
	m, err := d.readDescriptor(ref)
	if err != nil {
		return Manifest{}, err
	}
	if err := checkMeta(ref, want, m.Meta); err != nil {
		return Manifest{}, err
	}
	if err := d.checkListing(ref.Name, m.Files); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// readDescriptor reads and decodes the descriptor of ref's checkpoint,
// checking its framing and that its CRC is ref.Sum.
func (d *Dir) readDescriptor(ref Ref) (Manifest, error) {
	if _, ok := parseName(ref.Name); !ok {
		return Manifest{}, fmt.Errorf("%w: %q is not a checkpoint name", ErrNotFound, ref.Name)
	}
	p := d.fs.PathJoin(d.root, ref.Name, descriptorName)
	raw, err := readAll(d.fs, p)
	if isNotExist(err) {
		if ok, _ := exists(d.fs, d.fs.PathJoin(d.root, ref.Name)); ok {
			return Manifest{}, fmt.Errorf("%w: checkpoint %s has no descriptor %s", ErrNotFound, ref.Name, p)
		}
		return Manifest{}, fmt.Errorf("%w: no checkpoint %s in %s", ErrNotFound, ref.Name, d.root)
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("checkpoint: read %s: %w", p, err)
	}
	payload, err := openFrame(raw)
	if err != nil {
		return Manifest{}, &CorruptionError{Name: ref.Name, Path: p, Reason: err.Error(), Err: errors.Unwrap(err)}
	}
	if got := crc32.Checksum(raw, castagnoli); got != ref.Sum {
		return Manifest{}, &CorruptionError{Name: ref.Name, Path: p, Err: ErrSumMismatch,
			Reason: fmt.Sprintf("descriptor crc32c %#08x, the metadata log references %#08x: not the descriptor the log references", got, ref.Sum)}
	}
	m, err := decodeManifest(payload)
	if err != nil {
		return Manifest{}, &CorruptionError{Name: ref.Name, Path: p, Reason: err.Error()}
	}
	return m, nil
}

// checkMeta checks a descriptor's Meta against the Ref and what the
// caller wants.
func checkMeta(ref Ref, want, got Meta) error {
	if t, _ := parseName(ref.Name); t != ref.Time {
		return fmt.Errorf("%w: reference names %s, batch time %d, but says batch time %d", ErrMismatch, ref.Name, t, ref.Time)
	}
	switch {
	case got.Time != ref.Time:
		return fmt.Errorf("%w: checkpoint %s is of batch time %d, the reference says %d", ErrMismatch, ref.Name, got.Time, ref.Time)
	case want.App != "" && got.App != want.App:
		return fmt.Errorf("%w: checkpoint %s is of application %q, want %q", ErrMismatch, ref.Name, got.App, want.App)
	case want.Fingerprint != "" && got.Fingerprint != want.Fingerprint:
		return fmt.Errorf("%w: checkpoint %s is of graph fingerprint %s, want %s", ErrMismatch, ref.Name, got.Fingerprint, want.Fingerprint)
	}
	return nil
}

// checkListing checks that data/ holds exactly the files listed.
func (d *Dir) checkListing(name string, listed []File) error {
	data := d.fs.PathJoin(d.root, name, dataDirName)
	present, err := listFiles(d.fs, data)
	if isNotExist(err) {
		present, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("checkpoint: list %s: %w", data, err)
	}
	i, j := 0, 0
	for i < len(listed) || j < len(present) {
		switch {
		case j == len(present) || (i < len(listed) && listed[i].Name < present[j]):
			return &CorruptionError{Name: name, Path: joinRel(d.fs, data, listed[i].Name), Reason: "listed in the descriptor but missing"}
		case i == len(listed) || present[j] < listed[i].Name:
			return &CorruptionError{Name: name, Path: joinRel(d.fs, data, present[j]), Reason: "present but not listed in the descriptor"}
		}
		i, j = i+1, j+1
	}
	return nil
}

// checkFile compares a file's size and CRC with what the descriptor says.
func checkFile(name, path string, f File, size int64, crc uint32) error {
	switch {
	case size != f.Size:
		return &CorruptionError{Name: name, Path: path, Reason: fmt.Sprintf("size %d bytes, the descriptor says %d", size, f.Size)}
	case crc != f.CRC:
		return &CorruptionError{Name: name, Path: path, Reason: fmt.Sprintf("crc32c %#08x, the descriptor says %#08x", crc, f.CRC)}
	}
	return nil
}

// readAll returns the contents of name.
func readAll(fsys vfs.FS, name string) (_ []byte, err error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	return io.ReadAll(f)
}

// Restore copies the checkpoint ref points at into dest, which must not
// exist and whose parent must: into dest+".tmp" (a stale one is removed
// first), fsynced, renamed to dest, and dest's parent fsynced. It checks
// everything Verify checks, the files' contents as it copies them, and
// leaves dest absent on any error.
func (d *Dir) Restore(ref Ref, want Meta, dest string) (err error) {
	m, err := d.check(ref, want)
	if err != nil {
		return err
	}
	if ok, err := exists(d.fs, dest); err != nil || ok {
		if err == nil {
			err = fs.ErrExist
		}
		return fmt.Errorf("checkpoint: restore %s into %s: %w", ref.Name, dest, err)
	}
	tmp := dest + tmpSuffix
	defer func() {
		if err != nil {
			_ = d.fs.RemoveAll(tmp)
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				err = fmt.Errorf("checkpoint: restore %s into %s: %w", ref.Name, dest, err)
			}
		}
	}()
	if err := d.copyData(ref.Name, m.Files, tmp); err != nil {
		return err
	}
	if err := d.fs.Rename(tmp, dest); err != nil {
		return err
	}
	if err := syncDir(d.fs, d.fs.PathDir(dest)); err != nil {
		return err
	}
	d.logger.Info("restored a checkpoint", "name", ref.Name, "dest", dest)
	return nil
}

// copyData copies the files of checkpoint name into tmp, checking each
// against the descriptor, and fsyncs every file and directory of tmp.
func (d *Dir) copyData(name string, files []File, tmp string) error {
	if err := d.fs.RemoveAll(tmp); err != nil {
		return err
	}
	if err := d.fs.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	data := d.fs.PathJoin(d.root, name, dataDirName)
	for _, f := range files {
		src, dst := joinRel(d.fs, data, f.Name), joinRel(d.fs, tmp, f.Name)
		if err := d.fs.MkdirAll(d.fs.PathDir(dst), 0o755); err != nil {
			return err
		}
		size, crc, err := copyFile(d.fs, src, dst)
		if err != nil {
			return err
		}
		if err := checkFile(name, src, f, size, crc); err != nil {
			return err
		}
	}
	return walkTree(d.fs, tmp, nil, func(dir string) error { return syncDir(d.fs, dir) })
}

// Path returns the directory holding the copy of ref's checkpoint.
func (d *Dir) Path(ref Ref) string { return d.fs.PathJoin(d.root, ref.Name, dataDirName) }

// List returns the names of the checkpoint directories present, sorted
// (hence by batch time). Temporary and moved-aside directories are not
// listed. A listed checkpoint is not necessarily referenced, nor sound.
func (d *Dir) List() ([]string, error) {
	entries, err := d.fs.List(d.root)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: list %s: %w", d.root, err)
	}
	var names []string
	for _, n := range entries {
		if _, ok := parseName(n); !ok {
			continue
		}
		if info, err := d.fs.Stat(d.fs.PathJoin(d.root, n)); err == nil && info.IsDir() {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Retain removes every checkpoint directory List returns whose name is in
// no Ref of keep, including one Write returned and nothing references yet.
// Temporary and moved-aside directories are left alone. The removals are
// not synced: a checkpoint a crash brings back is unreferenced, and the
// next Retain removes it again.
func (d *Dir) Retain(keep []Ref) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	names, err := d.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if slices.ContainsFunc(keep, func(r Ref) bool { return r.Name == n }) {
			continue
		}
		if err := d.fs.RemoveAll(d.fs.PathJoin(d.root, n)); err != nil {
			errs = append(errs, fmt.Errorf("checkpoint: remove %s: %w", n, err))
			continue
		}
		d.logger.Debug("removed a checkpoint no longer retained", "name", n)
	}
	return errors.Join(errs...)
}

// MoveAside renames the checkpoint directory name to
// name.broken-<unix seconds> (with a "-<n>" suffix if that exists), fsyncs
// the root, and returns the new name. It is for checkpoints that failed
// Verify: they are kept for inspection, never deleted by this package.
func (d *Dir) MoveAside(name string) (string, error) {
	if _, ok := parseName(name); !ok {
		return "", fmt.Errorf("%w: %q is not a checkpoint name", ErrNotFound, name)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	src := d.fs.PathJoin(d.root, name)
	if ok, err := exists(d.fs, src); err != nil || !ok {
		if err == nil {
			err = ErrNotFound
		}
		return "", fmt.Errorf("checkpoint: move %s aside: %w", name, err)
	}
	aside, err := d.asideName(name)
	if err != nil {
		return "", err
	}
	if err := d.fs.Rename(src, d.fs.PathJoin(d.root, aside)); err != nil {
		return "", fmt.Errorf("checkpoint: move %s aside: %w", name, err)
	}
	if err := syncDir(d.fs, d.root); err != nil {
		return "", fmt.Errorf("checkpoint: move %s aside: %w", name, err)
	}
	d.logger.Warn("moved a checkpoint aside", "name", name, "to", aside)
	return aside, nil
}

// asideName returns a name for name moved aside that is not taken.
func (d *Dir) asideName(name string) (string, error) {
	base := name + brokenSuffix + strconv.FormatInt(d.now().Unix(), 10)
	for i := 0; ; i++ {
		n := base
		if i > 0 {
			n += "-" + strconv.Itoa(i)
		}
		ok, err := exists(d.fs, d.fs.PathJoin(d.root, n))
		if err != nil {
			return "", fmt.Errorf("checkpoint: move %s aside: %w", name, err)
		}
		if !ok {
			return n, nil
		}
	}
}

// DiskUsage returns the bytes of all files under the root, temporary and
// moved-aside ones included. Files a checkpoint shares with the state store
// through hard links are counted in full, so it overstates the space the
// checkpoints alone take.
func (d *Dir) DiskUsage() (int64, error) {
	var n int64
	err := walkTree(d.fs, d.root, func(_ string, info fs.FileInfo) error {
		n += info.Size()
		return nil
	}, nil)
	if err != nil {
		return 0, fmt.Errorf("checkpoint: disk usage of %s: %w", d.root, err)
	}
	return n, nil
}
