package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/sluice-stream/sluice/engine"
)

// stateAPI serves the committed page totals (the state named "pages") as
// JSON: GET /pages/{page} is one page's engine.StateValue, GET /top?n=N
// the N most viewed pages, most first.
func stateAPI(c *engine.Context) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pages/{page}", func(w http.ResponseWriter, r *http.Request) {
		sv, err := c.QueryState("pages", r.PathValue("page"))
		reply(w, sv, err)
	})
	mux.HandleFunc("GET /top", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 1 {
			n = 10
		}
		top, asOf, err := c.TopState("pages", n)
		reply(w, map[string]any{"batch": asOf, "pages": top}, err)
	})
	return mux
}

// reply writes v as JSON, or err with the status that fits it.
func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, engine.ErrUnknownKey):
			code = http.StatusNotFound
		case errors.Is(err, engine.ErrNotRunning):
			code = http.StatusServiceUnavailable
		}
		w.WriteHeader(code)
		v = map[string]string{"error": err.Error()}
	}
	json.NewEncoder(w).Encode(v)
}
