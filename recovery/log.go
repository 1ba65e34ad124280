package recovery

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Log is the metadata log: a raft group whose FSM is the state of §4 of
// ARCHITECTURE.md. Its methods are safe for concurrent use.
type Log struct {
	cfg       Config
	raft      *raft.Raft
	fsm       *fsm
	store     *PebbleStore
	trans     raft.Transport
	ownsTrans bool

	// mu guards closed and the Add side of futures: Close sets closed and
	// then waits for every raft future still in flight, so no goroutine
	// outlives Close and raft never shuts down with a future queued (raft
	// would leave it unanswered).
	mu struct {
		sync.RWMutex
		closed bool
	}
	futures   sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Stats is a snapshot of the raft side of the log.
type Stats struct {
	State             string // raft's state: Leader, Follower, Candidate, Shutdown
	Term              uint64
	LastIndex         uint64 // last entry in the log (or the last snapshot's index)
	AppliedIndex      uint64 // last entry applied to the FSM
	LastSnapshotIndex uint64 // 0: none taken or restored
	FirstIndex        uint64 // first entry kept in the log store; 0 when empty or closed
}

// Open opens the log in cfg.Dir, bootstrapping a one-voter group the first
// time (an empty directory) and reusing the stored state after. It returns
// once this node is the leader and the FSM has applied the whole log, or
// when ctx ends. A corrupt store or snapshot fails Open with a
// *CorruptionError naming the file (see doc.go).
func Open(ctx context.Context, cfg Config) (*Log, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Log{cfg: cfg, fsm: newFSM(cfg.Logger)}
	l.fsm.onTruncate = cfg.OnTruncate
	if err := l.start(); err != nil {
		l.closeAll()
		return nil, err
	}
	if len(cfg.Peers) > 0 {
		if err := l.checkPeers(); err != nil {
			return nil, errors.Join(err, l.Close())
		}
		return l, nil
	}
	if err := l.awaitReady(ctx); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

// start opens the stores, checks the snapshots and starts raft.
func (l *Log) start() error {
	var err error
	if l.store, err = OpenPebbleStore(filepath.Join(l.cfg.Dir, "raft"), l.cfg.FS, l.cfg.Logger); err != nil {
		return err
	}
	snaps, err := l.snapshotStore()
	if err != nil {
		return err
	}
	check := snapshotCheck{snaps: snaps, logs: l.store, logDir: l.store.dir, logger: l.cfg.Logger}
	if l.cfg.Snapshots == nil {
		check.dir = l.cfg.Dir
	}
	if err := check.run(); err != nil {
		return err
	}
	l.transport()
	if err := l.bootstrap(snaps); err != nil {
		return err
	}
	logs, err := raft.NewLogCache(logCacheEntries, l.store)
	if err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	if l.raft, err = raft.NewRaft(l.cfg.raftConfig(), l.fsm, logs, l.store, snaps, l.trans); err != nil {
		return fmt.Errorf("recovery: start raft: %w", err)
	}
	return nil
}

func (l *Log) snapshotStore() (raft.SnapshotStore, error) {
	if l.cfg.Snapshots != nil {
		return l.cfg.Snapshots, nil
	}
	s, err := raft.NewFileSnapshotStoreWithLogger(l.cfg.Dir, snapshotsRetained, newHCLog(l.cfg.Logger))
	if err != nil {
		return nil, fmt.Errorf("recovery: open snapshot store in %s: %w", l.cfg.Dir, err)
	}
	return s, nil
}

func (l *Log) transport() {
	if l.cfg.Transport != nil {
		l.trans = l.cfg.Transport
		return
	}
	_, l.trans = raft.NewInmemTransport(raft.ServerAddress(l.cfg.NodeID))
	l.ownsTrans = true
}

// bootstrap writes the one-voter configuration into an empty store. A store
// with any state (log, term or snapshot) is never bootstrapped over.
func (l *Log) bootstrap(snaps raft.SnapshotStore) error {
	exists, err := raft.HasExistingState(l.store, l.store, snaps)
	if err != nil {
		return fmt.Errorf("recovery: read raft state in %s: %w", l.cfg.Dir, err)
	}
	if exists {
		return nil
	}
	conf := raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter, ID: raft.ServerID(l.cfg.NodeID), Address: l.trans.LocalAddr(),
	}}}
	if len(l.cfg.Peers) > 0 {
		conf.Servers = nil
		for _, p := range l.cfg.Peers {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)})
		}
	}
	if err := raft.BootstrapCluster(l.cfg.raftConfig(), l.store, l.store, snaps, l.trans, conf); err != nil {
		return fmt.Errorf("recovery: bootstrap %s: %w", l.cfg.Dir, err)
	}
	return nil
}

// awaitReady waits for leadership, then for the FSM to catch up with the
// log (a barrier), so the first View after Open holds every entry.
func (l *Log) awaitReady(ctx context.Context) error {
	if err := l.checkVoter(); err != nil {
		return err
	}
	for l.raft.State() != raft.Leader {
		select {
		case <-l.raft.LeaderCh():
		case <-ctx.Done():
			return fmt.Errorf("recovery: open %s: no leadership yet (state %s): %w", l.cfg.Dir, l.raft.State(), ctx.Err())
		}
	}
	if err := l.wait(ctx, func(timeout time.Duration) raft.Future { return l.raft.Barrier(timeout) }); err != nil {
		return fmt.Errorf("recovery: open %s: replay the log: %w", l.cfg.Dir, futureError(err))
	}
	return nil
}

// checkVoter fails fast when the stored configuration does not make this
// node a voter (a data directory of another node): it could never lead.
func (l *Log) checkVoter() error {
	f := l.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("recovery: read raft configuration: %w", err)
	}
	var ids []raft.ServerID
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(l.cfg.NodeID) && s.Suffrage == raft.Voter {
			return nil
		}
		ids = append(ids, s.ID)
	}
	return fmt.Errorf("%w: NodeID %q is not a voter of the log in %s (voters %v): use that node's id or a fresh Dir",
		ErrInvalidConfig, l.cfg.NodeID, l.cfg.Dir, ids)
}

// Apply commits ev and returns the FSM's result once it is applied. An
// event the FSM refuses returns its error (ErrBatchOrder, ...); raft's
// failures are ErrNotLeader, ErrTimeout, ErrClosed, or ctx's error.
func (l *Log) Apply(ctx context.Context, ev Event) (Result, error) {
	data, err := EncodeEvent(ev)
	if err != nil {
		return Result{}, err
	}
	var f raft.ApplyFuture
	err = l.wait(ctx, func(timeout time.Duration) raft.Future {
		f = l.raft.Apply(data, timeout)
		return f
	})
	if err != nil {
		return Result{}, fmt.Errorf("recovery: apply %s: %w", ev.Type(), futureError(err))
	}
	resp, ok := f.Response().(applyResponse)
	if !ok {
		return Result{}, fmt.Errorf("recovery: apply %s: unexpected FSM response %T", ev.Type(), f.Response())
	}
	return resp.result, resp.err
}

// Snapshot makes raft take a snapshot now and compact the log behind it.
// Nothing new to snapshot is not an error.
func (l *Log) Snapshot(ctx context.Context) error {
	err := l.wait(ctx, func(time.Duration) raft.Future { return l.raft.Snapshot() })
	if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("recovery: snapshot: %w", futureError(err))
	}
	return nil
}

// View returns a copy of the FSM's state.
func (l *Log) View() View { return l.fsm.view() }

// Stats reports raft's indexes and state.
func (l *Log) Stats() Stats {
	st := Stats{
		State:        l.raft.State().String(),
		Term:         l.raft.CurrentTerm(),
		LastIndex:    l.raft.LastIndex(),
		AppliedIndex: l.raft.AppliedIndex(),
	}
	st.LastSnapshotIndex, _ = strconv.ParseUint(l.raft.Stats()["last_snapshot_index"], 10, 64)
	l.mu.RLock()
	defer l.mu.RUnlock()
	if !l.mu.closed {
		st.FirstIndex, _ = l.store.FirstIndex()
	}
	return st
}

// Close waits for the raft futures in flight, shuts raft down and closes
// the store. Later calls return the first call's error.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.mu.closed = true
		l.mu.Unlock()
		l.futures.Wait()
		l.closeErr = l.closeAll()
	})
	return l.closeErr
}

func (l *Log) closeAll() error {
	var errs []error
	if l.raft != nil {
		if err := l.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("recovery: shut down raft: %w", err))
		}
	}
	if closer, ok := l.trans.(interface{ Close() error }); ok && l.ownsTrans {
		errs = append(errs, closer.Close())
	}
	if l.store != nil {
		errs = append(errs, l.store.Close())
	}
	return errors.Join(errs...)
}
