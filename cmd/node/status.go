package main

import (
	"encoding/json"
	"html/template"
	"net/http"
	"sync"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// status keeps what the status page shows: totals and the recent batches,
// fed by the engine's listener events.
type status struct {
	engine.NopListener
	app, source string
	c           *engine.Context
	started     time.Time

	mu struct {
		sync.Mutex
		recent    []engine.BatchInfo // newest last, at most keepBatches
		completed int64
		failed    int64
		records   int64
	}
}

const keepBatches = 50

func newStatus(c *engine.Context, app, source string) *status {
	return &status{c: c, app: app, source: source, started: time.Now()}
}

func (s *status) OnBatchCompleted(b engine.BatchInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.Err != nil {
		s.mu.failed++
	} else {
		s.mu.completed++
	}
	s.mu.records += b.Records
	s.mu.recent = append(s.mu.recent, b)
	if len(s.mu.recent) > keepBatches {
		s.mu.recent = s.mu.recent[len(s.mu.recent)-keepBatches:]
	}
}

// batchRow is one batch as the status API shows it.
type batchRow struct {
	Time            int64   `json:"time"`
	Records         int64   `json:"records"`
	SchedulingDelay float64 `json:"scheduling_delay_ms"`
	ProcessingTime  float64 `json:"processing_time_ms"`
	TotalDelay      float64 `json:"total_delay_ms"`
	Error           string  `json:"error,omitempty"`
}

// statusDoc is the body of /api/status.
type statusDoc struct {
	App              string                `json:"app"`
	Source           string                `json:"source"`
	BatchDuration    string                `json:"batch_duration"`
	Partitions       int                   `json:"partitions"`
	UptimeSeconds    float64               `json:"uptime_seconds"`
	BatchesCompleted int64                 `json:"batches_completed"`
	BatchesFailed    int64                 `json:"batches_failed"`
	Records          int64                 `json:"records"`
	RecordsPerSecond float64               `json:"records_per_second"`
	Fingerprint      string                `json:"graph_fingerprint"`
	Recent           []batchRow            `json:"recent_batches"`
	Receivers        []engine.ReceiverInfo `json:"receivers"`
	Operators        []engine.OperatorInfo `json:"operators"`
}

func (s *status) doc() statusDoc {
	cfg := s.c.Config()
	s.mu.Lock()
	d := statusDoc{App: s.app, Source: s.source, BatchDuration: cfg.BatchDuration.String(), Partitions: cfg.Partitions,
		UptimeSeconds: time.Since(s.started).Seconds(), BatchesCompleted: s.mu.completed,
		BatchesFailed: s.mu.failed, Records: s.mu.records}
	var recentRecords int64
	for i := len(s.mu.recent) - 1; i >= 0; i-- {
		b := s.mu.recent[i]
		recentRecords += b.Records
		row := batchRow{Time: int64(b.Time), Records: b.Records, SchedulingDelay: ms(b.SchedulingDelay()),
			ProcessingTime: ms(b.ProcessingDelay()), TotalDelay: ms(b.TotalDelay())}
		if b.Err != nil {
			row.Error = b.Err.Error()
		}
		d.Recent = append(d.Recent, row)
	}
	if n := len(s.mu.recent); n > 0 {
		d.RecordsPerSecond = float64(recentRecords) / (float64(n) * cfg.BatchDuration.Seconds())
	}
	s.mu.Unlock()
	d.Receivers = s.c.Receivers()
	d.Operators = s.c.Operators()
	d.Fingerprint = s.c.Fingerprint()
	return d
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (s *status) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.servePage)
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.doc())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}

func (s *status) servePage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTemplate.Execute(w, s.doc()); err != nil {
		s.c.Logger().Warn("status page", "err", err)
	}
}

var pageTemplate = template.Must(template.New("status").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>Sluice · {{.App}}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#eee}.err{color:#b00}</style>
</head><body>
<h1>Sluice · {{.App}}</h1>
<p>Source <code>{{.Source}}</code> · batch {{.BatchDuration}} · {{.Partitions}} partitions ·
up {{printf "%.0f" .UptimeSeconds}} s · {{.BatchesCompleted}} batches completed
{{if .BatchesFailed}}<span class="err">· {{.BatchesFailed}} failed</span>{{end}} ·
{{.Records}} records · {{printf "%.1f" .RecordsPerSecond}} records/s now</p>
<h2>Recent batches</h2>
<table><tr><th>batch time (ms)</th><th>records</th><th>scheduling delay (ms)</th><th>processing (ms)</th><th>total delay (ms)</th><th>status</th></tr>
{{range .Recent}}<tr><td>{{.Time}}</td><td>{{.Records}}</td><td>{{printf "%.1f" .SchedulingDelay}}</td><td>{{printf "%.1f" .ProcessingTime}}</td><td>{{printf "%.1f" .TotalDelay}}</td>
<td>{{if .Error}}<span class="err">{{.Error}}</span>{{else}}done{{end}}</td></tr>{{end}}
</table>
<h2>Receivers</h2>
<table><tr><th>stream</th><th>records</th><th>blocks</th><th>errors</th><th>last error</th></tr>
{{range .Receivers}}<tr><td>{{.Stream}}</td><td>{{.Records}}</td><td>{{.Blocks}}</td><td>{{.Errors}}</td><td>{{.LastError}}</td></tr>{{end}}
</table>
<h2>Operators</h2>
<table><tr><th>id</th><th>kind</th><th>name</th><th>parameters</th><th>parents</th><th>slide</th></tr>
{{range .Operators}}<tr><td>{{.ID}}</td><td>{{.Kind}}</td><td>{{.Name}}</td><td>{{range .Params}}{{.}} {{end}}</td><td>{{.Parents}}</td><td>{{.Slide}}</td></tr>{{end}}
</table>
<p>Graph fingerprint <code>{{.Fingerprint}}</code> · JSON at <a href="/api/status">/api/status</a></p>
</body></html>
`))
