package engine

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Config configures a Context. Start from DefaultConfig; Validate reports
// the first bad value by its field name and the accepted range.
type Config struct {
	// AppName names the application in logs and the UI.
	AppName string
	// BatchDuration is the interval between batches. Required; a whole
	// number of milliseconds greater than zero.
	BatchDuration time.Duration
	// BlockInterval is how often receivers cut their input into blocks
	// (Spark's spark.streaming.blockInterval). Default 200ms.
	BlockInterval time.Duration
	// Partitions is the default number of partitions of key-partitioned
	// operators and state. Default 2 × the number of CPUs.
	Partitions int
	// Parallelism is how many tasks run at once. Default GOMAXPROCS.
	Parallelism int
	// MaxLineBytes bounds a line read by the line-oriented sources
	// (socket, directory); longer lines are dropped and counted. Default
	// 1 MiB.
	MaxLineBytes int
	// Clock is where the engine reads time. Default SystemClock.
	Clock Clock
	// Logger receives the engine's logs. Default slog.Default().
	Logger *slog.Logger
	// Stdout is where Print writes. Default os.Stdout.
	Stdout io.Writer
	// DataDir is where the node keeps its write-ahead log of received
	// blocks (DIR/wal), its metadata log (DIR/meta), its state store
	// (DIR/state) and checkpoints (DIR/checkpoints). Empty: all of them
	// are kept in memory and lost with the process, as for tests.
	DataDir string
	// NodeID names this node in block ids and the metadata log. Default
	// "n1".
	NodeID string
	// ReceiverMaxRate bounds every receiver and ingest stream, in records
	// per second (Spark's spark.streaming.receiver.maxRate). 0: no bound.
	ReceiverMaxRate float64
	// Backpressure lets a PID estimator, fed by each batch's processing
	// time and scheduling delay, lower the receivers' rates when batches
	// fall behind, and raise them again (Spark's
	// spark.streaming.backpressure.enabled).
	Backpressure bool
	// CheckpointInterval is how often, in batch time, a full checkpoint
	// of the state is written (DIR/checkpoints), letting older write-ahead
	// log blocks go. Default 10 batch durations; it must be a multiple of
	// the batch duration.
	CheckpointInterval time.Duration
	// StateCacheBytes is the state store's block cache. Default 64 MiB.
	StateCacheBytes int64
	// AllowCompatibleUpgrade lets Start record a changed graph over a
	// data directory written by another one, when the change keeps the
	// state layout (a new output operation, a changed print count).
	AllowCompatibleUpgrade bool
	// Cluster, when set, makes the context one node of a cluster: the
	// metadata log is a raft group of Cluster.Peers, blocks are copied to
	// other nodes, and the driver runs on the leader only (cluster.go).
	// Nil: a cluster of one.
	Cluster *ClusterConfig
	// FS is the filesystem of DataDir; nil is the disk. Another one (an
	// in-memory, crashable one) is for simulations: the data directory is
	// then not locked, and raft's snapshots are kept in memory.
	FS vfs.FS
}

// DefaultConfig returns a configuration with every default set and a batch
// duration of one second.
func DefaultConfig() Config {
	return Config{
		AppName:       "sluice",
		BatchDuration: time.Second,
		BlockInterval: 200 * time.Millisecond,
		Partitions:    2 * runtime.NumCPU(),
		Parallelism:   runtime.GOMAXPROCS(0),
		MaxLineBytes:  1 << 20,
		Clock:         SystemClock{},
		Logger:        slog.Default(),
		Stdout:        os.Stdout,
		NodeID:        "n1",
	}
}

// withDefaults fills zero fields (but not invalid ones) from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.AppName == "" {
		c.AppName = d.AppName
	}
	if c.BlockInterval == 0 {
		c.BlockInterval = d.BlockInterval
	}
	if c.Partitions == 0 {
		c.Partitions = d.Partitions
	}
	if c.Parallelism == 0 {
		c.Parallelism = d.Parallelism
	}
	if c.MaxLineBytes == 0 {
		c.MaxLineBytes = d.MaxLineBytes
	}
	if c.Clock == nil {
		c.Clock = d.Clock
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if c.Stdout == nil {
		c.Stdout = d.Stdout
	}
	if c.NodeID == "" {
		c.NodeID = d.NodeID
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = 10 * c.BatchDuration
	}
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.BatchDuration <= 0:
		return fmt.Errorf("engine: batch duration %v must be greater than zero (for example 1s)", c.BatchDuration)
	case c.BatchDuration%time.Millisecond != 0:
		return fmt.Errorf("engine: batch duration %v must be a whole number of milliseconds", c.BatchDuration)
	case c.BlockInterval <= 0:
		return fmt.Errorf("engine: block interval %v must be greater than zero (default 200ms)", c.BlockInterval)
	case c.Partitions < 0:
		return fmt.Errorf("engine: partition count %d must be at least 1 (0 means the default, 2 × CPUs)", c.Partitions)
	case c.Parallelism < 0:
		return fmt.Errorf("engine: parallelism %d must be at least 1 (0 means the default, GOMAXPROCS)", c.Parallelism)
	case c.ReceiverMaxRate < 0:
		return fmt.Errorf("engine: receiver max rate %v must be 0 (no limit) or more records per second", c.ReceiverMaxRate)
	case strings.ContainsAny(c.NodeID, "\x00/"):
		return fmt.Errorf("engine: node id %q must not contain '/' or NUL", c.NodeID)
	case c.CheckpointInterval < 0 || (c.BatchDuration > 0 && c.CheckpointInterval%c.BatchDuration != 0):
		return fmt.Errorf("engine: checkpoint interval %v must be a positive multiple of the batch duration %v (default 10 batches)",
			c.CheckpointInterval, c.BatchDuration)
	case c.StateCacheBytes < 0:
		return fmt.Errorf("engine: state cache %d bytes must be 0 (the default, 64 MiB) or more", c.StateCacheBytes)
	case c.MaxLineBytes < 0:
		return fmt.Errorf("engine: max line bytes %d must be at least 1 (0 means the default, 1 MiB)", c.MaxLineBytes)
	case c.Cluster != nil && c.DataDir == "":
		return fmt.Errorf("engine: a cluster node needs a data directory (DataDir)")
	}
	if c.Cluster != nil {
		return c.Cluster.validate(c.NodeID)
	}
	return nil
}
