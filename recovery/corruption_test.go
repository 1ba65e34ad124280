package recovery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestCorruption damages a closed log's files and checks what Open does.
// The rule in every case: Open serves a state the log really held (the
// whole state, or exactly a prefix of the committed events), or fails with
// an error that names the damaged file. It never serves a wrong state.
func TestCorruption(t *testing.T) {
	t.Run("truncated_raft_log_file", testTruncatedRaftLogFile)
	t.Run("truncated_raft_sstable", testTruncatedRaftSSTable)
	t.Run("corrupt_snapshot", testCorruptSnapshot)
	t.Run("corrupt_snapshot_no_older", testCorruptSnapshotNoOlder)
	t.Run("corrupt_snapshot_meta", testCorruptSnapshotMeta)
	t.Run("unknown_event_type", testUnknownEventType)
}

// prefixViews applies evs one by one and returns the view after each
// prefix: views[k] is the state after evs[:k].
func prefixViews(t *testing.T, l *Log, evs []Event) []View {
	model := newState()
	views := []View{model.view()}
	for i := range evs {
		applyLog(t, l, model, evs[i:i+1])
		views = append(views, model.view())
	}
	return views
}

// newestFile returns the most recently written file in dir (ties: the
// greatest name), ignoring empty files (LOCK, markers).
func newestFile(t *testing.T, dir string) (string, int64) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var best os.FileInfo
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || fi.IsDir() || fi.Size() == 0 {
			continue
		}
		if best == nil || fi.ModTime().After(best.ModTime()) ||
			(fi.ModTime().Equal(best.ModTime()) && fi.Name() > best.Name()) {
			best = fi
		}
	}
	return filepath.Join(dir, best.Name()), best.Size()
}

// Pebble's newest file after Close is its WAL (entries since the last
// flush). Cut in half, Pebble replays it up to the last whole record and
// treats the torn rest as the end of the log, as after a crash. Open then
// serves exactly that durable prefix of the events, and the log goes on
// from there: the entries lost with the cut are gone on a single node (a
// voter of a larger group would get them back from the leader).
func testTruncatedRaftLogFile(t *testing.T) {
	dir := t.TempDir()
	evs := randomLog(21, 60)
	l := openLog(t, testConfig(dir))
	views := prefixViews(t, l, evs)
	closeLog(t, l)
	path, size := newestFile(t, filepath.Join(dir, "raft"))
	if !strings.HasSuffix(path, ".log") {
		t.Fatalf("newest file %s is not the WAL", path)
	}
	if err := os.Truncate(path, size/2); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, testConfig(dir))
	k := matchingPrefix(t, l.View(), views)
	if k == 0 || k == len(evs) {
		t.Fatalf("cut at half kept %d of %d events: the cut missed the entries", k, len(evs))
	}
	model := replay(t, nil, evs[:k])
	applyLog(t, l, model, evs[k:]) // the log goes on from the prefix
	sameView(t, l.View(), model.view())
}

// matchingPrefix returns the k with views[k] equal to v, or fails.
func matchingPrefix(t *testing.T, v View, views []View) int {
	t.Helper()
	for k := len(views) - 1; k >= 0; k-- {
		if reflect.DeepEqual(v, views[k]) {
			return k
		}
	}
	t.Fatalf("recovered state is no prefix of the events: %+v", v)
	return -1
}

// An sstable cut short (here after a flush) is refused by Pebble when it
// opens, and the error names the file.
func testTruncatedRaftSSTable(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, testConfig(dir))
	applyLog(t, l, newState(), randomLog(22, 40))
	if err := l.store.db.Flush(); err != nil {
		t.Fatal(err)
	}
	closeLog(t, l)
	ssts, _ := filepath.Glob(filepath.Join(dir, "raft", "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no sstable after a flush")
	}
	fi, _ := os.Stat(ssts[0])
	if err := os.Truncate(ssts[0], fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), testConfig(dir))
	if err == nil || !strings.Contains(err.Error(), ssts[0]) {
		t.Fatalf("open with a torn sstable: %v, want an error naming %s", err, ssts[0])
	}
}

// snapshotConfig snapshots only when asked and keeps trailing entries.
func snapshotConfig(dir string, trailing uint64) Config {
	cfg := testConfig(dir)
	cfg.SnapshotThreshold, cfg.SnapshotInterval, cfg.TrailingLogs = 1<<40, time.Hour, trailing
	return cfg
}

// twoSnapshots applies evs with a snapshot after each half and returns the
// view at close and the newest snapshot's directory.
func twoSnapshots(t *testing.T, cfg Config, evs []Event) (View, string) {
	l := openLog(t, cfg)
	model := newState()
	half := len(evs) / 2
	for _, part := range [][]Event{evs[:half], evs[half:]} {
		applyLog(t, l, model, part)
		if err := l.Snapshot(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	v := l.View()
	closeLog(t, l)
	metas, err := mustSnapshots(t, cfg.Dir)
	if err != nil || len(metas) != 2 {
		t.Fatalf("snapshots %v, %v", metas, err)
	}
	return v, filepath.Join(cfg.Dir, "snapshots", metas[0])
}

// mustSnapshots lists the snapshot ids, newest (highest index) first.
func mustSnapshots(t *testing.T, dir string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	var ids []string
	for _, e := range ents {
		ids = append(ids, e.Name())
	}
	sort.Slice(ids, func(i, j int) bool {
		a, _ := snapshotIndex(ids[i])
		b, _ := snapshotIndex(ids[j])
		return a > b
	})
	return ids, err
}

func flipByte(t *testing.T, path string, off int64) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x20
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A flipped byte in the newest snapshot: raft's CRC-64 catches it. The log
// still holds every entry after the older snapshot (TrailingLogs), so Open
// moves the corrupt one to snapshots.broken and rebuilds the same state
// from the older snapshot and the log.
func testCorruptSnapshot(t *testing.T) {
	dir := t.TempDir()
	want, newest := twoSnapshots(t, snapshotConfig(dir, 10_000), randomLog(23, 80))
	flipByte(t, filepath.Join(newest, "state.bin"), 40)
	l := openLog(t, snapshotConfig(dir, 10_000))
	sameView(t, l.View(), want)
	if _, err := os.Stat(filepath.Join(dir, "snapshots.broken", filepath.Base(newest), "state.bin")); err != nil {
		t.Fatalf("corrupt snapshot not moved aside: %v", err)
	}
}

// The same flip when the log was compacted past the older snapshot: no
// state can be rebuilt, and Open fails naming the corrupt snapshot.
func testCorruptSnapshotNoOlder(t *testing.T) {
	dir := t.TempDir()
	_, newest := twoSnapshots(t, snapshotConfig(dir, 1), randomLog(24, 80))
	flipByte(t, filepath.Join(newest, "state.bin"), 40)
	_, err := Open(context.Background(), snapshotConfig(dir, 1))
	if !IsCorruption(err) || !strings.Contains(err.Error(), filepath.Join(newest, "state.bin")) {
		t.Fatalf("open: %v, want corruption naming %s", err, newest)
	}
	if _, statErr := os.Stat(newest); statErr != nil {
		t.Fatalf("snapshot moved although Open failed: %v", statErr)
	}
}

// A newest snapshot whose meta.json is garbage is invisible to raft's
// FileSnapshotStore, which would restore the older one over a log compacted
// past it. Open sees the directory and refuses.
func testCorruptSnapshotMeta(t *testing.T) {
	dir := t.TempDir()
	_, newest := twoSnapshots(t, snapshotConfig(dir, 1), randomLog(25, 80))
	if err := os.WriteFile(filepath.Join(newest, "meta.json"), []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), snapshotConfig(dir, 1))
	if !IsCorruption(err) || !strings.Contains(err.Error(), newest) {
		t.Fatalf("open: %v, want corruption naming %s", err, newest)
	}
}

// An entry of a type this release does not know (a newer release's, or
// garbage) is an error result that changes nothing, when applied and when
// replayed at the next Open; it never panics.
func testUnknownEventType(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, testConfig(dir))
	model := newState()
	applyLog(t, l, model, randomLog(26, 30))
	f := l.raft.Apply([]byte{eventVersion, 99, 0x80}, 0)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if resp := f.Response().(applyResponse); !errors.Is(resp.err, ErrUnknownEvent) {
		t.Fatalf("unknown type: %v", resp.err)
	}
	want := l.View()
	sameView(t, want, model.view())
	closeLog(t, l)
	l = openLog(t, testConfig(dir))
	sameView(t, l.View(), want)
}
