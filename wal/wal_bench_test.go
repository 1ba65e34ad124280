package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// benchRecords is a block's worth of input: 100 lines of 60 bytes.
func benchRecords() []string {
	records := make([]string, 100)
	for i := range records {
		records[i] = fmt.Sprintf("%04d ", i) + strings.Repeat("x", 55)
	}
	return records
}

// BenchmarkWALAppendSync measures durable Appends on the real disk, from 1, 8
// and 64 concurrent appenders, each its own (stream, node). SetBytes counts
// record bytes (6,000 a block), so MB/s is user data made durable;
// syncs/block shows how many commits each WAL fsync carries.
func BenchmarkWALAppendSync(b *testing.B) {
	for _, appenders := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			benchmarkWALAppendSync(b, appenders)
		})
	}
}

func benchmarkWALAppendSync(b *testing.B, appenders int) {
	l, err := Open(b.TempDir(), Options{FS: vfs.Default, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	records := benchRecords()
	b.SetBytes(100 * 60)
	start := l.Stats()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for g := range appenders {
		wg.Go(func() {
			node := fmt.Sprintf("node%02d", g)
			for seq := uint64(0); next.Add(1) <= int64(b.N); seq++ {
				if err := l.Append(Block{ID: BlockID{"bench", node, seq}, Records: records}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	end := l.Stats()
	b.ReportMetric(float64(end.Blocks-start.Blocks)/b.Elapsed().Seconds(), "blocks/s")
	b.ReportMetric(float64(end.Syncs-start.Syncs)/float64(end.Blocks-start.Blocks), "syncs/block")
}

// BenchmarkRawFsync is the floor BenchmarkWALAppendSync is measured against:
// append 4 KiB to a plain file in the same kind of directory, then fsync.
func BenchmarkRawFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	b.SetBytes(int64(len(page)))
	for b.Loop() {
		if _, err := f.Write(page); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "fsyncs/s")
}

// BenchmarkBlockCodec encodes a block of 1,000 60-byte records into its
// frame (as Append does, with a pooled encoder) and decodes it back (as
// Read does). MB/s counts record bytes.
func BenchmarkBlockCodec(b *testing.B) {
	var records []string
	for range 10 {
		records = append(records, benchRecords()...)
	}
	blk := Block{ID: BlockID{"bench", "node", 1}, Records: records}
	key, err := blockKey(blk.ID)
	if err != nil {
		b.Fatal(err)
	}
	frame, err := encodeBlock(blk)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(1000 * 60)
		b.ReportAllocs()
		for b.Loop() {
			e := getBlockEncoder()
			if _, err := e.encode(blk); err != nil {
				b.Fatal(err)
			}
			e.release()
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(1000 * 60)
		b.ReportAllocs()
		for b.Loop() {
			if _, cerr := decodeBlock(blk.ID, key, frame); cerr != nil {
				b.Fatal(cerr)
			}
		}
	})
}
