package engine

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-stream/sluice/wal"
)

// TestCorruptionMissingBlockReferencedByTheLog checks the case the WAL
// alone cannot see: the metadata log allocates a block the WAL no longer
// has (deleted, or lost to damage Pebble took for a torn tail). The batch
// must fail with an error that names the block and the batch, and nothing
// of it may be served as data.
func TestCorruptionMissingBlockReferencedByTheLog(t *testing.T) {
	dir := t.TempDir()
	h := newDurableHarness(t, dir)
	IngestStream(h.c, "lines").ForeachRDD(func(Time, RDD[string]) error { return nil })
	h.start()
	mustIngest(t, h.c, "p", 1, "a", "b")
	if err := h.c.Stop(context.Background(), false); err != nil {
		t.Fatal(err)
	}

	// The block is registered and unallocated; take it out of the WAL.
	blocks, err := wal.Open(filepath.Join(dir, "wal"), wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := wal.BlockID{Stream: "lines", Node: "n1", Seq: 1}
	if _, err := blocks.Read(id); err != nil {
		t.Fatalf("the block is not where the test expects it: %v", err)
	}
	if err := blocks.Delete([]wal.BlockID{id}); err != nil {
		t.Fatal(err)
	}
	if err := blocks.Close(); err != nil {
		t.Fatal(err)
	}

	h2 := newDurableHarness(t, dir)
	var served []string
	IngestStream(h2.c, "lines").ForeachRDD(func(_ Time, r RDD[string]) error {
		served = append(served, r.Collect()...)
		return nil
	})
	h2.start()
	b := h2.step()
	if b.Err == nil {
		t.Fatalf("batch %v read a block missing from the WAL without an error; served %q", b.Time, served)
	}
	msg := b.Err.Error()
	for _, want := range []string{"lines/n1/1", "batch " + b.Time.String()} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	if !errors.Is(b.Err, wal.ErrNotFound) {
		t.Errorf("error %v is not wal.ErrNotFound", b.Err)
	}
	if len(served) != 0 {
		t.Errorf("served %q from a batch with a missing block", served)
	}
	if err := h2.c.AwaitTermination(context.Background()); err == nil {
		t.Error("the context kept running after a batch lost a block")
	}
}
