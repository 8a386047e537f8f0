package producer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// published is one message the fake link was given.
type published struct {
	exchange, key string
	msg           amqp.Publishing
	channel       int // the fake channel it went on (1 = the first)
}

// fakeLink stands for the broker and its broker.Sender: it records what is
// published and answers each publish as verdict says. Like a Sender, it
// moves to a new channel after a nack.
type fakeLink struct {
	frameMax int
	// verdict answers the n-th publish (1-based): publishErr fails the
	// publish itself, confirmErr is its confirm's result. nil confirms
	// everything.
	verdict func(n int, s published) (publishErr, confirmErr error)
	// missing lists the queues inspect reports as not found.
	missing map[string]bool

	mu        sync.Mutex
	sent      []published
	channel   int // the current fake channel
	nacked    bool
	closed    bool
	inspected []string
}

func (l *fakeLink) FrameMax() int { return l.frameMax }

func (l *fakeLink) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (confirm, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fmt.Errorf("%w: sender closed", broker.ErrClosed)
	}
	if l.channel == 0 || l.nacked {
		l.channel++
		l.nacked = false
	}
	s := published{exchange: exchange, key: key, msg: msg, channel: l.channel}
	l.sent = append(l.sent, s)
	n := len(l.sent)
	l.mu.Unlock()
	var publishErr, confirmErr error
	if l.verdict != nil {
		publishErr, confirmErr = l.verdict(n, s)
	}
	if publishErr != nil {
		return nil, publishErr
	}
	if errors.Is(confirmErr, broker.ErrNacked) {
		l.mu.Lock()
		l.nacked = true
		l.mu.Unlock()
	}
	return fakeConfirm{confirmErr}, nil
}

func (l *fakeLink) inspect(_ context.Context, queue string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inspected = append(l.inspected, queue)
	if l.missing[queue] {
		return fmt.Errorf("%w: %s", broker.ErrQueueNotFound, queue)
	}
	return nil
}

func (l *fakeLink) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return nil
}

func (l *fakeLink) published() []published {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]published(nil), l.sent...)
}

type fakeConfirm struct{ err error }

func (c fakeConfirm) Wait(context.Context) error { return c.err }

// newFake returns a Producer with cfg on a fake broker.
func newFake(t *testing.T, l *fakeLink, cfg Config) *Producer {
	t.Helper()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	p := newProducer(l, cfg.withDefaults())
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var _ link = (*fakeLink)(nil)

func TestEnqueueRefusesInvalidTasks(t *testing.T) {
	deep := map[string]any{}
	for range broker.MaxHeaderDepth + 2 {
		deep = map[string]any{"d": deep}
	}
	tests := []struct {
		name    string
		queue   string
		typ     string
		payload []byte
		opts    []Option
		want    error
		has     string
	}{
		{"empty type", "q", "", nil, nil, ErrInvalid, "task type"},
		{"long type", "q", strings.Repeat("t", 256), nil, nil, ErrInvalid, "task type"},
		{"bad queue name", "amq.x", "t", nil, nil, ErrInvalid, "invalid queue name"},
		{"empty word in the queue name", "a..b", "t", nil, nil, ErrInvalid, "empty word between dots"},
		{"queue name starting with a dot", ".a", "t", nil, nil, ErrInvalid, "empty word between dots"},
		{"queue name ending with a dot", "a.", "t", nil, nil, ErrInvalid, "empty word between dots"},
		{"long ID", "q", "t", nil, []Option{WithID(strings.Repeat("i", 256))}, ErrInvalid, "task ID"},
		{"negative max attempts", "q", "t", nil, []Option{WithMaxAttempts(-1)}, ErrInvalid, "max attempts"},
		{"negative delay", "q", "t", nil, []Option{WithDelay(-time.Second)}, ErrInvalid, "delay"},
		{"delay past the levels", "q", "t", nil, []Option{WithDelay(broker.MaxDelay + time.Hour)}, ErrInvalid, "exceeds the maximum"},
		{"x- header", "q", "t", nil, []Option{WithHeaders(map[string]any{"x-death": 1})}, ErrInvalid, "reserved"},
		{"warren- header", "q", "t", nil, []Option{WithHeaders(map[string]any{warren.HeaderAttempt: 1})}, ErrInvalid, "reserved"},
		{"headers nested too deep", "q", "t", nil, []Option{WithHeaders(deep)}, broker.ErrUnreadableHeaders, "deep"},
		{"payload too large", "q", "t", make([]byte, 101), nil, ErrPayloadTooLarge, "101 bytes"},
		{"headers past the frame size", "q", "t", nil, []Option{WithHeaders(map[string]any{"big": strings.Repeat("h", 5000)})},
			broker.ErrOversized, "frame size"},
		{"every problem at once", "a b", "", nil, []Option{WithMaxAttempts(-1), WithHeaders(map[string]any{"x-a": 1})},
			ErrInvalid, "invalid queue name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &fakeLink{frameMax: 4096}
			p := newFake(t, l, Config{MaxPayloadSize: 100})
			_, err := p.Enqueue(testCtx(t), tt.queue, tt.typ, tt.payload, tt.opts...)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.has) {
				t.Errorf("err = %v, want %v containing %q", err, tt.want, tt.has)
			}
			if got := l.published(); len(got) != 0 {
				t.Errorf("published %d messages for an invalid task", len(got))
			}
		})
	}
	t.Run("every problem is named", func(t *testing.T) {
		p := newFake(t, &fakeLink{}, Config{})
		_, err := p.Enqueue(testCtx(t), "a b", "", nil, WithMaxAttempts(-1), WithHeaders(map[string]any{"x-a": 1}))
		for _, want := range []string{"invalid queue name", "task type", "max attempts", "reserved"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
	})
	t.Run("no payload limit", func(t *testing.T) {
		l := &fakeLink{}
		p := newFake(t, l, Config{MaxPayloadSize: -1})
		if _, err := p.Enqueue(testCtx(t), "q", "t", make([]byte, 2*DefaultMaxPayloadSize)); err != nil {
			t.Fatalf("MaxPayloadSize -1: %v", err)
		}
		if len(l.published()) != 1 {
			t.Error("nothing published")
		}
	})
}

func TestEnqueueEncodesTheTask(t *testing.T) {
	type tenantKey struct{}
	l := &fakeLink{}
	p := newFake(t, l, Config{ContextHeaders: func(ctx context.Context) map[string]any {
		return map[string]any{"tenant": ctx.Value(tenantKey{}), "traceparent": "00-abc-def-01"}
	}})
	ctx := context.WithValue(testCtx(t), tenantKey{}, "acme")
	before := time.Now()
	id, err := p.Enqueue(ctx, "emails", "send", []byte(`{"to":"a"}`),
		WithID("task-1"), WithMaxAttempts(3), WithContentType("text/plain"),
		WithHeaders(map[string]any{"traceparent": "00-mine-01", "n": 7}))
	if err != nil || id != "task-1" {
		t.Fatalf("Enqueue = %q, %v", id, err)
	}
	got := l.published()
	if len(got) != 1 {
		t.Fatalf("published %d messages, want 1", len(got))
	}
	s := got[0]
	if s.exchange != "" || s.key != "emails" {
		t.Errorf("routed to exchange %q key %q, want the default exchange and key emails", s.exchange, s.key)
	}
	m := s.msg
	if m.MessageId != "task-1" || m.Type != "send" || m.ContentType != "text/plain" || m.DeliveryMode != amqp.Persistent ||
		string(m.Body) != `{"to":"a"}` {
		t.Errorf("properties: %+v", m)
	}
	if m.Timestamp.Before(before.Truncate(time.Second)) || m.Timestamp.After(time.Now()) {
		t.Errorf("timestamp %s", m.Timestamp)
	}
	h := m.Headers
	if h["tenant"] != "acme" || h["traceparent"] != "00-mine-01" || h["n"] != int64(7) {
		t.Errorf("user headers (WithHeaders wins over ContextHeaders; an int goes as 64 bits): %v", h)
	}
	if h[warren.HeaderMaxAttempts] != int32(3) {
		t.Errorf("%s = %#v, want int32(3)", warren.HeaderMaxAttempts, h[warren.HeaderMaxAttempts])
	}
	for _, absent := range []string{warren.HeaderAttempt, warren.HeaderQueue, warren.HeaderDeliverAt} {
		if v, ok := h[absent]; ok {
			t.Errorf("a first, undelayed enqueue carries %s = %v", absent, v)
		}
	}
	at, ok := broker.HeaderTime(h, warren.HeaderEnqueuedAt)
	if !ok || at.Before(before.Truncate(time.Millisecond)) || at.After(time.Now()) {
		t.Errorf("%s = %v", warren.HeaderEnqueuedAt, h[warren.HeaderEnqueuedAt])
	}
	// What a worker decodes is what was enqueued.
	task, err := broker.Decode(&amqp.Delivery{Headers: m.Headers, Body: m.Body, MessageId: m.MessageId, Type: m.Type,
		ContentType: m.ContentType, Timestamp: m.Timestamp}, "emails")
	if err != nil || task.ID != "task-1" || task.Type != "send" || task.Attempt != 1 || task.MaxAttempts != 3 || task.Headers["tenant"] != "acme" {
		t.Errorf("decoded back: %+v, %v", task, err)
	}
	if len(l.inspected) != 0 {
		t.Errorf("an undelayed enqueue inspected %v: mandatory publishing checks the queue", l.inspected)
	}

	if _, err := p.Enqueue(testCtx(t), "emails", "send", nil); err != nil {
		t.Fatal(err)
	}
	if m := l.published()[1].msg; len(m.MessageId) != 36 || m.ContentType != broker.DefaultContentType {
		t.Errorf("defaults: ID %q (want a UUID), content type %q", m.MessageId, m.ContentType)
	}
}

func TestEnqueueDelayedRoutesThroughTheLevels(t *testing.T) {
	l := &fakeLink{missing: map[string]bool{"gone": true}}
	p := newFake(t, l, Config{QueueCheckTTL: time.Hour})
	ctx := testCtx(t)
	for _, tc := range []struct {
		name  string
		opt   Option
		delay time.Duration
	}{
		{"WithDelay", WithDelay(5 * time.Second), 5 * time.Second},
		{"WithProcessAt", WithProcessAt(time.Now().Add(90 * time.Minute)), 90 * time.Minute},
		{"WithDelay after WithProcessAt", nil, 3 * time.Second},
	} {
		opts := []Option{tc.opt}
		if tc.opt == nil {
			opts = []Option{WithProcessAt(time.Now().Add(time.Hour)), WithDelay(3 * time.Second)}
		}
		before := time.Now()
		if _, err := p.Enqueue(ctx, "emails", "t", nil, opts...); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		pub := l.published()
		s := pub[len(pub)-1]
		wantEx, wantKey, _ := broker.DelayRoute("emails", tc.delay)
		if s.exchange != wantEx || s.key != wantKey {
			t.Errorf("%s: routed to %q %q, want %q %q", tc.name, s.exchange, s.key, wantEx, wantKey)
		}
		at, ok := broker.HeaderTime(s.msg.Headers, warren.HeaderDeliverAt)
		if !ok || at.Before(before.Add(tc.delay).Add(-time.Second)) || at.After(time.Now().Add(tc.delay)) {
			t.Errorf("%s: %s = %v, want about now + %s", tc.name, warren.HeaderDeliverAt, s.msg.Headers[warren.HeaderDeliverAt], tc.delay)
		}
	}
	if len(l.inspected) != 1 || l.inspected[0] != "emails" {
		t.Errorf("inspected %v, want emails once (QueueCheckTTL)", l.inspected)
	}
	// A delay under half a second goes straight to the queue.
	if _, err := p.Enqueue(ctx, "emails", "t", nil, WithDelay(400*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if s := l.published()[3]; s.exchange != "" || s.key != "emails" || s.msg.Headers[warren.HeaderDeliverAt] != nil {
		t.Errorf("400ms delay: routed to %q %q with deliver-at %v", s.exchange, s.key, s.msg.Headers[warren.HeaderDeliverAt])
	}
	// The delay levels take any routing key: a missing queue is found by inspect.
	n := len(l.published())
	if _, err := p.Enqueue(ctx, "gone", "t", nil, WithDelay(time.Minute)); !errors.Is(err, ErrUnroutable) {
		t.Errorf("delayed enqueue to a missing queue: %v, want ErrUnroutable", err)
	}
	if len(l.published()) != n {
		t.Error("a delayed task for a missing queue was published")
	}
}

func TestEnqueueBatchResultsInOrder(t *testing.T) {
	l := &fakeLink{verdict: func(_ int, s published) (error, error) {
		switch s.key {
		case "nowhere":
			return nil, fmt.Errorf("%w: message %s", broker.ErrUnroutable, s.msg.MessageId)
		case "refused":
			return nil, fmt.Errorf("%w: %w", broker.ErrConfirmLost, broker.ErrAccessRefused)
		}
		return nil, nil
	}}
	obs := &recorder{}
	p := newFake(t, l, Config{Observer: obs})
	jobs := []Job{
		{Queue: "a", Type: "t", Options: []Option{WithID("1")}},
		{Queue: "a", Type: "", Options: []Option{WithID("2")}},
		{Queue: "nowhere", Type: "t", Options: []Option{WithID("3")}},
		{Queue: "b", Type: "t", Options: []Option{WithID("4")}},
		{Queue: "refused", Type: "t", Options: []Option{WithID("5")}},
		{Queue: "a", Type: "t"},
	}
	res, err := p.EnqueueBatch(testCtx(t), jobs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(jobs) {
		t.Fatalf("%d results for %d jobs", len(res), len(jobs))
	}
	want := []error{nil, ErrInvalid, ErrUnroutable, nil, broker.ErrAccessRefused, nil}
	for i, r := range res {
		if (want[i] == nil) != (r.Err == nil) || (want[i] != nil && !errors.Is(r.Err, want[i])) {
			t.Errorf("job %d: err %v, want %v", i, r.Err, want[i])
		}
		if i < 5 && r.ID != fmt.Sprint(i+1) {
			t.Errorf("job %d: ID %q", i, r.ID)
		}
	}
	if res[5].ID == "" {
		t.Error("job 5: no ID")
	}
	if !strings.Contains(res[2].Err.Error(), `"nowhere"`) || !strings.Contains(res[2].Err.Error(), "3") {
		t.Errorf("the error names neither the task nor the queue: %v", res[2].Err)
	}
	var keys []string
	for _, s := range l.published() {
		keys = append(keys, s.key)
	}
	if strings.Join(keys, ",") != "a,nowhere,b,refused,a" {
		t.Errorf("published in order %v (an access refusal is not republished)", keys)
	}
	if p.Republished() != 0 {
		t.Errorf("Republished = %d", p.Republished())
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.got) != len(jobs) || obs.got[0].err != nil || !errors.Is(obs.got[2].err, ErrUnroutable) || obs.got[2].queue != "nowhere" {
		t.Errorf("observer: %+v", obs.got)
	}
}

type recorder struct {
	mu  sync.Mutex
	got []struct {
		queue, typ string
		err        error
	}
}

func (r *recorder) Enqueued(queue, typ string, err error, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, struct {
		queue, typ string
		err        error
	}{queue, typ, err})
}

func TestEnqueueRepublishesOnANewChannelAfterANack(t *testing.T) {
	l := &fakeLink{verdict: func(n int, _ published) (error, error) {
		if n == 1 {
			return nil, fmt.Errorf("%w: message x", broker.ErrNacked)
		}
		return nil, nil
	}}
	p := newFake(t, l, Config{})
	if _, err := p.Enqueue(testCtx(t), "q", "t", nil, WithID("x")); err != nil {
		t.Fatalf("a nack then an ack: %v", err)
	}
	got := l.published()
	if len(got) != 2 || got[0].msg.MessageId != "x" || got[1].msg.MessageId != "x" {
		t.Fatalf("published %+v, want the same task twice", got)
	}
	if got[0].channel == got[1].channel {
		t.Errorf("republished on the nacked channel %d, want a new one", got[0].channel)
	}
	if p.Republished() != 1 {
		t.Errorf("Republished = %d, want 1", p.Republished())
	}
}

func TestEnqueueSurfacesANackPerTask(t *testing.T) {
	l := &fakeLink{verdict: func(_ int, s published) (error, error) {
		if s.key == "full" {
			return nil, fmt.Errorf("%w: message %s", broker.ErrNacked, s.msg.MessageId)
		}
		return nil, nil
	}}
	p := newFake(t, l, Config{})
	// The nacked task is published again with backoff until ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	res, err := p.EnqueueBatch(ctx, []Job{{Queue: "full", Type: "t"}, {Queue: "q", Type: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, ErrNacked) || res[1].Err != nil {
		t.Errorf("results %v, %v: want ErrNacked for the first only", res[0].Err, res[1].Err)
	}
	if p.Republished() == 0 {
		t.Error("a nacked task was not published again")
	}
}

func TestEnqueueRepublishesALostConfirm(t *testing.T) {
	l := &fakeLink{verdict: func(n int, _ published) (error, error) {
		if n == 1 {
			return nil, fmt.Errorf("%w: channel closed", broker.ErrConfirmLost)
		}
		return nil, nil
	}}
	p := newFake(t, l, Config{})
	if _, err := p.Enqueue(testCtx(t), "q", "t", nil); err != nil {
		t.Fatalf("a lost confirm then an ack: %v", err)
	}
	if len(l.published()) != 2 || p.Republished() != 1 {
		t.Errorf("published %d times, Republished %d; want 2 and 1", len(l.published()), p.Republished())
	}
}

func TestBreakerOpensAfterFiveFailedPublishes(t *testing.T) {
	boom := errors.New("broker: publish: boom")
	l := &fakeLink{verdict: func(int, published) (error, error) { return boom, nil }}
	p := newFake(t, l, Config{})
	ctx := testCtx(t)
	for i := range 5 {
		if _, err := p.Enqueue(ctx, "q", "t", nil); !errors.Is(err, boom) {
			t.Fatalf("publish %d: %v, want boom", i+1, err)
		}
		if i < 4 && p.BreakerState() != "closed" {
			t.Fatalf("breaker %s after %d failures", p.BreakerState(), i+1)
		}
	}
	if p.BreakerState() != "open" {
		t.Errorf("breaker %s after 5 failures, want open", p.BreakerState())
	}
	n := len(l.published())
	_, err := p.Enqueue(ctx, "q", "t", nil)
	if !errors.Is(err, ErrBreakerOpen) {
		t.Errorf("with the breaker open: %v, want ErrBreakerOpen", err)
	}
	if len(l.published()) != n {
		t.Error("published while the breaker was open")
	}
	// A confirm's failure is not the broker failing to take a publish:
	// it does not count against the breaker.
	l2 := &fakeLink{verdict: func(int, published) (error, error) { return nil, broker.ErrUnroutable }}
	p2 := newFake(t, l2, Config{})
	for range 6 {
		if _, err := p2.Enqueue(ctx, "q", "t", nil); !errors.Is(err, ErrUnroutable) {
			t.Fatalf("unroutable: %v", err)
		}
	}
	if p2.BreakerState() != "closed" {
		t.Errorf("breaker %s after unroutable confirms", p2.BreakerState())
	}
}

func TestEnqueueAfterCloseFails(t *testing.T) {
	l := &fakeLink{}
	p := newFake(t, l, Config{})
	if _, err := p.Enqueue(testCtx(t), "q", "t", nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Enqueue(testCtx(t), "q", "t", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
	if !l.closed {
		t.Error("Close left the publishing channel open")
	}
}

// nopLink confirms every publish at once and records nothing: what an
// enqueue costs in the producer itself.
type nopLink struct{}

func (nopLink) FrameMax() int { return 0 }
func (nopLink) publish(context.Context, string, string, amqp.Publishing) (confirm, error) {
	return fakeConfirm{}, nil
}
func (nopLink) inspect(context.Context, string) error { return nil }
func (nopLink) close() error                          { return nil }

// producerAllocs bounds the heap allocations of one Enqueue in the producer
// itself, broker and client library left out: the task ID's string (1),
// the headers table (2) and its enqueued-at value (1). docs/benchmarks.md
// has the whole publish path's figures.
const producerAllocs = 4

func TestEnqueueAllocations(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	p := newProducer(nopLink{}, Config{}.withDefaults())
	ctx := context.Background()
	payload := make([]byte, 256)
	n := testing.AllocsPerRun(1000, func() {
		if _, err := p.Enqueue(ctx, "q", "t", payload); err != nil {
			t.Fatal(err)
		}
	})
	if n > producerAllocs {
		t.Errorf("Enqueue allocates %.1f times, want at most %d", n, producerAllocs)
	}
}

// BenchmarkEnqueueWithoutBroker measures the producer's own cost of an
// Enqueue: building, validating, encoding and routing the task.
func BenchmarkEnqueueWithoutBroker(b *testing.B) {
	p := newProducer(nopLink{}, Config{}.withDefaults())
	ctx := context.Background()
	payload := make([]byte, 256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Enqueue(ctx, "q", "t", payload); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNewIDIsAGrowingUUIDv7(t *testing.T) {
	now := time.Now()
	prev := ""
	for i := range 5000 {
		id := newID(now) // the same instant: the sequence must still grow
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("ID %d %q: version %v, variant %v, %v", i, id, u.Version(), u.Variant(), err)
		}
		if id <= prev {
			t.Fatalf("ID %d %q is not after %q", i, id, prev)
		}
		if ms := int64(u.Time()); ms < 0 {
			t.Fatalf("ID %q: time %d", id, ms)
		}
		prev = id
	}
	u, _ := uuid.Parse(newID(now.Add(time.Hour)))
	if sec, _ := u.Time().UnixTime(); sec < now.Add(time.Hour).Unix()-1 {
		t.Errorf("the ID's time %d is not the enqueue's (%d)", sec, now.Add(time.Hour).Unix())
	}
}
