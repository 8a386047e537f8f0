//go:build integration

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/internal/testbroker"
)

// A --exec handler that runs warren enqueue itself: its enqueue goes where
// its own flags and the CLI's defaults say, never to the task's queue with
// the task's or the worker's attempt budget, and it sees no credential of
// the worker's environment.
func TestExecHandlerRunningWarrenDoesNotInheritItsTask(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	other := testbroker.Queue(t, conn)
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "url")
	if err := os.WriteFile(urlFile, []byte(testbroker.URL()), 0o600); err != nil {
		t.Fatal(err)
	}
	// Two enqueues: one with no --queue (the CLI's default: none, so a
	// usage error), one to another queue with no --max-attempts (the
	// default: no cap).
	script := `#!/bin/sh
dir="$(dirname "$0")"
cat >/dev/null
env > "$dir/env"
"$WARREN" --url-file "$dir/url" enqueue --type child --payload '{}' > "$dir/first.out" 2> "$dir/first.err"
echo $? > "$dir/first.code"
"$WARREN" --url-file "$dir/url" enqueue --queue "$OTHER" --type child --payload '{}' > "$dir/second.out" 2> "$dir/second.err"
echo $? > "$dir/second.code"
`
	h := filepath.Join(dir, "handler.sh")
	if err := os.WriteFile(h, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	parent := enqueue(t, q, "parent", "--max-attempts", "3")

	// The worker is configured from its environment, as the systemd unit
	// does it, next to other programs' credentials.
	w := startWarren(t, []string{
		"WARREN_QUEUE=" + q, "WARREN_MAX_ATTEMPTS=5", "WARREN_EXEC=" + h, "WARREN_LOG_FORMAT=json",
		"WARREN=" + bin, "OTHER=" + other,
		"AWS_SECRET_ACCESS_KEY=aws-s3cr3t", "DATABASE_URL=postgres://app:db-s3cr3t@db:5432/app",
		"GOOGLE_APPLICATION_CREDENTIALS=/etc/gcp.json", "SERVICE_API_KEY=api-s3cr3t",
	}, "worker")
	w.waitLog(30*time.Second, `"msg":"job succeeded"`, parent)
	w.signal(os.Interrupt)
	if code := w.wait(30 * time.Second); code != 0 {
		t.Fatalf("worker exit %d", code)
	}

	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	env := map[string]string{}
	for _, line := range strings.Split(read("env"), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	for k, v := range map[string]string{
		"WARREN_TASK_ID": parent, "WARREN_TASK_TYPE": "parent", "WARREN_TASK_QUEUE": q,
		"WARREN_TASK_ATTEMPT": "1", "WARREN_TASK_MAX_ATTEMPTS": "3", "WARREN_LOG_FORMAT": "json",
	} {
		if env[k] != v {
			t.Errorf("handler's %s = %q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"WARREN_QUEUE", "WARREN_MAX_ATTEMPTS", "WARREN_ATTEMPT", "WARREN_EXEC", "WARREN_URL",
		"AWS_SECRET_ACCESS_KEY", "DATABASE_URL", "GOOGLE_APPLICATION_CREDENTIALS", "SERVICE_API_KEY"} {
		if v, ok := env[k]; ok {
			t.Errorf("%s=%s reached the handler", k, v)
		}
	}
	if s := read("env"); strings.Contains(s, "s3cr3t") {
		t.Errorf("a secret reached the handler:\n%s", s)
	}

	// No --queue: the CLI's default is none, whatever the task's queue.
	if code := read("first.code"); code != "2" || !strings.Contains(read("first.err"), `"queue" not set`) {
		t.Errorf("enqueue without --queue in a handler: exit %s, stderr %q, stdout %q (want exit 2, queue not set)",
			code, read("first.err"), read("first.out"))
	}
	// With --queue: no cap from the task (3) or the worker (5).
	if code := read("second.code"); code != "0" {
		t.Fatalf("enqueue --queue %s in a handler: exit %s, stderr %q", other, code, read("second.err"))
	}
	child := getOne(t, conn, other, 10*time.Second)
	if child.MessageId != read("second.out") || child.Type != "child" {
		t.Errorf("child in %s is %q of type %q, want %q", other, child.MessageId, child.Type, read("second.out"))
	}
	if v, ok := child.Headers[warren.HeaderMaxAttempts]; ok {
		t.Errorf("the child task has %s = %v: inherited from its parent or the worker", warren.HeaderMaxAttempts, v)
	}
	if n := ready(t, conn, q); n != 0 {
		t.Errorf("%d tasks in the parent's queue %s after the handler ran: the handler's enqueue went there", n, q)
	}
}
