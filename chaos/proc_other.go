//go:build !linux

package chaos

import "syscall"

// childAttr puts a node in a process group of its own; without
// Pdeathsig, a harness killed with SIGKILL leaves its nodes behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
