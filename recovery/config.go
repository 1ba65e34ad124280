package recovery

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// Config configures a Log. Zero fields take the values of DefaultConfig,
// except Dir and NodeID, which are required.
type Config struct {
	// Dir holds the raft log and stable store (Pebble, Dir/raft) and the
	// snapshots (Dir/snapshots, raft's FileSnapshotStore).
	Dir    string
	NodeID string
	// Logger receives raft's and Pebble's log lines (raft's debug chatter
	// at slog's Debug level). nil: discarded.
	Logger *slog.Logger
	// FS is the filesystem of the Pebble store; nil is the real disk. The
	// snapshots are always on the real disk unless Snapshots is set.
	FS vfs.FS
	// Transport connects the voters. nil: an in-memory transport, for a
	// one-voter group. A transport passed in is the caller's to close,
	// after Close.
	Transport raft.Transport
	// Peers is the static initial cluster (etcd's --initial-cluster): every
	// voter's id and raft address, this node included. Empty: a one-voter
	// group of NodeID. With peers, Open bootstraps an empty store with all
	// of them as voters, refuses a store whose voters differ, and returns
	// without waiting for a leader (a cluster elects one once a majority
	// runs).
	Peers []Peer
	// OnTruncate, when set, is called on raft's FSM goroutine after a
	// Truncated entry applied, with the blocks of the batches it dropped,
	// so a node can delete its copies. It must not block or call the Log.
	OnTruncate func([]BlockRef)
	// SnapshotThreshold is the number of entries after which raft takes a
	// snapshot and compacts the log (checked every SnapshotInterval).
	SnapshotThreshold uint64

	// Snapshots replaces the FileSnapshotStore in Dir/snapshots (for
	// instance raft.NewInmemSnapshotStore in a simulation). The corrupt
	// snapshot check still runs; corrupt snapshots are not moved aside.
	Snapshots raft.SnapshotStore
	// SnapshotInterval is how often raft checks SnapshotThreshold.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries the log keeps behind a snapshot, so
	// that an older snapshot still covers them if the newest turns out
	// corrupt. Default: 2 × SnapshotThreshold.
	TrailingLogs uint64
	// HeartbeatTimeout and ElectionTimeout: a one-voter group elects itself
	// between one and two HeartbeatTimeouts after Open.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
}

// Peer is one voter of a cluster: its node id and raft address.
type Peer struct {
	ID      string
	Address string
}

// Defaults. A snapshot every 8192 entries keeps a restart's replay short
// (entries are a few hundred bytes; replay runs at tens of thousands per
// second).
const (
	DefaultSnapshotThreshold = 8192
	DefaultSnapshotInterval  = 10 * time.Second
	DefaultHeartbeatTimeout  = 200 * time.Millisecond
	DefaultElectionTimeout   = 200 * time.Millisecond
	snapshotsRetained        = 2
	logCacheEntries          = 1024
)

// DefaultConfig returns a Config with every default set; the caller fills
// in Dir and NodeID.
func DefaultConfig() Config {
	return Config{
		Logger:            slog.New(slog.DiscardHandler),
		SnapshotThreshold: DefaultSnapshotThreshold,
		SnapshotInterval:  DefaultSnapshotInterval,
		TrailingLogs:      2 * DefaultSnapshotThreshold,
		HeartbeatTimeout:  DefaultHeartbeatTimeout,
		ElectionTimeout:   DefaultElectionTimeout,
	}
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = d.SnapshotInterval
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 2 * c.SnapshotThreshold
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = d.ElectionTimeout
	}
	return c
}

// Validate reports the first field out of range, by name, with the range
// it accepts.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: Dir is empty: give the directory of the metadata log", ErrInvalidConfig)
	case c.NodeID == "":
		return fmt.Errorf("%w: NodeID is empty: give this node's id", ErrInvalidConfig)
	case c.SnapshotThreshold < 1:
		return fmt.Errorf("%w: SnapshotThreshold is 0: want ≥ 1 entry", ErrInvalidConfig)
	case c.HeartbeatTimeout < 5*time.Millisecond || c.ElectionTimeout < c.HeartbeatTimeout:
		return fmt.Errorf("%w: HeartbeatTimeout %v, ElectionTimeout %v: want 5ms ≤ HeartbeatTimeout ≤ ElectionTimeout",
			ErrInvalidConfig, c.HeartbeatTimeout, c.ElectionTimeout)
	case c.SnapshotInterval < time.Millisecond:
		return fmt.Errorf("%w: SnapshotInterval %v: want ≥ 1ms", ErrInvalidConfig, c.SnapshotInterval)
	}
	return c.validatePeers()
}

// validatePeers refuses duplicate ids or addresses, empty fields, and a
// list that does not hold NodeID.
func (c Config) validatePeers() error {
	if len(c.Peers) == 0 {
		return nil
	}
	ids, addrs := map[string]bool{}, map[string]bool{}
	self := false
	for _, p := range c.Peers {
		switch {
		case p.ID == "" || p.Address == "":
			return fmt.Errorf("%w: peer %q=%q: give every peer as ID=HOST:PORT", ErrInvalidConfig, p.ID, p.Address)
		case ids[p.ID]:
			return fmt.Errorf("%w: peer id %q is listed twice: every node needs its own id", ErrInvalidConfig, p.ID)
		case addrs[p.Address]:
			return fmt.Errorf("%w: raft address %s is listed twice: every node needs its own address", ErrInvalidConfig, p.Address)
		}
		ids[p.ID], addrs[p.Address] = true, true
		self = self || p.ID == c.NodeID
	}
	if !self {
		return fmt.Errorf("%w: this node's id %q is not among the peers: list it with its own raft address", ErrInvalidConfig, c.NodeID)
	}
	return nil
}

// raftConfig translates c for raft.
func (c Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = max(c.HeartbeatTimeout/2, 5*time.Millisecond)
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.SnapshotInterval = c.SnapshotInterval
	rc.TrailingLogs = c.TrailingLogs
	rc.NoLegacyTelemetry = true
	rc.Logger = newHCLog(c.Logger)
	return rc
}
