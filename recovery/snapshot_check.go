package recovery

// Before raft starts, Open checks that the snapshot raft will restore and
// the log after it rebuild the state exactly. raft alone would not: it
// skips a snapshot that fails its CRC or whose meta.json does not parse and
// restores an older one (or none), even when the log was compacted past it,
// and then panics on the missing entries (or, with no snapshot, serves a
// state without them).
//
// The check walks the snapshots newest first. A corrupt one (raft's CRC-64,
// our envelope, an unreadable meta.json) is skipped only if the log still
// holds every entry after the next good snapshot (or after index 0) up to
// the corrupt one's index; then the corrupt snapshot is moved aside to
// Dir/snapshots.broken/<id> and raft restores the good one and replays the
// log: the same state. Otherwise Open fails with a *CorruptionError naming
// the snapshot's file. It also fails when the log starts after the snapshot
// raft will restore (entries missing in between), and with
// ErrSnapshotVersion for a snapshot of a newer release (not corrupt: it
// must not be skipped). Half-written snapshots (*.tmp, left by a crash
// while raft persisted one) are removed.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/raft"
)

// snapshotCheck is what Open knows for the check.
type snapshotCheck struct {
	snaps  raft.SnapshotStore
	dir    string // the FileSnapshotStore's base dir (its snapshots are in dir/snapshots); "" for another store
	logs   raft.LogStore
	logDir string // named in errors about the log
	logger *slog.Logger
}

// badSnapshot is a snapshot that cannot be restored.
type badSnapshot struct {
	id    string
	file  string // the file found bad: state.bin or meta.json
	index uint64
	err   error
}

func (c snapshotCheck) run() error {
	metas, err := c.snaps.List()
	if err != nil {
		return fmt.Errorf("recovery: list snapshots: %w", err)
	}
	bad := c.unlisted(metas)
	for _, m := range metas {
		err := c.verify(m)
		if errors.Is(err, ErrSnapshotVersion) {
			// Not corrupt: written by a newer release. Falling back would
			// replay that release's events, which this one cannot apply.
			return fmt.Errorf("recovery: snapshot %s: %w", c.path(badSnapshot{id: m.ID, file: "state.bin"}), err)
		}
		if err != nil {
			bad = append(bad, badSnapshot{m.ID, "state.bin", m.Index, err})
			continue
		}
		return c.settle(bad, m.Index)
	}
	return c.settle(bad, 0)
}

// verify reads a whole snapshot: raft's CRC-64 (in Open), then ours.
func (c snapshotCheck) verify(m *raft.SnapshotMeta) error {
	_, rc, err := c.snaps.Open(m.ID)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = decodeSnapshot(rc)
	return err
}

// settle decides, given the snapshots newer than base that are bad and the
// good one at base (0: none), whether raft may start.
func (c snapshotCheck) settle(bad []badSnapshot, base uint64) error {
	first, last, err := logBounds(c.logs)
	if err != nil {
		return err
	}
	need := base
	for _, b := range bad {
		need = max(need, b.index)
	}
	var reason string
	switch {
	case last > base && first > base+1:
		reason = fmt.Sprintf("the log starts at index %d, but %s ends at %d: the entries in between are missing",
			first, baseName(base), base)
	case need > base && last < need:
		reason = fmt.Sprintf("the log ends at index %d, before the snapshot's %d", last, need)
	default:
		return c.moveAside(bad)
	}
	reason += fmt.Sprintf(": restore %s from a backup, or in a cluster empty it so the node catches up from the leader", c.dirOrID())
	if len(bad) == 0 {
		return &CorruptionError{Path: c.logDir, Offset: -1, Reason: reason}
	}
	b := newest(bad)
	return &CorruptionError{Path: c.path(b), Offset: -1, Err: b.err,
		Reason: fmt.Sprintf("the snapshot at index %d cannot be restored, and %s", b.index, reason)}
}

func baseName(base uint64) string {
	if base == 0 {
		return "with no older snapshot the state"
	}
	return fmt.Sprintf("the older snapshot at index %d", base)
}

func newest(bad []badSnapshot) badSnapshot {
	b := bad[0]
	for _, x := range bad[1:] {
		if x.index > b.index {
			b = x
		}
	}
	return b
}

// moveAside moves the bad snapshots out of raft's sight, keeping them for
// a post-mortem. With a store that is not a FileSnapshotStore it does
// nothing: raft skips them itself.
func (c snapshotCheck) moveAside(bad []badSnapshot) error {
	if c.dir == "" || len(bad) == 0 {
		return nil
	}
	broken := filepath.Join(c.dir, "snapshots.broken")
	if err := os.MkdirAll(broken, 0o755); err != nil {
		return fmt.Errorf("recovery: move corrupt snapshot aside: %w", err)
	}
	for _, b := range bad {
		c.logger.Warn("recovery: corrupt snapshot moved aside; the state is rebuilt from an older snapshot and the log",
			"snapshot", c.path(b), "index", b.index, "to", broken, "err", b.err)
		if err := os.Rename(filepath.Join(c.dir, "snapshots", b.id), filepath.Join(broken, b.id)); err != nil {
			return fmt.Errorf("recovery: move corrupt snapshot aside: %w", err)
		}
	}
	if err := syncDir(filepath.Join(c.dir, "snapshots")); err != nil {
		return err
	}
	return syncDir(broken)
}

// unlisted finds snapshot directories that a FileSnapshotStore does not
// list although they are newer than what it lists: their meta.json is
// unreadable or of an unknown version, so raft would silently ignore them.
func (c snapshotCheck) unlisted(metas []*raft.SnapshotMeta) []badSnapshot {
	if c.dir == "" {
		return nil
	}
	entries, _ := os.ReadDir(filepath.Join(c.dir, "snapshots"))
	var floor uint64
	listed := map[string]bool{}
	for _, m := range metas {
		listed[m.ID] = true
		floor = max(floor, m.Index)
	}
	var bad []badSnapshot
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), tmpSnapshotSuffix) {
			c.removeTemp(e.Name())
			continue
		}
		idx, ok := snapshotIndex(e.Name())
		if e.IsDir() && ok && !listed[e.Name()] && idx > floor {
			bad = append(bad, badSnapshot{e.Name(), "meta.json", idx, fmt.Errorf("unreadable, or of a version raft does not know")})
		}
	}
	return bad
}

// tmpSnapshotSuffix marks a FileSnapshotStore snapshot still being written.
const tmpSnapshotSuffix = ".tmp"

// removeTemp removes a snapshot left half-written by a crash; raft never
// reads those.
func (c snapshotCheck) removeTemp(name string) {
	path := filepath.Join(c.dir, "snapshots", name)
	if err := os.RemoveAll(path); err != nil {
		c.logger.Warn("recovery: cannot remove a half-written snapshot", "path", path, "err", err)
	}
}

// snapshotIndex parses the index out of raft's snapshot id
// "<term>-<index>-<unix ms>".
func snapshotIndex(id string) (uint64, bool) {
	parts := strings.Split(id, "-")
	if len(parts) != 3 {
		return 0, false
	}
	idx, err := strconv.ParseUint(parts[1], 10, 64)
	return idx, err == nil
}

func (c snapshotCheck) path(b badSnapshot) string {
	if c.dir == "" {
		return "snapshot " + b.id
	}
	return filepath.Join(c.dir, "snapshots", b.id, b.file)
}

func (c snapshotCheck) dirOrID() string {
	if c.dir == "" {
		return "the data directory"
	}
	return c.dir
}

func logBounds(logs raft.LogStore) (first, last uint64, err error) {
	if first, err = logs.FirstIndex(); err != nil {
		return 0, 0, fmt.Errorf("recovery: read the log's first index: %w", err)
	}
	if last, err = logs.LastIndex(); err != nil {
		return 0, 0, fmt.Errorf("recovery: read the log's last index: %w", err)
	}
	return first, last, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
