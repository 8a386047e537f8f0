//go:build integration

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// rawControl returns a description of the first byte sequence in out that
// a terminal would act on: a C0 control other than newline, DEL, a C1
// control, a bidi or zero-width format character, or invalid UTF-8.
func rawControl(out string) string {
	for i := 0; i < len(out); {
		r, size := utf8.DecodeRuneInString(out[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return "invalid UTF-8 at byte " + itoa(i)
		case r == '\n':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			return "control " + itoa(int(r)) + " at byte " + itoa(i)
		case r == 0x200b || r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0xfeff:
			return "format character at byte " + itoa(i)
		}
		i += size
	}
	return ""
}

func itoa(n int) string { return strconv.Itoa(n) }

// A task whose ID, type and handler stderr carry terminal escapes (ESC
// sequences, \r, \n, NUL, bidi overrides and isolates, zero-width
// characters, invalid UTF-8) goes through a real worker to the dead-letter
// queue; dlq list, list --group-by, show and replay --dry-run print none of
// those bytes raw, while their JSON output keeps the values intact.
func TestHostileStringsNeverReachTheTerminalRaw(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	id := "evil-\x1b[2J\x1b[H\r\x00\u202e\u200b\xff-" + q
	typ := "type\x1b]0;pwned\x07\u2066\n"
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if r := warrenRun(t, 30*time.Second, nil, "topology", "declare", "--queue", q); r.code != 0 {
		t.Fatalf("topology declare: exit %d\n%s", r.code, r.stderr)
	}
	// The first cannot reach a command (a NUL in its ID): it is
	// dead-lettered unrun. The second runs, and its handler's stderr is
	// hostile too.
	id2 := "evil2-\x1b[H\r\u202e\u200b-" + q
	for _, tid := range []string{id, id2} {
		msg := broker.Encode(&warren.Task{ID: tid, Type: typ, Queue: q, Payload: []byte("payload \x1b[5m\u202e\r\n"), Attempt: 1, EnqueuedAt: time.Now()})
		if err := ch.Publish("", q, true, false, msg); err != nil {
			t.Fatal(err)
		}
	}
	_ = ch.Close()

	dir := t.TempDir()
	h := filepath.Join(dir, "h.sh")
	// stderr: colour, carriage return, NUL, U+202E, and a clear screen.
	if err := os.WriteFile(h, []byte("#!/bin/sh\ncat >/dev/null\nprintf 'bad \\033[31mred\\r\\000\\342\\200\\256 rtl\\033[2J\\n' >&2\nexit 65\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	w := startWarren(t, nil, "--log-format", "json", "worker", "--queue", q, "--exec", h)
	dlq := warren.DeadLetterQueue(q)
	eventually(t, 20*time.Second, func() bool { return ready(t, conn, dlq) == 2 }, "the tasks were not dead-lettered")
	w.signal(os.Interrupt)
	if code := w.wait(30 * time.Second); code != 0 {
		t.Fatalf("worker exit %d", code)
	}
	// Its JSON log names both tasks, escaped: no bidi or zero-width
	// character raw (encoding/json alone would write them so).
	if where := rawControl(w.log.String()); where != "" {
		t.Errorf("the worker's JSON log holds a raw %s", where)
	}

	for _, args := range [][]string{
		{"dlq", "list", "--queue", q},
		{"dlq", "list", "--queue", q, "--group-by", "error"},
		{"dlq", "list", "--queue", q, "--group-by", "type"},
		{"dlq", "show", "--queue", q, "--id", id2},
		{"dlq", "replay", "--queue", q, "--all", "--dry-run"},
	} {
		r := warrenRun(t, 30*time.Second, nil, args...)
		name := strings.Join(args[:3], " ")
		if r.code != 0 {
			t.Fatalf("%s: exit %d\n%q", name, r.code, r.stderr)
		}
		if where := rawControl(r.stdout); where != "" {
			t.Errorf("%s prints a raw %s:\n%q", name, where, r.stdout)
		}
		if where := rawControl(r.stderr); where != "" {
			t.Errorf("%s prints a raw %s on stderr:\n%q", name, where, r.stderr)
		}
		if !strings.Contains(r.stdout, `\x1b[`) {
			t.Errorf("%s does not show the escapes escaped:\n%s", name, r.stdout)
		}
	}

	// JSON stays JSON, with the values intact.
	r := warrenRun(t, 30*time.Second, nil, "dlq", "show", "--queue", q, "--id", id2, "--output", "json")
	var got struct {
		ID    string `json:"id"`
		Type  string `json:"type"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("dlq show --output json: %v\n%q", err, r.stdout)
	}
	// encoding/json escapes C0 controls and invalid UTF-8; it writes format
	// characters (bidi, zero-width) as they are, which JSON allows.
	if strings.ContainsFunc(r.stdout, func(r rune) bool { return r < 0x20 && r != '\n' || r == utf8.RuneError }) {
		t.Errorf("JSON output holds a raw control byte:\n%q", r.stdout)
	}
	if got.Type != typ || !strings.Contains(got.Error, "\x1b[31mred\r") {
		t.Errorf("JSON changed the values: type %q, error %q", got.Type, got.Error)
	}
	if got.ID != id2 {
		t.Errorf("JSON id %q", got.ID)
	}

	// An error that quotes the input is escaped too.
	r = warrenRun(t, 30*time.Second, nil, "dlq", "replay", "--queue", q, "--id", "missing\x1b[2J")
	if r.code != 1 || rawControl(r.stderr) != "" {
		t.Errorf("replay of a missing hostile ID: exit %d, stderr %q", r.code, r.stderr)
	}
}
