package admin

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
)

func sampleDeadLetters(now time.Time) []DeadLetter {
	return []DeadLetter{
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
	if err := WriteTable(&b, sampleDeadLetters(now), now); err != nil {
		t.Fatal(err)
	}
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

func TestShowDeadLetter(t *testing.T) {
	now := time.Date(2030, 1, 2, 15, 4, 5, 0, time.UTC)
	var b bytes.Buffer
	if err := sampleDeadLetters(now)[0].WriteText(&b, now); err != nil {
		t.Fatal(err)
	}
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

func TestWriteGroups(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	groups := []Group{
		{Key: "dial tcp <addr>: connection refused", Count: 2, ExampleID: "1", OldestFailure: t0, NewestFailure: t0.Add(time.Hour)},
		{Key: "(no error: delivery_limit)", Count: 1, ExampleID: "4"},
		{Key: "panic: <x>", Count: 1, ExampleID: "5", Example: "panic: boom\ngoroutine 1 [running]:"},
	}
	var b strings.Builder
	if err := WriteGroups(&b, ByError, groups); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "COUNT") || !strings.Contains(b.String(), "2      2025-03-01T12:00:00Z") {
		t.Errorf("table:\n%s", b.String())
	}
	out, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"first_failed_at": "2025-03-01T12:00:00Z"`) || strings.Count(string(out), "first_failed_at") != 1 {
		t.Errorf("json:\n%s", out)
	}
	if !strings.Contains(string(out), `"example": "panic: boom …"`) {
		t.Errorf("json: the example is not its first line:\n%s", out)
	}
}

func TestQueueInfoJSON(t *testing.T) {
	out, err := json.Marshal(QueueInfo{Name: "q", Exists: true, Ready: 3, Unacked: -1, DelayedHeld: 2, Paused: true})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"q","exists":true,"ready":3,"unacked":null,"consumers":0,"dead_letters":0,"delayed":0,"delayed_held":2,"paused":true}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

func TestWriteQueuesState(t *testing.T) {
	var b bytes.Buffer
	err := WriteQueues(&b, []QueueInfo{
		{Name: "a", Exists: true, Ready: 1, Unacked: -1, DelayedHeld: -1, Paused: true},
		{Name: "b", Exists: true, Unacked: 2, DelayedHeld: 0},
		{Name: "c", Unacked: -1, DelayedHeld: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := [][]string{
		{"QUEUE", "STATE", "READY", "UNACKED", "CONSUMERS", "DEAD", "DELAYED", "HELD"},
		{"a", "paused", "1", "?", "0", "0", "0", "?"},
		{"b", "running", "0", "2", "0", "0", "0", "0"},
		{"c", "-", "-", "-", "-", "0", "0", "?", "(no", "such", "queue)"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i, l := range lines {
		if got := strings.Fields(l); strings.Join(got, " ") != strings.Join(want[i], " ") {
			t.Errorf("line %d: got %q, want %q", i, got, want[i])
		}
	}
}

func TestDeadLetterJSON(t *testing.T) {
	now := time.Date(2030, 1, 2, 15, 4, 5, 0, time.UTC)
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(sampleDeadLetters(now)); err != nil {
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
}
