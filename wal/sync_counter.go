package wal

import (
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// syncCounter counts successful syncs of Pebble's WAL files, to measure
// how many commits each fsync carries (Stats.Syncs).
type syncCounter struct{ n atomic.Uint64 }

func (c *syncCounter) load() uint64 {
	if c == nil {
		return 0
	}
	return c.n.Load()
}

// countingFS wraps a vfs.FS so that the files Pebble writes its WAL to
// count their syncs.
type countingFS struct {
	vfs.FS
	syncs *syncCounter
}

var _ vfs.FS = (*countingFS)(nil)

func countSyncs(fs vfs.FS, c *syncCounter) vfs.FS {
	return &countingFS{FS: fs, syncs: c}
}

// isWALFile reports whether name is one of Pebble's WAL files.
func isWALFile(name string) bool { return strings.HasSuffix(name, ".log") }

func (fs *countingFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !isWALFile(name) {
		return f, err
	}
	return &countingFile{File: f, syncs: fs.syncs}, nil
}

func (fs *countingFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, cat)
	return fs.wrap(name, f, err)
}

func (fs *countingFS) ReuseForWrite(old, name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(old, name, cat)
	return fs.wrap(name, f, err)
}

func (fs *countingFS) Unwrap() vfs.FS { return fs.FS }

// countingFile counts the full syncs of one WAL file. SyncTo (a ranged
// write-back hint that Pebble issues every BytesPerSync) is not counted.
type countingFile struct {
	vfs.File
	syncs *syncCounter
}

func (f *countingFile) Sync() error { return f.count(f.File.Sync()) }

func (f *countingFile) SyncData() error { return f.count(f.File.SyncData()) }

func (f *countingFile) count(err error) error {
	if err == nil {
		f.syncs.n.Add(1)
	}
	return err
}
