//go:build !linux

package main

import "syscall"

// devChildAttr leaves a dev cluster's node in devcluster's process group
// where there is no Pdeathsig: Ctrl-C then reaches every node at once,
// and each stops gracefully on its own.
func devChildAttr() *syscall.SysProcAttr { return nil }
