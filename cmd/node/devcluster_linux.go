package main

import "syscall"

// devChildAttr puts a dev cluster's node in a process group of its own,
// so that the terminal's Ctrl-C reaches devcluster alone, which then stops
// the nodes in order; Pdeathsig kills the node if devcluster dies without
// stopping it (SIGKILL), so that no node is left behind. (Pdeathsig fires
// when the thread that started the child exits; the Go runtime ends no
// thread of an unlocked goroutine, so that is the process's death.)
func devChildAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
