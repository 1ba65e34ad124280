package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluice-stream/sluice/recovery"
)

// ErrGraphChanged is returned by Start when the application's graph is
// not the one the data directory was written by.
var ErrGraphChanged = errors.New("engine: the application's graph differs from the one this data directory was written by")

// graphLines describes the graph, one line per operator after a header
// with the batch duration and the partition count. Part of the on-disk
// contract: the lines are hashed into the fingerprint and recorded in the
// metadata log; they must not change between versions.
func (c *Context) graphLines() []string {
	lines := []string{fmt.Sprintf("batch=%d partitions=%d", c.cfg.BatchDuration.Milliseconds(), c.cfg.Partitions)}
	for _, o := range c.Operators() {
		lines = append(lines, fmt.Sprintf("op %d %s name=%q params=%q parents=%v slide=%s output=%v",
			o.ID, o.Kind, o.Name, strings.Join(o.Params, ","), o.Parents, o.Slide, o.Output))
	}
	return lines
}

// Fingerprint is a hash of everything that decides where state and
// shuffle output live and what a batch computes: the batch duration, the
// partition count and every operator with its parameters and parents. Two
// nodes with the same fingerprint built the same graph.
func (c *Context) Fingerprint() string { return hashLines(c.graphLines()) }

func hashLines(lines []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "sluice-graph-v1\n")
	for _, l := range lines {
		fmt.Fprintf(h, "%s\n", l)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// stateLines are the lines of the operators whose data outlives a batch
// (stateful operators, those windows remember, and the windows that read
// them), with every operator they derive from, and the header: what the
// stored state depends on.
func (c *Context) stateLines() []string {
	lines := c.graphLines()
	c.mu.Lock()
	keep := make(map[int]bool)
	var mark func(o *opNode)
	mark = func(o *opNode) {
		if keep[o.id] {
			return
		}
		keep[o.id] = true
		for _, p := range o.parents {
			mark(p)
		}
	}
	for _, o := range c.ops {
		if o.stateful || o.remember > 0 || o.readsPast {
			mark(o)
		}
	}
	c.mu.Unlock()
	out := []string{lines[0]}
	for id := range len(lines) - 1 {
		if keep[id] {
			out = append(out, lines[id+1])
		}
	}
	return out
}

// checkGraph compares the graph with the one recorded in the metadata
// log, recording it the first time. A different graph is refused, with
// the operators that changed named, unless AllowCompatibleUpgrade is set
// and the change leaves the state layout as it was.
func (c *Context) checkGraph(view recovery.View) error {
	lines, stLines := c.lines, c.stLines
	c.storage.ckptMeta.App = c.cfg.AppName
	c.storage.ckptMeta.Fingerprint = hashLines(stLines)
	rec := view.Fingerprint
	hash := hashLines(lines)
	if rec != nil && rec.Hash == hash && rec.App == c.cfg.AppName {
		return nil
	}
	if rec != nil {
		diff := graphDiff(rec.Operators, lines)
		compatible := slices.Equal(stateLinesOf(rec.Operators, stLines), stLines)
		switch {
		case rec.App != c.cfg.AppName:
			return fmt.Errorf("%w: it was written by application %q, this is %q; use the data directory of %q, or a fresh --data-dir",
				ErrGraphChanged, rec.App, c.cfg.AppName, c.cfg.AppName)
		case !c.cfg.AllowCompatibleUpgrade && compatible:
			return fmt.Errorf("%w:\n%s\nthe stored state still fits this graph: restart with --allow-compatible-upgrade to record it, or use a fresh --data-dir",
				ErrGraphChanged, diff)
		case !compatible:
			return fmt.Errorf("%w:\n%s\nthe change alters operators that keep state or window data (or the batch duration or partition count), "+
				"so that state cannot be reused: use a fresh --data-dir (or run the old version until the old state is no longer needed)",
				ErrGraphChanged, diff)
		}
		c.log.Warn("recording a compatible change of the application's graph", "changes", diff)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.storage.meta.Apply(ctx, recovery.FingerprintSet{App: c.cfg.AppName, Hash: hash, Operators: lines})
	if err != nil {
		return fmt.Errorf("engine: recording the graph: %w", err)
	}
	return nil
}

// stateLinesOf picks from a recorded graph the lines at the positions of
// the current graph's state lines, so the two can be compared: a state
// operator whose id moved counts as changed.
func stateLinesOf(recorded, current []string) []string {
	out := []string{}
	if len(recorded) > 0 {
		out = append(out, recorded[0])
	}
	for _, l := range current[1:] {
		var id int
		fmt.Sscanf(l, "op %d ", &id)
		if id+1 < len(recorded) {
			out = append(out, recorded[id+1])
		} else {
			out = append(out, "")
		}
	}
	return out
}

// graphDiff describes how graph b differs from a, line by line.
func graphDiff(a, b []string) string {
	var out []string
	for i := range max(len(a), len(b)) {
		what := "operator"
		if i == 0 {
			what = "settings"
		}
		switch {
		case i >= len(a):
			out = append(out, fmt.Sprintf("  added %s:   %s", what, b[i]))
		case i >= len(b):
			out = append(out, fmt.Sprintf("  removed %s: %s", what, a[i]))
		case a[i] != b[i]:
			out = append(out, fmt.Sprintf("  changed %s: was %s\n                    now %s", what, a[i], b[i]))
		}
	}
	return strings.Join(out, "\n")
}
