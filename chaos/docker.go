package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// With Config.Docker the nodes are containers of a Docker engine instead
// of local processes. Every object a run makes is named after its run id,
// sluice-chaos-<seed>-<random hex>, and labelled sluice.chaos.run=<id>:
//
//	<id>          a bridge network; each node's HTTP port (4040 inside) is
//	              published on 127.0.0.1:<free port> through it
//	<id>-raft     an internal bridge network; node nX has the alias nX on
//	              it and listens for raft on 0.0.0.0:7000 (--peers nX=nX:7000)
//	<id>-nX       node nX's container; its data directory is a bind mount
//	              of Config.Dir/nX at /data, and it runs as the harness's
//	              uid:gid, so that the checker reads and removes its files
//	sluice-chaos:<id>  the image, FROM scratch with Config.Binary (static)
//	              as /node; no image is pulled (Config.DockerImage: use that
//	              image instead, built by someone else and left alone)
//
// Faults map to Docker's verbs: SIGKILL is `docker kill`, a restart
// `docker start`, SIGSTOP/SIGCONT `docker pause`/`unpause`, a partition
// `docker network disconnect`/`connect` of <id>-raft (both ways: a
// one-way partition runs as isolate). The harness follows each container
// with `docker start -a`, whose output is the node's log and whose exit is
// the container's. Everything is removed when the run ends, on every
// path; only objects named and labelled with the run id are touched.

// dockerLabel names the run that made a Docker object.
const dockerLabel = "sluice.chaos.run"

// Ports inside a node's container.
const (
	dockerHTTPPort = "4040"
	dockerRaftPort = "7000"
)

// dockerTimeout bounds one docker command; cleanup's own are shorter.
const dockerTimeout = 2 * time.Minute

// ErrNoDocker: --docker where no Docker engine answers.
var ErrNoDocker = errors.New("chaos: no Docker engine answers")

// dockerEnv is a run's Docker objects.
type dockerEnv struct {
	run      string // every name's prefix, the label's value
	image    string
	ownImage bool // built by this run: removed at its end
	logf     func(format string, a ...any)

	mu struct {
		sync.Mutex
		nets       []string        // created, in order
		containers map[string]bool // created, by name
		cut        map[string]bool // containers disconnected from the raft network
		closed     bool
	}
}

// docker runs a docker command bounded by timeout (and ctx), and returns
// its combined output; an error carries the output's last line.
func docker(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	s := strings.TrimSpace(out.String())
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer within %v", timeout)
		}
		return s, fmt.Errorf("docker %s: %v: %s", args[0], err, lastLine(s))
	}
	return s, nil
}

// CheckDocker fails unless a Docker engine answers `docker info` within
// a few seconds.
func CheckDocker(ctx context.Context) error {
	if _, err := docker(ctx, 5*time.Second, "info", "--format", "{{.ServerVersion}}"); err != nil {
		return fmt.Errorf("%w: %v (start one, or run without --docker)", ErrNoDocker, err)
	}
	return nil
}

// newDockerEnv checks the engine, builds the image and makes the
// networks. On an error it removes what it made.
func newDockerEnv(ctx context.Context, cfg Config, logf func(string, ...any)) (*dockerEnv, error) {
	if err := CheckDocker(ctx); err != nil {
		return nil, err
	}
	suffix := make([]byte, 3)
	rand.Read(suffix)
	d := &dockerEnv{run: fmt.Sprintf("sluice-chaos-%d-%s", cfg.Seed, hex.EncodeToString(suffix)), logf: logf}
	d.mu.containers, d.mu.cut = map[string]bool{}, map[string]bool{}
	logf("docker: run %s (containers, networks and image labelled %s=%s)", d.run, dockerLabel, d.run)
	err := d.buildImage(ctx, cfg)
	if err == nil {
		err = d.makeNetwork(ctx, d.run)
	}
	if err == nil {
		err = d.makeNetwork(ctx, d.raftNet(), "--internal")
	}
	if err != nil {
		d.close()
		return nil, fmt.Errorf("%w: %v", ErrNodeStart, err)
	}
	return d, nil
}

func (d *dockerEnv) raftNet() string { return d.run + "-raft" }

// buildImage builds an image FROM scratch holding cfg.Binary, unless
// cfg.DockerImage names one already built.
func (d *dockerEnv) buildImage(ctx context.Context, cfg Config) error {
	if cfg.DockerImage != "" {
		d.image = cfg.DockerImage
		_, err := docker(ctx, 10*time.Second, "image", "inspect", "--format", "{{.Id}}", d.image)
		return err
	}
	dir, err := os.MkdirTemp("", "sluice-chaos-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := copyFile(cfg.Binary, filepath.Join(dir, "node")); err != nil {
		return fmt.Errorf("copying the node binary into the image's context: %w", err)
	}
	dockerfile := "FROM scratch\nCOPY node /node\nENTRYPOINT [\"/node\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	d.image = "sluice-chaos:" + strings.TrimPrefix(d.run, "sluice-chaos-")
	d.ownImage = true // docker build may leave it half made: remove it whatever happens
	start := time.Now()
	if _, err := docker(ctx, dockerTimeout, "build", "-q", "--label", dockerLabel+"="+d.run, "-t", d.image, dir); err != nil {
		return err
	}
	d.logf("docker: image %s built in %v", d.image, time.Since(start).Round(time.Millisecond))
	return nil
}

func (d *dockerEnv) makeNetwork(ctx context.Context, name string, opts ...string) error {
	args := append([]string{"network", "create", "--driver", "bridge", "--label", dockerLabel + "=" + d.run}, opts...)
	d.mu.Lock()
	d.mu.nets = append(d.mu.nets, name) // a create that timed out may still have made it
	d.mu.Unlock()
	_, err := docker(ctx, time.Minute, append(args, name)...)
	return err
}

func (d *dockerEnv) container(n *node) string { return d.run + "-" + n.id }

// create makes n's container anew (removing an earlier one of the run):
// the ports it publishes are fixed when it is created.
func (d *dockerEnv) create(ctx context.Context, n *node, args []string) error {
	name := d.container(n)
	d.remove(name)
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	dir, err := filepath.Abs(n.dir)
	if err != nil {
		return err
	}
	_, port, _ := strings.Cut(n.http, ":")
	d.mu.Lock()
	d.mu.containers[name] = true
	d.mu.Unlock()
	_, err = docker(ctx, time.Minute, append([]string{"create", "--name", name, "--label", dockerLabel + "=" + d.run,
		"--network", d.run, "-p", "127.0.0.1:" + port + ":" + dockerHTTPPort, "-v", dir + ":/data",
		"--user", strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid()), d.image}, args...)...)
	if err != nil {
		return err
	}
	_, err = docker(ctx, time.Minute, "network", "connect", "--alias", n.id, d.raftNet(), name)
	return err
}

// attach is the command that starts n's container and follows it: its
// output is the node's, its exit the container's.
func (d *dockerEnv) attach(n *node) *exec.Cmd {
	return exec.Command("docker", "start", "-a", d.container(n))
}

// verb runs `docker VERB` on n's container (kill, pause, unpause).
func (d *dockerEnv) verb(n *node, verb string) error {
	_, err := docker(context.Background(), 30*time.Second, verb, d.container(n))
	return err
}

// disconnect cuts n off the raft network, both ways.
func (d *dockerEnv) disconnect(n *node) error {
	name := d.container(n)
	d.mu.Lock()
	if d.mu.cut[name] {
		d.mu.Unlock()
		return nil
	}
	d.mu.cut[name] = true
	d.mu.Unlock()
	_, err := docker(context.Background(), 30*time.Second, "network", "disconnect", "--force", d.raftNet(), name)
	return err
}

// heal connects every container cut off back to the raft network.
func (d *dockerEnv) heal() error {
	d.mu.Lock()
	var names []string
	for name := range d.mu.cut {
		names = append(names, name)
	}
	clear(d.mu.cut)
	d.mu.Unlock()
	var errs []error
	for _, name := range names {
		id := strings.TrimPrefix(name, d.run+"-")
		if _, err := docker(context.Background(), 30*time.Second, "network", "connect", "--alias", id, d.raftNet(), name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *dockerEnv) remove(name string) {
	docker(context.Background(), 30*time.Second, "rm", "-f", "-v", name)
	d.mu.Lock()
	delete(d.mu.containers, name)
	d.mu.Unlock()
}

// close removes the run's containers, networks and image (if it built
// it), each command bounded; it runs once. It never touches an object
// that does not carry the run's label.
func (d *dockerEnv) close() {
	d.mu.Lock()
	if d.mu.closed {
		d.mu.Unlock()
		return
	}
	d.mu.closed = true
	nets := d.mu.nets
	d.mu.Unlock()
	ctx := context.Background()
	byLabel := "label=" + dockerLabel + "=" + d.run
	if ids, _ := docker(ctx, 30*time.Second, "ps", "-aq", "--filter", byLabel); ids != "" {
		if _, err := docker(ctx, time.Minute, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...); err != nil {
			d.logf("docker: removing the containers: %v", err)
		}
	}
	labelled, _ := docker(ctx, 30*time.Second, "network", "ls", "--filter", byLabel, "--format", "{{.Name}}")
	for i := len(nets) - 1; i >= 0; i-- {
		if !slices.Contains(strings.Fields(labelled), nets[i]) {
			continue // never made
		}
		if _, err := docker(ctx, 30*time.Second, "network", "rm", nets[i]); err != nil {
			d.logf("docker: removing network %s: %v", nets[i], err)
		}
	}
	if d.ownImage {
		if out, _ := docker(ctx, 30*time.Second, "image", "ls", "-q", "--filter", byLabel); out != "" {
			if _, err := docker(ctx, time.Minute, "rmi", "-f", d.image); err != nil {
				d.logf("docker: removing image %s: %v", d.image, err)
			}
		}
	}
	d.logf("docker: removed the run's containers, networks and image (%s)", d.run)
}

// IsStatic reports whether the ELF executable at path needs no dynamic
// loader, as a binary in an image FROM scratch must.
func IsStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// dockerSignal does with Docker's verbs what sig does to a process:
// SIGKILL is docker kill, SIGSTOP docker pause, SIGCONT docker unpause
// (of a paused container only). The docker command runs outside n.mu.
func (n *node) dockerSignal(sig syscall.Signal) {
	n.mu.Lock()
	started, paused := n.mu.cmd != nil, n.mu.paused
	n.mu.Unlock()
	if !started {
		return
	}
	var verb string
	switch {
	case sig == syscall.SIGKILL:
		verb, paused = "kill", false
	case sig == syscall.SIGSTOP && !paused:
		verb, paused = "pause", true
	case sig == syscall.SIGCONT && paused:
		verb, paused = "unpause", false
	default:
		return
	}
	if err := n.dk.verb(n, verb); err != nil && verb != "kill" { // a kill of a stopped container fails, and is done
		n.dk.logf("docker %s %s: %v", verb, n.id, err)
		return
	}
	n.mu.Lock()
	n.mu.paused = paused
	n.mu.Unlock()
}

// awaitAttach waits for the `docker start -a` that follows n's container
// to end once the container is killed; one that does not within 30s (the
// engine lost it) is killed itself.
func (n *node) awaitAttach(exited chan struct{}) {
	select {
	case <-exited:
		return
	case <-time.After(30 * time.Second):
	}
	n.mu.Lock()
	if n.mu.cmd != nil && n.mu.cmd.Process != nil {
		n.mu.cmd.Process.Kill()
	}
	n.mu.Unlock()
	<-exited
}
