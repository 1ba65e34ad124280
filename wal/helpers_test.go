package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// testBlock returns block seq of stream/node with n deterministic records.
func testBlock(stream, node string, seq uint64, n int) Block {
	b := Block{ID: BlockID{Stream: stream, Node: node, Seq: seq}}
	for i := range n {
		b.Records = append(b.Records, fmt.Sprintf("%s-%s-%d-record-%d", stream, node, seq, i))
	}
	return b
}

// openLog opens a log in dir on fsys, closing it when the test ends.
func openLog(t testing.TB, fsys vfs.FS, dir string, logger *slog.Logger) *Log {
	t.Helper()
	l, err := Open(dir, Options{FS: fsys, Logger: logger})
	if err != nil {
		t.Fatalf("Open(%q): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil && !errors.Is(err, ErrClosed) && !l.Stats().Failed {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// quietLogger discards everything below error level.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func mustAppend(t testing.TB, l *Log, b Block) {
	t.Helper()
	if err := l.Append(b); err != nil {
		t.Fatalf("Append(%s): %v", b.ID, err)
	}
}

// mustRead reads id and checks it equals want.
func mustRead(t testing.TB, l *Log, want Block) {
	t.Helper()
	got, err := l.Read(want.ID)
	if err != nil {
		t.Fatalf("Read(%s): %v", want.ID, err)
	}
	if !equalBlocks(got, want) {
		t.Fatalf("Read(%s) = %v, want %v", want.ID, got, want)
	}
}

// equalBlocks compares blocks, treating nil and empty records alike.
func equalBlocks(a, b Block) bool {
	if a.ID != b.ID || len(a.Records) != len(b.Records) {
		return false
	}
	for i := range a.Records {
		if a.Records[i] != b.Records[i] {
			return false
		}
	}
	return true
}

// putRaw writes value under the key of id, bypassing the frame: the test
// seam for corruption cases.
func (l *Log) putRaw(key, value []byte) error {
	return l.db.Set(key, value, pebble.Sync)
}

// recordingHandler is a slog.Handler that keeps every record.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

// atLevel returns the messages logged at level.
func (h *recordingHandler) atLevel(level slog.Level) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var msgs []string
	for _, r := range h.records {
		if r.Level == level {
			var attrs []string
			r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a.String()); return true })
			msgs = append(msgs, r.Message+" "+strings.Join(attrs, " "))
		}
	}
	return msgs
}
