package chaos

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkerCase is a synthetic run: requests, and the batches each node
// saved, as the counts the wordcount application would write.
type checkerCase struct {
	reqs    []*request
	batches map[string]map[int64]map[string]int64 // node → batch ms → counts
	states  map[string]stateSnapshot
}

func req(p int, seq uint64, outcome int, lines ...string) *request {
	r := &request{producer: p, seq: seq, outcome: outcome}
	for i, l := range lines {
		r.lines = append(r.lines, token(p, seq, i)+" "+l)
	}
	return r
}

// counts adds the lines of rs (each the given number of times) to base.
func counts(base map[string]int64, rs ...*request) map[string]int64 {
	m := maps.Clone(base)
	if m == nil {
		m = map[string]int64{}
	}
	for _, r := range rs {
		for _, l := range r.lines {
			for _, w := range strings.Fields(l) {
				m[w]++
			}
		}
	}
	return m
}

func writeBatch(t *testing.T, dir string, ms int64, m map[string]int64) {
	t.Helper()
	d := filepath.Join(dir, fmt.Sprintf("counts-%d", ms))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for k, v := range m {
		fmt.Fprintf(&b, "(%s,%d)\n", k, v)
	}
	os.WriteFile(filepath.Join(d, "part-00000"), []byte(b.String()), 0o644)
	os.WriteFile(filepath.Join(d, "_SUCCESS"), nil, 0o644)
}

func (cc checkerCase) run(t *testing.T) *Checks {
	t.Helper()
	root := t.TempDir()
	dirs := map[string]string{}
	for id, bs := range cc.batches {
		dirs[id] = filepath.Join(root, id)
		for ms, m := range bs {
			writeBatch(t, dirs[id], ms, m)
		}
	}
	return newChecker(cc.reqs, time.Second, dirs, cc.states).run()
}

// TestChecker: a faithful run passes; a lost acknowledged line, a line
// counted twice, a word count off the recount, a re-run that saved other
// counts, a state API that disagrees, a token never sent, and a batch
// whose output is missing each fail with their own problem.
func TestChecker(t *testing.T) {
	r1 := req(1, 1, OutcomeAcked, "w001 w002", "w001")
	r2 := req(2, 1, OutcomeAcked, "w003 w001")
	r3 := req(1, 2, OutcomeIndeterminate, "w002")
	r4 := req(2, 2, OutcomeFailed, "w004")
	b1 := counts(nil, r1)
	b2 := counts(b1, r2, r3) // the indeterminate r3 counted: allowed
	good := func() checkerCase {
		return checkerCase{reqs: []*request{r1, r2, r3, r4},
			batches: map[string]map[int64]map[string]int64{
				"n1": {1000: b1, 2000: b2},
				"n2": {2000: b2, 3000: b2}, // 2000 re-run on n2 after a failover
			},
			states: map[string]stateSnapshot{"n1": {batch: 3000, counts: b2}, "n2": {batch: 2000, counts: b2}}}
	}
	if c := good().run(t); !c.OK() || c.AckedLines != 3 || c.IndeterminateCounted != 1 || c.Rerun != 1 || c.Batches != 3 {
		t.Fatalf("a faithful run: %+v", c)
	}
	cases := []struct {
		name   string
		mutate func(*checkerCase)
		want   string
		field  func(*Checks) int
	}{
		{"lost acknowledged line", func(cc *checkerCase) {
			m := counts(b1, r3) // r2 never counted
			cc.batches = map[string]map[int64]map[string]int64{"n1": {1000: b1, 2000: m}}
			cc.states = map[string]stateSnapshot{"n1": {batch: 2000, counts: m}}
		}, "lost:", func(c *Checks) int { return c.Lost }},
		{"line counted twice", func(cc *checkerCase) {
			m := counts(b2, r2) // r2 again, in a later batch
			cc.batches["n1"][4000] = m
			cc.batches["n1"][3000] = b2
			cc.states = map[string]stateSnapshot{"n1": {batch: 4000, counts: m}}
		}, "duplicated:", func(c *Checks) int { return c.Duplicated }},
		{"word count off the recount", func(cc *checkerCase) {
			m := maps.Clone(b2)
			m["w001"]++
			cc.batches["n1"][3000], cc.batches["n2"][3000] = m, m
			cc.states = map[string]stateSnapshot{"n1": {batch: 3000, counts: m}}
		}, "batch recount:", func(c *Checks) int { return c.Mismatched }},
		{"re-run saved other counts", func(cc *checkerCase) {
			m := maps.Clone(b2)
			m["w003"] = 7
			cc.batches["n2"][2000] = m
		}, "re-run differs:", func(c *Checks) int { return c.Mismatched }},
		{"state API disagrees", func(cc *checkerCase) {
			m := maps.Clone(b2)
			m["w002"]--
			cc.states["n2"] = stateSnapshot{batch: 2000, counts: m}
		}, "state:", func(c *Checks) int { return c.Mismatched }},
		{"counted a token never sent", func(cc *checkerCase) {
			m := maps.Clone(b2)
			m["tok-p9-s9-0"] = 1
			cc.batches["n2"][3000] = m
			cc.states["n1"] = stateSnapshot{batch: 3000, counts: m}
		}, "never sent:", func(c *Checks) int { return c.Unknown }},
		{"missing batch output", func(cc *checkerCase) {
			delete(cc.batches["n1"], 2000)
			delete(cc.batches["n2"], 2000)
			cc.states = map[string]stateSnapshot{"n2": {batch: 3000, counts: b2}}
		}, "missing output:", func(c *Checks) int { return c.Mismatched }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc := good()
			tc.mutate(&cc)
			c := cc.run(t)
			if c.OK() || tc.field(c) == 0 || !strings.Contains(strings.Join(c.Problems, "\n"), tc.want) {
				t.Fatalf("want a failure %q; got %+v", tc.want, c)
			}
		})
	}
}
