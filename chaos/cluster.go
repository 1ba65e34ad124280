package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors of the launcher, each a verdict of its own.
var (
	// ErrPortInUse: a node could not bind the address it was given, again
	// after fresh addresses were chosen.
	ErrPortInUse = errors.New("chaos: a port the harness chose is in use")
	// ErrNodeStart: a node exited, or did not serve HTTP, after a start.
	ErrNodeStart = errors.New("chaos: a node did not start")
)

// node is one node process and where it lives. Its process fields are
// guarded by mu: the nemesis, the monitor and the cleanup all touch them.
type node struct {
	id, ip     string
	raft       string // the address it listens on (--raft)
	advertised string // its --peers entry: its proxy, or raft on a single node
	http       string
	dir        string // --data-dir
	logPath    string
	proxy      *proxy     // nil on a single node, and with Docker
	dk         *dockerEnv // with Docker: signals are docker's verbs

	mu struct {
		sync.Mutex
		cmd    *exec.Cmd
		exited chan struct{} // closed when cmd has been waited for
		err    error         // cmd.Wait's, once exited
		paused bool
		starts int
	}
}

// cluster is the node processes of a run and their proxies, or with
// Config.Docker its containers (docker.go).
type cluster struct {
	cfg    Config
	nodes  []*node
	dk     *dockerEnv // nil: local processes
	peers  string     // --peers of every node
	client *http.Client
	logf   func(format string, a ...any)
}

// nodeIP is node i's loopback IP (i from 1). All of 127.0.0.0/8 is
// loopback on Linux; elsewhere every node shares 127.0.0.1 and the
// partitions, which tell nodes apart by IP, are refused.
func nodeIP(i int, distinct bool) string {
	if !distinct {
		return "127.0.0.1"
	}
	return fmt.Sprintf("127.0.0.%d", 10+i)
}

// distinctIPs reports whether this machine lets a socket bind 127.0.0.11.
func distinctIPs() bool {
	ln, err := net.Listen("tcp", "127.0.0.11:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// freePort binds ip:0 and closes it: a port free a moment ago. A node may
// still lose it to another process before it binds; startAll then
// starts again on new ports.
func freePort(ip string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// newCluster lays out the nodes; with Config.Docker it also builds the
// image and makes the networks (removed by close, or here on an error).
func newCluster(ctx context.Context, cfg Config, logf func(string, ...any)) (*cluster, error) {
	distinct := !cfg.Docker && distinctIPs()
	if !cfg.Docker && !distinct && cfg.Nodes > 1 && hasFault(cfg.Faults, FaultPartition) {
		return nil, fmt.Errorf("%w: partitions need the loopback IPs 127.0.0.11-13 (Linux), which this machine does not bind", ErrConfig)
	}
	c := &cluster{cfg: cfg, logf: logf, client: &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}}}
	for i := 1; i <= cfg.Nodes; i++ {
		id := "n" + strconv.Itoa(i)
		c.nodes = append(c.nodes, &node{id: id, ip: nodeIP(i, distinct),
			dir: filepath.Join(cfg.Dir, id), logPath: filepath.Join(cfg.Dir, id+".log")})
	}
	if cfg.Docker {
		dk, err := newDockerEnv(ctx, cfg, logf)
		if err != nil {
			return nil, err
		}
		c.dk = dk
		for _, n := range c.nodes {
			n.dk = dk
		}
	}
	return c, nil
}

// assign chooses every node's addresses and starts the proxies, or
// creates the containers.
func (c *cluster) assign(ctx context.Context) error {
	c.closeProxies()
	if c.dk != nil {
		return c.assignDocker(ctx)
	}
	byIP := map[string]string{}
	for _, n := range c.nodes {
		byIP[n.ip] = n.id
	}
	var peers []string
	for _, n := range c.nodes {
		var err error
		if n.http, err = freePort(n.ip); err != nil {
			return fmt.Errorf("a port on %s: %w", n.ip, err)
		}
		if len(c.nodes) == 1 {
			continue
		}
		if n.raft, err = freePort(n.ip); err != nil {
			return fmt.Errorf("a port on %s: %w", n.ip, err)
		}
		if n.proxy, err = newProxy(n.id, net.JoinHostPort(n.ip, "0"), n.raft, byIP); err != nil {
			return fmt.Errorf("the proxy of %s: %w", n.id, err)
		}
		n.advertised = n.proxy.addr()
		peers = append(peers, n.id+"="+n.advertised)
	}
	c.peers = strings.Join(peers, ",")
	return nil
}

func (c *cluster) closeProxies() {
	for _, n := range c.nodes {
		if n.proxy != nil {
			n.proxy.close()
			n.proxy = nil
		}
	}
}

// assignDocker publishes each node's HTTP port on a free 127.0.0.1 port
// and creates its container; raft runs on the run's own network.
func (c *cluster) assignDocker(ctx context.Context) error {
	var peers []string
	for _, n := range c.nodes {
		var err error
		if n.http, err = freePort(n.ip); err != nil {
			return fmt.Errorf("a port on %s: %w", n.ip, err)
		}
		n.raft, n.advertised = "0.0.0.0:"+dockerRaftPort, n.id+":"+dockerRaftPort
		peers = append(peers, n.id+"="+n.advertised)
	}
	c.peers = strings.Join(peers, ",")
	for _, n := range c.nodes {
		os.RemoveAll(n.dir) // before create: the container runs over it
		if err := c.dk.create(ctx, n, c.args(n)); err != nil {
			return fmt.Errorf("%w: creating %s's container: %v", ErrNodeStart, n.id, err)
		}
	}
	return nil
}

func (c *cluster) args(n *node) []string {
	a := append([]string{}, c.cfg.Args...)
	httpAddr, dir := n.http, n.dir
	if c.dk != nil {
		httpAddr, dir = "0.0.0.0:"+dockerHTTPPort, "/data"
	}
	a = append(a, "--id", n.id, "--http", httpAddr, "--data-dir", dir, "--source", "ingest",
		"--app", "wordcount", "--batch", c.cfg.Batch.String(), "--top", "0")
	if hasFault(c.cfg.Faults, FaultClock) {
		a = append(a, "--clock", "system+jumps")
	}
	if len(c.nodes) > 1 {
		a = append(a, "--raft", n.raft, "--peers", c.peers)
	}
	return a
}

// startAll starts every node on fresh addresses and data directories and
// waits for each to serve HTTP. A port lost to another process between
// its choice and the node's bind makes it start over on new ports, twice
// at most; then ErrPortInUse.
func (c *cluster) startAll(ctx context.Context) error {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if c.dk == nil {
			for _, n := range c.nodes {
				os.RemoveAll(n.dir) // a fresh cluster: an earlier attempt's raft data holds other peers
			}
		}
		if err = c.assign(ctx); err != nil {
			return err
		}
		if err = c.startNodes(ctx, c.nodes); err == nil || !errors.Is(err, ErrPortInUse) {
			return err
		}
		c.logf("a port was taken before a node bound it (%v); starting again on new ports", err)
		c.killAll()
	}
	return err
}

// startNodes starts ns at once and waits until each serves HTTP.
func (c *cluster) startNodes(ctx context.Context, ns []*node) error {
	for _, n := range ns {
		if err := c.spawn(n); err != nil {
			return err
		}
	}
	for _, n := range ns {
		if err := c.awaitHTTP(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// spawn starts n's process, its output appended to its log file.
func (c *cluster) spawn(n *node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.cmd != nil {
		select {
		case <-n.mu.exited:
		default:
			return fmt.Errorf("chaos: starting %s: it is still running", n.id)
		}
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	n.mu.starts++
	what := c.cfg.Binary + " " + strings.Join(c.args(n), " ")
	cmd := exec.Command(c.cfg.Binary, c.args(n)...)
	if c.dk != nil {
		cmd = c.dk.attach(n)
		what = strings.Join(cmd.Args, " ") + " (" + c.dk.image + " " + strings.Join(c.args(n), " ") + ")"
	}
	fmt.Fprintf(logf, "=== chaos: start %d of %s at %s: %s\n", n.mu.starts, n.id,
		time.Now().Format(time.RFC3339Nano), what)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%w: %s: %v", ErrNodeStart, n.id, err)
	}
	exited := make(chan struct{})
	n.mu.cmd, n.mu.exited, n.mu.err, n.mu.paused = cmd, exited, nil, false
	go func() {
		err := cmd.Wait()
		logf.Close()
		n.mu.Lock()
		n.mu.err = err
		n.mu.Unlock()
		close(exited)
	}()
	return nil
}

// awaitHTTP waits until n answers GET /api/cluster, failing early if its
// process exits (with the reason from its log).
func (c *cluster) awaitHTTP(ctx context.Context, n *node) error {
	deadline := time.Now().Add(c.cfg.StartTimeout)
	for time.Now().Before(deadline) {
		if !n.running() {
			tail := logTail(n.logPath, 6)
			if strings.Contains(tail, "address already in use") || strings.Contains(tail, "port is already allocated") {
				return fmt.Errorf("%w: %s: %s", ErrPortInUse, n.id, lastLine(tail))
			}
			return fmt.Errorf("%w: %s exited at its start (%v); the end of %s:\n%s", ErrNodeStart, n.id, n.exitErr(), n.logPath, tail)
		}
		var doc clusterDoc
		if c.getJSON(ctx, n, "/api/cluster?local=1", &doc) == nil {
			return nil
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: %s does not answer on http://%s within %v; the end of %s:\n%s",
		ErrNodeStart, n.id, n.http, c.cfg.StartTimeout, n.logPath, logTail(n.logPath, 6))
}

func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.cmd == nil {
		return false
	}
	select {
	case <-n.mu.exited:
		return false
	default:
		return true
	}
}

// up reports whether n runs and is not stopped.
func (n *node) up() bool {
	n.mu.Lock()
	paused := n.mu.paused
	n.mu.Unlock()
	return n.running() && !paused
}

func (n *node) exitErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.err
}

func (n *node) signal(sig syscall.Signal) {
	if n.dk != nil {
		n.dockerSignal(sig)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.cmd == nil || n.mu.cmd.Process == nil {
		return
	}
	n.mu.cmd.Process.Signal(sig)
	switch sig {
	case syscall.SIGSTOP:
		n.mu.paused = true
	case syscall.SIGCONT, syscall.SIGKILL:
		n.mu.paused = false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (n *node) kill() {
	n.mu.Lock()
	exited := n.mu.exited
	n.mu.Unlock()
	if exited == nil {
		return
	}
	if n.dk != nil {
		n.signal(syscall.SIGCONT) // docker kills no paused container
		n.signal(syscall.SIGKILL)
		n.awaitAttach(exited)
		return
	}
	n.signal(syscall.SIGKILL)
	n.signal(syscall.SIGCONT)
	<-exited
}

// killAll kills every node; no process of the run survives it.
func (c *cluster) killAll() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Go(n.kill)
	}
	wg.Wait()
}

// close kills every node and stops the proxies; with Docker it removes
// the run's containers, networks and image.
func (c *cluster) close() {
	c.killAll()
	c.closeProxies()
	c.client.CloseIdleConnections()
	if c.dk != nil {
		c.dk.close()
	}
}

// isolate cuts n off from the other nodes: both ways, or n's own
// connections only (oneWay). It returns a note for the event, if any.
func (c *cluster) isolate(n *node, oneWay bool) string {
	if c.dk != nil {
		if err := c.dk.disconnect(n); err != nil {
			return err.Error()
		}
		if oneWay {
			return "one-way ran as isolate: docker network disconnect cuts both ways"
		}
		return ""
	}
	for _, o := range c.nodes {
		if o == n {
			continue
		}
		o.proxy.block(n.id) // n's connections to o
		if !oneWay {
			n.proxy.block(o.id) // o's connections to n
		}
	}
	return ""
}

// healLinks lets every node reach every other again.
func (c *cluster) healLinks() error {
	if c.dk != nil {
		return c.dk.heal()
	}
	for _, n := range c.nodes {
		if n.proxy != nil {
			n.proxy.heal()
		}
	}
	return nil
}

// restart starts a node that is not running over its data directory.
func (c *cluster) restart(ctx context.Context, n *node) error {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = c.spawn(n); err != nil {
			return err
		}
		if err = c.awaitHTTP(ctx, n); err == nil || ctx.Err() != nil {
			return err
		}
		n.kill()
		if !errors.Is(err, ErrPortInUse) {
			return err
		}
		c.logf("%s: its port is taken (%v); trying again", n.id, err)
		if err := sleepCtx(ctx, time.Second); err != nil {
			return err
		}
	}
	return err
}

// clusterDoc is what the harness reads of GET /api/cluster.
type clusterDoc struct {
	NodeID string  `json:"node_id"`
	Leader *string `json:"leader"`
	Term   uint64  `json:"term"`
	Nodes  []struct {
		ID             string `json:"id"`
		Self           bool   `json:"self"`
		Role           string `json:"role"`
		Driving        bool   `json:"driving"`
		Epoch          uint64 `json:"epoch"`
		LastCompleted  int64  `json:"last_completed_ms"`
		StateAppliedMs int64  `json:"state_applied_ms"`
	} `json:"nodes"`
}

// self is the entry of the answering node.
func (d *clusterDoc) self() (driving bool, epoch uint64, lastCompleted, applied int64) {
	for _, e := range d.Nodes {
		if e.Self || e.ID == d.NodeID {
			return e.Driving, e.Epoch, e.LastCompleted, e.StateAppliedMs
		}
	}
	return false, 0, 0, 0
}

func (c *cluster) getJSON(ctx context.Context, n *node, path string, v any) error {
	return c.getJSONWithin(ctx, n, path, v, 2*time.Second)
}

func (c *cluster) getJSONWithin(ctx context.Context, n *node, path string, v any, d time.Duration) error {
	return c.do(ctx, http.MethodGet, n, path, v, d)
}

func (c *cluster) post(ctx context.Context, n *node, path string) error {
	return c.postJSON(ctx, n, path, nil)
}

// postJSON posts an empty body and decodes a 200's answer into v (nil:
// discarded).
func (c *cluster) postJSON(ctx context.Context, n *node, path string, v any) error {
	return c.do(ctx, http.MethodPost, n, path, v, 2*time.Second)
}

// do sends method path to n without a body, within d, and decodes a
// 200's JSON answer into v (nil: discarded); any other status is an
// error.
func (c *cluster) do(ctx context.Context, method string, n *node, path string, v any, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.http+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s on %s: %s", method, path, n.id, resp.Status)
	}
	if v == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// leader is the node the up nodes say leads, nil when none agree on one.
func (c *cluster) leader(ctx context.Context) *node {
	votes := map[string]int{}
	for _, n := range c.nodes {
		if !n.up() {
			continue
		}
		var d clusterDoc
		if c.getJSON(ctx, n, "/api/cluster?local=1", &d) == nil && d.Leader != nil && *d.Leader != "" {
			votes[*d.Leader]++
		}
	}
	for _, n := range c.nodes {
		if votes[n.id]*2 > len(c.nodes) && n.up() || len(c.nodes) == 1 && votes[n.id] == 1 {
			return n
		}
	}
	return nil
}

func hasFault(faults []string, f string) bool {
	for _, x := range faults {
		if x == f {
			return true
		}
	}
	return false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// logTail is the last n lines of a log file.
func logTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func lastLine(s string) string {
	lines := strings.Split(s, "\n")
	return lines[len(lines)-1]
}
