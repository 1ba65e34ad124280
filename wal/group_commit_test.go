package wal

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// syncGate blocks the WAL syncs of a gateFS while it is held, so a test
// can queue commits behind a sync in progress.
type syncGate struct {
	held    atomic.Bool
	entered chan struct{} // receives when a sync blocks on the gate
	release chan struct{} // closed to let syncs through
	once    sync.Once
}

func newSyncGate() *syncGate {
	return &syncGate{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

// open lets every sync through, now and later.
func (g *syncGate) open() { g.once.Do(func() { close(g.release) }) }

func (g *syncGate) wait() {
	if g.held.Load() {
		select {
		case g.entered <- struct{}{}:
		default:
		}
		<-g.release
	}
}

type gateFS struct {
	vfs.FS
	gate *syncGate
}

func (fs *gateFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, cat)
	return fs.wrap(name, f, err)
}

func (fs *gateFS) ReuseForWrite(old, name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(old, name, cat)
	return fs.wrap(name, f, err)
}

func (fs *gateFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !isWALFile(name) {
		return f, err
	}
	return &gateFile{File: f, gate: fs.gate}, nil
}

type gateFile struct {
	vfs.File
	gate *syncGate
}

func (f *gateFile) Sync() error     { f.gate.wait(); return f.File.Sync() }
func (f *gateFile) SyncData() error { f.gate.wait(); return f.File.SyncData() }

// TestConcurrentAppendsShareSyncs checks group commit in Pebble's commit
// pipeline: Appends that arrive while a WAL sync is in progress are written
// behind it and made durable by one later sync, not one sync each, and
// none of them returns before that sync.
func TestConcurrentAppendsShareSyncs(t *testing.T) {
	const appenders = 32
	gate := newSyncGate()
	l := openLog(t, &gateFS{FS: vfs.NewMem(), gate: gate}, "wal", quietLogger())
	recordBytes := walBytesIn(l)
	mustAppend(t, l, testBlock("s", "nww", 0, 10)) // same size as the blocks below
	recordBytes = walBytesIn(l) - recordBytes

	gate.held.Store(true)
	t.Cleanup(gate.open) // a failed test must not leave Close blocked
	syncsBefore := l.Stats().Syncs
	var returned atomic.Int32
	var wg sync.WaitGroup
	appendOne := func(i int) {
		if err := l.Append(testBlock("s", fmt.Sprintf("n%02d", i), 0, 10)); err != nil {
			t.Errorf("Append: %v", err)
		}
		returned.Add(1)
	}
	wg.Go(func() { appendOne(0) })
	<-gate.entered // the first Append's sync is in progress, and held
	base := walBytesIn(l)
	for i := 1; i < appenders; i++ {
		wg.Go(func() { appendOne(i) })
	}
	waitForWALBytes(t, l, base+uint64(appenders-1)*recordBytes)
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d Appends returned while their sync was held", n)
	}
	gate.open()
	wg.Wait()

	syncs := l.Stats().Syncs - syncsBefore
	t.Logf("%d concurrent Appends took %d WAL syncs", appenders, syncs)
	if syncs > 3 {
		t.Fatalf("%d Appends queued behind one sync took %d syncs, want 2 (group commit)", appenders, syncs)
	}
}

// walBytesIn is how many bytes of batches Pebble has handed to its WAL
// writer; it moves before the commit waits for its sync.
func walBytesIn(l *Log) uint64 { return l.db.Metrics().WAL.BytesIn }

// waitForWALBytes spins until Pebble's WAL writer has taken target bytes:
// until every Append started has queued its commit.
func waitForWALBytes(t *testing.T, l *Log, target uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for walBytesIn(l) < target {
		if time.Now().After(deadline) {
			t.Fatalf("WAL writer took %d bytes, waiting for %d", walBytesIn(l), target)
		}
		runtime.Gosched()
	}
}
