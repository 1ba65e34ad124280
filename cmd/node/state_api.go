package main

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/sluice-stream/sluice/engine"
)

// stateRoutes serves the queryable state, committed state only:
//
//	GET /api/state                     the stateful operators
//	GET /api/state/{operator}?top=N    the N keys with the largest values
//	GET /api/state/{operator}/{key}    one key: {"key", "value", "batch", "updated"}
//
// "batch" is the batch time (ms) the answer is as of, the last completed
// batch; "updated" the batch time of the key's last update.
func stateRoutes(mux *http.ServeMux, c *engine.Context) {
	mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"operators": nonNil(c.StateOperators())})
	})
	mux.HandleFunc("GET /api/state/{operator}", func(w http.ResponseWriter, r *http.Request) {
		serveStateOperator(w, r, c)
	})
	mux.HandleFunc("GET /api/state/{operator}/{key...}", func(w http.ResponseWriter, r *http.Request) {
		v, err := c.QueryState(r.PathValue("operator"), r.PathValue("key"))
		if err != nil {
			writeStateError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

func serveStateOperator(w http.ResponseWriter, r *http.Request, c *engine.Context) {
	name := r.PathValue("operator")
	var info *engine.StateOperatorInfo
	for _, o := range c.StateOperators() {
		if o.Name == name {
			info = &o
		}
	}
	if info == nil {
		writeStateError(w, fmt.Errorf("%w: %q", engine.ErrUnknownOperator, name))
		return
	}
	topArg := r.URL.Query().Get("top")
	if topArg == "" {
		writeJSON(w, http.StatusOK, info)
		return
	}
	n, err := strconv.Atoi(topArg)
	if err != nil || n < 1 || n > maxTopKeys {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("top=%q: give a number of keys from 1 to %d", topArg, maxTopKeys))
		return
	}
	top, batch, err := c.TopState(name, n)
	if err != nil {
		writeStateError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"operator": name, "batch": batch, "top": nonNil(top)})
}

func writeStateError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, engine.ErrUnknownOperator):
		writeError(w, http.StatusNotFound, err.Error()+"; GET /api/state lists the stateful operators")
	case errors.Is(err, engine.ErrUnknownKey):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, engine.ErrNotOrdered):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, engine.ErrNotRunning):
		writeError(w, http.StatusServiceUnavailable, "the node is not running yet (or is stopping); retry shortly")
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// stateSummary feeds the UI's state panel and the state metrics.
func stateSummary(c *engine.Context) func() []stateRow {
	return func() []stateRow {
		var rows []stateRow
		for _, o := range c.StateOperators() {
			rows = append(rows, stateRow{Name: o.Name, Kind: o.Kind, Keys: o.Keys, Bytes: o.DiskBytes})
		}
		return rows
	}
}

// maxTopKeys bounds ?top=N: enough for a whole 10,000-word vocabulary and
// more, not enough to make one answer hundreds of megabytes.
const maxTopKeys = 100_000
