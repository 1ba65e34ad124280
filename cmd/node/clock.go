package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// batchClock returns the clock --clock asks for, and the handler of
// POST /debug/clock that moves it; both nil for the system clock.
//
// A manual clock (manual:START_MS) makes batch boundaries a test's
// decision: a crash test ingests a batch's records, then moves time, so
// that a run with a crash and one without allocate the same records to
// the same batch times. A jumping clock (system+jumps) is the system
// clock that POST /debug/clock?jump=DURATION shifts, forward or back:
// the chaos harness's clock faults. Neither is for production.
func (f *nodeFlags) batchClock() (engine.Clock, http.Handler, error) {
	switch {
	case f.clock == "" || f.clock == "system":
		return nil, nil, nil
	case f.clock == "system+jumps":
		c := engine.NewJumpClock()
		return c, jumpHandler{c}, nil
	}
	rest, ok := strings.CutPrefix(f.clock, "manual:")
	ms, err := strconv.ParseInt(rest, 10, 64)
	if !ok || err != nil || ms < 0 {
		return nil, nil, fmt.Errorf("--clock %q: use system, manual:START_MS (milliseconds since the epoch) or system+jumps", f.clock)
	}
	c := engine.NewManualClock(time.UnixMilli(ms))
	return c, clockHandler{c}, nil
}

// jumpHandler shifts a jumping clock: POST /debug/clock?jump=-3s. It
// answers with the clock's time and its offset from the system clock, in
// milliseconds.
type jumpHandler struct{ c *engine.JumpClock }

func (h jumpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var offset time.Duration
	if s := r.URL.Query().Get("jump"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("jump=%q: give a duration such as 2s or -2s", s))
			return
		}
		offset = h.c.Jump(d)
	} else {
		offset = h.c.Jump(0)
	}
	writeJSON(w, http.StatusOK, map[string]int64{"now": h.c.Now().UnixMilli(), "offset_ms": offset.Milliseconds()})
}

// clockHandler moves a manual clock: POST /debug/clock?advance=1s, or
// ?to=MS. It answers with the clock's time in milliseconds.
type clockHandler struct{ c *engine.ManualClock }

func (h clockHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s := r.URL.Query().Get("advance"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("advance=%q: give a duration such as 1s", s))
			return
		}
		h.c.Advance(d)
	}
	if s := r.URL.Query().Get("to"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms < h.c.Now().UnixMilli() {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("to=%q: give milliseconds since the epoch, not before the clock's time", s))
			return
		}
		h.c.Set(time.UnixMilli(ms))
	}
	writeJSON(w, http.StatusOK, map[string]int64{"now": h.c.Now().UnixMilli()})
}
