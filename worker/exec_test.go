//go:build unix

package worker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/retry"
)

func testTask() *warren.Task {
	return &warren.Task{ID: "task-1", Type: "send", Queue: "emails", Attempt: 2, Payload: []byte(`{"to":"a@example.com"}`)}
}

func mustExec(t *testing.T, argv []string, cfg ExecConfig) Handler {
	t.Helper()
	h, err := Exec(argv, cfg)
	if err != nil {
		t.Fatalf("Exec(%q): %v", argv, err)
	}
	return h
}

func TestExecSuccess(t *testing.T) {
	h := mustExec(t, []string{"sh", "-c", "cat >/dev/null; exit 0"}, ExecConfig{})
	if err := h.ProcessTask(context.Background(), testTask()); err != nil {
		t.Fatalf("ProcessTask: %v", err)
	}
}

func TestExecDataErrIsPermanent(t *testing.T) {
	h := mustExec(t, []string{"sh", "-c", "echo bad payload >&2; exit 65"}, ExecConfig{})
	err := h.ProcessTask(context.Background(), testTask())
	if !retry.IsPermanent(err) {
		t.Fatalf("want a permanent error, got %v", err)
	}
	var xe *ExecError
	if !errors.As(err, &xe) || xe.ExitCode != 65 {
		t.Fatalf("want *ExecError with exit code 65, got %#v", err)
	}
	if !strings.Contains(err.Error(), "bad payload") {
		t.Errorf("error lacks stderr: %v", err)
	}
}

func TestExecFailureIsRetryableWithStderrTail(t *testing.T) {
	// 5000 lines of stderr: only the last ~2 KiB are kept.
	script := `i=0; while [ $i -lt 5000 ]; do echo "noise $i" >&2; i=$((i+1)); done; echo "the real reason" >&2; exit 1`
	h := mustExec(t, []string{"sh", "-c", script}, ExecConfig{})
	err := h.ProcessTask(context.Background(), testTask())
	if err == nil {
		t.Fatal("want an error")
	}
	if retry.IsPermanent(err) {
		t.Fatalf("exit 1 must be retryable: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"exited with status 1", "the real reason", `"sh"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "noise 0\n") {
		t.Errorf("error keeps the head of stderr, want only its tail")
	}
	if len(msg) > DefaultStderrTail+200 {
		t.Errorf("error is %d bytes, want about the %d-byte tail", len(msg), DefaultStderrTail)
	}
}

func TestExecSignalIsRetryable(t *testing.T) {
	h := mustExec(t, []string{"sh", "-c", "kill -TERM $$"}, ExecConfig{})
	err := h.ProcessTask(context.Background(), testTask())
	var xe *ExecError
	if !errors.As(err, &xe) || retry.IsPermanent(err) {
		t.Fatalf("want a retryable *ExecError, got %v", err)
	}
	if xe.Signal == "" || !strings.Contains(err.Error(), "signal") {
		t.Errorf("error does not name the signal: %v", err)
	}
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild.pid")
	// The grandchild holds stderr and stdout open: only killing the whole
	// group (and WaitDelay) lets the run return.
	script := `sleep 30 & echo $! > "$1"; sleep 30`
	h := mustExec(t, []string{"sh", "-c", script, "sh", pidFile}, ExecConfig{})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.ProcessTask(ctx, testTask())
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want an error wrapping context.DeadlineExceeded, got %v", err)
	}
	if retry.IsPermanent(err) {
		t.Fatalf("a timeout must be retryable: %v", err)
	}
	if elapsed > 1500*time.Millisecond { // under WaitDelay: the group was killed, not waited out
		t.Fatalf("ProcessTask took %s after a 200ms timeout", elapsed)
	}
	b, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatalf("grandchild pid: %v", rerr)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		t.Fatalf("bad pid %q", b)
	}
	waitFor(t, 5*time.Second, func() bool { return !alive(pid) }, "grandchild %d still running", pid)
}

func TestExecCancelReturnsContextCanceled(t *testing.T) {
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	h := mustExec(t, []string{"sh", "-c", `touch "$1"; exec sleep 30`, "sh", started}, ExecConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.ProcessTask(ctx, testTask()) }()
	waitFor(t, 5*time.Second, func() bool { _, err := os.Stat(started); return err == nil }, "command did not start")
	cancel()
	select {
	case err := <-done:
		// The pool hands a task cut off by shutdown back to the broker
		// when the error wraps context.Canceled.
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("want context.Canceled, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ProcessTask did not return after cancel")
	}
}

func TestExecLeftoverProcessesAreKilled(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "bg.pid")
	// The background process does not hold the pipes; it would outlive the
	// task if the group were not killed.
	h := mustExec(t, []string{"sh", "-c", `sleep 30 </dev/null >/dev/null 2>&1 & echo $! > "$1"`, "sh", pidFile}, ExecConfig{})
	if err := h.ProcessTask(context.Background(), testTask()); err != nil {
		t.Fatalf("ProcessTask: %v", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	waitFor(t, 5*time.Second, func() bool { return !alive(pid) }, "background process %d still running", pid)
}

func TestExecEnv(t *testing.T) {
	base := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=/home/test",
		"WARREN_URL=amqp://u:s3cr3tpw@host/",
		"WARREN_URL_FILE=/run/secrets/url",
		"WARREN_TEST_URL=amqp://u:pw@host/",
		"WARREN_DB_PASSWORD=pw",
		"WARREN_API_TOKEN=tok",
		"WARREN_client_secret=sec",
		"WARREN_LOG_LEVEL=debug",
		"WARREN_TASK_ID=stale",
		"WARREN_TASK_QUEUE=stale",
		"WARREN_TASK_SOMETHING=stale",
		// The CLI reads these as --queue and --max-attempts: a warren run by
		// the command would enqueue to the worker's queue with its cap.
		"WARREN_QUEUE=worker-queue",
		"WARREN_MAX_ATTEMPTS=10",
		"WARREN_ATTEMPT=9",
		"WARREN_CONCURRENCY=20", // in Unset below
		// Credentials of other programs.
		"OTHER_PASSWORD=pw",
		"AWS_ACCESS_KEY_ID=AKIA",
		"AWS_SECRET_ACCESS_KEY=sk",
		"STRIPE_APIKEY=sk",
		"SSH_KEYS=k",
		"GOOGLE_APPLICATION_CREDENTIALS=/etc/gcp.json",
		"GITHUB_TOKEN=ghp",
		"MYSQL_PASSWD=pw",
		"DATABASE_URL=postgres://app:dbpw@db:5432/app",
		"REDIS=redis://:redispw@cache:6379",
		"PG_DSN=host=db user=app password=dbpw",
		// Not credentials.
		"PUBLIC_URL=https://example.com/path",
		"KEYBOARD=us",
		"MONKEYS_TYPED=3",
		"PROXY=http://user@proxy:3128",
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	h := mustExec(t, []string{"sh", "-c", `env > "$1"`, "sh", out}, ExecConfig{Env: base, Unset: []string{"WARREN_CONCURRENCY"}})
	task := testTask()
	task.MaxAttempts = 7
	if err := h.ProcessTask(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	want := map[string]string{
		"WARREN_TASK_ID":           "task-1",
		"WARREN_TASK_TYPE":         "send",
		"WARREN_TASK_QUEUE":        "emails",
		"WARREN_TASK_ATTEMPT":      "2",
		"WARREN_TASK_MAX_ATTEMPTS": "7",
		"HOME":                     "/home/test",
		"WARREN_LOG_LEVEL":         "debug",
		"PUBLIC_URL":               "https://example.com/path",
		"KEYBOARD":                 "us",
		"MONKEYS_TYPED":            "3",
		"PROXY":                    "http://user@proxy:3128",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{
		"WARREN_URL", "WARREN_URL_FILE", "WARREN_TEST_URL", "WARREN_DB_PASSWORD", "WARREN_API_TOKEN", "WARREN_client_secret",
		"WARREN_TASK_SOMETHING", "WARREN_QUEUE", "WARREN_MAX_ATTEMPTS", "WARREN_ATTEMPT", "WARREN_CONCURRENCY",
		"OTHER_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "STRIPE_APIKEY", "SSH_KEYS",
		"GOOGLE_APPLICATION_CREDENTIALS", "GITHUB_TOKEN", "MYSQL_PASSWD", "DATABASE_URL", "REDIS", "PG_DSN",
	} {
		if v, ok := env[k]; ok {
			t.Errorf("%s reached the command: %q", k, v)
		}
	}
	for _, secret := range []string{"s3cr3tpw", "dbpw", "redispw"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("password %q reached the command", secret)
		}
	}

	// No cap: no WARREN_TASK_MAX_ATTEMPTS.
	task.MaxAttempts = 0
	if err := h.ProcessTask(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(out)
	if strings.Contains(string(b), "MAX_ATTEMPTS=") {
		t.Error("a MAX_ATTEMPTS variable set for a task without a cap")
	}
}

func TestExecPayloadOnStdin(t *testing.T) {
	payload := make([]byte, 300<<10) // larger than a pipe buffer
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	copy(payload, "\x00\r\n\xff not JSON, not text")
	dir := t.TempDir()
	out := filepath.Join(dir, "stdin")
	h := mustExec(t, []string{"sh", "-c", `cat > "$1"`, "sh", out}, ExecConfig{})
	task := testTask()
	task.Payload = payload
	if err := h.ProcessTask(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("stdin differs from the payload: got %d bytes, want %d", len(got), len(payload))
	}
}

func TestExecIgnoresUnreadStdin(t *testing.T) {
	h := mustExec(t, []string{"true"}, ExecConfig{})
	task := testTask()
	task.Payload = make([]byte, 1<<20)
	if err := h.ProcessTask(context.Background(), task); err != nil {
		t.Fatalf("a command that ignores its stdin must still succeed: %v", err)
	}
}

func TestExecStdoutToDebugLog(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	long := strings.Repeat("x", maxOutputLine+100)
	h := mustExec(t, []string{"sh", "-c", `echo hello; echo world; printf '%s\n' "$1"; printf 'no newline'`, "sh", long}, ExecConfig{Logger: log})
	if err := h.ProcessTask(context.Background(), testTask()); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	for _, want := range []string{"line=hello", "line=world", "line=\"no newline\"", "truncated=true", "task_id=task-1"} {
		if !strings.Contains(s, want) {
			t.Errorf("log lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, long) {
		t.Error("an over-long line was logged whole")
	}
}

func TestExecNotFound(t *testing.T) {
	_, err := Exec([]string{"warren-no-such-command-xyz"}, ExecConfig{})
	if err == nil || !strings.Contains(err.Error(), "warren-no-such-command-xyz") {
		t.Fatalf("want an error naming the command, got %v", err)
	}
	if _, err := Exec(nil, ExecConfig{}); err == nil {
		t.Fatal("want an error for an empty argv")
	}
}

func TestExecStartFailureNamesCommand(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "gone.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := mustExec(t, []string{script}, ExecConfig{})
	if err := os.Remove(script); err != nil {
		t.Fatal(err)
	}
	err := h.ProcessTask(context.Background(), testTask())
	if err == nil || !strings.Contains(err.Error(), script) || retry.IsPermanent(err) {
		t.Fatalf("want a retryable error naming %s, got %v", script, err)
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	b.Write([]byte("abc"))
	if got := b.String(); got != "abc" {
		t.Fatalf("got %q", got)
	}
	b.Write([]byte("defghij"))
	if got := b.String(); got != "…cdefghij" {
		t.Fatalf("got %q", got)
	}
	b.Write([]byte("0123456789"))
	if got := b.String(); got != "…23456789" {
		t.Fatalf("got %q", got)
	}
	u := &tailBuffer{max: 4}
	u.Write([]byte("aé€")) // a, 2 bytes, 3 bytes: the tail starts mid-rune
	if got := u.String(); got != "…€" {
		t.Fatalf("got %q", got)
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(format, args...)
		}
		<-tick.C
	}
}

// alive reports whether pid is a running process (a zombie is not).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A NUL byte in a task's ID or type cannot reach a command's environment:
// the task fails permanently, with a clear cause, instead of failing every
// retry with exec's "environment variable contains NUL".
func TestExecTaskWithNULIsPermanent(t *testing.T) {
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	h := mustExec(t, []string{"sh", "-c", `touch "$1"`, "sh", ran}, ExecConfig{})
	for _, mod := range []func(*warren.Task){
		func(t *warren.Task) { t.ID = "id\x00x" },
		func(t *warren.Task) { t.Type = "type\x00" },
	} {
		task := testTask()
		mod(task)
		err := h.ProcessTask(context.Background(), task)
		if !retry.IsPermanent(err) || !errors.Is(err, ErrUnrunnable) {
			t.Errorf("task %q/%q: err = %v, want a permanent ErrUnrunnable", task.ID, task.Type, err)
		}
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("the command ran")
	}
}
