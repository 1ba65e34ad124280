package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// nodeBin is the node binary built once for the tests that run it as a
// child process, as a user would.
var nodeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-node-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nodeBin = filepath.Join(dir, "node")
	if out, err := exec.Command("go", "build", "-o", nodeBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building node: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// child is a node process under test. Its stdout and stderr lines are
// kept and can be waited for.
type child struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	all   []string
	done  chan struct{}
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	return startChildEnv(t, nil, args...)
}

// startChildEnv is startChild with env as the child's environment (nil:
// the test's own).
func startChildEnv(t *testing.T, env []string, args ...string) *child {
	t.Helper()
	c := &child{t: t, cmd: exec.Command(nodeBin, args...), lines: make(chan string, 10000), done: make(chan struct{})}
	c.cmd.Env = env
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				c.mu.Lock()
				c.all = append(c.all, sc.Text())
				c.mu.Unlock()
				select {
				case c.lines <- sc.Text():
				default:
				}
			}
		}()
	}
	go func() { wg.Wait(); close(c.done) }()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	})
	return c
}

// waitLine waits for a line matching re and returns its submatches.
func (c *child) waitLine(re string) []string {
	c.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l := <-c.lines:
			if m := rx.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-c.done:
			c.t.Fatalf("node exited before printing %q; output:\n%s", re, c.output())
		case <-deadline:
			c.t.Fatalf("no line matching %q in 30s; output:\n%s", re, c.output())
		}
	}
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.all, "\n")
}

// stop sends SIGTERM and returns the exit code.
func (c *child) stop() int {
	c.t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	<-c.done
	c.cmd.Wait()
	return c.cmd.ProcessState.ExitCode()
}

func (c *child) uiAddr() string {
	return c.waitLine(`Status page: http://(\S+)/`)[1]
}

func getStatus(t *testing.T, addr string) statusDoc {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d statusDoc
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDefaultRunCountsTheSample runs what `node` with no arguments runs
// (word count over the sample), on a free port: batches print the top
// counts in Spark's format, the status page answers, SIGTERM exits 0.
func TestDefaultRunCountsTheSample(t *testing.T) {
	c := startChild(t, "--http", "127.0.0.1:0", "--batch", "200ms", "--sample-rate", "500")
	addr := c.uiAddr()
	c.waitLine(`^Time: \d+ ms$`)
	c.waitLine(`^\(the,\d+\)$`)
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "Recent batches") || !strings.Contains(string(page), "wordcount") {
		t.Errorf("status page lacks the batch table:\n%s", page)
	}
	// The batch that printed may not have reached the status page yet:
	// its completion is recorded after its output.
	d := getStatus(t, addr)
	for deadline := time.Now().Add(10 * time.Second); d.Records == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		d = getStatus(t, addr)
	}
	if d.App != "wordcount" || d.Records == 0 || len(d.Receivers) != 1 {
		t.Errorf("status = %+v, want wordcount with records and one receiver", d)
	}
	if code := c.stop(); code != exitOK {
		t.Fatalf("exit code %d after SIGTERM, want 0; output:\n%s", code, c.output())
	}
}

// TestBadFlagsExitWithTheChoices checks that an unknown application or
// source scheme exits 2 and lists what is valid.
func TestBadFlagsExitWithTheChoices(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown app", []string{"run", "--app", "nope"}, []string{`--app "nope"`, "wordcount"}},
		{"unknown scheme", []string{"run", "--source", "nats://x", "--http", "127.0.0.1:0"}, []string{`unknown scheme "nats"`, "socket://", "dir://", "sample://", "kafka://", "zmq+pull://", "zmq+sub://"}},
		{"kafka without a topic", []string{"run", "--source", "kafka://127.0.0.1:9092", "--http", "127.0.0.1:0"}, []string{"--source", "topic", "kafka://HOST:PORT"}},
		{"kafka bad start", []string{"run", "--source", "kafka://127.0.0.1:9092/t?start=middle", "--http", "127.0.0.1:0"}, []string{"start=middle", "earliest or latest"}},
		{"kafka-out with two topics", []string{"run", "--kafka-out", "kafka://127.0.0.1:9092/a,b"}, []string{"--kafka-out", "one topic"}},
		{"zmq without port", []string{"run", "--source", "zmq+pull://127.0.0.1", "--http", "127.0.0.1:0"}, []string{"want zmq+pull://HOST:PORT"}},
		{"zmq pull with topic", []string{"run", "--source", "zmq+pull://127.0.0.1:5555?topic=a", "--http", "127.0.0.1:0"}, []string{"takes no parameters"}},
		{"no scheme", []string{"run", "--source", "localhost:9999", "--http", "127.0.0.1:0"}, []string{"has no scheme", "socket://"}},
		{"bad port", []string{"run", "--source", "socket://localhost:99999", "--http", "127.0.0.1:0"}, []string{"1 to 65535"}},
		{"bad batch", []string{"run", "--batch", "0s"}, []string{"--batch"}},
		{"bad log format", []string{"run", "--log-format", "xml"}, []string{"--log-format", "json"}},
		{"unknown command", []string{"frobnicate"}, []string{"unknown command"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(nodeBin, tc.args...).CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != exitUsage {
				t.Fatalf("err = %v, want exit code %d; output:\n%s", err, exitUsage, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestSocketSourceAsSparkExample reproduces Spark's NetworkWordCount with
// `nc -lk 9999`: the test is the server, the node connects to it.
func TestSocketSourceAsSparkExample(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := startChild(t, "run", "--source", "socket://"+ln.Addr().String(), "--http", "127.0.0.1:0", "--batch", "200ms")
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "hello world\r\nhello sluice\n\nhello")
	conn.Close() // the last line has no newline: it counts when the connection ends
	c.waitLine(`^\(hello,3\)$`)
	if code := c.stop(); code != exitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// TestDirSourceAndDataDir watches a directory and saves each batch's
// counts under the data directory.
func TestDirSourceAndDataDir(t *testing.T) {
	in, data := t.TempDir(), t.TempDir()
	c := startChild(t, "run", "--source", "dir://"+in, "--data-dir", data, "--http", "127.0.0.1:0", "--batch", "200ms")
	c.uiAddr()
	tmp := filepath.Join(in, ".words.tmp")
	if err := os.WriteFile(tmp, []byte("river gate river\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(in, "words.txt")); err != nil {
		t.Fatal(err)
	}
	c.waitLine(`^\(river,2\)$`)
	if code := c.stop(); code != exitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	dirs, _ := filepath.Glob(filepath.Join(data, "output", "counts-*", "_SUCCESS"))
	if len(dirs) == 0 {
		t.Fatalf("no saved batch under %s", data)
	}
	last := filepath.Dir(dirs[len(dirs)-1])
	parts, _ := filepath.Glob(filepath.Join(last, "part-*"))
	var all string
	for _, p := range parts {
		b, _ := os.ReadFile(p)
		all += string(b)
	}
	if !strings.Contains(all, "(river,2)\n") || !strings.Contains(all, "(gate,1)\n") {
		t.Errorf("saved counts %q lack (river,2) and (gate,1)", all)
	}
}

func TestHTTPAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, err := exec.Command(nodeBin, "run", "--http", ln.Addr().String()).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitUsage {
		t.Fatalf("err = %v, want exit %d", err, exitUsage)
	}
	if !strings.Contains(string(out), "--http") {
		t.Errorf("output does not name the flag:\n%s", out)
	}
}

// TestPanickingAppExitsWithTheStack runs the node in process with an
// application whose function panics on one word: the batch fails, the log
// shows the panic and its stack, and the node exits 1 instead of dying
// silently or carrying on past a lost batch.
func TestPanickingAppExitsWithTheStack(t *testing.T) {
	apps["panics"] = app{describe: "test", build: func(c *engine.Context, lines *engine.DStream[string], _ appOptions) {
		engine.Map(lines, func(l string) string {
			if l == "boom" {
				panic("the word was boom")
			}
			return l
		}).Print(1)
	}}
	defer delete(apps, "panics")
	in := t.TempDir()
	if err := os.WriteFile(filepath.Join(in, "input"), []byte("fine\nboom\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	code := run([]string{"run", "--app", "panics", "--source", "dir://" + in, "--http", "127.0.0.1:0", "--batch", "100ms"}, &stdout, &stderr)
	if code != exitFailure {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", code, exitFailure, stderr.String())
	}
	log := stderr.String()
	for _, want := range []string{"batch failed", "the word was boom", "TestPanickingAppExitsWithTheStack", "the job failed"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the node's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
