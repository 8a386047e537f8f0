package main

import (
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestCommandEnv(t *testing.T) {
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, lookupEnv: func(string) (string, bool) { return "", false }}
	got := commandEnv(a.rootCmd())
	// What picks a task, its queue and its budget, for enqueue and worker.
	for _, want := range []string{"WARREN_QUEUE", "WARREN_MAX_ATTEMPTS", "WARREN_TYPE", "WARREN_PAYLOAD", "WARREN_DELAY", "WARREN_EXEC", "WARREN_CONCURRENCY", "WARREN_FROM_FILE"} {
		if !slices.Contains(got, want) {
			t.Errorf("commandEnv lacks %s: a command run by a worker would inherit it", want)
		}
	}
	// How to reach the broker and how to log are inherited.
	for _, keep := range []string{"WARREN_URL", "WARREN_TLS_CA", "WARREN_LOG_LEVEL", "WARREN_LOG_FORMAT", "WARREN_CONNECT_TIMEOUT", "WARREN_HELP"} {
		if slices.Contains(got, keep) {
			t.Errorf("commandEnv holds the global %s", keep)
		}
	}
	for _, n := range got {
		if taskEnvVar(n) {
			t.Errorf("a flag's variable %s starts with the task prefix", n)
		}
	}
}

// No flag is ever read from a task's variable: a warren run by an --exec
// command must not take its task's queue or budget from WARREN_TASK_*.
func TestTaskVariablesNeverBindFlags(t *testing.T) {
	a := &app{lookupEnv: func(k string) (string, bool) {
		return map[string]string{"WARREN_TASK_QUEUE": "tasks-queue", "WARREN_TASK_MAX_ATTEMPTS": "3", "WARREN_PLAIN": "p"}[k], strings.HasPrefix(k, "WARREN_")
	}}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	queue := fs.String("task-queue", "default", "")
	attempts := fs.Int("task-max-attempts", 0, "")
	plain := fs.String("plain", "", "")
	if err := a.bindEnv(fs); err != nil {
		t.Fatal(err)
	}
	if *queue != "default" || *attempts != 0 {
		t.Errorf("flags read from WARREN_TASK_*: task-queue=%q task-max-attempts=%d", *queue, *attempts)
	}
	if *plain != "p" {
		t.Errorf("plain = %q: bindEnv reads no variable at all", *plain)
	}
	// Every real flag is safe too.
	r := runCLI(t, map[string]string{"WARREN_TASK_QUEUE": "tq", "WARREN_TASK_TYPE": "tt"}, "", "--url", deadURL, "enqueue", "--payload", "{}")
	if r.code != exitUsage || !strings.Contains(r.stderr, `"queue" not set`) {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}
