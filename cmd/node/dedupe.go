//go:build !sluice_broken_dedupe

package main

// brokenDedupe is false in every normal build. The build tag
// sluice_broken_dedupe (dedupe_broken.go) turns it on, at compile time
// only, to build a node that counts retried requests twice: the chaos
// harness must catch it (chaos.TestChaosCatchesBrokenDedupe).
const brokenDedupe = false
