package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sluice-stream/sluice/engine"
)

// getJSON GETs url, decodes its JSON body into v (when v is not nil) and
// returns the status code.
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: Content-Type %q, want JSON; body:\n%s", url, ct, body)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v; body:\n%s", url, err, body)
		}
	}
	return resp.StatusCode
}

// eventually polls cond every 50ms until it holds or d has passed.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// finishedBatches returns the batches of /api/batches that are done.
func finishedBatches(t *testing.T, addr string) []batchRow {
	t.Helper()
	var d batchesDoc
	if code := getJSON(t, "http://"+addr+"/api/batches", &d); code != http.StatusOK {
		t.Fatalf("/api/batches: %d", code)
	}
	var done []batchRow
	for _, b := range d.Batches {
		if b.Status == batchDone {
			done = append(done, b)
		}
	}
	return done
}

// TestAPIWhileDataFlows runs word count over the sample and checks every
// JSON endpoint of the UI: the batches fill, a batch's details list its
// operators and tasks, the cluster of one is led by the node, its
// receiver has a rate; unknown batch times and endpoints are JSON 404s,
// malformed ones 400s; /readyz is 200 and /debug/pprof is off by default.
func TestAPIWhileDataFlows(t *testing.T) {
	c := startChild(t, "run", "--http", "127.0.0.1:0", "--batch", "200ms", "--sample-rate", "500", "--id", "n7")
	addr := c.uiAddr()
	base := "http://" + addr
	var done []batchRow
	eventually(t, 10*time.Second, "three batches with records done", func() bool {
		done = finishedBatches(t, addr)
		n := 0
		for _, b := range done {
			if b.Records > 0 {
				n++
			}
		}
		return n >= 3
	})
	b := done[0]
	if b.Epoch < 1 || b.SubmittedAt.IsZero() || b.CompletedAt.IsZero() || len(b.Inputs) != 1 || b.Inputs[0].Stream != "sample" {
		t.Errorf("batch %+v: want an epoch, its times and the sample input", b)
	}

	var d batchDetail
	if code := getJSON(t, fmt.Sprintf("%s/api/batches/%d", base, b.Time), &d); code != http.StatusOK {
		t.Fatalf("/api/batches/%d: %d", b.Time, code)
	}
	if d.Time != b.Time || len(d.Operators) == 0 || len(d.Tasks) == 0 {
		t.Errorf("details of %d: %d operators, %d tasks; want some of each", b.Time, len(d.Operators), len(d.Tasks))
	}

	for _, tc := range []struct {
		path string
		code int
	}{
		{"/api/batches/1", http.StatusNotFound},
		{"/api/batches/soon", http.StatusBadRequest},
		{"/api/batches?limit=0", http.StatusBadRequest},
		{"/api/nothing", http.StatusNotFound},
		{"/api/cluster?local=maybe", http.StatusBadRequest},
	} {
		var e struct{ Error string }
		if code := getJSON(t, base+tc.path, &e); code != tc.code || e.Error == "" {
			t.Errorf("GET %s: %d %q, want %d with a JSON error", tc.path, code, e.Error, tc.code)
		}
	}

	var cl clusterDoc
	getJSON(t, base+"/api/cluster", &cl)
	if cl.LeaderID != "n7" || !cl.Ready || len(cl.Nodes) != 1 || cl.Nodes[0].Role != "Leader" || !cl.Nodes[0].Self ||
		cl.Nodes[0].PartitionsLed < 1 || len(cl.LeaderChanges) != 1 || cl.LeaderChanges[0].To != "n7" {
		t.Errorf("/api/cluster = %+v: want n7 alone, leading, ready, elected once", cl)
	}
	var local clusterDoc
	if code := getJSON(t, base+"/api/cluster?local=1", &local); code != http.StatusOK || len(local.Nodes) != 1 || !local.Nodes[0].Self || local.LeaderID != "n7" {
		t.Errorf("/api/cluster?local=1 = %d %+v: want n7's view of itself", code, local)
	}

	var rs struct{ Receivers []receiverRow }
	getJSON(t, base+"/api/receivers", &rs)
	if len(rs.Receivers) != 1 || rs.Receivers[0].Stream != "sample" || rs.Receivers[0].Node != "n7" || rs.Receivers[0].Rate <= 0 {
		t.Errorf("/api/receivers = %+v: want the sample receiver on n7 with a rate", rs)
	}

	for path, want := range map[string]int{"/readyz": 200, "/healthz": 200, "/debug/pprof/": 404, "/batches/1": 404} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if code := c.stop(); code != exitOK {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

// TestMetricsParseAsPrometheusText scrapes /metrics of a node that runs
// batches and reads it with Prometheus' own text parser: every family the
// README lists is there, with values that match what ran.
func TestMetricsParseAsPrometheusText(t *testing.T) {
	c := startChild(t, "run", "--http", "127.0.0.1:0", "--batch", "200ms", "--sample-rate", "500", "--data-dir", t.TempDir(), "--pprof")
	addr := c.uiAddr()
	eventually(t, 10*time.Second, "two batches done, with records", func() bool {
		done := finishedBatches(t, addr)
		return len(done) >= 2 && done[0].Records+done[1].Records > 0
	})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse as Prometheus text: %v", err)
	}
	value := func(name string, labels ...string) float64 {
		t.Helper()
		f, ok := fams[name]
		if !ok {
			t.Errorf("/metrics lacks %s", name)
			return 0
		}
	metrics:
		for _, m := range f.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.Label {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		t.Errorf("/metrics: no %s%v", name, labels)
		return 0
	}
	for _, tc := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"sluice_batches_completed_total", nil, 2},
		{"sluice_batches_failed_total", nil, 0},
		{"sluice_input_records_total", nil, 1},
		{"sluice_batch_scheduling_delay_seconds", nil, 2},
		{"sluice_batch_processing_delay_seconds", nil, 2},
		{"sluice_batch_total_delay_seconds", nil, 2},
		{"sluice_receiver_records_total", []string{"stream", "sample"}, 1},
		{"sluice_receiver_rate_records_per_second", []string{"stream", "sample"}, 0},
		{"sluice_wal_sync_latency_seconds", nil, 1},
		{"sluice_wal_syncs_total", nil, 1},
		{"sluice_raft_state", []string{"state", "Leader"}, 1},
		{"sluice_raft_leader", nil, 1},
		{"sluice_raft_term", nil, 1},
		{"sluice_raft_leader_changes_total", nil, 1},
		{"sluice_replayed_batches_total", nil, 0},
	} {
		if v := value(tc.name, tc.labels...); v < tc.min {
			t.Errorf("%s%v = %v, want at least %v", tc.name, tc.labels, v, tc.min)
		}
	}
	if f := fams["sluice_batch_processing_delay_seconds"]; f != nil && f.GetType().String() != "HISTOGRAM" {
		t.Errorf("sluice_batch_processing_delay_seconds is a %v, want a histogram", f.GetType())
	}
	pp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	pp.Body.Close()
	if pp.StatusCode != http.StatusOK {
		t.Errorf("/debug/pprof/ with --pprof: %d, want 200", pp.StatusCode)
	}
	if code := c.stop(); code != exitOK {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

// TestReplayAfterRestartIsShownAndLogged kills a node at its first batch,
// before the batch completes, and restarts it on the same data directory:
// the new driver (a new term) replays that batch, logs it at info with
// the batch, counts it in /metrics and lists it under the leader change
// in /api/cluster; the batch table marks it.
func TestReplayAfterRestartIsShownAndLogged(t *testing.T) {
	dir := t.TempDir()
	crashed := launchCrashNode(t, dir, engine.FailBeforeBatchCompleted)
	crashed.waitKilled(t, engine.FailBeforeBatchCompleted)

	n := startCrashNode(t, dir, "")
	m := n.waitLine(`replaying a batch allocated by an earlier driver.* batch="?(\d+) ms"?.* epoch=(\d+)`)
	base := "http://" + n.addr
	var cl clusterDoc
	eventually(t, 5*time.Second, "the replay listed in /api/cluster", func() bool {
		getJSON(t, base+"/api/cluster", &cl)
		return len(cl.LeaderChanges) > 0 && len(cl.LeaderChanges[0].Replayed) > 0
	})
	ch := cl.LeaderChanges[0]
	if fmt.Sprint(ch.Replayed[0]) != m[1] || fmt.Sprint(ch.Term) != m[2] || ch.Term < 2 {
		t.Errorf("leader change %+v; the log said batch %s replayed in epoch %s (want a term after the first)", ch, m[1], m[2])
	}
	var b batchRow
	eventually(t, 5*time.Second, "the replayed batch in /api/batches", func() bool {
		var d batchDetail
		return getJSON(t, base+"/api/batches/"+m[1], &d) == http.StatusOK && d.Replay && d.Status == batchDone && func() bool { b = d.batchRow; return true }()
	})
	if b.Epoch != ch.Term {
		t.Errorf("replayed batch %+v ran in epoch %d, want %d", b, b.Epoch, ch.Term)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var replayed string
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "sluice_replayed_batches_total "); ok {
			replayed = v
		}
	}
	if replayed != "1" {
		t.Errorf("sluice_replayed_batches_total = %q, want 1", replayed)
	}
	n.stopGracefully(t)
}

// TestUIWhileStarting serves the UI of a context that has not started:
// the page says the node is starting, /readyz is 503 with the reason,
// /api/cluster says why it is not ready and /api/receivers is a JSON 503.
func TestUIWhileStarting(t *testing.T) {
	c, err := engine.NewContext(engine.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	s := newStatus(c, "wordcount", "sample://", newMetrics(), nil)
	s.cluster = newClusterWatch(c, c.Logger(), &s.running)
	srv := httptest.NewServer(s.routes(false))
	defer srv.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, page := get("/"); code != http.StatusOK || !strings.Contains(page, "The node is starting") {
		t.Errorf("GET / while starting: %d, want 200 saying the node is starting:\n%s", code, page)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "starting") {
		t.Errorf("GET /readyz while starting: %d %q, want 503 saying it is starting", code, body)
	}
	var cl clusterDoc
	if code := getJSON(t, srv.URL+"/api/cluster", &cl); code != http.StatusOK || cl.Ready || !strings.Contains(cl.Message, "starting") {
		t.Errorf("/api/cluster while starting: %d %+v", code, cl)
	}
	if code := getJSON(t, srv.URL+"/api/receivers", nil); code != http.StatusServiceUnavailable {
		t.Errorf("/api/receivers while starting: %d, want 503", code)
	}
	if code, _ := get("/metrics"); code != http.StatusOK {
		t.Errorf("/metrics while starting: %d, want 200", code)
	}
}

// TestReadinessSaysWhy checks the reasons /readyz and the page give.
func TestReadinessSaysWhy(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ci    engine.ClusterInfo
		ready bool
		want  string
	}{
		{"starting", engine.ClusterInfo{State: engine.StateStarting}, false, "starting"},
		{"no leader", engine.ClusterInfo{NodeID: "n2", State: "Candidate", Term: 4}, false, "no leader"},
		{"behind", engine.ClusterInfo{NodeID: "n2", LeaderID: "n1", State: "Follower", CommitIndex: 9, AppliedIndex: 7}, false, "catching up"},
		{"stopping", engine.ClusterInfo{NodeID: "n1", LeaderID: "n1", State: "Shutdown"}, false, "stopping"},
		{"follower caught up", engine.ClusterInfo{NodeID: "n2", LeaderID: "n1", State: "Follower", CommitIndex: 9, AppliedIndex: 9}, true, ""},
		{"leader", engine.ClusterInfo{NodeID: "n1", LeaderID: "n1", State: "Leader", CommitIndex: 9, AppliedIndex: 9}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready, why := readiness(tc.ci)
			if ready != tc.ready || !strings.Contains(why, tc.want) {
				t.Errorf("readiness = %v %q, want %v with %q", ready, why, tc.ready, tc.want)
			}
		})
	}
}

// TestJSONLogs runs the node with --log-format json at debug level: every
// log line is a JSON object, the election is logged at info with the
// leader, and each batch has a debug line.
func TestJSONLogs(t *testing.T) {
	c := startChild(t, "run", "--http", "127.0.0.1:0", "--batch", "100ms", "--log-format", "json", "--log-level", "debug", "--top", "0")
	c.waitLine(`"msg":"batch completed"`)
	c.stop()
	var elected, batches int
	for _, l := range strings.Split(c.output(), "\n") {
		if !strings.HasPrefix(l, "{") {
			continue // the banner and the printed batches
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, l)
		}
		switch rec["msg"] {
		case "leader elected":
			elected++
			if rec["level"] != "INFO" || rec["leader"] != "n1" {
				t.Errorf("election logged as %v, want INFO with leader n1", rec)
			}
		case "batch completed":
			batches++
			if rec["level"] != "DEBUG" || rec["time"] == nil {
				t.Errorf("batch logged as %v, want DEBUG with its time", rec)
			}
		}
	}
	if elected != 1 || batches == 0 {
		t.Errorf("%d election lines and %d batch lines, want 1 and some; output:\n%s", elected, batches, c.output())
	}
}
