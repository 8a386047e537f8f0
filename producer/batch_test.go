package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

func TestParseLine(t *testing.T) {
	j, err := parseLine([]byte(`{"type":"send","payload":{"to":"a@example.com"},"id":"job-1","delay":"5s","max_attempts":3,"queue":"other"}` + "\r\n"))
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
		j, err := parseLine([]byte(`{"type":"t","payload":` + payload + `}`))
		if err != nil {
			t.Fatalf("payload %s: %v", payload, err)
		}
		if string(j.Payload) != payload {
			t.Errorf("payload %s kept as %s", payload, j.Payload)
		}
	}
	j, err = parseLine([]byte(`{}`))
	if err != nil || j.Payload != nil || j.HasDelay || j.HasMaxAttempts || j.Type != "" {
		t.Fatalf("empty object: %+v, %v", j, err)
	}
	j, err = parseLine([]byte(`{"type":"t","max_attempts":0,"delay":"0s"}`))
	if err != nil || !j.HasMaxAttempts || !j.HasDelay {
		t.Fatalf("explicit zeros must be kept: %+v, %v", j, err)
	}
}

func TestParseLineErrors(t *testing.T) {
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
		_, err := parseLine([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseLine(%q) error = %v, want one containing %q", tt.in, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("parseLine(%q) error spans lines: %q", tt.in, err)
		}
	}
	if _, err := parseLine([]byte("   ")); !errors.Is(err, errBlankLine) {
		t.Errorf("blank line: %v, want errBlankLine", err)
	}
}

func FuzzParseLine(f *testing.F) {
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
		j, err := parseLine(line)
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

func TestReadLines(t *testing.T) {
	long := strings.Repeat("x", defaultMaxLineLen+10)
	in := "one\r\n\n" + long + "\nlast without newline"
	out := make(chan inputLine, 10)
	if err := readLines(context.Background(), strings.NewReader(in), out, defaultMaxLineLen); err != nil {
		t.Fatal(err)
	}
	var got []inputLine
	for l := range out {
		got = append(got, l)
	}
	if len(got) != 4 {
		t.Fatalf("got %d lines, want 4", len(got))
	}
	if string(got[0].data) != "one\r\n" || got[0].no != 1 || got[1].no != 2 || string(got[1].data) != "\n" {
		t.Errorf("lines 1-2: %+v", got[:2])
	}
	if !got[2].tooLong || got[2].data != nil || got[2].size != int64(len(long)+1) {
		t.Errorf("line 3: tooLong=%v len=%d size=%d", got[2].tooLong, len(got[2].data), got[2].size)
	}
	if string(got[3].data) != "last without newline" || got[3].no != 4 {
		t.Errorf("line 4: %+v", got[3])
	}
	var total int64
	for _, l := range got {
		total += l.size
	}
	if total != int64(len(in)) {
		t.Errorf("sizes add up to %d, want %d", total, len(in))
	}
}

// streamed runs EnqueueStream over in and returns what OnLine was told.
func streamed(t *testing.T, p *Producer, in string, cfg StreamConfig) ([]LineResult, []StreamTotals, StreamTotals, error) {
	t.Helper()
	var (
		lines  []LineResult
		totals []StreamTotals
	)
	cfg.OnLine = func(r LineResult) { lines = append(lines, r) }
	cfg.OnBatch = func(s StreamTotals) { totals = append(totals, s) }
	tot, err := p.EnqueueStream(testCtx(t), strings.NewReader(in), cfg)
	return lines, totals, tot, err
}

func TestEnqueueStream(t *testing.T) {
	l := &fakeLink{missing: map[string]bool{"typo": true}}
	p := newFake(t, l, Config{MaxPayloadSize: 100})
	in := strings.Join([]string{
		`{"type":"a","payload":{"i":1}}`, // 1
		``,                               // 2: blank, skipped
		`{"payload":{}}`,                 // 3: the default type
		`{"type":"c","queue":"other","id":"fixed","delay":"5s","max_attempts":2}`, // 4
		`{"type":"d","queue":"typo"}`,                               // 5: a missing queue
		`{"type":"e","queue":"typo"}`,                               // 6: checked once
		`{"type":"f","payload":{}`,                                  // 7: malformed
		`{"type":"g","payload":"` + strings.Repeat("x", 200) + `"}`, // 8: too large
		`{"type":"h"}`,                                              // 9, without a newline
	}, "\n")
	lines, totals, tot, err := streamed(t, p, in, StreamConfig{Queue: "q", Type: "dflt", BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if tot.Enqueued != 4 || tot.Failed != 4 || tot.Bytes != int64(len(in)) {
		t.Errorf("totals %+v, want 4 enqueued, 4 failed, %d bytes", tot, len(in))
	}
	if len(totals) == 0 || totals[len(totals)-1] != tot {
		t.Errorf("OnBatch saw %+v, last should be %+v", totals, tot)
	}
	var nos []int
	for _, r := range lines {
		nos = append(nos, r.Line)
	}
	if fmt.Sprint(nos) != "[1 3 4 5 6 7 8 9]" {
		t.Fatalf("lines reported %v, want every non-blank line in order", nos)
	}
	byLine := map[int]LineResult{}
	for _, r := range lines {
		byLine[r.Line] = r
	}
	for _, n := range []int{1, 3, 4, 9} {
		if r := byLine[n]; r.Err != nil || r.ID == "" {
			t.Errorf("line %d: %+v, want enqueued with an ID", n, r)
		}
	}
	if r := byLine[4]; r.ID != "fixed" || r.Queue != "other" {
		t.Errorf("line 4: %+v", r)
	}
	for _, n := range []int{5, 6} {
		if r := byLine[n]; !errors.Is(r.Err, ErrUnroutable) || r.Queue != "typo" {
			t.Errorf("line %d: %+v, want ErrUnroutable for queue typo", n, r)
		}
	}
	if r := byLine[7]; r.Err == nil || !strings.Contains(r.Err.Error(), "invalid JSON") {
		t.Errorf("line 7: %v", r.Err)
	}
	if r := byLine[8]; !errors.Is(r.Err, ErrPayloadTooLarge) {
		t.Errorf("line 8: %v, want ErrPayloadTooLarge", r.Err)
	}
	if n := strings.Count(fmt.Sprint(l.inspected), "typo"); n != 1 {
		t.Errorf("inspected %v: the missing queue %d times, want once", l.inspected, n)
	}
	types := map[string]string{}
	for _, s := range l.published() {
		types[s.msg.Type] = s.key
	}
	if len(types) != 4 || types["dflt"] != "q" || types["a"] != "q" || types["h"] != "q" {
		t.Errorf("published %v", types)
	}
}

func TestEnqueueStreamLineLimit(t *testing.T) {
	p := newFake(t, &fakeLink{}, Config{MaxPayloadSize: -1})
	in := `{"type":"a","payload":"` + strings.Repeat("x", 100) + `"}` + "\n" + `{"type":"b"}`
	lines, _, tot, err := streamed(t, p, in, StreamConfig{Queue: "q", MaxLineLen: 64})
	if err != nil || tot.Enqueued != 1 || tot.Failed != 1 {
		t.Fatalf("totals %+v, err %v", tot, err)
	}
	if lines[0].Err == nil || !strings.Contains(lines[0].Err.Error(), "longer than 64 bytes") {
		t.Errorf("line 1: %v", lines[0].Err)
	}
	if _, _, _, err := streamed(t, p, `{"payload":{}}`, StreamConfig{Queue: "q"}); err != nil {
		t.Fatal(err)
	}
}

func TestEnqueueStreamNoType(t *testing.T) {
	p := newFake(t, &fakeLink{}, Config{})
	lines, _, tot, err := streamed(t, p, `{"payload":{}}`, StreamConfig{Queue: "q"})
	if err != nil || tot.Failed != 1 || !strings.Contains(lines[0].Err.Error(), `no "type"`) {
		t.Fatalf("%+v, %+v, %v", lines, tot, err)
	}
}

func TestEnqueueStreamEndsWithCtx(t *testing.T) {
	p := newFake(t, &fakeLink{}, Config{})
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(testCtx(t))
	first := make(chan struct{})
	cfg := StreamConfig{Queue: "q", Type: "t", Linger: time.Millisecond,
		OnBatch: func(StreamTotals) { close(first) }}
	go func() {
		_, _ = io.WriteString(pw, "{}\n")
		<-first
		cancel()
	}()
	tot, err := p.EnqueueStream(ctx, pr, cfg)
	if !errors.Is(err, context.Canceled) || tot.Enqueued != 1 {
		t.Fatalf("totals %+v, err %v; want 1 enqueued and context.Canceled", tot, err)
	}
}

func TestEnqueueStreamReadError(t *testing.T) {
	p := newFake(t, &fakeLink{}, Config{})
	boom := errors.New("disk on fire")
	_, _, _, err := streamed(t, p, "", StreamConfig{Queue: "q"})
	if err != nil {
		t.Fatal(err)
	}
	tot, err := p.EnqueueStream(testCtx(t), io.MultiReader(strings.NewReader("{\"type\":\"t\"}\n"), iotest.ErrReader(boom)), StreamConfig{Queue: "q"})
	if !errors.Is(err, boom) || tot.Enqueued != 1 {
		t.Fatalf("totals %+v, err %v; want 1 enqueued and the read error", tot, err)
	}
}

func TestEnqueueStreamRefusesABadConfig(t *testing.T) {
	p := newFake(t, &fakeLink{}, Config{})
	_, err := p.EnqueueStream(testCtx(t), strings.NewReader("{}"), StreamConfig{Queue: "amq.x", InFlight: -1})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Queue") || !strings.Contains(err.Error(), "InFlight") {
		t.Errorf("err = %v, want ErrInvalid naming Queue and InFlight", err)
	}
}
