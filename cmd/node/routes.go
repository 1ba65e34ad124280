package main

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
)

// routes is the node's HTTP surface, but ingest (main.go adds it): the
// web UI, the JSON API, /metrics, the health checks and, with --pprof,
// Go's profiler.
func (s *status) routes(withPprof bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.servePage)
	mux.HandleFunc("GET /ui/panels", s.servePanels)
	mux.HandleFunc("GET /batches/{t}", s.serveBatchPage)
	mux.Handle("GET /static/", staticHandler())

	mux.HandleFunc("GET /api/batches", s.serveBatches)
	mux.HandleFunc("GET /api/batches/{t}", s.serveBatch)
	mux.HandleFunc("GET /api/cluster", s.serveCluster)
	mux.HandleFunc("GET /api/receivers", s.serveReceivers)
	mux.HandleFunc("GET /api/status", s.serveStatus)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no API endpoint "+r.Method+" "+r.URL.Path+" (see the README for the list)")
	})

	s.metrics.reg.MustRegister(prometheus.Collector(nodeCollector{s}))
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", s.serveReady)

	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
