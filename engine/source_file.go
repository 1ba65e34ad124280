package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// TextFileStream returns a stream of the lines of new files in dir
// (Spark's textFileStream). At every batch time the directory is listed;
// every regular file not seen before is read whole into that batch, so
// each file is in exactly one batch. Files whose names start with "." or
// "_" are ignored, as Spark ignores them: write a file under such a name
// (or elsewhere) and rename it into place when complete. Lines follow
// the rules of the socket source (CRLF stripped, over-long lines dropped
// and counted).
func TextFileStream(c *Context, dir string) *DStream[string] {
	s := &fileStream{dir: dir, seen: make(map[string]bool)}
	s.DStream = newStream(c, "textFileStream", nil, c.cfg.BatchDuration, []string{"dir=" + dir},
		func(b *batchRun) (*rdd[string], error) {
			lines, _ := b.inputs[s.op.id].([]string)
			return materialized(splitEven(lines, c.cfg.Partitions)), nil
		})
	s.init(c, "dir:"+dir, s.op.id)
	c.addInput(s)
	return s.DStream
}

type fileStream struct {
	*DStream[string]
	dir  string
	seen map[string]bool // only the generator goroutine touches it
	sourceStats
}

func (s *fileStream) node() *opNode         { return s.op }
func (s *fileStream) name() string          { return "dir:" + s.dir }
func (s *fileStream) start(context.Context) { s.setRunning(true) }
func (s *fileStream) stop(bool)             { s.setRunning(false) }
func (s *fileStream) pending() bool         { return false }

func (s *fileStream) allocate(Time) (any, int64) {
	names, err := s.newFiles()
	if err != nil {
		s.reportError(err)
		return nil, 0
	}
	var lines []string
	for _, name := range names {
		got, err := s.readFile(filepath.Join(s.dir, name))
		if err != nil {
			// Not marked seen: the next batch tries again.
			s.reportError(fmt.Errorf("reading %s: %w", name, err))
			continue
		}
		s.seen[name] = true
		lines = append(lines, got...)
		s.update(func(ri *ReceiverInfo) { ri.Blocks++; ri.Records += int64(len(got)) })
	}
	return lines, int64(len(lines))
}

// newFiles lists the files not yet read, oldest first (by modification
// time, then name).
func (s *fileStream) newFiles() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", s.dir, err)
	}
	type file struct {
		name string
		mod  time.Time
	}
	var files []file
	for _, e := range entries {
		name := e.Name()
		if s.seen[name] || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // gone since the listing
		}
		files = append(files, file{name, fi.ModTime()})
	}
	slices.SortFunc(files, func(a, b file) int {
		if c := a.mod.Compare(b.mod); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.name
	}
	return names, nil
}

func (s *fileStream) readFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	lr := newLineReader(f, s.c.cfg.MaxLineBytes)
	var lines []string
	for {
		line, err := lr.next()
		switch {
		case errors.Is(err, ErrLineTooLong):
			s.reportError(fmt.Errorf("%s: %w", path, err))
		case err == io.EOF:
			return lines, nil
		case err != nil:
			return nil, err
		default:
			lines = append(lines, line)
		}
	}
}
