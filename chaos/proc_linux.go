package chaos

import "syscall"

// childAttr puts a node in a process group of its own, so that a
// terminal's Ctrl-C reaches the harness alone, which then kills the
// nodes; Pdeathsig kills a node if the harness dies without doing so.
// (Pdeathsig fires when the thread that started the child exits; the Go
// runtime ends no thread of an unlocked goroutine, so that is the
// process's death.)
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
