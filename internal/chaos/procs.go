package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/warrenq/warren/internal/testnode"
)

// Why the suite signalled an agent.
const (
	intentNone = ""
	intentKill = "kill" // SIGKILL fault
	intentTerm = "term" // SIGTERM fault: a graceful drain
	intentStop = "stop" // end of the scenario: SIGTERM, drain
)

// Agent is one producer or worker process.
type Agent struct {
	Role    string
	Name    string // e.g. worker2.3 (slot 2, third incarnation)
	Ledger  string
	LogFile string
	PID     int
	Started time.Time
	// Side is the node whose network namespace the agent runs in (0: the
	// root namespace, which reaches every node).
	Side int

	cmd  *exec.Cmd
	done chan struct{}
	slot *slot // workers: the slot it runs in

	mu       sync.Mutex
	intent   string
	signalAt time.Time
	exitedAt time.Time
	state    *os.ProcessState
	waitErr  error
}

// startAgent runs bin role args... with its ledger and log in dir; with a
// prefix (ip netns exec NS), inside that command.
func startAgent(prefix []string, bin, dir, role, name string, args []string) (*Agent, error) {
	a := &Agent{
		Role:    role,
		Name:    name,
		Ledger:  filepath.Join(dir, name+".ledger"),
		LogFile: filepath.Join(dir, name+".log"),
		done:    make(chan struct{}),
	}
	logf, err := os.OpenFile(a.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	argv := append(append(append(append([]string(nil), prefix...), bin, role), args...), "--ledger", a.Ledger)
	a.cmd = exec.Command(argv[0], argv[1:]...)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.Env = append(testnode.CleanEnv(), "GORACE=halt_on_error=0")
	// The agent dies with the suite, whatever kills the suite.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("chaos: start %s: %w", name, err)
	}
	a.PID = a.cmd.Process.Pid
	a.Started = time.Now()
	go func() {
		err := a.cmd.Wait()
		a.mu.Lock()
		a.exitedAt = time.Now()
		a.state = a.cmd.ProcessState
		a.waitErr = err
		a.mu.Unlock()
		close(a.done)
	}()
	return a, nil
}

// Done is closed when the process has exited.
func (a *Agent) Done() <-chan struct{} { return a.done }

// Running reports whether the process has not exited yet.
func (a *Agent) Running() bool {
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// Signal sends sig and records why.
func (a *Agent) Signal(sig syscall.Signal, intent string) error {
	a.mu.Lock()
	a.intent = intent
	a.signalAt = time.Now()
	a.mu.Unlock()
	if err := a.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("chaos: signal %s to %s: %w", sig, a.Name, err)
	}
	return nil
}

// Exit describes how the process ended: whether the suite expected it, and
// a description.
type Exit struct {
	Expected bool
	Poison   bool // SIGKILLed by its own poison handler
	Desc     string
	Code     int // -1 when killed by a signal
	Signal   syscall.Signal
	After    time.Duration // from the suite's signal to the exit
}

// exit classifies the ended process. It must be called after Done.
func (a *Agent) exit() Exit {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := Exit{Code: -1}
	if a.state == nil {
		e.Desc = fmt.Sprintf("%s (pid %d): wait: %v", a.Name, a.PID, a.waitErr)
		return e
	}
	ws, _ := a.state.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		e.Signal = ws.Signal()
	} else {
		e.Code = ws.ExitStatus()
	}
	if !a.signalAt.IsZero() {
		e.After = a.exitedAt.Sub(a.signalAt)
	}
	switch {
	case a.intent == intentKill && e.Signal == syscall.SIGKILL:
		e.Expected = true
		e.Desc = "killed by the suite"
	case (a.intent == intentTerm || a.intent == intentStop) && e.Code == 0:
		e.Expected = true
		e.Desc = fmt.Sprintf("drained and exited 0 in %s", e.After.Round(time.Millisecond))
	case a.intent == intentStop && e.Signal == syscall.SIGTERM:
		e.Expected = true // stopped before it had set up its signal handling
		e.Desc = "stopped while starting"
	case a.intent == intentNone && e.Code == 0 && a.Role == "producer":
		e.Expected = true
		e.Desc = "finished"
	case a.intent == intentNone && e.Signal == syscall.SIGKILL && a.wrotePoison():
		e.Expected = true
		e.Poison = true
		e.Desc = "killed by its poison job"
	default:
		e.Desc = fmt.Sprintf("%s (pid %d) exited unexpectedly: %s (suite intent %q); log %s:\n%s",
			a.Name, a.PID, a.state, a.intent, a.LogFile, a.logTail(2000))
	}
	return e
}

func (a *Agent) wrotePoison() bool {
	recs, err := ReadLedger(a.Ledger)
	if err != nil {
		return false
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Event == EvPoison && recs[i].PID == a.PID {
			return true
		}
	}
	return false
}

func (a *Agent) logTail(n int) string {
	b, _ := os.ReadFile(a.LogFile)
	return tail(string(b), n)
}

// raceReport returns the agent's data race reports, if any.
func (a *Agent) raceReport() string {
	b, _ := os.ReadFile(a.LogFile)
	s := string(b)
	i := strings.Index(s, "WARNING: DATA RACE")
	if i < 0 {
		return ""
	}
	return tail(s[i:], 4000)
}
