//go:build integration

package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/fleet"
	"github.com/warrenq/warren/internal/testbroker"
)

// TestQueuePauseResume pauses and resumes a queue with the CLI, and reads
// its state back with "warren queues".
func TestQueuePauseResume(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, time.Minute)
	if err := broker.Declare(ctx, conn, broker.QueueOptions{}, q); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = broker.DeleteQueue(context.Background(), conn, fleet.Marker(q), broker.DeleteOptions{})
	})
	state := func() (table string, paused bool) {
		t.Helper()
		res := mustRun(t, warrenRun(t, 30*time.Second, nil, "queues", "--queue", q, "--output", "json"))
		var infos []struct {
			Name   string `json:"name"`
			Paused *bool  `json:"paused"`
		}
		if err := json.Unmarshal([]byte(res.stdout), &infos); err != nil || len(infos) != 1 || infos[0].Paused == nil {
			t.Fatalf("queues --output json: %v:\n%s", err, res.stdout)
		}
		return mustRun(t, warrenRun(t, 30*time.Second, nil, "queues", "--queue", q)).stdout, *infos[0].Paused
	}
	hasState := func(table, want string) bool {
		for _, line := range strings.Split(table, "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == q {
				return f[1] == want
			}
		}
		return false
	}
	if table, paused := state(); paused || !hasState(table, "running") {
		t.Fatalf("before pause: paused %v:\n%s", paused, table)
	}
	res := mustRun(t, warrenRun(t, 30*time.Second, nil, "queue", "pause", q))
	if strings.TrimSpace(res.stdout) != "paused "+q {
		t.Errorf("pause said %q", res.stdout)
	}
	if p, err := fleet.Paused(ctx, conn, q); err != nil || !p {
		t.Fatalf("not paused on the broker: %v %v", p, err)
	}
	if table, paused := state(); !paused || !hasState(table, "paused") {
		t.Fatalf("after pause: paused %v:\n%s", paused, table)
	}
	mustRun(t, warrenRun(t, 30*time.Second, nil, "queue", "pause", q)) // again: no error
	res = mustRun(t, warrenRun(t, 30*time.Second, nil, "queue", "resume", q))
	if strings.TrimSpace(res.stdout) != "resumed "+q {
		t.Errorf("resume said %q", res.stdout)
	}
	if table, paused := state(); paused || !hasState(table, "running") {
		t.Fatalf("after resume: paused %v:\n%s", paused, table)
	}
	mustRun(t, warrenRun(t, 30*time.Second, nil, "queue", "resume", q)) // again: no error
}

func TestQueuePauseExitCodes(t *testing.T) {
	conn := testbroker.Dial(t)
	missing := testbroker.Queue(t, conn) // never declared
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"queue", "pause"}, 2, "accepts 1 arg"},
		{[]string{"queue", "resume"}, 2, "accepts 1 arg"},
		{[]string{"queue", "pause", "a", "b"}, 2, "accepts 1 arg"},
		{[]string{"queue", "pause", "warren.x"}, 2, "reserved"},
		{[]string{"queue", "resume", "bad name"}, 2, "not allowed"},
		{[]string{"queue"}, 0, "pause"}, // help
		{[]string{"queue", "pause", missing}, 1, "not found"},
		{[]string{"queue", "resume", missing}, 1, "not found"},
	} {
		res := warrenRun(t, 30*time.Second, nil, c.args...)
		if res.code != c.code || !strings.Contains(res.stdout+res.stderr, c.says) {
			t.Errorf("warren %s: exit %d, want %d saying %q; stdout:\n%s\nstderr:\n%s", strings.Join(c.args, " "), res.code, c.code, c.says, res.stdout, res.stderr)
		}
	}
	if p, err := fleet.Paused(testbroker.Context(t, 10*time.Second), conn, missing); err != nil || p {
		t.Errorf("pausing a missing queue left a marker: %v %v", p, err)
	}
}
