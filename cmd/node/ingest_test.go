package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tests of POST /api/ingest/{stream}: every reply documented in ingest.go,
// on a node run in process as `node run --app archive --source ingest`
// would run it, with the flags given.

// ingestNode is a node running in this process.
type ingestNode struct {
	t       *testing.T
	n       *node
	url     string // of the ingest stream "lines"
	dataDir string
}

func startIngestNode(t *testing.T, flags ...string) *ingestNode {
	t.Helper()
	dir := t.TempDir()
	fs, f := newFlags()
	fs.SetOutput(io.Discard)
	args := append([]string{"--app", "archive", "--source", "ingest", "--data-dir", dir,
		"--http", "127.0.0.1:0", "--batch", "50ms", "--partitions", "2"}, flags...)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := f.validate(); err != nil {
		t.Fatal(err)
	}
	n, err := startNode(f, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.c.Stop(context.Background(), false)
		n.srv.Close()
	})
	return &ingestNode{t: t, n: n, url: "http://" + n.ln.Addr().String() + "/api/ingest/", dataDir: dir}
}

// ingestResponse is one reply of the endpoint.
type ingestResponse struct {
	status int
	header http.Header
	body   string
}

// post sends body to stream with the two headers; an empty value leaves
// its header out.
func (in *ingestNode) post(stream, producer, seq string, body []byte) ingestResponse {
	in.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.url+stream, bytes.NewReader(body))
	if err != nil {
		in.t.Fatal(err)
	}
	if producer != "" {
		req.Header.Set("Sluice-Producer", producer)
	}
	if seq != "" {
		req.Header.Set("Sluice-Sequence", seq)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatalf("POST %s: %v", stream, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		in.t.Fatal(err)
	}
	return ingestResponse{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// mustStore posts a request that must be stored now.
func (in *ingestNode) mustStore(producer string, seq uint64, body string) {
	in.t.Helper()
	r := in.post("lines", producer, strconv.FormatUint(seq, 10), []byte(body))
	if r.status != http.StatusOK || !strings.Contains(r.body, `"duplicate":false`) {
		in.t.Fatalf("(%s, %d): %d %s, want 200 stored", producer, seq, r.status, r.body)
	}
}

// stored is the number of records the ingest stream holds durably.
func (in *ingestNode) stored() int64 {
	return in.n.c.Receivers()[0].Records
}

// stopGracefully stops the node as SIGTERM does: every stored record is
// processed, so the archive is complete.
func (in *ingestNode) stopGracefully() {
	in.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := in.n.c.Stop(ctx, true); err != nil {
		in.t.Fatalf("graceful stop: %v", err)
	}
}

// readArchive returns what the archive app saved under dataDir: every
// batch's part files, in batch and partition order.
func readArchive(t *testing.T, dataDir string) []byte {
	t.Helper()
	parts, err := filepath.Glob(filepath.Join(dataDir, "output", "records-*", "part-*"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(parts) // batch times have as many digits, part numbers too
	var all []byte
	for _, p := range parts {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// TestIngestAcknowledgesWithJSON checks the 200 reply, its JSON fields,
// and that a retry is acknowledged as a duplicate without storing again.
func TestIngestAcknowledgesWithJSON(t *testing.T) {
	in := startIngestNode(t)
	for _, tc := range []struct {
		name string
		want ingestReply
	}{
		{"stored", ingestReply{Stream: "lines", Producer: "p1", Sequence: 1, Records: 3}},
		{"retried", ingestReply{Stream: "lines", Producer: "p1", Sequence: 1, Records: 3, Duplicate: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := in.post("lines", "p1", "1", []byte("a\nb\nc\n"))
			if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("reply %d (%s) %s, want 200 JSON", r.status, r.header.Get("Content-Type"), r.body)
			}
			var fields map[string]any
			if err := json.Unmarshal([]byte(r.body), &fields); err != nil {
				t.Fatalf("reply %q: %v", r.body, err)
			}
			for _, k := range []string{"stream", "producer", "sequence", "records", "duplicate"} {
				if _, ok := fields[k]; !ok || len(fields) != 5 {
					t.Fatalf("reply %s: want exactly the fields stream, producer, sequence, records, duplicate", r.body)
				}
			}
			var got ingestReply
			json.Unmarshal([]byte(r.body), &got)
			if got != tc.want {
				t.Errorf("reply %+v, want %+v", got, tc.want)
			}
			if n := in.stored(); n != 3 {
				t.Errorf("%d records stored, want 3", n)
			}
		})
	}
}

// TestIngestRefusals sends every kind of request the endpoint refuses:
// each gets its documented status and an error naming what is wrong,
// stores nothing, and leaves the node serving.
func TestIngestRefusals(t *testing.T) {
	in := startIngestNode(t, "--max-request-bytes", "1024", "--max-line-bytes", "64")
	in.mustStore("q", 5, "five\n")
	in.mustStore("q", 7, "seven\n")
	okBody := []byte("one\ntwo\n")
	for _, tc := range []struct {
		name          string
		stream        string
		producer, seq string
		body          []byte
		status        int
		want          string // in the error
	}{
		{"missing producer", "lines", "", "1", okBody, 400, "missing header Sluice-Producer"},
		{"blank producer", "lines", "   ", "1", okBody, 400, "missing header Sluice-Producer"},
		{"producer too long", "lines", strings.Repeat("p", 257), "1", okBody, 400, "Sluice-Producer is longer than 256 bytes"},
		{"missing sequence", "lines", "p", "", okBody, 400, "missing header Sluice-Sequence"},
		{"non-numeric sequence", "lines", "p", "one", okBody, 400, `header Sluice-Sequence "one" must be a whole number`},
		{"negative sequence", "lines", "p", "-3", okBody, 400, `header Sluice-Sequence "-3" must be a whole number`},
		{"zero sequence", "lines", "p", "0", okBody, 400, `header Sluice-Sequence "0" must be a whole number`},
		{"sequence over 64 bits", "lines", "p", "18446744073709551616", okBody, 400, "Sluice-Sequence"},
		{"empty body", "lines", "p", "1", nil, 400, "the body is empty"},
		{"body over --max-request-bytes", "lines", "p", "1", bytes.Repeat([]byte("0123456789abcde\n"), 65), 413, "over 1024 bytes"},
		{"line over --max-line-bytes", "lines", "p", "1", []byte("short\n" + strings.Repeat("x", 65) + "\nshort\n"), 400, "line 2 is 65 bytes, over --max-line-bytes 64"},
		{"unknown stream", "nope", "p", "1", okBody, 404, `"nope"`},
		{"lower never-stored sequence", "lines", "q", "6", okBody, 409, "sequences must increase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := in.stored()
			r := in.post(tc.stream, tc.producer, tc.seq, tc.body)
			var reply struct{ Error string }
			if err := json.Unmarshal([]byte(r.body), &reply); err != nil || r.status != tc.status || !strings.Contains(reply.Error, tc.want) {
				t.Errorf("reply %d %s, want %d with an error containing %q", r.status, r.body, tc.status, tc.want)
			}
			if n := in.stored(); n != before {
				t.Errorf("%d records stored by a refused request", n-before)
			}
			// The node still serves, and the refusal used no sequence:
			// a producer's first request after it is stored.
			in.mustStore("probe-"+tc.name, 1, "probe\n")
		})
	}
}

// TestIngestRateLimit checks 429: a request over --receiver-max-rate is
// refused with a Retry-After in seconds and stores nothing; a retry of a
// stored request is still acknowledged at once.
func TestIngestRateLimit(t *testing.T) {
	in := startIngestNode(t, "--receiver-max-rate", "0.1")
	in.mustStore("p", 1, "a\nb\nc\n") // nothing owed: passes, owing 30 s
	for _, name := range []string{"over the rate", "retried at once"} {
		r := in.post("lines", "p", "2", []byte("d\n"))
		retry, err := strconv.Atoi(r.header.Get("Retry-After"))
		if r.status != http.StatusTooManyRequests || err != nil || retry < 1 || retry > 30 ||
			!strings.Contains(r.body, "rate limit") {
			t.Fatalf("%s: reply %d (Retry-After %q) %s; want 429, Retry-After 1 to 30 s, an error about the rate limit",
				name, r.status, r.header.Get("Retry-After"), r.body)
		}
	}
	if n := in.stored(); n != 3 {
		t.Fatalf("%d records stored, want 3: a refused request stores nothing", n)
	}
	if r := in.post("lines", "p", "1", []byte("a\nb\nc\n")); r.status != http.StatusOK || !strings.Contains(r.body, `"duplicate":true`) {
		t.Fatalf("retry of a stored request: %d %s, want 200 duplicate", r.status, r.body)
	}
}

// TestIngestNotRunning checks 503: a node whose context has stopped (the
// HTTP server outlives it while the node exits) tells producers to retry.
func TestIngestNotRunning(t *testing.T) {
	in := startIngestNode(t)
	in.stopGracefully()
	r := in.post("lines", "p", "1", []byte("a\n"))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "not running") {
		t.Fatalf("reply %d (Retry-After %q) %s, want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
	}
}

// TestIngestBytesPassThrough checks the body's framing: lines end at
// "\n", a "\r" before it is dropped, the last line needs no newline, and
// every other byte (a lone "\r", bytes that are not UTF-8, an empty line)
// reaches the application unchanged, as the archive app's files show.
func TestIngestBytesPassThrough(t *testing.T) {
	in := startIngestNode(t)
	body := "plain\r\n" + "crlf and lone \r inside\r\n" + "\n" + "not utf-8: \xff\xfe\xc3\x28\n" + "tab\there\n" + "last, no newline"
	want := "plain\n" + "crlf and lone \r inside\n" + "\n" + "not utf-8: \xff\xfe\xc3\x28\n" + "tab\there\n" + "last, no newline\n"
	r := in.post("lines", "p", "1", []byte(body))
	if r.status != http.StatusOK || !strings.Contains(r.body, `"records":6`) {
		t.Fatalf("reply %d %s, want 200 with 6 records", r.status, r.body)
	}
	in.stopGracefully()
	if got := readArchive(t, in.dataDir); string(got) != want {
		t.Fatalf("archived\n%q\nwant\n%q", got, want)
	}
}
