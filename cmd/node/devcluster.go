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
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// devclusterFlags are the flags of `node devcluster`.
type devclusterFlags struct {
	nodes     int
	dir       string
	basePort  int
	httpBase  int
	app       string
	source    string
	killAfter time.Duration
	extra     []string // after --: given to every node's `node run`
}

// devclusterOwned are the flags of `node run` that devcluster sets on
// every node itself; given after -- they would contradict it.
var devclusterOwned = []string{"id", "peers", "raft", "http", "data-dir", "app", "source"}

func parseDevclusterFlags(args []string, stderr io.Writer) (*devclusterFlags, error) {
	f := &devclusterFlags{}
	fs := flag.NewFlagSet("node devcluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.nodes, "nodes", 3, "nodes in the cluster")
	fs.StringVar(&f.dir, "dir", "", "directory holding each node's --data-dir, DIR/n1, DIR/n2... (empty: a new temporary directory, kept after exit)")
	fs.IntVar(&f.basePort, "base-port", 7001, "raft port of n1; node i listens on base-port+i-1, on 127.0.0.1")
	fs.IntVar(&f.httpBase, "http-base", 4041, "web UI port of n1; node i serves on http-base+i-1, on 127.0.0.1")
	fs.StringVar(&f.app, "app", "wordcount", "the application every node runs")
	fs.StringVar(&f.source, "source", "ingest", "every node's --source")
	fs.DurationVar(&f.killAfter, "kill-after", 40*time.Second, "how long the nodes get to stop gracefully after SIGTERM before SIGKILL")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: node devcluster [flags] [-- flags given to every node run]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	f.extra = fs.Args()
	switch {
	case f.nodes < 1:
		return nil, fmt.Errorf("--nodes %d must be at least 1", f.nodes)
	case f.basePort < 1 || f.basePort+f.nodes-1 > 65535:
		return nil, fmt.Errorf("--base-port %d: the raft ports base-port..base-port+%d must be within 1..65535", f.basePort, f.nodes-1)
	case f.httpBase < 1 || f.httpBase+f.nodes-1 > 65535:
		return nil, fmt.Errorf("--http-base %d: the UI ports http-base..http-base+%d must be within 1..65535", f.httpBase, f.nodes-1)
	case f.killAfter <= 0:
		return nil, fmt.Errorf("--kill-after %v must be positive", f.killAfter)
	}
	for _, a := range f.extra {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		for _, owned := range devclusterOwned {
			if strings.HasPrefix(a, "-") && name == owned {
				return nil, fmt.Errorf("%s after --: devcluster sets --%s of every node itself (see node devcluster -h)", a, owned)
			}
		}
	}
	return f, nil
}

// devNode is one node of the dev cluster: how to start it, and its
// current process. Only the devCluster's loop touches it.
type devNode struct {
	id      string
	http    string
	args    []string // of `node run`
	cmd     *exec.Cmd
	running bool
}

// devExit reports that a node's process ended.
type devExit struct {
	n   *devNode
	cmd *exec.Cmd
	err error // cmd.Wait's
}

// devCluster runs a cluster's nodes as child processes of this binary.
// One loop (run) owns the nodes; each child has a goroutine waiting for
// it, which reports on exits; run returns only once every child it
// started has been reported, so no child outlives it.
type devCluster struct {
	exe          string
	nodes        []*devNode
	stdout, logs *lockedWriter
	exits        chan devExit
	killAfter    time.Duration
}

func runDevcluster(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f, err := parseDevclusterFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	} else if err != nil {
		fmt.Fprintln(stderr, "node devcluster:", err)
		return exitUsage
	}
	d, err := newDevCluster(f, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "node devcluster:", err)
		return exitUsage
	}
	return d.run(f, stdin)
}

func newDevCluster(f *devclusterFlags, stdout, stderr io.Writer) (*devCluster, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this binary to start the nodes: %w", err)
	}
	if f.dir == "" {
		if f.dir, err = os.MkdirTemp("", "sluice-devcluster-"); err != nil {
			return nil, fmt.Errorf("a directory for the nodes' data: %w (give one with --dir)", err)
		}
	}
	d := &devCluster{exe: exe, stdout: &lockedWriter{w: stdout}, logs: &lockedWriter{w: stderr},
		exits: make(chan devExit), killAfter: f.killAfter}
	var peers []string
	for i := range f.nodes {
		peers = append(peers, fmt.Sprintf("n%d=%s", i+1, net.JoinHostPort("127.0.0.1", strconv.Itoa(f.basePort+i))))
	}
	for i := range f.nodes {
		n := &devNode{id: fmt.Sprintf("n%d", i+1), http: net.JoinHostPort("127.0.0.1", strconv.Itoa(f.httpBase+i))}
		n.args = append([]string{"run", "--id", n.id, "--peers", strings.Join(peers, ","), "--http", n.http,
			"--data-dir", filepath.Join(f.dir, n.id), "--app", f.app, "--source", f.source}, f.extra...)
		d.nodes = append(d.nodes, n)
	}
	return d, nil
}

// run starts the nodes and supervises them until a signal, or until
// every node has exited.
func (d *devCluster) run(f *devclusterFlags, stdin io.Reader) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	for _, n := range d.nodes {
		if err := d.start(n); err != nil {
			d.logs.printf("node devcluster: starting %s: %v\n", n.id, err)
			return d.stop(sigs, exitFailure)
		}
	}
	d.logs.printf("%s", d.banner(f))
	cmds := readCommands(stdin)
	for {
		select {
		case sig := <-sigs:
			d.logs.printf("node devcluster: %v: stopping every node (SIGTERM; SIGKILL after %v; again to kill now)\n", sig, d.killAfter)
			return d.stop(sigs, exitOK)
		case e := <-d.exits:
			d.exited(e)
			if d.live() == 0 {
				d.logs.printf("node devcluster: every node has exited; stopping\n")
				return exitFailure
			}
		case line, ok := <-cmds:
			if !ok {
				cmds = nil // stdin closed: keep running, signals still stop it
				continue
			}
			d.command(line)
		}
	}
}

func (d *devCluster) banner(f *devclusterFlags) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Sluice dev cluster: %d nodes running %s over %s, data under %s\n", len(d.nodes), f.app, f.source, f.dir)
	for _, n := range d.nodes {
		fmt.Fprintf(&b, "  %s  UI http://%s/   pid %d\n", n.id, n.http, n.cmd.Process.Pid)
	}
	first := d.nodes[0].http
	if strings.HasPrefix(f.source, "ingest") {
		fmt.Fprintf(&b, "Feed it through any node:  go run ./cmd/node produce --to http://%s FILE\n", first)
	}
	fmt.Fprintf(&b, "Who leads:  curl http://%s/api/cluster\n", first)
	if f.app == "wordcount" {
		fmt.Fprintf(&b, "A count, on any node:  curl http://%s/api/state/wordcount/WORD\n", first)
	}
	b.WriteString("Type \"kill ID\" (SIGKILL) or \"restart ID\" and Enter; Ctrl-C stops every node.\n")
	return b.String()
}

// start launches n's process and a goroutine that reports its exit.
func (d *devCluster) start(n *devNode) error {
	cmd := exec.Command(d.exe, n.args...)
	out, errOut := newPrefixWriter(d.stdout, n.id), newPrefixWriter(d.logs, n.id)
	cmd.Stdout, cmd.Stderr = out, errOut
	cmd.SysProcAttr = devChildAttr()
	cmd.WaitDelay = time.Second // a grandchild holding the pipes must not hang Wait
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd, n.running = cmd, true
	go func() {
		err := cmd.Wait()
		out.flush()
		errOut.flush()
		d.exits <- devExit{n: n, cmd: cmd, err: err}
	}()
	return nil
}

func (d *devCluster) exited(e devExit) {
	if e.n.cmd == e.cmd {
		e.n.running = false
	}
	d.logs.printf("node devcluster: %s (pid %d) exited unexpectedly: %s; the others keep running.\n"+
		"  Type \"restart %s\" to start it again over its data directory, or run:\n  %s\n",
		e.n.id, e.cmd.Process.Pid, exitDescription(e.err), e.n.id, d.restartHint(e.n))
}

func (d *devCluster) restartHint(n *devNode) string {
	return "go run ./cmd/node " + strings.Join(n.args, " ")
}

func exitDescription(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error() // "exit status 1", "signal: killed"
}

func (d *devCluster) live() int {
	live := 0
	for _, n := range d.nodes {
		if n.running {
			live++
		}
	}
	return live
}

// command runs one line typed on standard input.
func (d *devCluster) command(line string) {
	verb, id, _ := strings.Cut(strings.TrimSpace(line), " ")
	var n *devNode
	for _, c := range d.nodes {
		if c.id == strings.TrimSpace(id) {
			n = c
		}
	}
	switch {
	case verb == "":
		return
	case n == nil || (verb != "kill" && verb != "restart"):
		d.logs.printf("node devcluster: %q: type \"kill ID\" or \"restart ID\", ID one of n1..n%d\n", line, len(d.nodes))
	case verb == "kill" && n.running:
		n.cmd.Process.Signal(syscall.SIGKILL)
	case verb == "restart" && !n.running:
		if err := d.start(n); err != nil {
			d.logs.printf("node devcluster: restarting %s: %v\n", n.id, err)
			return
		}
		d.logs.printf("node devcluster: %s restarted, pid %d\n", n.id, n.cmd.Process.Pid)
	default:
		d.logs.printf("node devcluster: %s is %s\n", n.id, map[bool]string{true: "running", false: "not running"}[n.running])
	}
}

// stop sends SIGTERM to the leader, waits for it, then to the other
// running nodes: the leader's last batches then commit while a quorum is
// there to take them (stopped at once, the leader may lose its quorum
// before its last commit and exit 1). A node still running after
// killAfter, or at a second signal, gets SIGKILL. stop returns code, or
// exitFailure if a node did not stop cleanly.
func (d *devCluster) stop(sigs <-chan os.Signal, code int) int {
	deadline := time.NewTimer(d.killAfter)
	defer deadline.Stop()
	if l := d.leader(); l != nil && d.live() > 1 {
		d.logs.printf("node devcluster: stopping the leader %s first\n", l.id)
		l.cmd.Process.Signal(syscall.SIGTERM)
		d.drain(sigs, deadline.C, func() bool { return !l.running }, &code)
	}
	for _, n := range d.nodes {
		if n.running {
			n.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	d.drain(sigs, deadline.C, func() bool { return d.live() == 0 }, &code)
	return code
}

// drain handles nodes' exits until done holds, killing every node at
// the deadline or at a signal; a node that did not exit 0 sets *code.
func (d *devCluster) drain(sigs <-chan os.Signal, deadline <-chan time.Time, done func() bool, code *int) {
	for !done() {
		select {
		case e := <-d.exits:
			e.n.running = false
			if e.err != nil {
				d.logs.printf("node devcluster: %s stopped: %s\n", e.n.id, exitDescription(e.err))
				*code = exitFailure
			}
		case <-deadline:
			d.logs.printf("node devcluster: %d node(s) still running after %v: SIGKILL\n", d.live(), d.killAfter)
			d.killAll()
		case <-sigs:
			d.killAll()
		}
	}
}

// leader asks the running nodes which one leads; nil if none knows.
func (d *devCluster) leader() *devNode {
	for _, n := range d.nodes {
		if !n.running {
			continue
		}
		id, err := clusterLeader(n.http)
		if err != nil {
			continue
		}
		for _, l := range d.nodes {
			if l.id == id && l.running {
				return l
			}
		}
	}
	return nil
}

// clusterLeader is the leader's id in GET /api/cluster of the node at
// addr ("" when it knows none).
func clusterLeader(addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/cluster", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var doc struct {
		Leader *string `json:"leader"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc.Leader == nil {
		return "", err
	}
	return *doc.Leader, nil
}

func (d *devCluster) killAll() {
	for _, n := range d.nodes {
		if n.running {
			n.cmd.Process.Signal(syscall.SIGKILL)
		}
	}
}

// readCommands sends stdin's lines on the channel it returns, closed at
// EOF. Its goroutine is the one devcluster does not wait for: a read of
// a terminal cannot be cancelled, and it ends with the process.
func readCommands(stdin io.Reader) <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// lockedWriter serializes whole lines of several nodes onto one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) write(p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Write(p)
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.write([]byte(fmt.Sprintf(format, args...)))
}

// prefixWriter writes each complete line as "ID | line"; a line without
// its newline waits for the rest, or for flush.
type prefixWriter struct {
	out    *lockedWriter
	prefix []byte
	mu     sync.Mutex
	buf    []byte
}

func newPrefixWriter(out *lockedWriter, id string) *prefixWriter {
	return &prefixWriter{out: out, prefix: []byte(id + " | ")}
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		p.out.write(append(append([]byte{}, p.prefix...), p.buf[:i+1]...))
		p.buf = p.buf[i+1:]
	}
}

func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		p.out.write(append(append(append([]byte{}, p.prefix...), p.buf...), '\n'))
		p.buf = nil
	}
}
