package wal

import (
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	// FS is the filesystem the log lives on; nil means vfs.Default. Tests
	// pass vfs.NewMem, vfs.NewCrashableMem or an errorfs.FS.
	FS vfs.FS
	// Logger receives the log's own messages and Pebble's; nil means
	// slog.Default(). Pebble's informational chatter goes out at debug level.
	Logger *slog.Logger
	// AfterWrite, when set, runs in Append after the block is written to
	// Pebble's WAL and before that is synced: crash tests kill the
	// process there. It splits every Append into an unsynced write and a
	// sync (two WAL records where one would do): leave it nil outside
	// crash tests.
	AfterWrite func()
}

// cacheSize is the Pebble block cache. Blocks are read about once (when a
// batch runs, or on replay), so a cache buys little.
const cacheSize = 4 << 20

// diskFormat pins the Pebble format major version a new store is created
// at, rather than following whatever the newest Pebble writes. It includes
// WAL sync chunks, which let Pebble tell a torn WAL tail (logical end of
// log) from corruption before the last synced offset.
const diskFormat = pebble.FormatTableFormatV6

func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// pebbleOptions returns the options of the Pebble store behind l.
func (l *Log) pebbleOptions(o Options) *pebble.Options {
	l.syncs = &syncCounter{}
	po := &pebble.Options{
		FS:                 countSyncs(o.FS, l.syncs),
		Lock:               l.lock,
		CacheSize:          cacheSize,
		FormatMajorVersion: diskFormat,
		Logger:             &pebbleLogger{log: l.logger.With("from", "pebble"), onFatal: l.fail},
	}
	// Append looks each id up before writing it (a block is immutable), and
	// the id is almost always absent: a Bloom filter answers that without
	// reading sstable blocks. Lower levels inherit it.
	po.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	// Blocks are read about once and deleted once their batch is past
	// truncation: compressing them on every flush and compaction (Snappy
	// by default) cost node bench an eighth of its CPU, to save disk for
	// data that is soon gone. Readers decode each sstable block by its own
	// compression flag, so stores written compressed read as before.
	po.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	po.EventListener = &pebble.EventListener{
		// The default turns data corruption into Fatalf; a read reports it
		// as a *CorruptionError instead, and the process carries on.
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			l.logger.Error("pebble found corrupt data", "info", info.String())
		},
	}
	return po
}
