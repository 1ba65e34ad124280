package main

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestChaosDocker runs `node chaos --docker` end to end: three nodes as
// containers of an image FROM scratch built for the run, 40 s of load
// with the seed-5 schedule of kills, pauses and partitions applied with
// Docker's verbs, and expects a pass; then that no container, network or
// image labelled with the run's id is left behind. Skipped with -short
// and where no Docker engine answers.
func TestChaosDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image and runs three containers for about a minute")
	}
	if out, err := timed(docker("info", "--format", "{{.ServerVersion}}"), 5*time.Second); err != nil {
		t.Skipf("no Docker engine answers (docker info: %v: %s); this test needs one", err, strings.TrimSpace(string(out)))
	}
	began := time.Now()
	report := t.TempDir()
	c := startChild(t, "chaos", "--docker", "--nodes", "3", "--duration", "40s", "--faults", "kill,pause,partition",
		"--seed", "5", "--report", report)
	code := waitChildExit(t, c, 8*time.Minute)
	out := c.output()
	m := regexp.MustCompile(`docker: run (sluice-chaos-5-[0-9a-f]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no docker run id in the output (exit %d):\n%s", code, out)
	}
	run := m[1]
	defer assertNothingLeft(t, run)
	if code != exitOK {
		t.Fatalf("node chaos --docker --seed 5 exited %d, want 0 (report under %s):\n%s", code, report, out)
	}
	if !strings.Contains(out, "PASS:") || !strings.Contains(out, "lost 0, duplicated 0") {
		t.Fatalf("no pass in the summary:\n%s", out)
	}
	t.Logf("%s in %v:\n%s", run, time.Since(began).Round(time.Second), out[strings.Index(out, "PASS:"):])
}

// assertNothingLeft fails if any container, network or image of the run
// remains, and removes it.
func assertNothingLeft(t *testing.T, run string) {
	label := "label=sluice.chaos.run=" + run
	for _, kind := range [][]string{{"ps", "-aq"}, {"network", "ls", "-q"}, {"image", "ls", "-q"}} {
		out, err := timed(docker(append(kind, "--filter", label)...), 30*time.Second)
		if err != nil {
			t.Errorf("docker %v: %v: %s", kind, err, out)
			continue
		}
		if left := strings.Fields(string(out)); len(left) > 0 {
			t.Errorf("docker %s --filter %s: %v left behind", strings.Join(kind, " "), label, left)
			rm := map[string][]string{"ps": {"rm", "-f"}, "network": {"network", "rm"}, "image": {"rmi", "-f"}}[kind[0]]
			timed(docker(append(rm, left...)...), time.Minute)
		}
	}
}
