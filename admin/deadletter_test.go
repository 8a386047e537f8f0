package admin

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// delivery turns a publishing into what basic.get returns for it.
func delivery(p amqp.Publishing) amqp.Delivery {
	return amqp.Delivery{
		Headers:         p.Headers,
		ContentType:     p.ContentType,
		ContentEncoding: p.ContentEncoding,
		DeliveryMode:    p.DeliveryMode,
		Priority:        p.Priority,
		CorrelationId:   p.CorrelationId,
		ReplyTo:         p.ReplyTo,
		Expiration:      p.Expiration,
		MessageId:       p.MessageId,
		Timestamp:       p.Timestamp,
		Type:            p.Type,
		UserId:          p.UserId,
		AppId:           p.AppId,
		Body:            p.Body,
	}
}

// workerDeadLetter builds a dead letter the way worker.Pool.deadLetter does
// (worker/pool.go): the delivery derived with the dead-letter metadata set.
func workerDeadLetter(d amqp.Delivery, t *warren.Task, reason warren.DeadReason, cause string, host string, dur time.Duration, now time.Time, stack string) amqp.Delivery {
	set := amqp.Table{
		warren.HeaderDeadReason: string(reason),
		warren.HeaderError:      cause,
		warren.HeaderFailedAt:   now.UnixMilli(),
		warren.HeaderWorkerHost: host,
		warren.HeaderDurationMS: dur.Milliseconds(),
		warren.HeaderQueue:      t.Queue,
		warren.HeaderAttempt:    int32(t.Attempt),
		warren.HeaderHistory: broker.EncodeHistory(append(t.History,
			warren.Failure{Attempt: t.Attempt, Error: cause, FailedAt: now, Worker: host, Duration: dur})),
	}
	if stack != "" {
		set[warren.HeaderStack] = stack
	}
	out := delivery(broker.Derive(&d, set))
	out.Headers["x-delivery-count"] = int64(2) // as read back from the quorum DLQ
	return out
}

func taskDelivery(t *warren.Task) amqp.Delivery {
	return delivery(broker.Encode(t))
}

func TestNewDeadLetterFromWorker(t *testing.T) {
	enq := time.UnixMilli(1_700_000_000_000)
	failed := time.UnixMilli(1_700_000_100_000)
	task := &warren.Task{
		ID: "t-1", Type: "email:send", Queue: "emails", Payload: []byte(`{"to":"ada"}`),
		Attempt: 3, MaxAttempts: 3, EnqueuedAt: enq,
		History: []warren.Failure{
			{Attempt: 1, Error: "smtp 451", FailedAt: enq.Add(time.Second), Worker: "w1", Duration: 20 * time.Millisecond},
			{Attempt: 2, Error: "smtp 451", FailedAt: enq.Add(3 * time.Second), Worker: "w2", Duration: 30 * time.Millisecond},
		},
		Headers: map[string]any{"tenant": "acme"},
	}
	d := workerDeadLetter(taskDelivery(task), task, warren.ReasonExhausted, "smtp 550", "w3", 40*time.Millisecond, failed, "goroutine 1 [running]")

	dl := newDeadLetter(&d, "emails")

	want := DeadLetter{
		ID: "t-1", Type: "email:send", Queue: "emails",
		Payload: []byte(`{"to":"ada"}`), ContentType: "application/json",
		Reason: warren.ReasonExhausted, Error: "smtp 550",
		Attempts: 3, MaxAttempts: 3,
		EnqueuedAt: enq, FailedAt: failed, WorkerHost: "w3", Duration: 40 * time.Millisecond,
		Stack: "goroutine 1 [running]",
		History: []warren.Failure{
			{Attempt: 1, Error: "smtp 451", FailedAt: enq.Add(time.Second), Worker: "w1", Duration: 20 * time.Millisecond},
			{Attempt: 2, Error: "smtp 451", FailedAt: enq.Add(3 * time.Second), Worker: "w2", Duration: 30 * time.Millisecond},
			{Attempt: 3, Error: "smtp 550", FailedAt: failed, Worker: "w3", Duration: 40 * time.Millisecond},
		},
		DeliveryCount: 2,
		Headers:       dl.Headers, // checked below
	}
	if !reflect.DeepEqual(dl, want) {
		t.Errorf("newDeadLetter:\n got %+v\nwant %+v", dl, want)
	}
	if dl.Headers["tenant"] != "acme" || dl.Headers[warren.HeaderDeadReason] != string(warren.ReasonExhausted) || dl.Headers["x-delivery-count"] != int64(2) {
		t.Errorf("Headers do not hold every header as stored: %v", dl.Headers)
	}
}

func TestNewDeadLetterFromBroker(t *testing.T) {
	enq := time.UnixMilli(1_700_000_000_000)
	died := time.Unix(1_700_000_500, 0)
	task := &warren.Task{ID: "t-2", Type: "pdf:render", Queue: "pdfs", Payload: []byte("{}"), Attempt: 1, EnqueuedAt: enq}
	d := taskDelivery(task)
	// What RabbitMQ 3.10 adds when a quorum queue dead-letters past its
	// x-delivery-limit: no Warren dead-letter metadata at all.
	d.Headers["x-death"] = []any{amqp.Table{
		"count": int64(1), "reason": "delivery_limit", "queue": "pdfs", "time": died,
		"exchange": "", "routing-keys": []any{"pdfs"},
	}}
	d.Headers["x-first-death-reason"] = "delivery_limit"
	d.Headers["x-first-death-queue"] = "pdfs"
	d.Headers["x-first-death-exchange"] = ""

	dl := newDeadLetter(&d, "pdfs")
	if dl.Reason != warren.ReasonDeliveryLimit {
		t.Errorf("Reason = %q, want delivery_limit", dl.Reason)
	}
	if !dl.FailedAt.Equal(died) {
		t.Errorf("FailedAt = %v, want the x-death time %v", dl.FailedAt, died)
	}
	if dl.Error != "" || dl.WorkerHost != "" || dl.Attempts != 1 || !dl.EnqueuedAt.Equal(enq) || dl.Queue != "pdfs" {
		t.Errorf("unexpected fields: %+v", dl)
	}
}

func TestBrokerDeathPrecedence(t *testing.T) {
	died := time.Unix(1_700_000_000, 0)
	cases := []struct {
		name string
		h    amqp.Table
		want warren.DeadReason
		at   time.Time
	}{
		{"worker reason wins", amqp.Table{
			warren.HeaderDeadReason: "permanent_error",
			"x-death":               []any{amqp.Table{"reason": "rejected", "time": died}},
		}, warren.ReasonPermanent, time.Time{}},
		{"most recent x-death entry", amqp.Table{
			"x-death": []any{
				amqp.Table{"reason": "delivery_limit", "queue": "q", "time": died},
				amqp.Table{"reason": "expired", "queue": "warren.delay.0", "time": died.Add(-time.Hour)},
			},
			"x-first-death-reason": "expired",
		}, ReasonDeliveryLimit, died},
		{"x-last-death (3.13+)", amqp.Table{
			"x-last-death-reason": "rejected",
			"x-death":             []any{amqp.Table{"reason": "rejected", "time": died}},
		}, ReasonRejected, died},
		{"only x-first-death", amqp.Table{"x-first-death-reason": "maxlen"}, ReasonMaxLen, time.Time{}},
		{"garbage x-death", amqp.Table{"x-death": []any{"nope", amqp.Table{"count": 1}}}, "", time.Time{}},
		{"nothing", amqp.Table{}, "", time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := amqp.Delivery{MessageId: "id", Type: "t", Headers: c.h}
			dl := newDeadLetter(&d, "q")
			if dl.Reason != c.want {
				t.Errorf("Reason = %q, want %q", dl.Reason, c.want)
			}
			if !dl.FailedAt.Equal(c.at) {
				t.Errorf("FailedAt = %v, want %v", dl.FailedAt, c.at)
			}
		})
	}
}

func TestHistoryReadsWhatItCan(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_000)
	got := broker.DecodeHistory([]any{
		"not a table",
		amqp.Table{"attempt": int64(2), "error": []byte("as bytes"), "failed-at": at.UnixMilli(), "worker": "w", "duration-ms": int32(5)},
		amqp.Table{"attempt": "x", "duration-ms": int64(-1)},
	})
	want := []warren.Failure{
		{Attempt: 2, Error: "as bytes", FailedAt: at, Worker: "w", Duration: 5 * time.Millisecond},
		{},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("history = %+v, want %+v", got, want)
	}
}

func TestNewDeadLetterToleratesMalformedHeaders(t *testing.T) {
	d := amqp.Delivery{
		// a malformed dead letter: no ID, no type, headers of the wrong kinds
		Headers: amqp.Table{
			warren.HeaderAttempt:       "many",
			warren.HeaderMaxAttempts:   int64(-4),
			warren.HeaderReplayCount:   []byte("x"),
			warren.HeaderFailedAt:      "yesterday",
			warren.HeaderDurationMS:    int64(-5),
			warren.HeaderHistory:       "not an array",
			warren.HeaderQueue:         int32(7),
			warren.HeaderDeadReason:    string(warren.ReasonMalformed),
			"x-delivery-count":         "3",
			warren.HeaderStack:         []byte("stack as bytes"),
			warren.HeaderError:         nil,
			warren.HeaderWorkerHost:    amqp.Table{},
			warren.HeaderEnqueuedAt:    float64(1.5),
			warren.HeaderPrefix + "x":  amqp.Decimal{},
			"application-header-tests": []any{nil},
		},
		Body: []byte("\xff"),
	}
	dl := newDeadLetter(&d, "q")
	if dl.Reason != warren.ReasonMalformed || dl.Queue != "q" || dl.Attempts != 0 || dl.MaxAttempts != 0 ||
		dl.ReplayCount != 0 || !dl.FailedAt.IsZero() || dl.Duration != 0 || dl.History != nil ||
		dl.DeliveryCount != 3 || dl.Stack != "stack as bytes" || !dl.EnqueuedAt.IsZero() {
		t.Errorf("unexpected mapping: %+v", dl)
	}
}

func TestReplayMessage(t *testing.T) {
	enq := time.UnixMilli(1_700_000_000_000)
	task := &warren.Task{
		ID: "t-3", Type: "email:send", Queue: "emails", Payload: []byte(`{"to":"bob"}`),
		Attempt: 5, MaxAttempts: 5, EnqueuedAt: enq, LastError: "smtp 451",
		Headers: map[string]any{"tenant": "acme"},
	}
	src := taskDelivery(task)
	src.CorrelationId, src.AppId, src.ReplyTo, src.Priority, src.ContentEncoding = "corr", "app", "reply", 3, "gzip"
	d := workerDeadLetter(src, task, warren.ReasonExhausted, "smtp 550", "w3", time.Second, enq.Add(time.Minute), "stack")
	d.Headers["x-death"] = []any{amqp.Table{"reason": "rejected"}}
	d.Headers["x-first-death-reason"] = "rejected"
	d.Headers[warren.HeaderDeliverAt] = int64(1_700_000_000_000)
	now := time.UnixMilli(1_800_000_000_000)

	msg := replayMessage(&d, "emails", now)

	for _, k := range []string{warren.HeaderDeadReason, warren.HeaderError, warren.HeaderFailedAt,
		warren.HeaderWorkerHost, warren.HeaderDurationMS, warren.HeaderStack} {
		if _, ok := msg.Headers[k]; ok {
			t.Errorf("dead-letter header %s kept", k)
		}
	}
	for k := range msg.Headers {
		if strings.HasPrefix(k, "x-") {
			t.Errorf("broker header %s kept", k)
		}
	}
	if _, ok := msg.Headers[warren.HeaderDeliverAt]; ok {
		t.Error("stale deliver-at kept")
	}
	if msg.Headers[warren.HeaderAttempt] != int32(1) {
		t.Errorf("attempt = %v, want 1", msg.Headers[warren.HeaderAttempt])
	}
	if msg.Headers[warren.HeaderReplayCount] != int32(1) {
		t.Errorf("replay count = %v, want 1", msg.Headers[warren.HeaderReplayCount])
	}
	if msg.Headers[warren.HeaderReplayedAt] != now.UnixMilli() {
		t.Errorf("replayed-at = %v, want %v", msg.Headers[warren.HeaderReplayedAt], now.UnixMilli())
	}
	for _, k := range []string{warren.HeaderHistory, warren.HeaderMaxAttempts, warren.HeaderEnqueuedAt, warren.HeaderLastError, "tenant"} {
		if !reflect.DeepEqual(msg.Headers[k], d.Headers[k]) {
			t.Errorf("header %s = %v, want it kept as %v", k, msg.Headers[k], d.Headers[k])
		}
	}
	if msg.Headers[warren.HeaderQueue] != "emails" {
		t.Errorf("queue header = %v", msg.Headers[warren.HeaderQueue])
	}
	if string(msg.Body) != `{"to":"bob"}` || msg.MessageId != "t-3" || msg.Type != "email:send" ||
		msg.ContentType != "application/json" || msg.ContentEncoding != "gzip" || msg.CorrelationId != "corr" ||
		msg.AppId != "app" || msg.ReplyTo != "reply" || msg.Priority != 3 || !msg.Timestamp.Equal(d.Timestamp) ||
		msg.DeliveryMode != amqp.Persistent {
		t.Errorf("properties changed: %+v", msg)
	}

	// A second round trip counts on.
	replayed := delivery(msg)
	task2, err := broker.Decode(&replayed, "emails")
	if err != nil {
		t.Fatal(err)
	}
	d2 := workerDeadLetter(replayed, task2, warren.ReasonExhausted, "again", "w4", time.Second, now.Add(time.Hour), "")
	msg2 := replayMessage(&d2, "other", now.Add(2*time.Hour))
	if msg2.Headers[warren.HeaderReplayCount] != int32(2) {
		t.Errorf("replay count after a second replay = %v, want 2", msg2.Headers[warren.HeaderReplayCount])
	}
	if msg2.Headers[warren.HeaderQueue] != "other" {
		t.Errorf("queue header = %v, want the ToQueue target", msg2.Headers[warren.HeaderQueue])
	}
	// The replayed message decodes as a fresh first attempt with its history.
	d3 := delivery(msg2)
	var got *warren.Task
	got, err = broker.Decode(&d3, "other")
	if err != nil {
		t.Fatal(err)
	}
	if got.Attempt != 1 || len(got.History) != 2 || got.Queue != "other" || got.Headers["tenant"] != "acme" {
		t.Errorf("decoded replay: %+v", got)
	}
}

func TestFilter(t *testing.T) {
	if (Filter{}).selects() || (Filter{Limit: 3}).selects() {
		t.Error("an empty filter selects")
	}
	for _, f := range []Filter{{All: true}, {IDs: []string{"a"}}, {Types: []string{"t"}}} {
		if !f.selects() {
			t.Errorf("%+v does not select", f)
		}
	}
	if _, err := newMatcher(Filter{Limit: -1}); err == nil {
		t.Error("negative limit accepted")
	}
	m, err := newMatcher(Filter{IDs: []string{"a", "b"}, Types: []string{"x"}, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id, typ string
		want    bool
	}{{"a", "x", true}, {"b", "x", true}, {"a", "y", false}, {"c", "x", false}} {
		if got := m.match(&amqp.Delivery{MessageId: c.id, Type: c.typ}); got != c.want {
			t.Errorf("match(%q, %q) = %v, want %v", c.id, c.typ, got, c.want)
		}
	}
	if m.full(1) || !m.full(2) {
		t.Error("limit not applied")
	}
	all, _ := newMatcher(Filter{All: true})
	if !all.match(&amqp.Delivery{MessageId: "any", Type: "thing"}) || all.full(1_000_000) {
		t.Error("All does not match everything without limit")
	}
}

func TestMatcherErrorAndTime(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	dl := func(errText string, at time.Time) *amqp.Delivery {
		h := amqp.Table{warren.HeaderError: errText}
		if !at.IsZero() {
			h[warren.HeaderFailedAt] = at.UnixMilli()
		}
		return &amqp.Delivery{MessageId: "x", Headers: h}
	}
	m, err := newMatcher(Filter{ErrorRegexp: regexp.MustCompile(`connection refused$`), Since: t0, Until: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		d    *amqp.Delivery
		want bool
	}{
		{dl("dial tcp 10.0.0.7:5432: connection refused", t0), true},
		{dl("dial tcp 10.0.0.7:5432: connection refused", t0.Add(59*time.Minute)), true},
		{dl("dial tcp 10.0.0.7:5432: connection refused", t0.Add(time.Hour)), false}, // Until is exclusive
		{dl("dial tcp 10.0.0.7:5432: connection refused", t0.Add(-time.Millisecond)), false},
		{dl("dial tcp 10.0.0.7:5432: connection refused", time.Time{}), false}, // no failure time
		{dl("timeout", t0), false},
	} {
		if got := m.match(c.d); got != c.want {
			t.Errorf("match(%v) = %v, want %v", c.d.Headers, got, c.want)
		}
	}
	if !(Filter{ErrorRegexp: regexp.MustCompile("x")}).selects() || !(Filter{Since: t0}).selects() {
		t.Error("an error or time selector does not select")
	}
	if _, err := newMatcher(Filter{Since: t0, Until: t0}); err == nil {
		t.Error("an empty time range accepted")
	}
}

func TestSample(t *testing.T) {
	if got := sample([]string{"a", "b"}, 2); got != "tasks a, b" {
		t.Errorf("sample = %q", got)
	}
	if got := sample([]string{"1", "2", "3", "4", "5"}, 7); got != "tasks 1, 2, 3, 4, 5 and 2 more" {
		t.Errorf("sample = %q", got)
	}
}
