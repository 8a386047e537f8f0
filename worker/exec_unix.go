//go:build unix && !linux

package worker

import "syscall"

// procAttr puts the command in its own process group, so that a timeout
// kills everything it started.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
