package main

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// The web UI: Go templates and embedded static files, no build step and
// nothing fetched from elsewhere. The server renders every panel, charts
// included (SVG); a small script fetches the panels again every second
// and swaps them in, so an open page follows the node.

//go:embed ui
var uiFiles embed.FS

var uiTemplates = template.Must(template.New("ui").Funcs(template.FuncMap{
	"clock":   func(t time.Time) string { return t.Local().Format("15:04:05") },
	"msTime":  func(ms int64) string { return time.UnixMilli(ms).Local().Format("15:04:05.000") },
	"f1":      func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"f3":      func(v float64) string { return fmt.Sprintf("%.3f", v) },
	"clockMS": func(t time.Time) string { return t.Local().Format("15:04:05.000") },
	"dur":     func(s float64) string { return (time.Duration(s) * time.Second).String() },
	"records": func(n int64) string {
		if n < 0 {
			return "–"
		}
		return fmt.Sprint(n)
	},
	"join": strings.Join,
}).ParseFS(uiFiles, "ui/*.html"))

// pageData is what the main page's panels show.
type pageData struct {
	Overview  overview
	Running   bool
	Ready     bool
	Message   string // why the node is not ready
	Cluster   clusterDoc
	Charts    []chart
	Batches   []batchRow
	Receivers []receiverRow
	State     []stateRow
	// Stateful lists the graph's stateful operators while the state store
	// reports no rows (State is nil), so the panel names them.
	Stateful  []engine.OperatorInfo
	Operators []engine.OperatorInfo
	Updated   time.Time
}

// tableBatches is how many batches the page's table lists.
const tableBatches = 30

func (s *status) pageData() pageData {
	d := pageData{Overview: s.overview(), Running: s.running.Load(), Cluster: s.cluster.doc(false), Updated: time.Now()}
	d.Ready, d.Message = d.Cluster.Ready, d.Cluster.Message
	all := s.rows(false)
	d.Batches = all[:min(tableBatches, len(all))]
	d.Charts = s.charts(s.rows(true))
	if d.Running {
		d.Receivers = s.receivers()
		d.State = s.stateSummary()
		d.Operators = s.c.Operators()
		for _, o := range d.Operators {
			if o.Stateful && d.State == nil {
				d.Stateful = append(d.Stateful, o)
			}
		}
	}
	return d
}

func (s *status) servePage(w http.ResponseWriter, r *http.Request) {
	s.render(w, "page.html", s.pageData())
}

func (s *status) servePanels(w http.ResponseWriter, r *http.Request) {
	s.render(w, "panels", s.pageData())
}

// batchPage is what a batch's page shows.
type batchPage struct {
	Time    int64
	Found   bool
	Problem string
	Batch   batchDetail
	Node    string
	Updated time.Time
}

func (s *status) serveBatchPage(w http.ResponseWriter, r *http.Request) {
	p := batchPage{Node: s.c.Config().NodeID, Updated: time.Now()}
	code := http.StatusOK
	t, err := parseBatchTime(r.PathValue("t"))
	switch {
	case err != nil:
		p.Problem, code = err.Error(), http.StatusBadRequest
	default:
		p.Time = t
		if p.Batch, p.Found = s.detail(t); !p.Found {
			p.Problem = fmt.Sprintf("No batch at time %d: the node keeps the last %d batches.", t, keepBatches)
			code = http.StatusNotFound
		}
	}
	name := "batch.html"
	if r.URL.Query().Has("fragment") {
		name = "batch"
	}
	w.WriteHeader(code)
	s.render(w, name, p)
}

func (s *status) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := uiTemplates.ExecuteTemplate(w, name, data); err != nil {
		s.c.Logger().Warn("web UI", "template", name, "err", err)
	}
}

func staticHandler() http.Handler {
	sub, _ := fs.Sub(uiFiles, "ui")
	return http.StripPrefix("/static/", http.FileServerFS(sub))
}

// chart is one time series drawn as SVG: a line through a point per
// batch, oldest on the left, with a dashed reference line (the batch
// duration, for delays).
type chart struct {
	Title, Unit   string
	Width, Height float64
	Left, Bottom  float64 // plot area's left and bottom edges
	Top, Right    float64
	Max           float64 // the top of the y axis
	Line          string  // polyline points
	Points        []chartPoint
	RefY          float64 // y of the reference line; 0 for none
	RefLabel      string
	RefNote       string // when the reference line is above the axis
	Last, Avg     float64
	FirstLabel    string // time of the oldest batch drawn
	LastLabel     string
}

type chartPoint struct {
	X, Y  float64
	Label string
}

// chartBatches is how many of the last batches the charts draw.
const chartBatches = 60

func (s *status) charts(rows []batchRow) []chart {
	rows = rows[:min(chartBatches, len(rows))]
	batch := s.c.Config().BatchDuration
	series := func(f func(batchRow) float64) []float64 {
		vs := make([]float64, len(rows))
		for i, r := range rows {
			vs[len(rows)-1-i] = f(r) // oldest first
		}
		return vs
	}
	times := series(func(r batchRow) float64 { return float64(r.Time) })
	batchMS := float64(batch.Milliseconds())
	return []chart{
		drawChart("Input rate", "records/s", times, series(func(r batchRow) float64 { return float64(r.Records) / batch.Seconds() }), 0, ""),
		drawChart("Scheduling delay", "ms", times, series(func(r batchRow) float64 { return r.SchedulingDelay }), 0, ""),
		drawChart("Processing time", "ms", times, series(func(r batchRow) float64 { return r.ProcessingTime }), batchMS, "batch of "+batch.String()),
		drawChart("Total delay", "ms", times, series(func(r batchRow) float64 { return r.TotalDelay }), batchMS, "batch of "+batch.String()),
	}
}

func drawChart(title, unit string, times, vs []float64, ref float64, refLabel string) chart {
	c := chart{Title: title, Unit: unit, Width: 300, Height: 150, Left: 44, Top: 10, Right: 292, Bottom: 124}
	var top, sum float64
	for _, v := range vs {
		top = max(top, v)
		sum += v
	}
	// The axis follows the data, so small delays stay readable; the
	// reference line shows when the data comes near it.
	c.Max = niceCeil(top * 1.1)
	if len(vs) == 0 {
		return c
	}
	c.Last, c.Avg = vs[len(vs)-1], sum/float64(len(vs))
	c.FirstLabel = time.UnixMilli(int64(times[0])).Local().Format("15:04:05")
	c.LastLabel = time.UnixMilli(int64(times[len(times)-1])).Local().Format("15:04:05")
	y := func(v float64) float64 { return c.Bottom - (c.Bottom-c.Top)*v/c.Max }
	var line strings.Builder
	for i, v := range vs {
		x := c.Right
		if len(vs) > 1 {
			x = c.Left + (c.Right-c.Left)*float64(i)/float64(len(vs)-1)
		}
		p := chartPoint{X: round1(x), Y: round1(y(v)), Label: fmt.Sprintf("batch %d: %.1f %s", int64(times[i]), v, unit)}
		c.Points = append(c.Points, p)
		fmt.Fprintf(&line, "%.1f,%.1f ", p.X, p.Y)
	}
	c.Line = strings.TrimSpace(line.String())
	switch {
	case ref > 0 && ref <= c.Max:
		c.RefY, c.RefLabel = round1(y(ref)), refLabel
	case ref > 0:
		c.RefNote = "well under the " + refLabel
	}
	return c
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1), so
// the axis reads at a glance.
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
