package chaos

import (
	"context"
	"errors"
	"flag"
	"go/parser"
	gotoken "go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var e2e = flag.Bool("chaos", false, "run TestChaosShort, a 60-second run of three node processes with kills and a partition (CI runs the same through `node chaos`)")

// buildNode builds cmd/node with the given build tags into a temporary
// directory.
func buildNode(t *testing.T, tags string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "node")
	cmd := exec.Command("go", "build", "-tags", tags, "-o", bin, "../cmd/node")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags %q ./cmd/node: %v\n%s", tags, err, out)
	}
	return bin
}

func testConfig(t *testing.T, bin string, faults ...string) Config {
	cfg := DefaultConfig()
	cfg.Binary, cfg.Faults, cfg.Dir, cfg.Log = bin, faults, t.TempDir(), testLog{t}
	return cfg
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestChaosShort: three node processes, a minute of load with the leader
// or a node killed and a partition; every acknowledged line is counted
// exactly once. Opt-in (-chaos): CI runs the same with `node chaos
// --duration 60s --faults kill,partition --seed 1`.
func TestChaosShort(t *testing.T) {
	if !*e2e || testing.Short() {
		t.Skip("a minute of three node processes: go test ./chaos -chaos -run TestChaosShort -v")
	}
	cfg := testConfig(t, buildNode(t, ""), FaultKill, FaultPartition)
	cfg.Duration = 60 * time.Second
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed {
		t.Fatalf("%s\n%s", res.Verdict, res.Summary())
	}
	if len(res.Events) == 0 || res.Checks.AckedLines == 0 {
		t.Fatalf("no fault injected or nothing acknowledged:\n%s", res.Summary())
	}
	t.Log(res.Summary())
}

// TestChaosCatchesBrokenDedupe: a node built with -tags
// sluice_broken_dedupe stores a retried request again; the harness, whose
// producers resend some acknowledged requests (as one that lost a reply
// does) and retry across kills, must report duplication and the seed
// that replays it.
func TestChaosCatchesBrokenDedupe(t *testing.T) {
	if testing.Short() {
		t.Skip("about a minute of three node processes")
	}
	cfg := testConfig(t, buildNode(t, "sluice_broken_dedupe"), FaultKill)
	cfg.Duration, cfg.Seed = 30*time.Second, 3
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Passed || res.Checks == nil || res.Checks.Duplicated == 0 {
		t.Fatalf("a node without dedupe passed the checks:\n%s", res.Summary())
	}
	if !strings.Contains(res.Verdict, "duplicated") || !strings.Contains(res.Verdict, "--seed "+strconv.FormatUint(cfg.Seed, 10)) {
		t.Errorf("the verdict %q does not name the duplication and the seed", res.Verdict)
	}
	t.Log(res.Verdict)
}

// TestChaosNodeThatNeverStarts: a node binary that exits at once fails
// the run within seconds with an error that says so, instead of a hang.
func TestChaosNodeThatNeverStarts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	cfg := testConfig(t, "/bin/false")
	cfg.Duration, cfg.StartTimeout = 10*time.Second, 5*time.Second
	start := time.Now()
	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "exited at its start") {
		t.Fatalf("a node binary that exits at once: err %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %v to give up", time.Since(start))
	}
}

// TestChaosImportsNoEngine: the harness is black-box (ARCHITECTURE.md
// section 3): it talks to nodes over HTTP and never imports Sluice's
// packages.
func TestChaosImportsNoEngine(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		ast, err := parser.ParseFile(gotoken.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, "github.com/sluice-stream/sluice") {
				t.Errorf("%s imports %s: the chaos harness must stay black-box", f, p)
			}
		}
	}
}

// TestChaosPortInUse: a node that cannot bind the address the harness
// chose for it (taken by another process in between) makes the harness
// start over on new ports, twice, then stop with ErrPortInUse, not hang.
func TestChaosPortInUse(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := filepath.Join(t.TempDir(), "node")
	script := "#!/bin/sh\necho 'node: --http 127.0.0.11:4000: listen tcp 127.0.0.11:4000: bind: address already in use' >&2\nexit 2\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, bin)
	cfg.Duration, cfg.StartTimeout = 10*time.Second, 5*time.Second
	_, err := Run(context.Background(), cfg)
	if !errors.Is(err, ErrPortInUse) {
		t.Fatalf("err %v, want ErrPortInUse", err)
	}
	if n := strings.Count(readFile(t, filepath.Join(cfg.Dir, "n1.log")), "=== chaos: start"); n != 3 {
		t.Errorf("n1 started %d times, want 3 (two retries on new ports)", n)
	}
}

func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
