package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// produceFlags are the flags of `node produce`.
type produceFlags struct {
	to         string
	stream     string
	producer   string
	batchLines int
	stateFile  string
	timeout    time.Duration
}

// produceState is what a producer keeps between runs, so that a restarted
// producer sends the request it was sending with the same sequence number
// (the node acknowledges it again without storing it twice) and goes on
// from there. Offset is the number of input lines acknowledged.
type produceState struct {
	Producer string `json:"producer"`
	Stream   string `json:"stream"`
	Input    string `json:"input"`
	NextSeq  uint64 `json:"next_sequence"`
	Offset   int64  `json:"acknowledged_lines"`
}

func runProduce(args []string, stdin io.Reader, stderr io.Writer) int {
	f := &produceFlags{}
	fs := flag.NewFlagSet("node produce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.to, "to", "http://127.0.0.1:4040", "the node's HTTP address")
	fs.StringVar(&f.stream, "stream", "lines", "the ingest stream")
	fs.StringVar(&f.producer, "producer", "", "producer id (default: from the state file, or a new random one)")
	fs.IntVar(&f.batchLines, "batch-lines", 1000, "lines per request")
	fs.StringVar(&f.stateFile, "state", "", "state file (default: INPUT.sluice-producer, or sluice-producer.state for stdin)")
	fs.DurationVar(&f.timeout, "request-timeout", 30*time.Second, "timeout of one request")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: node produce [flags] [FILE|-]\n\nSends lines to a node's ingest endpoint, retrying until every request is acknowledged.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	input := "-"
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "node produce: at most one input file")
		return exitUsage
	} else if fs.NArg() == 1 {
		input = fs.Arg(0)
	}
	if f.batchLines < 1 {
		fmt.Fprintf(stderr, "node produce: --batch-lines %d must be at least 1\n", f.batchLines)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	p, err := newProducer(f, input, stdin, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "node produce:", err)
		return exitUsage
	}
	defer p.close()
	if err := p.run(ctx); err != nil {
		fmt.Fprintln(stderr, "node produce:", err)
		return exitFailure
	}
	return exitOK
}

type producer struct {
	f        *produceFlags
	in       io.ReadCloser
	st       produceState
	path     string // state file
	client   *http.Client
	progress *progress
}

func newProducer(f *produceFlags, input string, stdin io.Reader, stderr io.Writer) (*producer, error) {
	p := &producer{f: f, client: &http.Client{Timeout: f.timeout}, progress: newProgress(stderr)}
	p.in = io.NopCloser(stdin)
	p.path = f.stateFile
	if input != "-" {
		file, err := os.Open(input)
		if err != nil {
			return nil, err
		}
		p.in = file
		if p.path == "" {
			p.path = input + ".sluice-producer"
		}
	} else if p.path == "" {
		p.path = "sluice-producer.state"
	}
	if err := p.loadState(input); err != nil {
		p.in.Close()
		return nil, err
	}
	return p, nil
}

func (p *producer) close() { p.in.Close() }

// loadState reads the state file, or starts a new one. A state file of
// another stream, producer or input is refused rather than reused.
func (p *producer) loadState(input string) error {
	b, err := os.ReadFile(p.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		p.st = produceState{Producer: p.f.producer, Stream: p.f.stream, Input: input, NextSeq: 1}
		if p.st.Producer == "" {
			p.st.Producer = fmt.Sprintf("producer-%016x", rand.Uint64())
		}
		return p.saveState()
	case err != nil:
		return err
	}
	if err := json.Unmarshal(b, &p.st); err != nil {
		return fmt.Errorf("state file %s is not valid: %v (remove it to start a new producer)", p.path, err)
	}
	switch {
	case p.f.producer != "" && p.f.producer != p.st.Producer:
		return fmt.Errorf("state file %s belongs to producer %q, not %q (use another --state)", p.path, p.st.Producer, p.f.producer)
	case p.st.Stream != p.f.stream:
		return fmt.Errorf("state file %s is for stream %q, not %q (use another --state)", p.path, p.st.Stream, p.f.stream)
	case p.st.Input != input:
		return fmt.Errorf("state file %s is for input %q, not %q (use another --state)", p.path, p.st.Input, input)
	}
	return nil
}

// saveState writes the state file durably: temp file, fsync, rename.
func (p *producer) saveState() error {
	b, _ := json.MarshalIndent(p.st, "", "  ")
	tmp := p.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, p.path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(p.path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// run skips the lines acknowledged by an earlier run, then sends the rest
// in requests of batchLines, each retried until acknowledged.
func (p *producer) run(ctx context.Context) error {
	r := bufio.NewReaderSize(p.in, 1<<20)
	if err := skipLines(r, p.st.Offset); err != nil {
		return fmt.Errorf("skipping the %d lines acknowledged before: %w", p.st.Offset, err)
	}
	if p.st.Offset > 0 {
		p.progress.note("resuming producer %s at line %d, sequence %d", p.st.Producer, p.st.Offset, p.st.NextSeq)
	}
	for {
		body, n, err := readLines(r, p.f.batchLines)
		if err != nil {
			return err
		}
		if n == 0 {
			p.progress.done()
			return nil
		}
		if err := p.send(ctx, body, n); err != nil {
			return err
		}
		p.st.NextSeq++
		p.st.Offset += int64(n)
		if err := p.saveState(); err != nil {
			return fmt.Errorf("saving %s: %w", p.path, err)
		}
		p.progress.acked(n)
	}
}

// send posts one request until the node acknowledges it. Errors that a
// retry cannot cure (a rejected sequence, a bad request) end the run.
func (p *producer) send(ctx context.Context, body []byte, n int) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		p.progress.sent(n, attempt > 1)
		retryAfter, err := p.post(ctx, body)
		if err == nil {
			return nil
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return err
		}
		wait := max(retryAfter, backoff)
		p.progress.note("request %d: %v; retrying in %v", p.st.NextSeq, err, wait.Round(time.Millisecond))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("stopped with request %d unacknowledged (the next run resends it): %w", p.st.NextSeq, ctx.Err())
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

type fatalError struct{ msg string }

func (e *fatalError) Error() string { return e.msg }

func (p *producer) post(ctx context.Context, body []byte) (retryAfter time.Duration, err error) {
	url := strings.TrimSuffix(p.f.to, "/") + "/api/ingest/" + p.f.stream
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, &fatalError{err.Error()}
	}
	req.Header.Set("Sluice-Producer", p.st.Producer)
	req.Header.Set("Sluice-Sequence", strconv.FormatUint(p.st.NextSeq, 10))
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusOK:
		return 0, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return time.Duration(secs) * time.Second, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return 0, &fatalError{fmt.Sprintf("request %d refused: %s: %s", p.st.NextSeq, resp.Status, strings.TrimSpace(string(msg)))}
}

func skipLines(r *bufio.Reader, n int64) error {
	for i := int64(0); i < n; i++ {
		if err := skipLine(r); err == io.EOF {
			return fmt.Errorf("the input has fewer lines than were acknowledged (%d): is it the same input?", n)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// skipLine consumes one line as readLines counts lines: however long it
// is (longer than the reader's buffer takes several reads), and the last
// line of the input even without a newline. io.EOF: no line was left.
func skipLine(r *bufio.Reader) error {
	read := false
	for {
		b, err := r.ReadSlice('\n')
		read = read || len(b) > 0
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && read:
			return nil
		}
		return err
	}
}

// readLines reads up to n lines (the last may lack a newline), as a body
// whose every line ends in "\n".
func readLines(r *bufio.Reader, n int) ([]byte, int, error) {
	var body []byte
	count := 0
	for count < n {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			body = append(body, line...)
			if line[len(line)-1] != '\n' {
				body = append(body, '\n')
			}
			count++
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, err
		}
	}
	return body, count, nil
}

// progress shows lines sent, acknowledged and the rate: a status line
// redrawn in place on a terminal, a log line every few seconds elsewhere.
type progress struct {
	w       io.Writer
	tty     bool
	start   time.Time
	last    time.Time
	sentN   int64
	ackedN  int64
	retries int64
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) sent(n int, retry bool) {
	if retry {
		p.retries++
		return
	}
	p.sentN += int64(n)
}

func (p *progress) acked(n int) {
	p.ackedN += int64(n)
	if now := time.Now(); p.tty || now.Sub(p.last) > 5*time.Second {
		p.last = now
		p.show()
	}
}

func (p *progress) show() {
	rate := float64(p.ackedN) / time.Since(p.start).Seconds()
	line := fmt.Sprintf("sent %d lines, acknowledged %d, %.0f lines/s, %d retries", p.sentN, p.ackedN, rate, p.retries)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func (p *progress) note(format string, args ...any) {
	if p.tty {
		fmt.Fprintln(p.w)
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *progress) done() {
	p.show()
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
