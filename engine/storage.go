package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
	"github.com/sluice-stream/sluice/checkpoint"
	"github.com/sluice-stream/sluice/recovery"
	"github.com/sluice-stream/sluice/state"
	"github.com/sluice-stream/sluice/wal"
)

// metaLog is the metadata log as the scheduler and receivers use it: a
// *recovery.Log in a data directory (one voter of Raft), or an in-memory
// log without a data directory.
type metaLog interface {
	Apply(ctx context.Context, ev recovery.Event) (recovery.Result, error)
	View() recovery.View
	ProducerSeen(producer string, seq uint64) (seen bool, rejectReason string)
	ProducerPosition(producer string) (seq uint64, ok bool)
	LastBlock(stream, node string) (seq uint64, ok bool)
	Close() error
}

// blockLog is where receivers' blocks are kept: the write-ahead log.
type blockLog interface {
	Append(b wal.Block) error
	Read(id wal.BlockID) (wal.Block, error)
	Iterate(fn func(wal.Block) error) error
	Delete(ids []wal.BlockID) error
	LastSeq(stream, node string) (seq uint64, ok bool, err error)
	Close() error
}

// storage is a node's durable state: its write-ahead log of blocks and its
// metadata log, in Config.DataDir (or in memory when there is none).
type storage struct {
	node   string
	blocks blockLog
	meta   metaLog
	unlock func()

	fs       vfs.FS
	dir      string          // the data directory ("" in memory)
	state    *state.Store    // set by openState
	ckpts    *checkpoint.Dir // DIR/checkpoints
	ckptMeta checkpoint.Meta // what every checkpoint of this application says
	lastCkpt Time            // batch time of the newest checkpoint written or referenced

	truncatedBefore Time // only the scheduler's run goroutine uses it after start
}

// ErrDataDirInUse is returned by Start when another process has the data
// directory open.
var ErrDataDirInUse = errors.New("engine: the data directory is in use by another node")

// openStorage opens (or creates) the data directory: a lock file, the WAL
// in DIR/wal and the metadata log in DIR/meta.
func openStorage(c *Context) (*storage, error) {
	cfg := c.cfg
	if cfg.DataDir == "" {
		return openMemoryStorage(c)
	}
	fs, unlock := cfg.FS, func() {}
	if fs == nil {
		fs = vfs.Default
	}
	if err := mkdirAllSynced(fs, cfg.DataDir); err != nil {
		return nil, fmt.Errorf("engine: data directory %s: %w", cfg.DataDir, err)
	}
	if cfg.FS == nil {
		var err error
		if unlock, err = lockDir(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	s := &storage{node: cfg.NodeID, unlock: unlock, fs: fs, dir: cfg.DataDir}
	opts := wal.Options{Logger: c.log, FS: fs}
	var err error
	if failpointSet(FailAfterWALWrite) {
		opts.AfterWrite = func() { failpoint(FailAfterWALWrite) }
	}
	if s.blocks, err = wal.Open(filepath.Join(cfg.DataDir, "wal"), opts); err != nil {
		unlock()
		return nil, fmt.Errorf("engine: opening the write-ahead log in %s: %w", cfg.DataDir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mcfg := recovery.Config{Dir: filepath.Join(cfg.DataDir, "meta"), NodeID: cfg.NodeID, Logger: c.log}
	if cfg.FS != nil {
		mcfg.FS, mcfg.Snapshots = cfg.FS, raft.NewInmemSnapshotStore()
		mcfg.SnapshotThreshold = 1 << 40 // snapshots would not survive a simulated crash
	}
	if cc := cfg.Cluster; cc != nil {
		mcfg.Transport, mcfg.Peers, mcfg.OnTruncate = cc.Network.Raft(), cc.Peers, c.node.onTruncate
		mcfg.HeartbeatTimeout, mcfg.ElectionTimeout = 500*time.Millisecond, 500*time.Millisecond
	}
	meta, err := recovery.Open(ctx, mcfg)
	if err != nil {
		s.blocks.Close()
		unlock()
		return nil, fmt.Errorf("engine: opening the metadata log in %s: %w", cfg.DataDir, err)
	}
	s.meta = meta
	if err := s.openCheckpoints(c); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// openCheckpoints opens DIR/checkpoints, whose checkpoints afterRename
// (a crash-test failpoint) follows.
func (s *storage) openCheckpoints(c *Context) error {
	opts := checkpoint.Options{FS: s.fs, Logger: c.log}
	if failpointSet(FailAfterCheckpointRenamed) {
		opts.AfterRename = func() { failpoint(FailAfterCheckpointRenamed) }
	}
	d, err := checkpoint.Open(s.fs.PathJoin(s.dir, "checkpoints"), opts)
	if err != nil {
		return fmt.Errorf("engine: opening the checkpoints in %s: %w", s.dir, err)
	}
	s.ckpts = d
	return nil
}

// openMemoryStorage runs the same logs as a data directory does, on an
// in-memory filesystem: there is one code path, and a context without a
// data directory loses its data with the process.
func openMemoryStorage(c *Context) (*storage, error) {
	fs := vfs.NewMem()
	blocks, err := wal.Open("wal", wal.Options{FS: fs, Logger: c.log})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	meta, err := recovery.Open(ctx, recovery.Config{Dir: "meta", NodeID: c.cfg.NodeID, Logger: c.log, FS: fs,
		Snapshots: raft.NewInmemSnapshotStore(), HeartbeatTimeout: 10 * time.Millisecond, ElectionTimeout: 10 * time.Millisecond})
	if err != nil {
		blocks.Close()
		return nil, err
	}
	s := &storage{node: c.cfg.NodeID, blocks: blocks, meta: meta, unlock: func() {}, fs: fs, dir: ""}
	if err := s.openCheckpoints(c); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// close closes the logs and the state store. The state's last applied
// batch is made durable first (Apply does not sync).
func (s *storage) close() error {
	var err error
	if s.state != nil {
		err = errors.Join(s.state.Sync(), s.state.Close())
	}
	err = errors.Join(err, s.meta.Close(), s.blocks.Close())
	s.unlock()
	return err
}

// mkdirAllSynced creates dir and its missing parents, syncing each new
// directory's parent, so that a crash cannot take the data directory's
// entry away with everything in it.
func mkdirAllSynced(fs vfs.FS, dir string) error {
	if _, err := fs.Stat(dir); err == nil {
		return nil
	}
	parent := fs.PathDir(dir)
	if parent != dir {
		if err := mkdirAllSynced(fs, parent); err != nil {
			return err
		}
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	d, err := fs.OpenDir(parent)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lockDir takes an exclusive lock on DIR/LOCK for the life of the process,
// writing the holder's pid into it so the refusal can say who holds it.
func lockDir(dir string) (func(), error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("engine: data directory %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("%w: %s is locked by process %s; stop that node or use another --data-dir",
			ErrDataDirInUse, dir, strings.TrimSpace(string(holder)))
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}

// collectGarbage runs at start: it deletes the blocks of the WAL that the
// metadata log does not reference (written before a crash and never
// registered, so never acknowledged; or left behind by a truncation cut
// short), and sets each receiver's next block sequence past every block
// this node stored.
//
// In a cluster the driver runs it at takeover with deleteOrphans false:
// other nodes' blocks may be on their way to being registered.
func (st *storage) collectGarbage(view recovery.View, receivers []*receiverStream, deleteOrphans bool) error {
	referenced := make(map[wal.BlockID]bool)
	last := make(map[string]uint64)
	note := func(ref recovery.BlockRef) {
		id := wal.BlockID{Stream: ref.Stream, Node: ref.Node, Seq: ref.Seq}
		referenced[id] = true
		if ref.Node == st.node {
			last[ref.Stream] = max(last[ref.Stream], ref.Seq)
		}
	}
	for _, e := range view.Unallocated {
		note(e.Ref)
	}
	for _, b := range view.Batches {
		for _, e := range b.Blocks {
			note(e.Ref)
		}
	}
	var orphans []wal.BlockID
	err := st.blocks.Iterate(func(b wal.Block) error {
		if b.ID.Node == st.node {
			last[b.ID.Stream] = max(last[b.ID.Stream], b.ID.Seq)
		}
		if !referenced[b.ID] {
			orphans = append(orphans, b.ID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("engine: reading the write-ahead log at start: %w", err)
	}
	if len(orphans) > 0 && deleteOrphans {
		if err := st.blocks.Delete(orphans); err != nil {
			return fmt.Errorf("engine: deleting %d unregistered blocks: %w", len(orphans), err)
		}
	}
	for _, r := range receivers {
		if seq, ok := st.meta.LastBlock(r.stream, st.node); ok {
			last[r.stream] = max(last[r.stream], seq)
		}
		r.nextSeq.Store(last[r.stream] + 1)
	}
	st.truncatedBefore = Time(view.TruncatedBefore)
	return nil
}

// truncate forgets completed batches before horizon and deletes their
// blocks, once the horizon has moved truncateEvery batches since the last
// time: first the metadata log stops referencing them, then the WAL lets
// them go (a crash between leaves garbage that the next start collects).
//
// The horizon never passes the oldest checkpoint the log references (plus
// one batch): the batches after a checkpoint are what a restore from it
// re-runs. Without a checkpoint nothing is truncated.
func (st *storage) truncate(ctx context.Context, epoch uint64, horizon Time, every, batch time.Duration) error {
	if horizon.Sub(st.truncatedBefore) < every {
		return nil
	}
	view := st.meta.View()
	if len(view.Checkpoints) == 0 {
		return nil
	}
	horizon = min(horizon, Time(view.Checkpoints[0].Time).Add(batch))
	if horizon <= st.truncatedBefore {
		return nil
	}
	var ids []wal.BlockID
	for _, b := range view.Batches {
		if Time(b.Time) >= horizon {
			break
		}
		for _, e := range b.Blocks {
			ids = append(ids, wal.BlockID{Stream: e.Ref.Stream, Node: e.Ref.Node, Seq: e.Ref.Seq})
		}
	}
	if _, err := st.meta.Apply(ctx, recovery.Truncated{Before: int64(horizon), Epoch: epoch}); err != nil {
		return fmt.Errorf("engine: truncating before %v: %w", horizon, err)
	}
	st.truncatedBefore = horizon
	if err := st.blocks.Delete(ids); err != nil {
		return fmt.Errorf("engine: deleting %d blocks before %v: %w", len(ids), horizon, err)
	}
	return nil
}
