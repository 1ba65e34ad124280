package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Tests of `node produce` against a node child running the archive app on
// the ingest stream: every line of the input ends up in the archive
// exactly once, across a producer killed and run again.

// startArchiveNode runs `node run --app archive --source ingest` on a new
// data directory and returns the child, its ingest base URL and the
// directory.
func startArchiveNode(t *testing.T) (*child, string, string) {
	t.Helper()
	dir := t.TempDir()
	c := startChild(t, "run", "--app", "archive", "--source", "ingest", "--data-dir", dir,
		"--http", "127.0.0.1:0", "--batch", "100ms", "--partitions", "2")
	return c, "http://" + c.uiAddr(), dir
}

// writeInput writes n numbered lines to a file, the last one without a
// newline when open is set, and returns its path and its lines.
func writeInput(t *testing.T, n int, open bool) (string, []string) {
	t.Helper()
	var b strings.Builder
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("line %04d", i+1)
		b.WriteString(lines[i])
		if i < n-1 || !open {
			b.WriteByte('\n')
		}
	}
	path := filepath.Join(t.TempDir(), "input.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, lines
}

// produce runs `node produce ARGS` to its end, within a deadline, and
// returns its exit code and output.
func produce(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, nodeBin, append([]string{"produce"}, args...)...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("node produce %q did not end in 30s; output:\n%s", args, out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// checkArchive stops the node gracefully, so that every stored record is
// processed, and checks that the archive holds want, each line once, in
// order.
func checkArchive(t *testing.T, node *child, dataDir string, want []string) {
	t.Helper()
	if code := stopWithin(t, node, 30*time.Second); code != exitOK {
		t.Fatalf("node exit code %d after SIGTERM, want 0; output:\n%s", code, node.output())
	}
	got := strings.Split(strings.TrimSuffix(string(readArchive(t, dataDir)), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("archive holds %d lines, want the %d lines of the input once each", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("archive line %d is %q, want %q: each input line exactly once, in order", i+1, got[i], want[i])
		}
	}
}

// stopWithin sends SIGTERM and returns the exit code, failing the test if
// the node has not exited within d (t.Cleanup kills it then).
func stopWithin(t *testing.T, c *child, d time.Duration) int {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(d):
		t.Fatalf("node still running %v after SIGTERM; output:\n%s", d, c.output())
	}
	c.cmd.Wait()
	return c.cmd.ProcessState.ExitCode()
}

func readState(t *testing.T, path string) produceState {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st produceState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state file %s: %v", path, err)
	}
	return st
}

// TestProduceSendsEveryLineOnce sends a file whose last line has no
// newline, then runs the producer again on the finished input: the
// second run finds nothing left to send.
func TestProduceSendsEveryLineOnce(t *testing.T) {
	node, url, dataDir := startArchiveNode(t)
	input, lines := writeInput(t, 1000, true)
	state := filepath.Join(t.TempDir(), "state")
	args := []string{"--to", url, "--stream", "lines", "--batch-lines", "64", "--state", state, input}
	if code, out := produce(t, args...); code != exitOK || !strings.Contains(out, "acknowledged 1000") {
		t.Fatalf("exit code %d, want 0 with 1000 lines acknowledged; output:\n%s", code, out)
	}
	if st := readState(t, state); st.Offset != 1000 || st.NextSeq != 17 {
		t.Fatalf("state %+v, want 1000 lines acknowledged in 16 requests", st)
	}
	if code, out := produce(t, args...); code != exitOK || !strings.Contains(out, "acknowledged 0") {
		t.Fatalf("run again on the finished input: exit code %d, want 0 with nothing sent; output:\n%s", code, out)
	}
	checkArchive(t, node, dataDir, lines)
}

// holdingProxy forwards ingest requests to a node and keeps each reply.
// The reply to request number holdAt is withheld: the node has stored
// the request, the producer never learns it.
type holdingProxy struct {
	to     string
	holdAt int
	held   chan struct{} // closed when the held request has been stored
	quit   chan struct{}

	mu      sync.Mutex
	replies []string // "SEQ STATUS BODY", in order
}

func newHoldingProxy(t *testing.T, to string, holdAt int) (*holdingProxy, string) {
	p := &holdingProxy{to: to, holdAt: holdAt, held: make(chan struct{}), quit: make(chan struct{})}
	srv := httptest.NewServer(p)
	t.Cleanup(func() { close(p.quit); srv.Close() })
	return p, srv.URL
}

func (p *holdingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.to+r.URL.Path, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	p.mu.Lock()
	p.replies = append(p.replies, fmt.Sprintf("%s %d %s", r.Header.Get("Sluice-Sequence"), resp.StatusCode, bytes.TrimSpace(reply)))
	n := len(p.replies)
	p.mu.Unlock()
	if n == p.holdAt {
		close(p.held)
		select {
		case <-r.Context().Done():
		case <-p.quit:
		}
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(reply)
}

func (p *holdingProxy) reply(i int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i >= len(p.replies) {
		return ""
	}
	return p.replies[i]
}

// TestProduceResumesAfterKill kills the producer (SIGKILL) after the node
// stored its eighth request and before the producer heard so, then runs
// it again with the same input and state file: it resumes at that
// request, with its sequence number, which the node acknowledges as a
// duplicate; the archive holds every line once.
func TestProduceResumesAfterKill(t *testing.T) {
	node, url, dataDir := startArchiveNode(t)
	proxy, proxyURL := newHoldingProxy(t, url, 8)
	input, lines := writeInput(t, 200, false)
	state := filepath.Join(t.TempDir(), "state")
	args := []string{"produce", "--to", proxyURL, "--stream", "lines", "--batch-lines", "10", "--state", state, input}

	first := startChild(t, args...)
	select {
	case <-proxy.held:
	case <-first.done:
		t.Fatalf("producer exited before its eighth request was stored; output:\n%s", first.output())
	case <-time.After(30 * time.Second):
		t.Fatalf("the eighth request was not stored in 30s; output:\n%s", first.output())
	}
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done
	first.cmd.Wait()
	if got := proxy.reply(7); !strings.HasPrefix(got, `8 200 {"stream":"lines"`) || !strings.Contains(got, `"duplicate":false`) {
		t.Fatalf("the withheld reply was %q, want request 8 stored", got)
	}
	if st := readState(t, state); st.Offset != 70 || st.NextSeq != 8 {
		t.Fatalf("state after the kill %+v, want 70 lines acknowledged, request 8 next", st)
	}

	code, out := produce(t, args[1:]...)
	if code != exitOK || !strings.Contains(out, "resuming producer") || !strings.Contains(out, "at line 70, sequence 8") {
		t.Fatalf("second run: exit code %d, want 0 after resuming at line 70, sequence 8; output:\n%s", code, out)
	}
	if got := proxy.reply(8); !strings.HasPrefix(got, "8 200 ") || !strings.Contains(got, `"duplicate":true`) {
		t.Errorf("the resent request 8 was answered %q, want a duplicate", got)
	}
	checkArchive(t, node, dataDir, lines)
}

// TestProduceRefusals checks that the producer refuses, with exit code 2
// and a message saying what to do, flags it cannot use and a state file
// that is not its own, before it sends anything.
func TestProduceRefusals(t *testing.T) {
	dir := t.TempDir()
	input, _ := writeInput(t, 10, false)
	other := filepath.Join(dir, "other.txt")
	if err := os.WriteFile(other, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	b, _ := json.Marshal(produceState{Producer: "p1", Stream: "lines", Input: input, NextSeq: 3, Offset: 4})
	if err := os.WriteFile(state, b, 0o644); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	// No node listens here: a refusal must come before any request.
	to := "http://127.0.0.1:1"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"state of another stream", []string{"--to", to, "--stream", "other", "--state", state, input}, `is for stream "lines", not "other"`},
		{"state of another input", []string{"--to", to, "--stream", "lines", "--state", state, other}, `is for input`},
		{"state of another producer", []string{"--to", to, "--producer", "p2", "--state", state, input}, `belongs to producer "p1", not "p2"`},
		{"invalid state file", []string{"--to", to, "--state", broken, input}, "remove it to start a new producer"},
		{"batch-lines 0", []string{"--to", to, "--batch-lines", "0", "--state", filepath.Join(dir, "new"), input}, "--batch-lines 0 must be at least 1"},
		{"two inputs", []string{"--to", to, input, other}, "at most one input file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := produce(t, tc.args...)
			if code != exitUsage || !strings.Contains(out, tc.want) {
				t.Fatalf("exit code %d, want %d with %q; output:\n%s", code, exitUsage, tc.want, out)
			}
		})
	}
	if st := readState(t, state); st.NextSeq != 3 || st.Offset != 4 {
		t.Errorf("a refused run changed the state file: %+v", st)
	}
}

// TestIngestNodeDataDirInUse starts a second node on the data directory of
// a running one: it exits non-zero saying the directory is in use, and
// the first node goes on.
func TestIngestNodeDataDirInUse(t *testing.T) {
	node, url, dataDir := startArchiveNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, nodeBin, "run", "--app", "archive", "--source", "ingest",
		"--data-dir", dataDir, "--http", "127.0.0.1:0").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("second node: %v, want a non-zero exit; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "in use") || !strings.Contains(string(out), dataDir) {
		t.Errorf("second node's output does not say that %s is in use:\n%s", dataDir, out)
	}
	input, lines := writeInput(t, 3, false)
	if code, out := produce(t, "--to", url, "--state", filepath.Join(t.TempDir(), "state"), input); code != exitOK {
		t.Fatalf("the first node no longer serves: produce exit code %d; output:\n%s", code, out)
	}
	checkArchive(t, node, dataDir, lines)
}

// TestProduceSkipLines checks how a resumed producer skips the lines
// acknowledged before: a line of any length counts once, and the last
// line counts without a newline.
func TestProduceSkipLines(t *testing.T) {
	long := strings.Repeat("x", 100) // longer than the reader's buffer
	for _, tc := range []struct {
		name    string
		input   string
		skip    int64
		next    string // the line read after skipping
		wantErr string
	}{
		{"short lines", "a\nb\nc\n", 2, "c\n", ""},
		{"a line longer than the buffer", long + "\nb\n", 1, "b\n", ""},
		{"all lines, the last without newline", "a\nb", 2, "", ""},
		{"all lines", "a\nb\n", 2, "", ""},
		{"more lines than the input has", "a\nb\n", 3, "", "fewer lines than were acknowledged (3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tc.input), 16)
			err := skipLines(r, tc.skip)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("skipLines: %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("skipLines: %v", err)
			}
			if rest, _ := io.ReadAll(r); string(rest) != tc.next {
				t.Errorf("after skipping %d lines the input reads %q, want %q", tc.skip, rest, tc.next)
			}
		})
	}
}
