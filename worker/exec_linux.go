package worker

import "syscall"

// procAttr puts the command in its own process group (so a timeout kills
// all it started) and has the kernel kill it if the worker dies: a worker
// killed with SIGKILL must not leave a handler running beside the copy
// of the task that the broker hands to another worker.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
