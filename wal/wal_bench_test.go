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

// BenchmarkAppendSync measures durable Appends on the real disk, from 1, 8
// and 64 concurrent appenders, each its own (stream, node). SetBytes counts
// record bytes (6,000 a block), so MB/s is user data made durable;
// syncs/block shows how many commits each WAL fsync carries.
func BenchmarkAppendSync(b *testing.B) {
	for _, appenders := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			benchmarkAppendSync(b, appenders)
		})
	}
}

func benchmarkAppendSync(b *testing.B, appenders int) {
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

// BenchmarkRawFsync is the floor BenchmarkAppendSync is measured against:
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
