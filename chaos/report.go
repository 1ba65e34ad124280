package chaos

import (
	"encoding/json"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The report, under Config.Dir: summary.txt for people, report.json for
// programs (the same figures and the verdict), timeline.svg (acknowledged
// lines per second, batch delay, faults as shaded bands) and each node's
// log, nX.log, with a line "=== chaos: start ..." at every (re)start.

// reportDoc is report.json.
type reportDoc struct {
	Verdict           string         `json:"verdict"`
	Passed            bool           `json:"passed"`
	Seed              uint64         `json:"seed"`
	Replay            string         `json:"replay"`
	Nodes             int            `json:"nodes"`
	DurationS         float64        `json:"duration_s"`
	ElapsedS          float64        `json:"elapsed_s"`
	SettleS           float64        `json:"settle_s,omitempty"`
	Rate              int            `json:"rate_lines_per_s"`
	Faults            []string       `json:"faults"`
	Plan              []Fault        `json:"plan"`
	Events            []Event        `json:"events"`
	Requests          map[string]int `json:"requests"`
	Resends           int            `json:"resends"`
	Refusals          []string       `json:"refusals,omitempty"`
	Checks            *Checks        `json:"checks,omitempty"`
	Failovers         []failover     `json:"failovers"`
	FailoverP50MS     int64          `json:"failover_p50_ms"`
	FailoverMaxMS     int64          `json:"failover_max_ms"`
	FailoversUnended  int            `json:"failovers_unresolved"`
	ThroughputLinesPS float64        `json:"throughput_acked_lines_per_s"`
	Error             string         `json:"error,omitempty"`
}

func (r *Result) doc() reportDoc {
	d := reportDoc{Verdict: r.Verdict, Passed: r.Passed, Seed: r.Config.Seed, Nodes: r.Config.Nodes,
		Replay:    fmt.Sprintf("node chaos --nodes %d --duration %v --rate %d --faults %s --seed %d", r.Config.Nodes, r.Config.Duration, r.Config.Rate, strings.Join(r.Config.Faults, ","), r.Config.Seed),
		DurationS: r.Config.Duration.Seconds(), ElapsedS: r.End.Sub(r.Start).Seconds(), Rate: r.Config.Rate,
		Faults: r.Config.Faults, Plan: r.Plan, Events: r.Events, Requests: r.Requests, Resends: r.Resends, Refusals: r.Refusals,
		Checks: r.Checks, Failovers: r.Failovers}
	if r.Config.Docker {
		d.Replay += " --docker"
		if r.Config.DockerImage != "" {
			d.Replay += " --docker-image " + r.Config.DockerImage
		}
	}
	if !r.Settled.IsZero() {
		d.SettleS = r.Settled.Sub(r.LoadEnd).Seconds()
	}
	var took []time.Duration
	for _, f := range r.Failovers {
		if f.Resolved {
			took = append(took, f.Took)
		} else {
			d.FailoversUnended++
		}
	}
	p50, mx := p50Max(took)
	d.FailoverP50MS, d.FailoverMaxMS = p50.Milliseconds(), mx.Milliseconds()
	var acked int
	for _, n := range r.AckedPerS {
		acked += n
	}
	if s := r.LoadEnd.Sub(r.Start).Seconds(); s > 0 {
		d.ThroughputLinesPS = float64(acked) / s
	}
	if r.Err != nil {
		d.Error = r.Err.Error()
	}
	return d
}

func writeReport(r *Result) error {
	d := r.doc()
	js, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.Config.Dir, "report.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.Config.Dir, "summary.txt"), []byte(r.Summary()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.Config.Dir, "timeline.svg"), []byte(r.timeline()), 0o644)
}

// Summary is summary.txt: the verdict first, then the figures.
func (r *Result) Summary() string {
	d := r.doc()
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("%s", d.Verdict)
	p("")
	p("seed %d (replay: %s)", d.Seed, d.Replay)
	p("%d node(s), load %v at %d lines/s, faults: %s; elapsed %.0fs", d.Nodes, r.Config.Duration, d.Rate, strings.Join(d.Faults, ","), d.ElapsedS)
	p("")
	p("faults injected (%d of %d planned):", len(r.Events), len(r.Plan))
	for _, e := range r.Events {
		note := ""
		if e.Note != "" {
			note = " [" + e.Note + "]"
		}
		p("  %7.1fs-%7.1fs  %-4s %v%s", e.Start.Sub(r.Start).Seconds(), e.End.Sub(r.Start).Seconds(), e.Target, e.Fault, note)
	}
	p("")
	p("requests: %d acknowledged, %d failed (4xx), %d indeterminate; %d acknowledged ones sent again",
		d.Requests["acknowledged"], d.Requests["refused"], d.Requests["indeterminate"], d.Resends)
	if len(r.Refusals) > 0 {
		p("requests refused (4xx), the first %d:", len(r.Refusals))
		for _, s := range r.Refusals {
			p("  %s", s)
		}
	}
	if c := r.Checks; c != nil {
		p("lines: %d acknowledged, %d failed, %d indeterminate (%d of them counted)", c.AckedLines, c.FailedLines, c.IndeterminateLines, c.IndeterminateCounted)
		p("lost %d, duplicated %d, counted but never sent %d, other mismatches %d", c.Lost, c.Duplicated, c.Unknown, c.Mismatched)
		p("batches with output %d (%d to %d), %d of them on several nodes (re-runs), all compared", c.Batches, c.FirstBatch, c.LastBatch, c.Rerun)
	}
	p("failovers: %d timed, p50 %d ms, max %d ms, %d never resolved", len(d.Failovers), d.FailoverP50MS, d.FailoverMaxMS, d.FailoversUnended)
	for _, f := range d.Failovers {
		took := "never resolved"
		if f.Resolved {
			took = fmt.Sprintf("%d ms to %s's first batch", f.Took.Milliseconds(), f.To)
		}
		p("  %7.1fs  %s (from %s): %s", f.At.Sub(r.Start).Seconds(), f.Fault, f.From, took)
	}
	p("throughput: %.1f acknowledged lines/s", d.ThroughputLinesPS)
	if d.SettleS > 0 {
		p("settled %.1fs after the load ended", d.SettleS)
	}
	if c := r.Checks; c != nil {
		if len(c.Problems) > 0 {
			p("")
			p("problems:")
			for _, s := range c.Problems {
				p("  %s", s)
			}
		}
		p("")
		p("not checked:")
		for _, s := range c.Skipped {
			p("  %s", s)
		}
	}
	if d.Error != "" {
		p("")
		p("stopped: %s", d.Error)
	}
	p("")
	p("files: report.json, timeline.svg, n*.log (each node's output), n*/ (data directories; outputs under n*/output)")
	return b.String()
}

// timeline draws acknowledged lines per second and the batches' total
// delay over the run, with the faults as shaded bands.
func (r *Result) timeline() string {
	const w, h, left, top, panel, gap = 1000, 420, 60, 20, 160, 40
	end := r.End
	if end.IsZero() {
		end = time.Now()
	}
	span := max(end.Sub(r.Start).Seconds(), 1)
	x := func(t time.Time) float64 { return left + (w-left-20)*t.Sub(r.Start).Seconds()/span }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	colors := map[string]string{FaultKill: "#e74c3c", FaultPause: "#f39c12", FaultPartition: "#8e44ad", FaultRestartAll: "#c0392b", FaultClock: "#2980b9"}
	for _, e := range r.Events {
		x0, x1 := x(e.Start), max(x(e.End), x(e.Start)+2)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="0.18"><title>%s</title></rect>`+"\n",
			x0, top, x1-x0, 2*panel+gap, colors[e.Fault.Kind], html.EscapeString(e.Target+": "+e.Fault.String()))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="%s">%s</text>`+"\n", x0, top+2*panel+gap+14, colors[e.Fault.Kind], html.EscapeString(e.Fault.Kind))
	}
	// Acknowledged lines per second.
	secs := make([]int64, 0, len(r.AckedPerS))
	for s := range r.AckedPerS {
		secs = append(secs, s)
	}
	slices.Sort(secs)
	maxRate := 1
	for _, n := range r.AckedPerS {
		maxRate = max(maxRate, n)
	}
	var pts []string
	for _, s := range secs {
		y := float64(top+panel) - float64(panel)*float64(r.AckedPerS[s])/float64(maxRate)
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(time.Unix(s, 0)), y))
	}
	axis(&b, left, top, w-20, panel, fmt.Sprintf("acknowledged lines/s (max %d)", maxRate))
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#27ae60" stroke-width="1.5" points="%s"/>`+"\n", strings.Join(pts, " "))
	// Batch delay, per completed batch.
	y0 := top + panel + gap
	maxDelay := 1.0
	for _, bt := range r.Batches {
		if bt.Status == "done" {
			maxDelay = max(maxDelay, bt.TotalDelay)
		}
	}
	axis(&b, left, y0, w-20, panel, fmt.Sprintf("batch total delay, ms (max %.0f)", maxDelay))
	for _, bt := range r.Batches {
		if bt.Status != "done" || bt.CompletedAt.IsZero() {
			continue
		}
		y := float64(y0+panel) - float64(panel)*bt.TotalDelay/maxDelay
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="1.6" fill="#34495e"><title>%d on %s: %.0f ms</title></circle>`+"\n",
			x(bt.CompletedAt), y, bt.Time, bt.node, bt.TotalDelay)
	}
	for s := 0.0; s <= span; s += max(10, float64(int(span/10)/10*10)) {
		xs := left + (w-left-20)*s/span
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%.0fs</text>`+"\n", xs, h-4, s)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#333">%s</text>`+"\n", left, 12, html.EscapeString(fmt.Sprintf("seed %d: %s", r.Config.Seed, r.Verdict)))
	b.WriteString("</svg>\n")
	return b.String()
}

func axis(b *strings.Builder, x0, y0, x1, height int, label string) {
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`+"\n", x0, y0+height, x1, y0+height)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`+"\n", x0, y0, x0, y0+height)
	fmt.Fprintf(b, `<text x="%d" y="%d" fill="#333">%s</text>`+"\n", x0+4, y0+12, html.EscapeString(label))
}
