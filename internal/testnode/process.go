package testnode

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PID returns the node's OS process ID from its pid file, checked against
// the process's command line (it names the cluster's HOME) so that a
// recycled PID is never signalled. It fails when the node does not run.
func (n *Node) PID() (int, error) {
	b, err := os.ReadFile(n.pidFile)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("testnode: bad pid file %s: %q", n.pidFile, b)
	}
	if !processMatches(pid, n.cluster.home) {
		return 0, fmt.Errorf("testnode: pid %d of %s is not running (or is another program)", pid, n.Name)
	}
	return pid, nil
}

// Kill SIGKILLs the node's Erlang VM and waits until it is gone.
func (n *Node) Kill(ctx context.Context) error {
	pid, err := n.PID()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("testnode: kill node %s: %w", n.Name, err)
	}
	return WaitGone(ctx, pid, 15*time.Second)
}

// kill SIGKILLs pid if it is still the node's process, and waits a while
// for it to go.
func (n *Node) kill(pid int) {
	if processMatches(pid, n.cluster.home) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_ = WaitGone(context.Background(), pid, 10*time.Second)
	}
}

// Freeze stops the node's Erlang VM with SIGSTOP, as a long GC pause or a
// stalled host would: its sockets stay open and nothing answers.
func (n *Node) Freeze() error { return n.signal(syscall.SIGSTOP, "freeze") }

// Thaw resumes a node Freeze stopped (a running node ignores it).
func (n *Node) Thaw() error { return n.signal(syscall.SIGCONT, "thaw") }

func (n *Node) signal(sig syscall.Signal, what string) error {
	pid, err := n.PID()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("testnode: %s node %s: %w", what, n.Name, err)
	}
	return nil
}

// processMatches reports whether pid runs (not a zombie) with marker in
// its command line. A node's command line names its HOME (-home DIR).
func processMatches(pid int, marker string) bool {
	if !Alive(pid) {
		return false
	}
	cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(cl, []byte(marker))
}

// Alive reports whether process pid exists and is not a zombie.
func Alive(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	i := bytes.LastIndexByte(st, ')')
	return i > 0 && i+2 < len(st) && st[i+2] != 'Z' && st[i+2] != 'X'
}

// WaitGone waits until process pid has exited, ctx ends or d passes.
func WaitGone(ctx context.Context, pid int, d time.Duration) error {
	return Poll(ctx, d, 20*time.Millisecond, func() bool { return !Alive(pid) },
		fmt.Sprintf("process %d still alive", pid))
}

// awaitPidFile waits until the pid file holds a process ID, as
// rabbitmq-server -detached writes it a moment after it returns.
// `rabbitmqctl wait` on a file caught half-written fails with
// garbage_in_pid_file instead of waiting: call this first.
func (n *Node) awaitPidFile(ctx context.Context) error {
	return Poll(ctx, n.timeout, 50*time.Millisecond, func() bool { return readPid(n.pidFile) > 0 },
		"no process ID in "+n.pidFile)
}

// Poll checks cond every interval until it holds, ctx ends or d passes;
// its error says what did not happen.
func Poll(ctx context.Context, d, interval time.Duration, cond func() bool, what string) error {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-deadline.C:
			if cond() {
				return nil
			}
			return fmt.Errorf("%s after %s", what, d)
		case <-tick.C:
		}
	}
}

func readPid(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// KillUnder SIGKILLs every node process whose pid file (rabbit.pid) lies
// under dir and whose command line names dir: the nodes a dead test
// process left behind there. It skips data and log directories.
func KillUnder(dir string, logf func(format string, args ...any)) {
	_ = filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if e.IsDir() && (e.Name() == "mnesia" || e.Name() == "log") {
			return filepath.SkipDir
		}
		if e.Name() != "rabbit.pid" {
			return nil
		}
		if pid := readPid(path); pid > 1 && processMatches(pid, dir) {
			if logf != nil {
				logf("testnode: killing node process %d left behind in %s", pid, dir)
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return nil
	})
}

// Sweep stops the nodes Start left behind in test processes that no
// longer run (a test binary killed by a timeout) and removes their
// directories.
func Sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		rest := strings.TrimPrefix(filepath.Base(dir), dirPrefix)
		owner, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err != nil || owner == os.Getpid() || syscall.Kill(owner, 0) == nil {
			continue
		}
		KillUnder(dir, nil)
		_ = os.RemoveAll(dir)
	}
}
