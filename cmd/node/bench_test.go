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

// TestBenchCluster3 runs `node bench --mode cluster3` over 20,000 lines
// with one kill of the leader: three node processes count every word
// exactly, on every node, and the JSON holds the cluster's figures.
func TestBenchCluster3(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three node processes")
	}
	benchNodeBinary = nodeBin
	defer func() { benchNodeBinary = "" }()
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"bench", "--mode", "cluster3", "--lines", "20000", "--latency", "1s", "--kills", "1", "--json", out}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "count check: exact") {
		t.Errorf("the table does not say the count is exact:\n%s", stdout.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Cluster map[string]any `json:"cluster3"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"lines_per_s", "ratio", "ack_p99_ms", "e2e_p99_ms", "failovers_ms", "failover_max_ms", "peak_rss_bytes"} {
		if _, ok := got.Cluster[field]; !ok {
			t.Errorf("the JSON's cluster3 has no %q: %s", field, data)
		}
	}
	if got.Cluster["exact_count"] != true {
		t.Errorf("exact count not recorded: %s", data)
	}
}

// TestBenchFlags checks the refusals: bad values exit 2 with the flag's
// name.
func TestBenchFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no kills", []string{"--mode", "cluster3", "--kills", "0"}, "--kills"},
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
