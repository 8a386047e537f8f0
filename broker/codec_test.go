package broker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
)

func delivery(p amqp.Publishing) *amqp.Delivery {
	return &amqp.Delivery{
		Headers: p.Headers, ContentType: p.ContentType, DeliveryMode: p.DeliveryMode,
		MessageId: p.MessageId, Type: p.Type, Timestamp: p.Timestamp, Body: p.Body,
		CorrelationId: p.CorrelationId, AppId: p.AppId,
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_123)
	in := &warren.Task{
		ID: "0190-id", Type: "email:send", Queue: "emails", Payload: []byte(`{"to":"a@b"}`),
		Attempt: 3, MaxAttempts: 7, EnqueuedAt: at, LastError: "smtp: 421",
		History: []warren.Failure{{Attempt: 1, Error: "e1", FailedAt: at.Add(time.Second), Worker: "w1", Duration: 5 * time.Millisecond}},
		Headers: map[string]any{"tenant": "acme"},
	}
	msg := Encode(in)
	if msg.DeliveryMode != amqp.Persistent || msg.ContentType != DefaultContentType || msg.MessageId != in.ID || msg.Type != in.Type {
		t.Fatalf("properties: %+v", msg)
	}
	if err := msg.Headers.Validate(); err != nil {
		t.Fatalf("headers not valid AMQP: %v", err)
	}
	out, err := Decode(delivery(msg), "other")
	if err != nil {
		t.Fatal(err)
	}
	want := *in
	want.Queue = "other" // the consuming queue, not the encoded one
	want.ContentType = DefaultContentType
	if diff := cmp.Diff(&want, out, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestEncodeLeavesOutDefaultsOfAFirstEnqueue(t *testing.T) {
	msg := Encode(&warren.Task{ID: "id", Type: "t", Queue: "q", Attempt: 1})
	for _, k := range []string{warren.HeaderAttempt, warren.HeaderQueue, warren.HeaderMaxAttempts, warren.HeaderLastError, warren.HeaderHistory} {
		if _, ok := msg.Headers[k]; ok {
			t.Errorf("first enqueue writes %s", k)
		}
	}
	back, err := Decode(delivery(msg), "q")
	if err != nil || back.Attempt != 1 || back.Queue != "q" {
		t.Errorf("decoded %+v, %v", back, err)
	}
}

func TestDecodeToleratesForeignIntegerTypes(t *testing.T) {
	for _, v := range []any{int8(2), int16(2), int32(2), int64(2), uint8(2), float64(2), "2", int(2)} {
		d := &amqp.Delivery{MessageId: "id", Type: "t", Headers: amqp.Table{warren.HeaderAttempt: v}}
		task, err := Decode(d, "q")
		if err != nil || task.Attempt != 2 {
			t.Errorf("attempt as %T: attempt=%d err=%v", v, task.Attempt, err)
		}
	}
}

func TestDecodeDefaultsForAMinimalForeignMessage(t *testing.T) {
	ts := time.Unix(1_700_000_000, 0)
	d := &amqp.Delivery{MessageId: "id", Type: "t", Timestamp: ts, Body: []byte("x"), Redelivered: true,
		Headers: amqp.Table{"x-delivery-count": int64(2), "x-death": []any{}}}
	task, err := Decode(d, "q")
	if err != nil {
		t.Fatal(err)
	}
	want := &warren.Task{ID: "id", Type: "t", Queue: "q", Payload: []byte("x"), Attempt: 1,
		EnqueuedAt: ts, Redelivered: true, DeliveryCount: 2}
	if diff := cmp.Diff(want, task); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
}

func TestDecodeMalformed(t *testing.T) {
	cases := map[string]*amqp.Delivery{
		"no type":          {MessageId: "id"},
		"no id":            {Type: "t"},
		"attempt zero":     {MessageId: "id", Type: "t", Headers: amqp.Table{warren.HeaderAttempt: int32(0)}},
		"attempt text":     {MessageId: "id", Type: "t", Headers: amqp.Table{warren.HeaderAttempt: "three"}},
		"attempt fraction": {MessageId: "id", Type: "t", Headers: amqp.Table{warren.HeaderAttempt: 1.5}},
		"max negative":     {MessageId: "id", Type: "t", Headers: amqp.Table{warren.HeaderMaxAttempts: int64(-1)}},
		"enqueued bool":    {MessageId: "id", Type: "t", Headers: amqp.Table{warren.HeaderEnqueuedAt: true}},
	}
	for name, d := range cases {
		if _, err := Decode(d, "q"); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestDeriveStripsBrokerHeadersAndKeepsTheRest(t *testing.T) {
	d := &amqp.Delivery{
		MessageId: "id", Type: "t", Body: []byte{0, 1, 2}, CorrelationId: "c", AppId: "app", UserId: "guest", Expiration: "1000",
		Headers: amqp.Table{"x-death": []any{}, "x-first-death-queue": "q", "x-delivery-count": int64(3), "tenant": "acme", warren.HeaderAttempt: int32(1),
			"CC": []any{"other"}, "BCC": []any{"audit"}},
	}
	p := Derive(d, amqp.Table{warren.HeaderAttempt: int32(2)})
	for k := range p.Headers {
		if strings.HasPrefix(k, "x-") || k == "CC" || k == "BCC" {
			t.Errorf("broker or routing header %s kept", k)
		}
	}
	if p.Headers["tenant"] != "acme" || p.Headers[warren.HeaderAttempt] != int32(2) {
		t.Errorf("headers: %v", p.Headers)
	}
	if string(p.Body) != "\x00\x01\x02" || p.CorrelationId != "c" || p.AppId != "app" || p.UserId != "" || p.Expiration != "" || p.DeliveryMode != amqp.Persistent {
		t.Errorf("properties: %+v", p)
	}
	if _, ok := d.Headers["x-death"]; !ok {
		t.Error("Derive modified the delivery's headers")
	}
}

func TestTruncateKeepsRunesWhole(t *testing.T) {
	s := strings.Repeat("é", 100)
	got := Truncate(s, 51)
	if len(got) > 51 || !strings.HasSuffix(got, "…(truncated)") {
		t.Errorf("Truncate = %q (%d bytes)", got, len(got))
	}
	if !strings.HasPrefix(got, "éé") || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("broken rune in %q", got)
	}
	if Truncate("short", 10) != "short" {
		t.Error("short string changed")
	}
}

func TestHistoryKeepsNewest(t *testing.T) {
	var hist []warren.Failure
	for i := 1; i <= MaxHistoryLen+5; i++ {
		hist = append(hist, warren.Failure{Attempt: i, Error: strings.Repeat("e", 5000)})
	}
	enc := EncodeHistory(hist)
	if len(enc) != MaxHistoryLen {
		t.Fatalf("kept %d entries", len(enc))
	}
	dec := DecodeHistory(enc)
	if dec[0].Attempt != 6 || dec[len(dec)-1].Attempt != MaxHistoryLen+5 || len(dec[0].Error) > 1024 {
		t.Errorf("history: first %d last %d, error %d bytes", dec[0].Attempt, dec[len(dec)-1].Attempt, len(dec[0].Error))
	}
}

func TestRedactURL(t *testing.T) {
	cases := map[string]string{
		"amqp://guest:s3cret@host:5672/vh": "amqp://guest:xxxxx@host:5672/vh",
		"amqp://host/":                     "amqp://host/",
		"amqps://u@host":                   "amqps://u@host",
	}
	for in, want := range cases {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	if got := RedactURL("amqp://u:p%zz@host"); strings.Contains(got, "p%zz") {
		t.Errorf("unparseable URL leaked: %q", got)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("id", "t", []byte("{}"), "attempt", int64(1))
	f.Add("", "", []byte{0xff}, "warren-attempt", int64(-5))
	f.Add("id", "t", []byte(nil), "warren-history", int64(0))
	f.Fuzz(func(t *testing.T, id, typ string, body []byte, hk string, hv int64) {
		h := amqp.Table{hk: hv, warren.HeaderAttempt: hv, warren.HeaderEnqueuedAt: hv, warren.HeaderHistory: []any{amqp.Table{"attempt": hv}, hv}}
		task, err := Decode(&amqp.Delivery{MessageId: id, Type: typ, Body: body, Headers: h}, "q")
		if task == nil {
			t.Fatal("Decode returned a nil task")
		}
		if err == nil && (task.ID == "" || task.Type == "" || task.Attempt < 1) {
			t.Fatalf("accepted an invalid task: %+v", task)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error is not ErrMalformed: %v", err)
		}
	})
}
