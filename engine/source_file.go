package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// TextFileStream returns a stream of the lines of new files in dir
// (Spark's textFileStream), read exactly once across crashes and
// restarts.
//
// It is a receiver: every block interval it lists dir, and stores each
// complete file it has not stored before through the write-ahead log,
// with its position recorded in the metadata log with the block
// (ReceiverOutput.StoreAt, producer "file/<stream>/<name>"). So:
//
//   - A file is never read into two batches: a file whose position is in
//     the metadata log is a duplicate, whatever the process knew before
//     a crash; a large file is stored in chunks of about fileChunkBytes
//     at positions 1..K, and a restart resumes after the last chunk
//     stored.
//   - Files that appear while no driver runs are read after the restart.
//     Unlike Spark, which only reads files modified after the stream
//     started, every file in dir that the metadata log has not recorded is
//     read, however old: the log, not a modification-time window, says
//     what was read.
//   - A file is read once its size and modification time are unchanged
//     across two listings one interval apart, so a file being written is
//     not read half-written. That is a heuristic: a writer that pauses
//     longer than the interval defeats it. Write a file under a name that
//     starts with "." or "_" (ignored, as Spark ignores them) or elsewhere
//     on the same filesystem, and rename it into place when complete.
//   - A file is read at most once per name: a file written again under a
//     name already read is not read again.
//   - Files are read oldest first (by modification time, then name), each
//     whole and in order. Lines follow the rules of the socket source
//     (CRLF stripped, over-long lines dropped and counted).
//   - A file that disappears before it is read is reported and skipped; a
//     file that cannot be opened or read (permission denied) is reported
//     and tried again at the next listing, and none of it is stored until
//     it reads whole (or, for a large file, chunk by chunk in order).
//
// Subdirectories are not read. Files stay in dir after they are read;
// move them away when done, since a restart reads each remaining file
// once more (storing nothing) to learn that it is complete.
func TextFileStream(c *Context, dir string) *DStream[string] {
	stream := "dir:" + dir
	r := &fileReceiver{dir: dir, stream: stream}
	r.scannedAt.Store(math.MinInt64)
	return newReceiverStream(c, "textFileStream", stream, r).DStream
}

// fileChunkBytes is about how many bytes of a file one block holds: a
// chunk ends with the first line that brings the lines it keeps (each
// counted with one byte for its line end) to it. Part of the stored
// format in effect: a file's chunk positions depend on it, so changing it
// while files are half stored would store lines again or skip them.
var fileChunkBytes = 4 << 20

// fileReceiver lists a directory and stores its new files.
type fileReceiver struct {
	dir, stream string

	// scannedAt is the clock time (in UnixNano, truncated to the
	// interval) of the last listing completed, for tests to wait on.
	scannedAt atomic.Int64
	// failStore, when set (by tests), is called before a chunk is stored;
	// an error from it stops reading the file as a crash would.
	failStore func(producer string, seq uint64) error
	// open, when set (by tests), opens a file in place of os.Open, to
	// make errors root cannot meet otherwise.
	open func(path string) (io.ReadCloser, error)
}

// fileSeen is what one listing saw of a file not yet stored.
type fileSeen struct {
	size int64
	mod  time.Time
}

func (r *fileReceiver) Receive(ctx context.Context, out *ReceiverOutput) error {
	clock, every := out.Clock(), out.s.c.cfg.BlockInterval
	seen := make(map[string]fileSeen) // waiting for their size to settle
	done := make(map[string]bool)     // wholly stored
	for {
		at := clock.Now().Truncate(every)
		r.scan(ctx, out, seen, done)
		r.scannedAt.Store(at.UnixNano())
		if clock.WaitUntil(ctx, at.Add(every)) != nil {
			return nil
		}
	}
}

// scan lists the directory once and stores every file whose size and
// modification time are those the previous listing saw.
func (r *fileReceiver) scan(ctx context.Context, out *ReceiverOutput, seen map[string]fileSeen, done map[string]bool) {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		out.ReportError(fmt.Errorf("listing %s: %w", r.dir, err))
		return
	}
	type file struct {
		name string
		fileSeen
	}
	var ready []file
	listed := make(map[string]bool, len(entries))
	for _, e := range entries {
		name := e.Name()
		if done[name] || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // gone since the listing; reported below
		}
		listed[name] = true
		now := fileSeen{fi.Size(), fi.ModTime()}
		if before, ok := seen[name]; ok && before == now {
			ready = append(ready, file{name, now})
		} else {
			seen[name] = now
		}
	}
	for name := range seen {
		if !listed[name] {
			delete(seen, name)
			out.ReportError(fmt.Errorf("%s disappeared before it was read; skipped", filepath.Join(r.dir, name)))
		}
	}
	slices.SortFunc(ready, func(a, b file) int {
		if c := a.mod.Compare(b.mod); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	for _, f := range ready {
		if ctx.Err() != nil {
			return
		}
		err := r.storeFile(ctx, out, f.name, f.size)
		switch {
		case err == nil:
			delete(seen, f.name)
			done[f.name] = true
		case errors.Is(err, fs.ErrNotExist):
			delete(seen, f.name)
			out.ReportError(fmt.Errorf("%s disappeared before it was read; skipped: %w", filepath.Join(r.dir, f.name), err))
		case errors.Is(err, errFileChanged):
			seen[f.name] = fileSeen{} // wait for it to settle again
		case ctx.Err() == nil:
			out.ReportError(err) // tried again at the next listing
		}
	}
}

// errFileChanged is returned when a file read holds other than the bytes
// its listing reported: it is still being written.
var errFileChanged = errors.New("engine: file changed while it was read")

// storeFile stores the chunks of the file not yet stored, in order.
func (r *fileReceiver) storeFile(ctx context.Context, out *ReceiverOutput, name string, size int64) error {
	producer := "file/" + r.stream + "/" + name
	stored, _ := out.Position(producer)
	path := filepath.Join(r.dir, name)
	open := r.open
	if open == nil {
		open = func(p string) (io.ReadCloser, error) { return os.Open(p) }
	}
	f, err := open(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	cr := &countingReader{r: f}
	lr := newLineReader(cr, out.MaxLineBytes())
	var chunk []string
	var seq uint64
	chunkBytes := 0 // counted from the lines kept, so chunks depend only on the content
	flush := func() error {
		seq++
		lines := chunk
		chunk, chunkBytes = nil, 0
		if seq <= stored {
			return nil
		}
		if r.failStore != nil {
			if err := r.failStore(producer, seq); err != nil {
				return err
			}
		}
		_, err := out.StoreAt(ctx, producer, seq, lines...)
		return err
	}
	for {
		line, err := lr.next()
		switch {
		case errors.Is(err, ErrLineTooLong):
			if seq >= stored { // the chunk being read is not stored yet
				out.ReportError(fmt.Errorf("%s: %w", path, err))
			}
		case err == io.EOF:
			if cr.n != size {
				return fmt.Errorf("%s: %w (%d bytes listed, %d read)", path, errFileChanged, size, cr.n)
			}
			if len(chunk) == 0 {
				return nil // an empty file, or one that ended with a full chunk
			}
			return flush()
		case err != nil:
			return fmt.Errorf("reading %s: %w", path, err)
		default:
			chunk = append(chunk, line)
			chunkBytes += len(line) + 1
			if chunkBytes >= fileChunkBytes {
				if cr.n > size {
					return fmt.Errorf("%s: %w (%d bytes listed, more read)", path, errFileChanged, size)
				}
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
