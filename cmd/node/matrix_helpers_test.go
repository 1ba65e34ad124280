package main

// Helpers of the crash matrix (crash_matrix_test.go): a node on a manual
// clock driven one batch at a time, a scripted exactly-once producer, and
// snapshots of what a run leaves behind (state API answers, output files).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Deadlines of the matrix. They bound a failing cell; a passing one
// takes a fraction.
const (
	matrixBatchDeadline = 20 * time.Second // until a batch completes, or the node dies in it
	matrixPoll          = 5 * time.Millisecond
)

// matrixNode is one life of a node on a manual clock.
type matrixNode struct {
	*crashNode
	client *http.Client
}

// launchMatrixNode starts the node binary with args and, unless it is
// "", the failpoint spec (NAME@N), and waits for the address it prints.
func launchMatrixNode(t *testing.T, failpoint string, args []string) (*matrixNode, error) {
	n := &matrixNode{crashNode: &crashNode{child: startChildEnv(t, failpointEnv(failpoint), args...)},
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}}
	t.Cleanup(n.client.CloseIdleConnections)
	if err := n.awaitAddr(); err != nil {
		return nil, err
	}
	return n, nil
}

// call makes one request to the node and returns the status and body.
func (n *matrixNode) call(method, path string) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://"+n.addr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// setClock moves the node's manual clock to ms.
func (n *matrixNode) setClock(ms int64) error {
	code, body, err := n.call(http.MethodPost, "/debug/clock?to="+strconv.FormatInt(ms, 10))
	if err != nil {
		return fmt.Errorf("moving the clock to %d: %w", ms, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("moving the clock to %d: %d %s", ms, code, body)
	}
	return nil
}

// errMatrixNodeDied is what awaitBatch returns when the node died instead.
var errMatrixNodeDied = errors.New("the node died")

// awaitBatch waits until /api/batches lists batch ms as done, or the node
// dies (errMatrixNodeDied).
func (n *matrixNode) awaitBatch(ms int64) error {
	deadline := time.Now().Add(matrixBatchDeadline)
	var last string
	for {
		select {
		case <-n.done:
			return errMatrixNodeDied
		default:
		}
		code, body, err := n.call(http.MethodGet, "/api/batches")
		if err == nil && code == http.StatusOK {
			doc, derr := decodeMatrixJSON[batchesDoc](body)
			if derr == nil {
				for _, b := range doc.Batches {
					if b.Time != ms {
						continue
					}
					switch b.Status {
					case batchDone:
						return nil
					case batchFailed:
						return fmt.Errorf("batch %d failed: %s", ms, b.Error)
					}
				}
			}
			last = string(body)
		} else if err != nil {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			select {
			case <-n.done:
				return errMatrixNodeDied
			default:
			}
			return fmt.Errorf("batch %d not done in %v; last /api/batches: %.2000s", ms, matrixBatchDeadline, last)
		}
		time.Sleep(matrixPoll)
	}
}

// matrixRerunLast matches the log lines of a node that re-runs batches at start
// (completed ones, to rebuild the state, or ones allocated and not
// completed), with the last batch it re-runs.
var matrixRerunLast = regexp.MustCompile(`re-running .*batches.* last="?(\d+) ms"?`)

// awaitRecovery waits until a restarted node has re-run every batch it
// said it would re-run at start. A node that re-runs none has recovered
// once it runs: its state store redid what it had to while starting.
func (n *matrixNode) awaitRecovery() error {
	var last int64
	for _, m := range matrixRerunLast.FindAllStringSubmatch(n.output(), -1) {
		ms, _ := strconv.ParseInt(m[1], 10, 64)
		last = max(last, ms)
	}
	if last == 0 {
		return nil
	}
	return n.awaitBatch(last)
}

// killedBy checks that the node died by SIGKILL at the failpoint name,
// saying so on stderr.
func (n *matrixNode) killedBy(name string) error {
	ws, ok := n.waitExit(deathDeadline)
	switch {
	case !ok:
		return fmt.Errorf("the node still runs %v after it stopped answering", deathDeadline)
	case !ws.Signaled() || ws.Signal() != syscall.SIGKILL:
		return fmt.Errorf("the node exited with %v, want killed by SIGKILL at failpoint %s; output:\n%s", n.cmd.ProcessState, name, n.output())
	case !strings.Contains(n.output(), "sluice: failpoint "+name):
		return fmt.Errorf("the node died by SIGKILL without logging %q; output:\n%s", "sluice: failpoint "+name, n.output())
	}
	return nil
}

// matrixIngest sends one request of lines with the producer's next sequence,
// retrying it (same sequence) until it is acknowledged.
func matrixIngest(p *tokenProducer, n *matrixNode, seq uint64, lines []string) error {
	r := &producerRequest{seq: seq, tokens: lines}
	deadline := time.Now().Add(startDeadline)
	for {
		a := p.post(context.Background(), n.addr, r)
		switch {
		case a.outcome == attemptAcked:
			return nil
		case a.outcome == attemptRefused && !a.retryable:
			return fmt.Errorf("request %d refused: %d %s", seq, a.status, a.err)
		case time.Now().After(deadline):
			return fmt.Errorf("request %d not acknowledged in %v: last attempt %v %d %s", seq, startDeadline, a.outcome, a.status, a.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// matrixAnswer is one state API answer, as served.
type matrixAnswer struct {
	path string
	code int
	body string
}

// queryState asks the node every path.
func (n *matrixNode) queryState(paths []string) ([]matrixAnswer, error) {
	out := make([]matrixAnswer, 0, len(paths))
	for _, p := range paths {
		code, body, err := n.call(http.MethodGet, p)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", p, err)
		}
		out = append(out, matrixAnswer{path: p, code: code, body: strings.TrimSpace(string(body))})
	}
	return out, nil
}

// isSaveTempName reports whether a file or directory name is a temporary of
// an atomic save (".<name>.tmp", ".<name>.old"), which a comparison of
// outputs skips.
func isSaveTempName(name string) bool {
	return strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".old"))
}

// readMatrixOutputs returns every file under dir/output by its path relative to
// it, and the temporaries it skipped.
func readMatrixOutputs(dir string) (files map[string][]byte, skipped []string, err error) {
	root := filepath.Join(dir, "output")
	files = make(map[string][]byte)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipDir
			}
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if isSaveTempName(d.Name()) {
			skipped = append(skipped, rel)
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[rel] = data
		return nil
	})
	return files, skipped, err
}

// diffMatrixOutputs describes how got differs from want, file by file: at most
// limit lines, then a count.
func diffMatrixOutputs(want, got map[string][]byte, limit int) []string {
	var diffs []string
	names := make([]string, 0, len(want)+len(got))
	for name := range want {
		names = append(names, name)
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		w, inWant := want[name]
		g, inGot := got[name]
		switch {
		case !inGot:
			diffs = append(diffs, fmt.Sprintf("output/%s is missing after the crash (crash-free: %q)", name, w))
		case !inWant:
			diffs = append(diffs, fmt.Sprintf("output/%s exists only after the crash: %q", name, g))
		case string(w) != string(g):
			diffs = append(diffs, fmt.Sprintf("output/%s differs:\n\tcrash-free: %q\n\tcrashed:    %q", name, w, g))
		}
	}
	if len(diffs) > limit {
		diffs = append(diffs[:limit], fmt.Sprintf("... and %d more files differ", len(diffs)-limit))
	}
	return diffs
}

// decodeMatrixJSON decodes a JSON answer of the node.
func decodeMatrixJSON[T any](data []byte) (T, error) {
	var v T
	err := json.Unmarshal(data, &v)
	return v, err
}

// died reports whether the node dies within deathDeadline: a request that
// got no answer may have been cut by a failpoint.
func (n *matrixNode) died() bool {
	select {
	case <-n.done:
		return true
	case <-time.After(deathDeadline):
		return false
	}
}
