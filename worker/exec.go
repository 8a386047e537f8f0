//go:build unix

package worker

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/internal/check"
	"github.com/warrenq/warren/retry"
)

// ExitDataErr is the exit status (sysexits.h EX_DATAERR) with which an
// external command says that its task can never succeed: the task goes
// straight to the dead-letter queue.
const ExitDataErr = 65

// Defaults of a zero ExecConfig.
const (
	DefaultStderrTail    = 2 << 10
	DefaultExecWaitDelay = 2 * time.Second
	// maxOutputLine bounds one line of stdout forwarded to the log.
	maxOutputLine = 4 << 10
)

// Environment variables an external command receives about its task. They
// all start with EnvTaskPrefix, which no flag of the warren CLI reads: a
// handler that runs warren itself never inherits its task's queue or
// attempt budget by accident.
const (
	EnvTaskPrefix      = "WARREN_TASK_"
	EnvTaskID          = "WARREN_TASK_ID"
	EnvTaskType        = "WARREN_TASK_TYPE"
	EnvTaskQueue       = "WARREN_TASK_QUEUE"
	EnvTaskAttempt     = "WARREN_TASK_ATTEMPT"
	EnvTaskMaxAttempts = "WARREN_TASK_MAX_ATTEMPTS"
)

// legacyTaskEnv are the names Warren 0.x gave the task's queue, attempt
// and cap. The CLI reads two of them as its --queue and --max-attempts, so
// they are removed from a command's environment, whoever set them.
var legacyTaskEnv = []string{"WARREN_QUEUE", "WARREN_ATTEMPT", "WARREN_MAX_ATTEMPTS"}

// ErrUnrunnable is the cause of the failure of a task that a command can
// never be run for: its ID, type or queue holds a NUL byte, which no
// environment variable can carry. The task is dead-lettered at once.
var ErrUnrunnable = errors.New("worker: task cannot be passed to a command")

// ExecConfig tunes Exec. The zero ExecConfig is ready to use.
type ExecConfig struct {
	// Env is the environment the command starts from, before secrets are
	// removed and the task's variables added. nil means the worker's own
	// environment (os.Environ) at the time Exec is called.
	Env []string
	// Unset names more variables to remove from Env, on top of the
	// secrets, every WARREN_TASK_* variable and WARREN_QUEUE, WARREN_ATTEMPT
	// and WARREN_MAX_ATTEMPTS, which are always removed. nil removes no more.
	// The warren CLI lists here the variable of every flag of its commands,
	// so that the worker's own settings never configure a warren that a
	// command runs.
	Unset []string
	// Dir is the command's working directory. "" means the worker's.
	Dir string
	// StderrTail is how many bytes from the end of the command's stderr are
	// kept for the error of a failed run. 0 means 2 KiB.
	StderrTail int
	// WaitDelay bounds how long a run waits for the command's output pipes
	// to close once the command has exited or been killed, in case a
	// process it started still holds them. 0 means 2s.
	WaitDelay time.Duration
	// Logger receives the command's stdout, line by line, at debug level.
	// nil means slog.Default(). Stdout is discarded when debug is off.
	Logger *slog.Logger
}

func (c ExecConfig) withDefaults() ExecConfig {
	if c.Env == nil {
		c.Env = os.Environ()
	}
	c.StderrTail = cmp.Or(c.StderrTail, DefaultStderrTail)
	c.WaitDelay = cmp.Or(c.WaitDelay, DefaultExecWaitDelay)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return c
}

func (c ExecConfig) validate() error {
	return errors.Join(
		check.NotNegative("worker: ExecConfig.StderrTail", c.StderrTail),
		check.NotNegative("worker: ExecConfig.WaitDelay", c.WaitDelay),
	)
}

// ExecError is the failure of one run of an external command.
type ExecError struct {
	// Command is the command's name (argv[0]).
	Command string
	// ExitCode is the exit status, or -1 when the command was killed by a
	// signal, was cut off by its context, or did not start.
	ExitCode int
	// Signal names the signal that killed the command, if one did.
	Signal string
	// Stderr is the tail of the command's stderr.
	Stderr string
	// Err is the underlying cause: the context's error when the run was
	// cut off, the start error, or exec's wait error.
	Err error
}

func (e *ExecError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "worker: command %q ", e.Command)
	switch {
	case e.ExitCode >= 0:
		fmt.Fprintf(&b, "exited with status %d", e.ExitCode)
	case e.Err != nil && (errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded)):
		fmt.Fprintf(&b, "killed (process group) because %v", e.Err)
	case e.Signal != "":
		fmt.Fprintf(&b, "killed by signal %s", e.Signal)
	case e.Err != nil:
		fmt.Fprintf(&b, "failed: %v", e.Err)
	default:
		b.WriteString("failed")
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString(": stderr: ")
		b.WriteString(s)
	}
	return b.String()
}

func (e *ExecError) Unwrap() error { return e.Err }

// Exec returns a Handler that runs an external command once per task.
// argv is the program and its arguments; no shell is involved (use
// "sh", "-c", script for one). The program is looked up in PATH now, so a
// missing one is reported at once.
//
// Each run:
//   - gets the payload, byte for byte, on stdin;
//   - gets the worker's environment (ExecConfig.Env) without the
//     variables that look like credentials (see below), without
//     WARREN_QUEUE, WARREN_ATTEMPT, WARREN_MAX_ATTEMPTS, any WARREN_TASK_*
//     variable and the names in ExecConfig.Unset, plus the task's own:
//     WARREN_TASK_ID, WARREN_TASK_TYPE, WARREN_TASK_QUEUE,
//     WARREN_TASK_ATTEMPT (1 on the first run) and, when the task has a
//     cap, WARREN_TASK_MAX_ATTEMPTS;
//   - runs in a process group of its own. When the handler's context ends
//     (its timeout, or the pool giving up on a drain) the whole group is
//     killed with SIGKILL, grandchildren included; the same happens to any
//     process of the group left behind when the command exits.
//
// Exit status 0 is success. Exit status 65 (EX_DATAERR) is a permanent
// failure (retry.Permanent): the task is dead-lettered at once, as is a
// task whose ID, type or queue holds a NUL byte (ErrUnrunnable), without
// running the command. Any other
// status, a signal, or the context ending is a failure that is retried.
// A failure is an *ExecError that carries the tail of the command's stderr.
// The command's stdout goes to the logger at debug level.
//
// A variable looks like a credential, and is removed, when its name
// contains PASSWORD, PASSWD, SECRET, TOKEN or CREDENTIAL, or has KEY as one
// of its underscore-separated words or at its end (AWS_SECRET_ACCESS_KEY,
// API_KEY, GOOGLE_APPLICATION_CREDENTIALS), or when its value holds a URL
// with a password (DATABASE_URL=postgres://user:pw@host/db) or a
// "password=" (a connection string); WARREN_URL,
// WARREN_URL_FILE and WARREN_TEST_URL are always removed. Scrubbing the
// environment is not isolation: a command running as the worker's user can
// read the worker's own environment and command line (/proc/PPID/environ
// and cmdline on Linux). Give the worker its broker URL in a file
// (warren --url-file) that the command's user cannot read, not in --url.
func Exec(argv []string, cfg ExecConfig) (Handler, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("worker: Exec: empty command")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("worker: command %q: %w", argv[0], err)
	}
	return &execHandler{
		path: path,
		argv: append([]string(nil), argv...),
		env:  scrubEnv(cfg.Env, cfg.Unset),
		cfg:  cfg,
	}, nil
}

type execHandler struct {
	path string
	argv []string
	env  []string // without secrets and task variables
	cfg  ExecConfig
}

var _ Handler = (*execHandler)(nil)

// ProcessTask runs the command for t.
func (h *execHandler) ProcessTask(ctx context.Context, t *warren.Task) error {
	// No process can receive a NUL in its environment: such a task can
	// never run, and retrying it would only fail again.
	for name, v := range map[string]string{"ID": t.ID, "type": t.Type, "queue": t.Queue} {
		if strings.IndexByte(v, 0) >= 0 {
			return retry.Permanent(fmt.Errorf("%w %q: the task's %s holds a NUL byte, which no environment variable can carry",
				ErrUnrunnable, h.argv[0], name))
		}
	}
	cmd := exec.CommandContext(ctx, h.path, h.argv[1:]...)
	cmd.Args[0] = h.argv[0]
	cmd.Dir = h.cfg.Dir
	cmd.Env = h.taskEnv(t)
	cmd.Stdin = bytes.NewReader(t.Payload)
	stderr := &tailBuffer{max: h.cfg.StderrTail}
	cmd.Stderr = stderr
	log := h.cfg.Logger
	if log.Enabled(ctx, slog.LevelDebug) {
		lw := &lineLogger{log: log.With("task_id", t.ID, "type", t.Type, "queue", t.Queue, "attempt", t.Attempt)}
		defer lw.flush()
		cmd.Stdout = lw
	}
	cmd.SysProcAttr = procAttr()
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = h.cfg.WaitDelay

	if err := cmd.Start(); err != nil {
		return &ExecError{Command: h.argv[0], ExitCode: -1, Err: err}
	}
	pid := cmd.Process.Pid
	err := cmd.Wait()
	// Whatever the command left running in its group does not outlive the
	// task. The group's ID cannot be reused while any member lives.
	_ = killGroup(pid)

	if ctx.Err() != nil && (err != nil || cmd.ProcessState == nil || !cmd.ProcessState.Success()) {
		return &ExecError{Command: h.argv[0], ExitCode: -1, Stderr: stderr.String(), Err: ctx.Err()}
	}
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
			// The command succeeded; something it started held its output
			// open past WaitDelay and was killed with the group.
			log.Warn("worker: command exited but a process it started kept its output open; killed it",
				"task_id", t.ID, "type", t.Type, "queue", t.Queue, "attempt", t.Attempt, "command", h.argv[0])
			return nil
		}
		return &ExecError{Command: h.argv[0], ExitCode: -1, Stderr: stderr.String(), Err: err}
	}
	xe := &ExecError{Command: h.argv[0], ExitCode: ee.ExitCode(), Stderr: stderr.String(), Err: err}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		xe.ExitCode = -1
		xe.Signal = ws.Signal().String()
	}
	if xe.ExitCode == ExitDataErr {
		return retry.Permanent(xe)
	}
	return xe
}

// killGroup sends SIGKILL to process group pgid.
func killGroup(pgid int) error {
	if pgid <= 0 {
		return os.ErrProcessDone
	}
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

func (h *execHandler) taskEnv(t *warren.Task) []string {
	env := make([]string, 0, len(h.env)+5)
	env = append(env, h.env...)
	env = append(env,
		EnvTaskID+"="+t.ID,
		EnvTaskType+"="+t.Type,
		EnvTaskQueue+"="+t.Queue,
		EnvTaskAttempt+"="+strconv.Itoa(t.Attempt),
	)
	if t.MaxAttempts > 0 {
		env = append(env, EnvTaskMaxAttempts+"="+strconv.Itoa(t.MaxAttempts))
	}
	return env
}

// scrubEnv drops from env the credentials, the task variables, the legacy
// task names and the names in unset.
func scrubEnv(env, unset []string) []string {
	drop := make(map[string]bool, len(unset)+len(legacyTaskEnv))
	for _, n := range unset {
		drop[n] = true
	}
	for _, n := range legacyTaskEnv {
		drop[n] = true
	}
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if drop[name] || strings.HasPrefix(name, EnvTaskPrefix) || secretEnv(name, value) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// secretEnv reports whether the variable name=value looks like a
// credential.
func secretEnv(name, value string) bool {
	switch name {
	case "WARREN_URL", "WARREN_URL_FILE", "WARREN_TEST_URL":
		return true
	}
	up := strings.ToUpper(name)
	for _, s := range []string{"PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL"} {
		if strings.Contains(up, s) {
			return true
		}
	}
	if strings.HasSuffix(up, "KEY") {
		return true
	}
	for _, word := range strings.Split(up, "_") {
		if word == "KEY" || word == "KEYS" {
			return true
		}
	}
	return urlWithPassword.MatchString(value) || strings.Contains(strings.ToLower(value), "password=")
}

// urlWithPassword matches a URL that carries a password: scheme://user:pw@.
var urlWithPassword = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s:]*:[^/?#@\s]+@`)

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu        sync.Mutex
	max       int
	buf       []byte
	truncated bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if b.max <= 0 {
		b.truncated = b.truncated || n > 0
		return n, nil
	}
	if len(p) >= b.max {
		b.truncated = b.truncated || len(b.buf) > 0 || len(p) > b.max
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return n, nil
	}
	if over := len(b.buf) + len(p) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.truncated = true
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

// String returns the tail, marked when earlier output was cut, starting
// on a UTF-8 rune boundary.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf
	if !b.truncated {
		return string(s)
	}
	for i := 0; i < len(s) && i < 4 && s[0]&0xC0 == 0x80; i++ {
		s = s[1:]
	}
	return "…" + string(s)
}

// lineLogger logs each line written to it at debug level, cutting lines
// longer than maxOutputLine, so memory stays bounded whatever the output.
type lineLogger struct {
	mu   sync.Mutex // exec may still write after Wait returns ErrWaitDelay
	log  *slog.Logger
	buf  []byte
	skip bool // inside an over-long line, after its logged part
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !w.skip {
			room := maxOutputLine - len(w.buf)
			if len(chunk) > room {
				w.buf = append(w.buf, chunk[:room]...)
				w.emit(true)
				w.skip = true
			} else {
				w.buf = append(w.buf, chunk...)
			}
		}
		if i < 0 {
			break
		}
		if !w.skip {
			w.emit(false)
		}
		w.skip = false
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineLogger) emit(cut bool) {
	line := strings.TrimRight(string(w.buf), "\r")
	w.buf = w.buf[:0]
	if cut {
		w.log.Debug("command output", "stream", "stdout", "line", line, "truncated", true)
		return
	}
	w.log.Debug("command output", "stream", "stdout", "line", line)
}

func (w *lineLogger) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 && !w.skip {
		w.emit(false)
	}
}
