package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDockerClusterSurvivesLeaderKill runs the top-level Dockerfile's
// image as the three nodes of docker-compose.yml (compose v2 or v1; plain
// docker run on a network of its own where there is neither), feeds one
// node, kills the leader's container (SIGKILL), feeds a survivor once a
// new leader is elected, starts the killed container again, and checks
// that every node counts every line exactly once. Everything it creates
// (containers, network, volumes, image) is removed at the end.
func TestDockerClusterSurvivesLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image and runs three containers")
	}
	if _, err := timed(docker("version"), 5*time.Second); err != nil {
		t.Skipf("docker is not available (docker version: %v); this test needs a Docker daemon", err)
	}
	began := time.Now()
	image := buildTestImage(t)
	built := time.Now()
	ports := freePortBlock(t, 3)
	dc := startDockerCluster(t, image, ports)
	uis := []string{"127.0.0.1:" + strconv.Itoa(ports), "127.0.0.1:" + strconv.Itoa(ports+1), "127.0.0.1:" + strconv.Itoa(ports+2)}
	leader := awaitOneLeader(t, uis, "", 60*time.Second)
	li, _ := strconv.Atoi(strings.TrimPrefix(leader, "n"))
	survivor := uis[li%3] // the node after the leader

	dir := t.TempDir()
	produceDockerLines(t, dir, "before", survivor, 1000)
	dc.run(t, "kill", leader)
	var alive []string
	for i, ui := range uis {
		if i != li-1 {
			alive = append(alive, ui)
		}
	}
	next := awaitOneLeader(t, alive, leader, 60*time.Second)
	t.Logf("killed the leader %s; %s leads now", leader, next)
	produceDockerLines(t, dir, "after", survivor, 1000)
	dc.run(t, "start", leader)

	awaitCountEverywhere(t, uis, "before", 1000, 60*time.Second)
	awaitCountEverywhere(t, uis, "after", 1000, 60*time.Second)
	awaitCountEverywhere(t, uis, "docker", 2000, 60*time.Second)
	t.Logf("binary and image built in %v; the cluster's run took %v (%s)", built.Sub(began).Round(time.Millisecond),
		time.Since(built).Round(time.Millisecond), dc.tool)
}

// timed runs cmd, killed after timeout, and returns its combined output.
func timed(cmd *exec.Cmd, timeout time.Duration) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	timer := time.AfterFunc(timeout, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	return out.Bytes(), err
}

// runs tells whether cmd runs and succeeds within 10s.
func runs(cmd *exec.Cmd) bool {
	_, err := timed(cmd, 10*time.Second)
	return err == nil
}

func docker(args ...string) *exec.Cmd { return exec.Command("docker", args...) }

// buildTestImage builds the static binary and the Dockerfile's image
// under a tag of its own, removed at the end.
func buildTestImage(t *testing.T) string {
	t.Helper()
	ctxDir := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(ctxDir, "deploy", "node"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the static binary: %v\n%s", err, out)
	}
	image := "sluice-node-test:" + randomSuffix(t)
	dockerfile, _ := filepath.Abs("../../Dockerfile")
	if out, err := timed(docker("build", "-q", "-f", dockerfile, "-t", image, ctxDir), 2*time.Minute); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { timed(docker("rmi", "-f", image), time.Minute) })
	return image
}

func randomSuffix(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// dockerCluster runs the three nodes under one project: run(t, "kill",
// "n1") and run(t, "start", "n1") act on a node's container.
type dockerCluster struct {
	tool    string // "docker compose", "docker-compose" or "docker run"
	project string
	image   string
	ports   int // n1's published UI port; n2's and n3's follow
}

func startDockerCluster(t *testing.T, image string, ports int) *dockerCluster {
	t.Helper()
	dc := &dockerCluster{project: "sluicetest" + randomSuffix(t), image: image, ports: ports}
	switch {
	case runs(docker("compose", "version")):
		dc.tool = "docker compose"
	case runs(exec.Command("docker-compose", "version")):
		dc.tool = "docker-compose"
	default:
		dc.tool = "docker run"
	}
	t.Cleanup(func() { dc.down(t) })
	if dc.tool == "docker run" {
		dc.runPlain(t)
	} else {
		dc.run(t, "up", "-d")
	}
	return dc
}

// compose is a compose command for the project, with the test's image
// and ports in its environment.
func (dc *dockerCluster) compose(args ...string) *exec.Cmd {
	file, _ := filepath.Abs("../../docker-compose.yml")
	args = append([]string{"-p", dc.project, "-f", file}, args...)
	cmd := exec.Command("docker-compose", args...)
	if dc.tool == "docker compose" {
		cmd = docker(append([]string{"compose"}, args...)...)
	}
	cmd.Env = append(os.Environ(), "SLUICE_IMAGE="+dc.image, "COMPOSE_PROJECT_NAME="+dc.project)
	for i := range 3 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("SLUICE_N%d_UI=%d", i+1, dc.ports+i))
	}
	return cmd
}

// run is `compose VERB [SERVICE]`, or the docker command of the same
// effect on a container of the plain topology.
func (dc *dockerCluster) run(t *testing.T, verb string, args ...string) {
	t.Helper()
	var cmd *exec.Cmd
	if dc.tool == "docker run" {
		cmd = docker(append([]string{verb}, dc.containers(args)...)...)
	} else {
		cmd = dc.compose(append([]string{verb}, args...)...)
	}
	if out, err := timed(cmd, time.Minute); err != nil {
		t.Fatalf("%s %s %v: %v\n%s", dc.tool, verb, args, err, out)
	}
}

func (dc *dockerCluster) containers(ids []string) []string {
	var names []string
	for _, id := range ids {
		names = append(names, dc.project+"-"+id)
	}
	return names
}

// runPlain starts the compose file's topology with docker run: a network
// of the test's own, a volume and a published port per node.
func (dc *dockerCluster) runPlain(t *testing.T) {
	t.Helper()
	if out, err := timed(docker("network", "create", dc.project), time.Minute); err != nil {
		t.Fatalf("docker network create: %v\n%s", err, out)
	}
	for i := range 3 {
		id := fmt.Sprintf("n%d", i+1)
		out, err := timed(docker("run", "-d", "--name", dc.project+"-"+id, "--network", dc.project, "--network-alias", id,
			"-v", dc.project+"-"+id+":/data", "-p", fmt.Sprintf("127.0.0.1:%d:4040", dc.ports+i), dc.image,
			"run", "--id", id, "--peers", "n1=n1:7000,n2=n2:7000,n3=n3:7000", "--http", "0.0.0.0:4040",
			"--data-dir", "/data", "--source", "ingest"), time.Minute)
		if err != nil {
			t.Fatalf("docker run %s: %v\n%s", id, err, out)
		}
	}
}

// down shows the nodes' logs when the test failed, then removes the
// containers, volumes and network.
func (dc *dockerCluster) down(t *testing.T) {
	ids := []string{"n1", "n2", "n3"}
	if dc.tool == "docker run" {
		for _, name := range dc.containers(ids) {
			if t.Failed() {
				out, _ := timed(docker("logs", "--tail", "40", name), time.Minute)
				t.Logf("%s:\n%s", name, out)
			}
			timed(docker("rm", "-f", "-v", name), time.Minute)
			timed(docker("volume", "rm", "-f", name), time.Minute)
		}
		timed(docker("network", "rm", dc.project), time.Minute)
		return
	}
	if t.Failed() {
		out, _ := timed(dc.compose("logs", "--no-color", "--tail", "40"), time.Minute)
		t.Logf("%s logs:\n%s", dc.tool, out)
	}
	if out, err := timed(dc.compose("down", "-v", "-t", "5", "--remove-orphans"), 2*time.Minute); err != nil {
		t.Errorf("%s down: %v\n%s", dc.tool, err, out)
	}
}

// produceDockerLines sends n lines holding word (and "docker") to the node at
// ui with `node produce`, which returns once every line is acknowledged.
func produceDockerLines(t *testing.T, dir, word, ui string, n int) {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s docker line%d\n", word, i)
	}
	input := filepath.Join(dir, word+".txt")
	if err := os.WriteFile(input, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startChild(t, "produce", "--to", "http://"+ui, input)
	if code := waitChildExit(t, p, 60*time.Second); code != exitOK {
		t.Fatalf("node produce to %s exited %d; output:\n%s", ui, code, p.output())
	}
}
