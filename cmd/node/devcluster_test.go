package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDevclusterCountsOnEveryNodeAndLeavesNoChild runs `node devcluster`
// as a user does, feeds one node, reads the exact count from all three,
// then stops it with SIGTERM: it must exit 0 with every node gone.
func TestDevclusterCountsOnEveryNodeAndLeavesNoChild(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	dir := t.TempDir()
	base := freePortBlock(t, 6)
	dc := startChild(t, "devcluster", "--dir", filepath.Join(dir, "data"),
		"--base-port", strconv.Itoa(base), "--http-base", strconv.Itoa(base+3), "--", "--batch", "200ms")
	var pids []int
	var uis []string
	for _, id := range []string{"n1", "n2", "n3"} {
		m := dc.waitLine(`^\s+` + id + `\s+UI http://(\S+)/\s+pid (\d+)$`)
		pid, _ := strconv.Atoi(m[2])
		uis, pids = append(uis, m[1]), append(pids, pid)
	}
	leader := awaitOneLeader(t, uis, "", 30*time.Second)
	t.Logf("leader %s", leader)

	input := filepath.Join(dir, "lines.txt")
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "sluice devcluster line%d\n", i)
	}
	if err := os.WriteFile(input, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	produce := startChild(t, "produce", "--to", "http://"+uis[1], input)
	if code := waitChildExit(t, produce, 30*time.Second); code != exitOK {
		t.Fatalf("node produce exited %d; output:\n%s", code, produce.output())
	}
	for _, word := range []string{"sluice", "devcluster"} {
		awaitCountEverywhere(t, uis, word, 1000, 30*time.Second)
	}

	dc.cmd.Process.Signal(syscall.SIGTERM)
	if code := waitChildExit(t, dc, 60*time.Second); code != exitOK {
		t.Fatalf("devcluster exited %d after SIGTERM, want 0; output:\n%s", code, dc.output())
	}
	for i, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("n%d (pid %d) is still there after devcluster exited (kill -0: %v)", i+1, pid, err)
		}
	}
	if out := dc.output(); !strings.Contains(out, "n2 | ") || !strings.Contains(out, "stopping the leader "+leader+" first") {
		t.Errorf("devcluster's output lacks the prefixed node logs or the leader's stop first; output:\n%s", out)
	}
}

// freePortBlock finds n consecutive free ports on 127.0.0.1 and returns
// the first; they are free when it returns, not reserved.
func freePortBlock(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		held := []net.Listener{l}
		for p := base + 1; p < base+n && p <= 65535; p++ {
			if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
				held = append(held, l)
			}
		}
		for _, l := range held {
			l.Close()
		}
		if len(held) == n {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports on 127.0.0.1", n)
	return 0
}

// awaitOneLeader waits until every node's /api/cluster names the same
// leader, other than not (a node just killed, which the others name
// until they notice), and returns it.
func awaitOneLeader(t *testing.T, uis []string, not string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	var seen []string
	for time.Now().Before(deadline) {
		seen = seen[:0]
		for _, ui := range uis {
			id, err := clusterLeader(ui)
			if err != nil {
				id = "(" + err.Error() + ")"
			}
			seen = append(seen, id)
		}
		if seen[0] != "" && seen[0] != not && !strings.HasPrefix(seen[0], "(") && allEqual(seen) {
			return seen[0]
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the nodes %v did not agree on a leader in %v; last seen: %q", uis, d, seen)
	return ""
}

func allEqual(s []string) bool {
	for _, v := range s {
		if v != s[0] {
			return false
		}
	}
	return true
}

// awaitCountEverywhere waits until GET /api/state/wordcount/WORD answers
// want on every node; a count above want fails at once.
func awaitCountEverywhere(t *testing.T, uis []string, word string, want int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	got := make([]string, len(uis))
	for time.Now().Before(deadline) {
		done := true
		for i, ui := range uis {
			v, err := wordCount(ui, word)
			got[i] = fmt.Sprint(v)
			if err != nil {
				got[i] = err.Error()
			}
			if v > want {
				t.Fatalf("%s counts %q %d times, more than the %d sent", ui, word, v, want)
			}
			done = done && err == nil && v == want
		}
		if done {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%q: want %d on every node %v after %v, last seen %q", word, want, uis, d, got)
}

// wordCount is the committed count of word on the node at ui (0 when it
// has none).
func wordCount(ui, word string) (int64, error) {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + ui + "/api/state/wordcount/" + word)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, nil
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %s", resp.Status)
	}
	var doc struct {
		Value int64 `json:"value"`
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	return doc.Value, err
}

// waitChildExit waits up to d for c to exit and returns its exit code.
func waitChildExit(t *testing.T, c *child, d time.Duration) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(d):
		t.Fatalf("%v still running after %v; output:\n%s", c.cmd.Args, d, c.output())
	}
	c.cmd.Wait()
	return c.cmd.ProcessState.ExitCode()
}

// TestPrefixWriterWholeLines checks that a node's output reaches the
// terminal in whole lines, each prefixed once, however it is split.
func TestPrefixWriterWholeLines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"one_line", []string{"a\n"}, "n1 | a\n"},
		{"split_line", []string{"a", "b\nc", "d\n"}, "n1 | ab\nn1 | cd\n"},
		{"two_lines_one_write", []string{"a\nb\n"}, "n1 | a\nn1 | b\n"},
		{"last_line_without_newline", []string{"a\nb"}, "n1 | a\nn1 | b\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			p := newPrefixWriter(&lockedWriter{w: &out}, "n1")
			for _, w := range tc.writes {
				p.Write([]byte(w))
			}
			p.flush()
			if out.String() != tc.want {
				t.Errorf("got %q, want %q", out.String(), tc.want)
			}
		})
	}
}
