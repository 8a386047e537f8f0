package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
)

func sampleDeadLetters(now time.Time) []admin.DeadLetter {
	return []admin.DeadLetter{
		{
			ID: "0190-a", Type: "email:send", Queue: "emails", Payload: []byte(`{"to":"a@example.com"}`), ContentType: "application/json",
			Reason: warren.ReasonExhausted, Error: "worker: command \"sh\" exited with status 1: stderr: smtp down\nsecond line",
			Attempts: 3, MaxAttempts: 3, EnqueuedAt: now.Add(-26 * time.Hour), FailedAt: now.Add(-time.Hour), WorkerHost: "w1",
			Duration: 1500 * time.Millisecond,
			History:  []warren.Failure{{Attempt: 1, Error: "smtp down", FailedAt: now.Add(-2 * time.Hour), Worker: "w1", Duration: time.Second}},
			Headers: map[string]any{"tenant": "acme", "x-death": []any{amqp.Table{"reason": "rejected"}}, warren.HeaderAttempt: int32(3),
				"nested": amqp.Table{"when": now, "raw": []byte("hi")}},
		},
		{ID: "0190-b", Type: "thumb", Queue: "emails", Payload: []byte{0xff, 0x00}, Reason: warren.ReasonDeliveryLimit, FailedAt: now.Add(-90 * time.Second)},
		{ID: "0190-c", Type: "note", Queue: "emails", Payload: []byte("plain\ttext"), Error: strings.Repeat("é", 200)},
	}
}

func TestDeadLetterTable(t *testing.T) {
	now := time.Date(2030, 1, 2, 15, 4, 5, 0, time.UTC)
	var b bytes.Buffer
	writeDeadLetterTable(&b, sampleDeadLetters(now), now)
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 rows:\n%s", b.String())
	}
	header := lines[0]
	for _, col := range []string{"ID", "TYPE", "ATTEMPTS", "AGE", "FAILED-AT", "REASON", "ERROR"} {
		if !strings.Contains(header, col) {
			t.Errorf("header lacks %s: %q", col, header)
		}
	}
	// Aligned: every row's REASON starts where the header's does.
	col := strings.Index(header, "REASON")
	for _, l := range lines[1:] {
		if len([]rune(l)) <= col || !strings.HasPrefix(string([]rune(l)[col:]), strings.Fields(string([]rune(l)[col:]))[0]) || string([]rune(l)[col-1]) != " " {
			t.Errorf("row not aligned with REASON at %d: %q", col, l)
		}
	}
	row := lines[1]
	for _, want := range []string{"0190-a", "email:send", "3/3", "26h0m", "2030-01-02T14:04:05Z", "attempts_exhausted", "smtp down …"} {
		if !strings.Contains(row, want) {
			t.Errorf("row lacks %q: %q", want, row)
		}
	}
	if strings.Contains(b.String(), "second line") {
		t.Error("the error column shows more than the first line")
	}
	if !strings.Contains(lines[2], "delivery_limit") || !strings.Contains(lines[2], " - ") {
		t.Errorf("broker dead letter row: %q", lines[2])
	}
	if n := len([]rune(strings.Fields(lines[3])[len(strings.Fields(lines[3]))-1])); n > maxErrorColumn {
		t.Errorf("error cell has %d runes, want at most %d", n, maxErrorColumn)
	}
}

func TestDeadLetterJSON(t *testing.T) {
	now := time.Date(2030, 1, 2, 15, 4, 5, 0, time.UTC)
	var b bytes.Buffer
	if err := writeJSON(&b, deadLettersJSON(sampleDeadLetters(now))); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("not a JSON array: %v\n%s", err, b.String())
	}
	if len(got) != 3 {
		t.Fatalf("%d elements", len(got))
	}
	a := got[0]
	if a["id"] != "0190-a" || a["reason"] != "attempts_exhausted" || a["attempts"] != 3.0 || a["max_attempts"] != 3.0 || a["duration_ms"] != 1500.0 {
		t.Errorf("first: %v", a)
	}
	if p, ok := a["payload"].(map[string]any); !ok || p["to"] != "a@example.com" {
		t.Errorf("a JSON payload is embedded as JSON: %v", a["payload"])
	}
	if a["failed_at"] != "2030-01-02T14:04:05Z" {
		t.Errorf("failed_at %v", a["failed_at"])
	}
	h, _ := a["headers"].(map[string]any)
	if h["tenant"] != "acme" || h["x-death"] != nil || h[warren.HeaderAttempt] != nil {
		t.Errorf("headers: want the caller's only, got %v", h)
	}
	if n, _ := h["nested"].(map[string]any); n["raw"] != "hi" || n["when"] != "2030-01-02T15:04:05Z" {
		t.Errorf("nested header: %v", h["nested"])
	}
	if hist, _ := a["history"].([]any); len(hist) != 1 {
		t.Errorf("history: %v", a["history"])
	}
	if got[1]["payload_base64"] != "/wA=" || got[1]["payload"] != nil {
		t.Errorf("binary payload: %v", got[1])
	}
	if got[2]["payload_text"] != "plain\ttext" {
		t.Errorf("text payload: %v", got[2])
	}
	// An empty list is an empty array, not null.
	b.Reset()
	_ = writeJSON(&b, deadLettersJSON(nil))
	if strings.TrimSpace(b.String()) != "[]" {
		t.Errorf("empty list: %q", b.String())
	}
}

func TestShowDeadLetter(t *testing.T) {
	now := time.Date(2030, 1, 2, 15, 4, 5, 0, time.UTC)
	var b bytes.Buffer
	writeDeadLetter(&b, sampleDeadLetters(now)[0], now)
	for _, want := range []string{"ID:", "0190-a", "Reason:", "attempts_exhausted", "second line", "History:", "attempt 1", `{"to":"a@example.com"}`, "26h0m ago"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("show lacks %q:\n%s", want, b.String())
		}
	}
}

func TestAgeAndFirstLine(t *testing.T) {
	now := time.Now()
	for d, want := range map[time.Duration]string{
		5 * time.Second: "5s", 3 * time.Minute: "3m", 5*time.Hour + 7*time.Minute: "5h7m", 50 * time.Hour: "2d2h", -time.Second: "0s",
	} {
		if got := age(now.Add(-d), now); got != want {
			t.Errorf("age(%s) = %q, want %q", d, got, want)
		}
	}
	if age(time.Time{}, now) != "-" {
		t.Error("zero time")
	}
	if got := firstLine("  one\ntwo", 60); got != "one …" {
		t.Errorf("firstLine = %q", got)
	}
	if got := firstLine(strings.Repeat("x", 100), 10); got != strings.Repeat("x", 9)+"…" {
		t.Errorf("firstLine = %q", got)
	}
}

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

func TestDLQProgressBar(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	now := start
	bar := &dlqBar{w: &b, labels: barLabels{done: "replayed", skipped: "not selected", failed: "failed"}, start: start, now: func() time.Time { return now }}
	now = start.Add(10 * time.Second)
	bar.update(admin.Progress{Op: "replay", Total: 1000, Read: 250, Done: 240, Skipped: 7, Failed: 3})
	got := b.String()
	for _, want := range []string{"\r\x1b[K[======                  ]  25% 250/1000", "replayed 240, 7 not selected, 3 failed", "25/s", "ETA 30s"} {
		if !strings.Contains(got, want) {
			t.Errorf("bar %q lacks %q", got, want)
		}
	}
	b.Reset()
	now = now.Add(progressEvery / 2)
	bar.update(admin.Progress{Total: 1000, Read: 251})
	if b.Len() != 0 {
		t.Errorf("redrawn within %s: %q", progressEvery, b.String())
	}
	bar.width = 20
	now = now.Add(progressEvery)
	bar.update(admin.Progress{Total: 1000, Read: 260})
	if line := strings.TrimPrefix(b.String(), "\r\x1b[K"); len([]rune(line)) != 19 {
		t.Errorf("a bar on a 20-column terminal: %q", line)
	}
	b.Reset()
	bar.clear()
	bar.clear()
	if b.String() != "\r\x1b[K" {
		t.Errorf("clear wrote %q", b.String())
	}
}

// TestDLQNoProgressOffATerminal: without a terminal on stderr, a command
// writes no bar at all (stderr here is a buffer).
func TestDLQNoProgressOffATerminal(t *testing.T) {
	var errb bytes.Buffer
	a := &app{stderr: &errb}
	ctx, clear := a.withProgress(t.Context(), barLabels{done: "x"})
	if ctx != t.Context() {
		t.Error("a progress function was installed off a terminal")
	}
	clear()
	if errb.Len() != 0 {
		t.Errorf("wrote %q", errb.String())
	}
}
