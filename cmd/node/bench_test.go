package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchSmallCorpus runs `node bench` over 20,000 lines: the exact-count
// check passes (every word's committed count equals the hand count) and
// the JSON holds every field. Timings vary by machine and are not checked.
func TestBenchSmallCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two nodes on disk for a few seconds")
	}
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"bench", "--lines", "20000", "--latency", "1s", "--json", out}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "exact count       local ok, http ok") {
		t.Errorf("the table does not say the exact count passed:\n%s", stdout.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"lines", "seed", "mode", "cpus", "batch_ms",
		"hand_one_goroutine_lines_per_s", "hand_sharded_lines_per_s",
		"sluice_local_lines_per_s", "sluice_local_ratio", "sluice_http_lines_per_s", "sluice_http_ratio",
		"latency_rate_lines_per_s", "latency_requests", "ack_p50_ms", "ack_p99_ms", "e2e_p50_ms", "e2e_p99_ms",
		"peak_rss_bytes", "exact_count_local", "exact_count_http", "exact_count_detail"} {
		if _, ok := got[field]; !ok {
			t.Errorf("the JSON has no %q: %s", field, data)
		}
	}
	if got["exact_count_local"] != true || got["exact_count_http"] != true || got["lines"] != 20000.0 {
		t.Errorf("exact counts or lines wrong: %s", data)
	}
}

// TestBenchFlags checks the refusals: cluster3 is not built, and bad
// values exit 2 with the flag's name.
func TestBenchFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cluster3 not built", []string{"--mode", "cluster3"}, "cluster3 needs the three-node cluster, not built yet"},
		{"unknown mode", []string{"--mode", "nope"}, "--mode"},
		{"too few lines", []string{"--lines", "10"}, "--lines"},
		{"an argument", []string{"extra"}, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append([]string{"bench"}, tc.args...), &stdout, &stderr); code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not say %q", stderr.String(), tc.want)
			}
		})
	}
}
