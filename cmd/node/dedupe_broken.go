//go:build sluice_broken_dedupe

package main

// brokenDedupe, in a build with -tags sluice_broken_dedupe, gives every
// ingest request a producer id of its own, so the metadata log's
// (producer, sequence) table never sees a retry as one: a deliberately
// broken node, for proving that the chaos harness catches duplication.
// Never ship it.
const brokenDedupe = true
