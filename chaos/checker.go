package chaos

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// What the checker reads: the word count application saves, every batch,
// every word's count since the start (UpdateStateByKey's whole state) to
// DATA-DIR/output/counts-<batch ms>/part-NNNNN, one "(word,count)" a
// line, with an empty _SUCCESS once the directory is whole (it is
// renamed into place). A batch runs on the driver, so its directory is on
// the node that drove it, and on every node that ran it again after a
// failover: the union over the nodes is the whole output.
const (
	outputPrefix = "counts-"
	tokenPrefix  = "tok-"
)

// sentLine is one line the load sent, by its token.
type sentLine struct {
	words   []string // without the token
	outcome int      // its request's
}

// stateSnapshot is one node's answer to GET /api/state/wordcount?top=N.
type stateSnapshot struct {
	batch   int64
	counts  map[string]int64
	partial bool // the answer was cut at N keys: only words are compared
}

// Checks is the verdict of the checker, with its figures.
type Checks struct {
	AckedLines           int   `json:"acked_lines"`
	FailedLines          int   `json:"failed_lines"`
	IndeterminateLines   int   `json:"indeterminate_lines"`
	IndeterminateCounted int   `json:"indeterminate_lines_counted"`
	Lost                 int   `json:"lost"`       // acknowledged tokens not counted
	Duplicated           int   `json:"duplicated"` // tokens counted more than once
	Unknown              int   `json:"unknown"`    // keys counted that were never sent
	Mismatched           int   `json:"mismatched"` // other disagreements (words, re-runs, state, order)
	Batches              int   `json:"batches_with_output"`
	Rerun                int   `json:"batches_on_several_nodes"`
	FirstBatch           int64 `json:"first_batch_ms"`
	LastBatch            int64 `json:"last_batch_ms"`
	// Problems lists what failed, the first few of each kind; Skipped
	// what was not checked, and why.
	Problems []string       `json:"problems"`
	Skipped  []string       `json:"skipped"`
	kinds    map[string]int // problems per kind, to cap the examples
}

// OK reports whether every check passed.
func (c *Checks) OK() bool { return len(c.Problems) == 0 }

const examplesPerKind = 10

func (c *Checks) fail(kind, format string, a ...any) {
	if c.kinds == nil {
		c.kinds = map[string]int{}
	}
	c.kinds[kind]++
	switch {
	case c.kinds[kind] <= examplesPerKind:
		c.Problems = append(c.Problems, kind+": "+fmt.Sprintf(format, a...))
	case c.kinds[kind] == examplesPerKind+1:
		c.Problems = append(c.Problems, kind+": (more not listed)")
	}
}

// checker holds what a check needs: the lines sent, the nodes' output
// directories and state answers.
type checker struct {
	batch  time.Duration
	sent   map[string]sentLine
	vocab  map[string]bool
	dirs   map[string]string // node id → its output directory
	states map[string]stateSnapshot
}

func newChecker(reqs []*request, batch time.Duration, dirs map[string]string, states map[string]stateSnapshot) *checker {
	k := &checker{batch: batch, sent: map[string]sentLine{}, vocab: map[string]bool{}, dirs: dirs, states: states}
	for i := range vocabSize {
		k.vocab[vocabWord(uint64(i))] = true
	}
	for _, r := range reqs {
		for _, l := range r.lines {
			f := strings.Fields(l)
			k.sent[f[0]] = sentLine{words: f[1:], outcome: r.outcome}
		}
	}
	return k
}

// run checks the outputs batch by batch, then the tokens and words of the
// last batch against the recount, then every node's state.
func (k *checker) run() *Checks {
	c := &Checks{}
	for _, s := range k.sent {
		switch s.outcome {
		case OutcomeAcked:
			c.AckedLines++
		case OutcomeFailed:
			c.FailedLines++
		default:
			c.IndeterminateLines++
		}
	}
	byTime, err := k.listBatches()
	if err != nil {
		c.fail("output", "%v", err)
		return c
	}
	final, kept := k.walk(c, byTime)
	if final == nil {
		c.fail("output", "no batch output under any node's data directory")
		return c
	}
	k.checkTokens(c, final)
	k.checkWords(c, final, "the output of the last batch")
	k.checkStates(c, kept)
	return c
}

// listBatches maps each batch time to the nodes' directories holding its
// whole output.
func (k *checker) listBatches() (map[int64]map[string]string, error) {
	out := map[int64]map[string]string{}
	for id, dir := range k.dirs {
		ents, err := os.ReadDir(dir)
		if os.IsNotExist(err) {
			continue
		} else if err != nil {
			return nil, err
		}
		for _, e := range ents {
			ms, err := strconv.ParseInt(strings.TrimPrefix(e.Name(), outputPrefix), 10, 64)
			if !strings.HasPrefix(e.Name(), outputPrefix) || err != nil {
				continue // temporaries (.counts-T.tmp, .old) and others
			}
			if _, err := os.Stat(filepath.Join(dir, e.Name(), "_SUCCESS")); err != nil {
				continue
			}
			if out[ms] == nil {
				out[ms] = map[string]string{}
			}
			out[ms][id] = filepath.Join(dir, e.Name())
		}
	}
	return out, nil
}

// walk reads the batches in time order: a batch on several nodes must be
// the same on each (a re-run writes what the first run wrote); a count
// never goes down; what a batch adds to the counts must be what the lines
// whose tokens it counted hold. It returns the last batch's counts and
// the counts of the batches the nodes' state answers name.
func (k *checker) walk(c *Checks, byTime map[int64]map[string]string) (map[string]int64, map[int64]map[string]int64) {
	times := slices.Sorted(maps.Keys(byTime))
	want := map[int64]bool{}
	for _, s := range k.states {
		want[s.batch] = true
	}
	kept := map[int64]map[string]int64{}
	var prev map[string]int64
	for i, t := range times {
		cur := k.readBatch(c, t, byTime[t])
		if cur == nil {
			continue
		}
		if i > 0 && t-times[i-1] != k.batch.Milliseconds() {
			c.Mismatched++
			c.fail("missing output", "no node has the output of the batches between %d and %d", times[i-1], t)
		}
		k.checkDelta(c, t, prev, cur)
		if want[t] {
			kept[t] = cur
		}
		prev = cur
		c.Batches++
	}
	if len(times) > 0 {
		c.FirstBatch, c.LastBatch = times[0], times[len(times)-1]
	}
	return prev, kept
}

// readBatch parses batch t on every node that has it, and compares them.
func (k *checker) readBatch(c *Checks, t int64, dirs map[string]string) map[string]int64 {
	var first map[string]int64
	var firstNode string
	if len(dirs) > 1 {
		c.Rerun++
	}
	for _, id := range slices.Sorted(maps.Keys(dirs)) {
		m, err := parseBatch(dirs[id])
		if err != nil {
			c.Mismatched++
			c.fail("output", "batch %d on %s: %v", t, id, err)
			continue
		}
		if first == nil {
			first, firstNode = m, id
			continue
		}
		if d := firstDifference(first, m); d != "" {
			c.Mismatched++
			c.fail("re-run differs", "batch %d: %s and %s saved different counts (%s)", t, firstNode, id, d)
		}
	}
	return first
}

// checkDelta compares what batch t added with the lines it counted.
func (k *checker) checkDelta(c *Checks, t int64, prev, cur map[string]int64) {
	for key, v := range prev {
		if cur[key] < v {
			c.Mismatched++
			c.fail("count went down", "batch %d: %s went from %d to %d", t, key, v, cur[key])
		}
	}
	expect, grew := map[string]int64{}, map[string]int64{}
	for key, v := range cur {
		d := v - prev[key]
		if d <= 0 {
			continue
		}
		if !strings.HasPrefix(key, tokenPrefix) {
			grew[key] = d
			continue
		}
		s, ok := k.sent[key]
		if !ok {
			continue // reported once, at the end
		}
		for _, w := range s.words {
			expect[w] += d
		}
	}
	if diff := firstDifference(expect, grew); diff != "" {
		c.Mismatched++
		c.fail("batch recount", "batch %d: the words it added are not those of the lines it counted (%s)", t, diff)
	}
}

// checkTokens: an acknowledged token counted exactly once, an
// indeterminate one at most once, a failed one never, and nothing counted
// that was never sent.
func (k *checker) checkTokens(c *Checks, final map[string]int64) {
	for _, tok := range slices.Sorted(maps.Keys(k.sent)) {
		s, n := k.sent[tok], final[tok]
		switch {
		case n > 1:
			c.Duplicated++
			c.fail("duplicated", "%s (%s) counted %d times", tok, outcomeName(s.outcome), n)
		case s.outcome == OutcomeAcked && n == 0:
			c.Lost++
			c.fail("lost", "%s was acknowledged and is not counted", tok)
		case s.outcome == OutcomeFailed && n > 0:
			c.Unknown++
			c.fail("counted a refused request", "%s was refused with a 4xx and is counted", tok)
		case s.outcome == OutcomeIndeterminate && n == 1:
			c.IndeterminateCounted++
		}
	}
	for key, n := range final {
		_, sent := k.sent[key]
		if !sent && !k.vocab[key] {
			c.Unknown++
			c.fail("never sent", "%q counted %d times and never sent", key, n)
		}
	}
}

// recount is every word's count from the lines the cluster should hold:
// the acknowledged ones and the indeterminate ones it counted.
func (k *checker) recount(final map[string]int64) map[string]int64 {
	want := map[string]int64{}
	for tok, s := range k.sent {
		if s.outcome == OutcomeAcked || s.outcome == OutcomeIndeterminate && final[tok] > 0 {
			for _, w := range s.words {
				want[w]++
			}
		}
	}
	return want
}

func (k *checker) checkWords(c *Checks, counts map[string]int64, where string) {
	got := map[string]int64{}
	for key, n := range counts {
		if !strings.HasPrefix(key, tokenPrefix) {
			got[key] = n
		}
	}
	if d := firstDifference(k.recount(counts), got); d != "" {
		c.Mismatched++
		c.fail("word counts", "%s disagrees with the offline recount (%s)", where, d)
	}
}

// checkStates: every node's state API answers what the output of the
// same batch holds, and the recount.
func (k *checker) checkStates(c *Checks, kept map[int64]map[string]int64) {
	for _, id := range slices.Sorted(maps.Keys(k.states)) {
		s := k.states[id]
		where := fmt.Sprintf("%s's state API (batch %d)", id, s.batch)
		k.checkWords(c, s.counts, where)
		out, ok := kept[s.batch]
		switch {
		case !ok:
			c.Mismatched++
			c.fail("state", "%s: no node saved the output of batch %d", where, s.batch)
		case s.partial:
			o := map[string]int64{}
			for w := range k.vocab {
				if n, ok := out[w]; ok {
					o[w] = n
				}
			}
			sw := map[string]int64{}
			for w, n := range s.counts {
				if k.vocab[w] {
					sw[w] = n
				}
			}
			if d := firstDifference(o, sw); d != "" {
				c.Mismatched++
				c.fail("state", "%s disagrees with that batch's output (%s)", where, d)
			}
		default:
			if d := firstDifference(out, s.counts); d != "" {
				c.Mismatched++
				c.fail("state", "%s disagrees with that batch's output (%s)", where, d)
			}
		}
	}
}

// parseBatch reads a batch directory's part files.
func parseBatch(dir string) (map[string]int64, error) {
	parts, err := filepath.Glob(filepath.Join(dir, "part-*"))
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for _, p := range parts {
		if err := parsePart(p, m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func parsePart(path string, m map[string]int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		i := strings.LastIndexByte(text, ',')
		if !strings.HasPrefix(text, "(") || !strings.HasSuffix(text, ")") || i < 0 {
			return fmt.Errorf("%s:%d: %q is not (word,count)", path, line, text)
		}
		n, err := strconv.ParseInt(text[i+1:len(text)-1], 10, 64)
		if err != nil {
			return fmt.Errorf("%s:%d: %q is not (word,count)", path, line, text)
		}
		key := text[1:i]
		if _, dup := m[key]; dup {
			return fmt.Errorf("%s: %q saved twice in one batch", path, key)
		}
		m[key] = n
	}
	return sc.Err()
}

// firstDifference names the first key (in order) whose count differs,
// "" if none; an absent key counts 0.
func firstDifference(want, got map[string]int64) string {
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	var diffs []string
	for k := range keys {
		if want[k] != got[k] {
			diffs = append(diffs, k)
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	sort.Strings(diffs)
	k := diffs[0]
	s := fmt.Sprintf("%s: %d, want %d", k, got[k], want[k])
	if len(diffs) > 1 {
		s += fmt.Sprintf("; %d keys differ", len(diffs))
	}
	return s
}

func outcomeName(o int) string {
	switch o {
	case OutcomeAcked:
		return "acknowledged"
	case OutcomeFailed:
		return "refused"
	case OutcomeIndeterminate:
		return "indeterminate"
	}
	return "pending"
}
