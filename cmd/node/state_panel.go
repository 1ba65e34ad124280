package main

// stateRow is one stateful operator as the state panel and /metrics show
// it. The rows come from status.stateSummary, the seam where the state
// store (built separately) plugs in; /api/state belongs to it too.
type stateRow struct {
	Name  string `json:"name"`  // the operator, "#id kind" or its given name
	Kind  string `json:"kind"`  // updateStateByKey, mapWithState, a window...
	Keys  int64  `json:"keys"`  // keys held at the last completed batch
	Bytes int64  `json:"bytes"` // bytes on disk
}
