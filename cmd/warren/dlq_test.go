package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/admin"
)

func TestConfirm(t *testing.T) {
	for in, want := range map[string]bool{"y\n": true, "YES\n": true, "n\n": false, "\n": false, "": false, "yep\n": false} {
		var w bytes.Buffer
		got, err := confirm(strings.NewReader(in), &w, "sure? ")
		if err != nil || got != want || w.String() != "sure? " {
			t.Errorf("confirm(%q) = %v, %v (asked %q)", in, got, err, w.String())
		}
	}
}

func TestMissingIDs(t *testing.T) {
	if err := missingIDs(nil, nil, "q"); err != nil {
		t.Fatal(err)
	}
	if err := missingIDs([]string{"a", "b"}, []string{"b"}, "q"); err == nil || !strings.Contains(err.Error(), "1 task not in q.dlq: a") {
		t.Fatalf("got %v", err)
	}
}

func TestDLQUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "purge", "--queue", "q", "--all"}, "refusing to purge without --yes"},
		{[]string{"dlq", "purge", "--queue", "q", "--yes"}, "select dead letters with --id"},
		{[]string{"dlq", "purge", "--queue", "q", "--all", "--id", "x", "--yes"}, "--all selects everything"},
		{[]string{"dlq", "replay", "--queue", "q"}, "select dead letters with --id"},
		{[]string{"dlq", "replay", "--all"}, `required flag(s) "queue" not set`},
		{[]string{"dlq", "replay", "--queue", "q", "--all", "--to-queue", "amq.x"}, "invalid queue name"},
		{[]string{"dlq", "list", "--queue", "q", "--output", "yaml"}, "--output"},
		{[]string{"dlq", "list", "--queue", "q", "--limit", "-1"}, "--limit"},
		{[]string{"dlq", "list", "--queue", "q", "--error", "("}, "--error"},
		{[]string{"dlq", "list", "--queue", "q", "--since", "yesterday"}, "--since"},
		{[]string{"dlq", "list", "--queue", "q", "--since", "1h", "--until", "2h"}, "must be before"},
		{[]string{"dlq", "list", "--queue", "q", "--group-by", "reason"}, "--group-by"},
		{[]string{"dlq", "replay", "--queue", "q", "--all", "--error", "x"}, "--all selects everything"},
		{[]string{"dlq", "purge", "--queue", "q", "--until", "2h", "--limit", "-3", "--yes"}, "--limit"},
		{[]string{"dlq", "list", "--queue", "bad name"}, "invalid queue name"},
		{[]string{"dlq", "show", "--queue", "q"}, `required flag(s) "id" not set`},
		{[]string{"dlq", "export"}, `required flag(s) "queue" not set`},
		{[]string{"dlq", "export", "--queue", "q", "--remove"}, "select dead letters with --id"},
		{[]string{"dlq", "export", "--queue", "q", "--remove", "--all", "--type", "a"}, "--all selects everything"},
		{[]string{"dlq", "export", "--queue", "q", "--output", "json"}, "give --file F"},
		{[]string{"dlq", "export", "--queue", "q", "--remove", "--all"}, "--remove needs the records in a file"},
		{[]string{"dlq", "export", "--queue", "q", "--output", "xml", "--file", "x"}, "--output"},
		{[]string{"dlq", "export", "--queue", "q", "--file", "dlq_test.go"}, "--file dlq_test.go exists"},
		{[]string{"dlq", "export", "--queue", "q", "--since", "soon"}, "--since"},
		{[]string{"dlq", "import"}, "give --queue Q (imports into Q.dlq) or --to-queue QUEUE"},
		{[]string{"dlq", "import", "--queue", "q", "--to-queue", "hold"}, "cannot be used together"},
		{[]string{"dlq", "import", "--queue", "q", "--file", "no-such-file.ndjson"}, "--file"},
		{[]string{"dlq", "import", "--queue", "q", "--output", "yaml"}, "--output"},
		{[]string{"dlq", "import", "--to-queue", "amq.q"}, "invalid queue name"},
		{[]string{"queues"}, `required flag(s) "queue" not set`},
		{[]string{"queues", "--queue", "q", "--output", "xml"}, "--output"},
	}
	for _, tt := range tests {
		r := runCLI(t, nil, "y\n", append([]string{"--url", deadURL}, tt.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("warren %s: exit %d, want 2 with %q; stderr:\n%s", strings.Join(tt.args, " "), r.code, tt.want, r.stderr)
		}
	}
	// WARREN_YES and WARREN_ALL are not read: a purge is never confirmed by the environment.
	r := runCLI(t, map[string]string{"WARREN_YES": "true", "WARREN_ALL": "true", "WARREN_URL": deadURL}, "", "dlq", "purge", "--queue", "q")
	if r.code != exitUsage || !strings.Contains(r.stderr, "select dead letters") {
		t.Errorf("purge confirmed from the environment: exit %d\n%s", r.code, r.stderr)
	}
	// Nor are the other selectors: WARREN_TYPE, set for enqueue, must not
	// select what a purge or replay removes.
	for _, args := range [][]string{{"purge", "--yes"}, {"replay"}} {
		cmd := args[0]
		r := runCLI(t, map[string]string{"WARREN_TYPE": "email:send", "WARREN_LIMIT": "5", "WARREN_ERROR": "x", "WARREN_URL": deadURL}, "", append([]string{"dlq", cmd, "--queue", "q"}, args[1:]...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "select dead letters") {
			t.Errorf("dlq %s took its selector from the environment: exit %d\n%s", cmd, r.code, r.stderr)
		}
	}
}

func TestDLQProgressLine(t *testing.T) {
	labels := barLabels{done: "replayed", skipped: "not selected", failed: "failed"}
	got := labels.line(admin.Progress{Op: "replay", Total: 1000, Read: 250, Done: 240, Skipped: 7, Failed: 3}, 10*time.Second)
	for _, want := range []string{"[======                  ]  25% 250/1000", "replayed 240, 7 not selected, 3 failed", "25/s", "ETA 30s"} {
		if !strings.Contains(got, want) {
			t.Errorf("bar %q lacks %q", got, want)
		}
	}
	if got := (barLabels{done: "purged"}).line(admin.Progress{Read: 5, Done: 5, Skipped: 2}, 0); got != "5  purged 5" {
		t.Errorf("without a total or a skipped label: %q", got)
	}
}

// TestDLQPassOffATerminal: without a terminal on stderr, a pass draws no
// bar at all (stderr here is a buffer); a busy dead-letter queue is said
// plainly and still matches admin.ErrBusy.
func TestDLQPassOffATerminal(t *testing.T) {
	var errb bytes.Buffer
	a := &app{stderr: &errb}
	err := a.pass(t.Context(), barLabels{done: "x"}, false, "q.dlq", func(ctx context.Context) error {
		return fmt.Errorf("admin: %w", admin.ErrBusy)
	})
	if !errors.Is(err, admin.ErrBusy) || !strings.Contains(err.Error(), "another replay or purge is running on q.dlq") {
		t.Errorf("busy: %v", err)
	}
	if errb.Len() != 0 {
		t.Errorf("wrote %q", errb.String())
	}
}
