package checkpoint

// Filesystem helpers: walking a tree, checksumming and copying files, and
// the syncs that make a rename durable. Everything goes through vfs.FS so
// that tests can inject crashes.

import (
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// copyBufferSize is the buffer for reading and copying data files.
const copyBufferSize = 256 << 10

// isNotExist reports whether err says a file does not exist.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// exists reports whether name exists; an error other than "does not
// exist" is returned as is.
func exists(fsys vfs.FS, name string) (bool, error) {
	_, err := fsys.Stat(name)
	switch {
	case err == nil:
		return true, nil
	case isNotExist(err):
		return false, nil
	}
	return false, err
}

// joinRel joins a "/"-separated relative name onto dir with fsys's
// separator.
func joinRel(fsys vfs.FS, dir, rel string) string {
	return fsys.PathJoin(append([]string{dir}, strings.Split(rel, "/")...)...)
}

// walkTree calls file for every regular file under dir, with its name
// relative to dir ("/"-separated), and dirFn for dir and every directory
// under it, in sorted order.
func walkTree(fsys vfs.FS, dir string, file func(rel string, info fs.FileInfo) error, dirFn func(path string) error) error {
	var walk func(path, rel string) error
	walk = func(path, rel string) error {
		names, err := fsys.List(path)
		if err != nil {
			return err
		}
		slices.Sort(names)
		for _, n := range names {
			info, err := fsys.Stat(fsys.PathJoin(path, n))
			if err != nil {
				return err
			}
			r := n
			if rel != "" {
				r = rel + "/" + n
			}
			if info.IsDir() {
				err = walk(fsys.PathJoin(path, n), r)
			} else if file != nil {
				err = file(r, info)
			}
			if err != nil {
				return err
			}
		}
		if dirFn != nil {
			return dirFn(path)
		}
		return nil
	}
	return walk(dir, "")
}

// listFiles returns the names, relative to dir and sorted, of the regular
// files under dir.
func listFiles(fsys vfs.FS, dir string) ([]string, error) {
	var names []string
	err := walkTree(fsys, dir, func(rel string, _ fs.FileInfo) error {
		names = append(names, rel)
		return nil
	}, nil)
	slices.Sort(names) // "a/b" and "a.b" sort differently than the walk visits them
	return names, err
}

// checksum reads name to its end, copying it to w when w is not nil, and
// returns its size and CRC-32C. With syncIt it fsyncs name before closing.
func checksum(fsys vfs.FS, name string, w io.Writer, syncIt bool) (size int64, crc uint32, err error) {
	f, err := fsys.Open(name)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	h := crc32.New(castagnoli)
	var r io.Reader = io.TeeReader(f, h)
	if w == nil {
		w = io.Discard
	}
	if size, err = io.CopyBuffer(onlyWriter{w}, r, make([]byte, copyBufferSize)); err != nil {
		return 0, 0, err
	}
	if syncIt {
		if err := f.Sync(); err != nil {
			return 0, 0, err
		}
	}
	return size, h.Sum32(), nil
}

// onlyWriter hides a writer's ReadFrom, so that io.CopyBuffer uses the
// buffer it is given and every byte passes through the checksum.
type onlyWriter struct{ io.Writer }

// copyFile copies src to dst, a new file, fsyncs dst, and returns the size
// and CRC-32C of what it copied.
func copyFile(fsys vfs.FS, src, dst string) (size int64, crc uint32, err error) {
	out, err := fsys.Create(dst, vfs.WriteCategoryUnspecified)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	if size, crc, err = checksum(fsys, src, out, false); err != nil {
		return 0, 0, err
	}
	return size, crc, out.Sync()
}

// writeFile creates name with data and fsyncs it.
func writeFile(fsys vfs.FS, name string, data []byte) (err error) {
	f, err := fsys.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

// syncDir fsyncs a directory, making the entries in it durable.
func syncDir(fsys vfs.FS, dir string) (err error) {
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := d.Close(); err == nil {
			err = cerr
		}
	}()
	return d.Sync()
}

// mkdirAllSynced creates dir and its missing parents, and fsyncs the
// parent of each directory it created, so that the new entries survive a
// crash.
func mkdirAllSynced(fsys vfs.FS, dir string) error {
	var created []string
	for p := dir; ; {
		ok, err := exists(fsys, p)
		if err != nil {
			return err
		}
		parent := fsys.PathDir(p)
		if ok || parent == p {
			break
		}
		created = append(created, p)
		p = parent
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := len(created) - 1; i >= 0; i-- {
		if err := syncDir(fsys, fsys.PathDir(created[i])); err != nil {
			return err
		}
	}
	return nil
}
