package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Request outcomes.
const (
	outcomePending       = iota
	OutcomeAcked         // answered 200
	OutcomeFailed        // answered a 4xx other than 429: nothing was stored
	OutcomeIndeterminate // never answered 200 by the end of the run: stored or not
)

// request is one ingest request of a producer: its lines, each starting
// with its unique token, and what became of it.
type request struct {
	producer int
	seq      uint64
	lines    []string
	outcome  int
	tries    int
	ackedAt  time.Time
	resent   bool   // sent once more after its ack
	failure  string // the 4xx that failed it: status, node, try, body
}

// token is line i's unique token: "tok-p<producer>-s<seq>-<i>".
func token(producer int, seq uint64, i int) string {
	return fmt.Sprintf("tok-p%d-s%d-%d", producer, seq, i)
}

// load is the producers of a run. Each sends one request at a time,
// retries it (same producer and sequence) on another node after an error,
// a 503, a 429 or a timeout, until a node answers 200 or the load ends.
type load struct {
	cfg    Config
	c      *cluster
	client *http.Client
	pace   pacer

	mu struct {
		sync.Mutex
		reqs       []*request
		ackedPerS  map[int64]int // lines acknowledged, by Unix second
		resends    int           // acknowledged requests sent again
		resendBad  []string      // resends not answered as duplicates
		dupAnswers int           // first sends answered as duplicates (a retry that was stored)
		lastAck    time.Time
	}
}

func newLoad(cfg Config, c *cluster) *load {
	l := &load{cfg: cfg, c: c, client: &http.Client{Timeout: 3 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}
	l.pace.interval = time.Second / time.Duration(cfg.Rate)
	l.mu.ackedPerS = map[int64]int{}
	return l
}

// pacer spaces lines at a fixed rate over all producers.
type pacer struct {
	mu       sync.Mutex
	next     time.Time
	interval time.Duration // per line
}

func (p *pacer) wait(ctx context.Context, lines int) error {
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(time.Duration(lines) * p.interval)
	p.mu.Unlock()
	return sleepCtx(ctx, time.Until(at))
}

// run sends until gen is done; a request in flight then keeps being
// retried until drain is done. It returns when every producer has.
func (l *load) run(gen, drain context.Context) {
	var wg sync.WaitGroup
	for p := 1; p <= l.cfg.Producers; p++ {
		wg.Go(func() { l.produce(gen, drain, p) })
	}
	wg.Wait()
	l.client.CloseIdleConnections()
}

func (l *load) produce(gen, drain context.Context, p int) {
	rng := rand.New(rand.NewPCG(l.cfg.Seed, uint64(p)))
	words := newVocabulary(rng)
	next := p % len(l.c.nodes) // spread the producers over the nodes
	for seq := uint64(1); gen.Err() == nil; seq++ {
		if l.pace.wait(gen, l.cfg.LinesPerRequest) != nil {
			return
		}
		r := &request{producer: p, seq: seq}
		for i := range l.cfg.LinesPerRequest {
			r.lines = append(r.lines, token(p, seq, i)+" "+words.line(rng))
		}
		l.mu.Lock()
		l.mu.reqs = append(l.mu.reqs, r)
		l.mu.Unlock()
		next = l.send(drain, r, next, rng)
		if r.outcome == OutcomeAcked && rng.Float64() < l.cfg.ResendFraction {
			l.resend(drain, r, next)
		}
	}
}

// send delivers r, starting at node index at, and returns the index to
// start the next request at.
func (l *load) send(ctx context.Context, r *request, at int, rng *rand.Rand) int {
	body := strings.Join(r.lines, "\n") + "\n"
	for ctx.Err() == nil {
		n := l.c.nodes[at%len(l.c.nodes)]
		r.tries++
		status, reply, retryAfter, text := l.post(ctx, n, r, body)
		switch {
		case status == http.StatusOK:
			l.acked(r, reply)
			return at
		case status >= 400 && status < 500 && status != http.StatusTooManyRequests:
			l.mu.Lock()
			r.outcome = OutcomeFailed
			r.failure = fmt.Sprintf("p%d seq %d: %d from %s at try %d (%s): %s", r.producer, r.seq, status, n.id, r.tries,
				time.Now().Format("15:04:05.000"), strings.TrimSpace(text))
			l.mu.Unlock()
			return at
		}
		at++ // another node next time
		wait := time.Duration(20+rng.IntN(80)) * time.Millisecond
		if retryAfter > 0 {
			wait = min(retryAfter, 300*time.Millisecond)
		}
		sleepCtx(ctx, wait)
	}
	return at
}

type ingestAnswer struct {
	Duplicate bool `json:"duplicate"`
}

// post sends r once: the status (0 for no answer), the 200's body,
// Retry-After, and another status's body.
func (l *load) post(ctx context.Context, n *node, r *request, body string) (int, ingestAnswer, time.Duration, string) {
	var ans ingestAnswer
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.http+"/api/ingest/lines", strings.NewReader(body))
	if err != nil {
		return 0, ans, 0, ""
	}
	req.Header.Set("Sluice-Producer", "p"+strconv.Itoa(r.producer))
	req.Header.Set("Sluice-Sequence", strconv.FormatUint(r.seq, 10))
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, ans, 0, ""
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if json.NewDecoder(resp.Body).Decode(&ans) != nil {
			return 0, ans, 0, "" // a torn answer is no answer
		}
		return resp.StatusCode, ans, 0, ""
	}
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	return resp.StatusCode, ans, time.Duration(secs) * time.Second, string(text)
}

func (l *load) acked(r *request, ans ingestAnswer) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r.outcome, r.ackedAt = OutcomeAcked, now
	l.mu.ackedPerS[now.Unix()] += len(r.lines)
	l.mu.lastAck = now
	if ans.Duplicate {
		l.mu.dupAnswers++
	}
}

// resend sends an acknowledged request once more to another node, as a
// producer that lost the reply would: it must be a duplicate. Its answer
// does not change r's outcome; a resend that got no answer may still have
// reached a node, which the checker then sees if it counted it again.
func (l *load) resend(ctx context.Context, r *request, at int) {
	n := l.c.nodes[(at+1)%len(l.c.nodes)]
	l.mu.Lock()
	r.resent = true
	l.mu.resends++
	l.mu.Unlock()
	status, ans, _, _ := l.post(ctx, n, r, strings.Join(r.lines, "\n")+"\n")
	if status == http.StatusOK && !ans.Duplicate {
		l.mu.Lock()
		l.mu.resendBad = append(l.mu.resendBad, fmt.Sprintf("p%d seq %d sent again to %s: stored again, not a duplicate", r.producer, r.seq, n.id))
		l.mu.Unlock()
	}
}

// finish marks every request never acknowledged indeterminate, and
// returns the requests.
func (l *load) finish() []*request {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.mu.reqs {
		if r.outcome == outcomePending {
			r.outcome = OutcomeIndeterminate
		}
	}
	return l.mu.reqs
}

// vocabulary is a skewed (Zipf) choice of words: a few very frequent, a
// long tail, as text is.
type vocabulary struct {
	zipf *rand.Zipf
}

const vocabSize = 300

func newVocabulary(rng *rand.Rand) *vocabulary {
	return &vocabulary{zipf: rand.NewZipf(rng, 1.2, 2, vocabSize-1)}
}

func vocabWord(i uint64) string { return fmt.Sprintf("w%03d", i) }

// line is 2 to 7 words.
func (v *vocabulary) line(rng *rand.Rand) string {
	n := 2 + rng.IntN(6)
	ws := make([]string, n)
	for i := range ws {
		ws[i] = vocabWord(v.zipf.Uint64())
	}
	return strings.Join(ws, " ")
}
