package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// manualClock returns the clock --clock manual:START_MS asks for, or nil
// for the system clock. A manual clock makes batch boundaries a test's
// decision: a crash test ingests a batch's records, then moves time, so
// that a run with a crash and one without allocate the same records to
// the same batch times.
func (f *nodeFlags) manualClock() (*engine.ManualClock, error) {
	if f.clock == "" || f.clock == "system" {
		return nil, nil
	}
	rest, ok := strings.CutPrefix(f.clock, "manual:")
	ms, err := strconv.ParseInt(rest, 10, 64)
	if !ok || err != nil || ms < 0 {
		return nil, fmt.Errorf("--clock %q: use system, or manual:START_MS (milliseconds since the epoch)", f.clock)
	}
	return engine.NewManualClock(time.UnixMilli(ms)), nil
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
