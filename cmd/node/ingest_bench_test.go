package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// BenchmarkIngestHTTP measures reliable ingest through the HTTP endpoint
// on the real disk, with the WAL and the metadata log synced: several
// concurrent producers each send requests of 100 lines of 60 bytes, one at
// a time. It reports records/s, MB/s, the ack latency p50 and p99, and,
// measured in the same run on the same disk, the raw fsync rate (a 4 KiB
// write and an fsync, in a loop) that bounds one producer's rate.
func BenchmarkIngestHTTP(b *testing.B) {
	for _, producers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) { benchIngest(b, producers) })
	}
}

func benchIngest(b *testing.B, producers int) {
	dir := b.TempDir()
	cfg := engine.DefaultConfig()
	cfg.DataDir = dir
	cfg.BatchDuration = 500 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Stdout = io.Discard
	c, err := engine.NewContext(cfg)
	if err != nil {
		b.Fatal(err)
	}
	engine.IngestStream(c, "lines").Count().ForeachRDD(func(engine.Time, engine.RDD[int64]) error { return nil })
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	defer c.Stop(context.Background(), false)
	mux := http.NewServeMux()
	mux.Handle("POST /api/ingest/{stream}", &ingestHandler{c: c, maxBody: 16 << 20, maxLineBytes: 1 << 20})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	const lines = 100
	line := bytes.Repeat([]byte("x"), 59)
	var body []byte
	for i := 0; i < lines; i++ {
		body = append(append(body, line...), '\n')
	}
	var mu sync.Mutex
	var latencies []time.Duration
	b.ResetTimer()
	var wg sync.WaitGroup
	perProducer := max(1, b.N/producers)
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, perProducer)
			for seq := 1; seq <= perProducer; seq++ {
				start := time.Now()
				if err := postIngest(srv.URL, fmt.Sprintf("bench-%d", p), seq, body); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := b.Elapsed()
	b.StopTimer()
	records := float64(len(latencies) * lines)
	b.ReportMetric(records/elapsed.Seconds(), "records/s")
	b.ReportMetric(records*float64(len(line)+1)/elapsed.Seconds()/1e6, "MB/s")
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		b.ReportMetric(float64(latencies[n/2].Microseconds())/1000, "ack-p50-ms")
		b.ReportMetric(float64(latencies[n*99/100].Microseconds())/1000, "ack-p99-ms")
	}
	b.ReportMetric(rawFsyncRate(b, dir), "raw-fsyncs/s")
}

func postIngest(url, producer string, seq int, body []byte) error {
	req, _ := http.NewRequest(http.MethodPost, url+"/api/ingest/lines", bytes.NewReader(body))
	req.Header.Set(headerProducer, producer)
	req.Header.Set(headerSequence, strconv.Itoa(seq))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ingest: %s", resp.Status)
	}
	return nil
}

// rawFsyncRate writes 4 KiB and fsyncs, for half a second, in dir.
func rawFsyncRate(b *testing.B, dir string) float64 {
	f, err := os.Create(filepath.Join(dir, "fsync-probe"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n := 0
	start := time.Now()
	for time.Since(start) < 500*time.Millisecond {
		if _, err := f.WriteAt(buf, int64(n%16)*4096); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}
