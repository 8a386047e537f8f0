package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

func TestParseJobLine(t *testing.T) {
	j, err := parseJobLine([]byte(`{"type":"send","payload":{"to":"a@example.com"},"id":"job-1","delay":"5s","max_attempts":3,"queue":"other"}` + "\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := jobLine{Type: "send", Payload: []byte(`{"to":"a@example.com"}`), ID: "job-1", Queue: "other",
		Delay: 5 * time.Second, HasDelay: true, MaxAttempts: 3, HasMaxAttempts: true}
	if j.Type != want.Type || string(j.Payload) != string(want.Payload) || j.ID != want.ID || j.Queue != want.Queue ||
		j.Delay != want.Delay || !j.HasDelay || j.MaxAttempts != 3 || !j.HasMaxAttempts {
		t.Fatalf("got %+v, want %+v", j, want)
	}

	// Only the type; every payload kind is kept as written.
	for _, payload := range []string{`null`, `"text"`, `42`, `[1, 2]`, `{"nested": {"deep": true}}`, `false`} {
		j, err := parseJobLine([]byte(`{"type":"t","payload":` + payload + `}`))
		if err != nil {
			t.Fatalf("payload %s: %v", payload, err)
		}
		if string(j.Payload) != payload {
			t.Errorf("payload %s kept as %s", payload, j.Payload)
		}
	}
	j, err = parseJobLine([]byte(`{}`))
	if err != nil || j.Payload != nil || j.HasDelay || j.HasMaxAttempts || j.Type != "" {
		t.Fatalf("empty object: %+v, %v", j, err)
	}
	j, err = parseJobLine([]byte(`{"type":"t","max_attempts":0,"delay":"0s"}`))
	if err != nil || !j.HasMaxAttempts || !j.HasDelay {
		t.Fatalf("explicit zeros must be kept: %+v, %v", j, err)
	}
}

func TestParseJobLineErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "blank"},
		{"  \t", "blank"},
		{`[1]`, "want a JSON object"},
		{`"x"`, "want a JSON object"},
		{`{"type":`, "invalid JSON"},
		{`{"type":"t"} {"type":"u"}`, "data after the object"},
		{`{"type":"t"} x`, "data after the object"},
		{`{"type":"t","paylod":{}}`, `unknown field "paylod"`},
		{`{"type":5}`, "invalid JSON"},
		{`{"type":""}`, "type: want 1 to 255 bytes"},
		{`{"type":"` + strings.Repeat("t", 256) + `"}`, "type: want 1 to 255 bytes"},
		{`{"type":"t","id":""}`, "id: want 1 to 255 bytes"},
		{`{"type":"t","delay":"soon"}`, "delay:"},
		{`{"type":"t","delay":5}`, "invalid JSON"},
		{`{"type":"t","delay":"-1s"}`, "delay cannot be negative"},
		{`{"type":"t","delay":"100000h"}`, "exceeds the maximum"},
		{`{"type":"t","max_attempts":-1}`, "max_attempts"},
		{`{"type":"t","max_attempts":1.5}`, "invalid JSON"},
		{`{"type":"t","max_attempts":99999999999}`, "max_attempts"},
		{`{"type":"t","queue":"amq.nope"}`, "queue:"},
		{`{"type":"t","queue":"a b"}`, "queue:"},
		{`{"type":"","delay":"x"}`, "; "}, // every problem, on one line
	}
	for _, tt := range tests {
		_, err := parseJobLine([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseJobLine(%q) error = %v, want one containing %q", tt.in, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("parseJobLine(%q) error spans lines: %q", tt.in, err)
		}
	}
	if _, err := parseJobLine([]byte("   ")); !errors.Is(err, errBlankLine) {
		t.Errorf("blank line: %v, want errBlankLine", err)
	}
}

func FuzzParseJobLine(f *testing.F) {
	for _, s := range []string{
		`{"type":"send","payload":{"to":"a@example.com"},"id":"job-1","delay":"5s","max_attempts":3,"queue":"other"}`,
		`{"type":"t"}`,
		`{"payload":null}`,
		`{"type":"t","payload":[1,2,{"a":"b"}]}`,
		`{"type":"t","delay":"1h2m3.5s"}`,
		`{"type":"t","max_attempts":-1}`,
		`{"type":"t","queue":"a.b:c-d_e"}`,
		`{"type":"t"} trailing`,
		`{"type":"\u0000"}`,
		`{`, `}`, `[]`, ``, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		j, err := parseJobLine(line)
		if err != nil {
			return
		}
		if j.Payload != nil && !json.Valid(j.Payload) {
			t.Fatalf("accepted payload %q is not JSON", j.Payload)
		}
		if j.Delay < 0 || j.Delay > broker.MaxDelay {
			t.Fatalf("accepted delay %s", j.Delay)
		}
		if j.MaxAttempts < 0 {
			t.Fatalf("accepted max_attempts %d", j.MaxAttempts)
		}
		if j.Queue != "" {
			if err := warren.ValidateQueueName(j.Queue); err != nil {
				t.Fatalf("accepted queue %q: %v", j.Queue, err)
			}
		}
		if len(j.Type) > 255 || len(j.ID) > 255 {
			t.Fatalf("accepted type or id over 255 bytes")
		}
	})
}
