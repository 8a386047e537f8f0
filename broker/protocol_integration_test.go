//go:build integration

package broker_test

// These tests follow docs/protocol.md as a client in another language
// would: they publish with bare amqp091-go, spelling every exchange, routing
// key, property and header by hand, and never call Warren's encoding
// helpers. Warren's side (topology, worker) is the real thing.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

// protoSetup declares the topology for a fresh queue the Warren way and
// returns the queue's name with a bare AMQP channel, in confirm mode, on a
// connection of its own.
func protoSetup(t *testing.T) (*broker.Conn, string, *protoChannel) {
	t.Helper()
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	if err := broker.Declare(testbroker.Context(t, 30*time.Second), conn, broker.QueueOptions{}, q); err != nil {
		t.Fatalf("declare: %v", err)
	}
	return conn, q, protoDial(t)
}

// protoChannel is a bare amqp091-go channel in confirm mode.
type protoChannel struct {
	*amqp.Channel
	returns chan amqp.Return
}

func protoDial(t *testing.T) *protoChannel {
	t.Helper()
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("test bare " + t.Name())
	c, err := amqp.DialConfig(testbroker.URL(), amqp.Config{Properties: props})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ch, err := c.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm mode: %v", err)
	}
	// Buffered, so that the client's reader hands a return over before it
	// reads the confirm that follows it.
	returns := ch.NotifyReturn(make(chan amqp.Return, 16))
	return &protoChannel{Channel: ch, returns: returns}
}

// publish publishes msg mandatory and waits for a positive confirm of a
// routed message, as docs/protocol.md asks of every producer.
func (ch *protoChannel) publish(t *testing.T, exchange, key string, msg amqp.Publishing) {
	t.Helper()
	ctx := testbroker.Context(t, 10*time.Second)
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, msg)
	if err != nil {
		t.Fatalf("publish to exchange %q key %q: %v", exchange, key, err)
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil || !acked {
		t.Fatalf("publish to exchange %q key %q: confirm: acked=%v err=%v", exchange, key, acked, err)
	}
	select {
	case r := <-ch.returns:
		t.Fatalf("publish to exchange %q key %q: returned unroutable: %d %s", exchange, key, r.ReplyCode, r.ReplyText)
	default:
	}
}

// get fetches from queue with basic.get until it finds the message whose
// message_id is id, acks it and returns it. Messages of others (the queue
// may be shared) are held unacked while it looks and then handed back.
func (ch *protoChannel) get(t *testing.T, queue, id string, timeout time.Duration) amqp.Delivery {
	t.Helper()
	ctx := testbroker.Context(t, timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var others []amqp.Delivery
		var found *amqp.Delivery
		for found == nil {
			d, ok, err := ch.Get(queue, false)
			if err != nil {
				t.Fatalf("basic.get %s: %v", queue, err)
			}
			if !ok {
				break
			}
			if d.MessageId == id {
				found = &d
			} else {
				others = append(others, d)
			}
		}
		for _, o := range others {
			if err := o.Nack(false, true); err != nil {
				t.Fatalf("requeue a message of someone else in %s: %v", queue, err)
			}
		}
		if found != nil {
			if err := found.Ack(false); err != nil {
				t.Fatalf("ack %s in %s: %v", id, queue, err)
			}
			return *found
		}
		select {
		case <-ctx.Done():
			t.Fatalf("message %s did not reach %s within %s", id, queue, timeout)
		case <-tick.C:
		}
	}
}

type protoReceived struct {
	task *warren.Task
	at   time.Time
}

// protoRunPool runs a worker pool on q with mux until the test ends.
func protoRunPool(t *testing.T, conn *broker.Conn, q string, mux *worker.Mux) {
	t.Helper()
	pool, err := worker.New(conn, mux, worker.Config{
		Queues:          []string{q},
		Concurrency:     2,
		ShutdownTimeout: 5 * time.Second,
		Retry:           retry.Policy{Base: time.Second, Cap: time.Second},
		Hostname:        "protocol-test",
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("worker.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("pool.Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("pool.Run did not return within 15s of cancel")
		}
	})
}

// protoRecorder returns a mux whose handler for taskType sends each task it
// runs, with the time, to the returned channel.
func protoRecorder(taskType string) (*worker.Mux, <-chan protoReceived) {
	got := make(chan protoReceived, 16)
	mux := worker.NewMux()
	mux.HandleFunc(taskType, func(ctx context.Context, t *warren.Task) error {
		got <- protoReceived{task: t, at: time.Now()}
		return nil
	})
	return mux, got
}

func protoWait(t *testing.T, got <-chan protoReceived, timeout time.Duration) protoReceived {
	t.Helper()
	select {
	case r := <-got:
		return r
	case <-time.After(timeout):
		t.Fatalf("the handler did not run within %s", timeout)
		return protoReceived{}
	}
}

// TestProtocolDirectPublish enqueues tasks by hand through the default
// exchange, with the integer headers in the AMQP types various clients use.
func TestProtocolDirectPublish(t *testing.T) {
	t.Parallel()
	conn, q, ch := protoSetup(t)
	mux, got := protoRecorder("image:resize")
	protoRunPool(t, conn, q, mux)

	enqueuedAt := time.UnixMilli(1_700_000_000_123)
	ms := enqueuedAt.UnixMilli()
	payload := []byte("\x00\x01 not JSON, bytes as given \xff")
	cases := []struct {
		name                       string
		attempt, max, enqueuedAtMS any
	}{
		{"int32 as Warren writes", int32(2), int32(5), ms},
		{"int16 and int64", int16(2), int64(5), ms},
		{"decimal strings", "2", " 5 ", strconv.FormatInt(ms, 10)},
		{"int8 uint32 and double", int8(2), uint32(5), float64(ms)},
		{"uint8 uint16 and timestamp", uint8(2), uint16(5), enqueuedAt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("proto-direct-%d", time.Now().UnixNano())
			ch.publish(t, "", q, amqp.Publishing{
				MessageId:    id,
				Type:         "image:resize",
				ContentType:  "application/octet-stream",
				DeliveryMode: 2,
				Timestamp:    time.Now(),
				Headers: amqp.Table{
					"warren-attempt":      c.attempt,
					"warren-max-attempts": c.max,
					"warren-enqueued-at":  c.enqueuedAtMS,
					"warren-queue":        q,
					"tenant":              "acme",
					"x-custom":            "the broker's namespace",
				},
				Body: payload,
			})
			r := protoWait(t, got, 10*time.Second)
			tk := r.task
			if tk.ID != id || tk.Type != "image:resize" || tk.Queue != q {
				t.Errorf("got ID %q type %q queue %q, want %q image:resize %q", tk.ID, tk.Type, tk.Queue, id, q)
			}
			if !bytes.Equal(tk.Payload, payload) {
				t.Errorf("payload %q, want %q", tk.Payload, payload)
			}
			if tk.ContentType != "application/octet-stream" {
				t.Errorf("content type %q", tk.ContentType)
			}
			if tk.Attempt != 2 || tk.MaxAttempts != 5 {
				t.Errorf("attempt %d of %d, want 2 of 5", tk.Attempt, tk.MaxAttempts)
			}
			want := enqueuedAt
			if _, ok := c.enqueuedAtMS.(time.Time); ok {
				want = enqueuedAt.Truncate(time.Second) // an AMQP timestamp has whole seconds
			}
			if !tk.EnqueuedAt.Equal(want) {
				t.Errorf("enqueued at %s, want %s", tk.EnqueuedAt, want)
			}
			if tk.Headers["tenant"] != "acme" {
				t.Errorf("user header tenant = %v, want acme (headers %v)", tk.Headers["tenant"], tk.Headers)
			}
			if _, ok := tk.Headers["x-custom"]; ok {
				t.Errorf("x- header passed to the handler: %v", tk.Headers)
			}
		})
	}

	t.Run("minimal", func(t *testing.T) {
		// Only the two required properties: attempt 1, no cap, enqueued
		// at the timestamp property.
		id := fmt.Sprintf("proto-minimal-%d", time.Now().UnixNano())
		ts := time.Unix(1_700_000_000, 0)
		ch.publish(t, "", q, amqp.Publishing{MessageId: id, Type: "image:resize", Timestamp: ts, Body: []byte(`{}`)})
		tk := protoWait(t, got, 10*time.Second).task
		if tk.ID != id || tk.Attempt != 1 || tk.MaxAttempts != 0 || !tk.EnqueuedAt.Equal(ts) || string(tk.Payload) != `{}` {
			t.Errorf("got %+v", tk)
		}
	})
}

// TestProtocolDelayedPublish enqueues a task with a 2 s delay by hand
// through the highest delay level.
func TestProtocolDelayedPublish(t *testing.T) {
	t.Parallel()
	conn, q, ch := protoSetup(t)
	mux, got := protoRecorder("report:build")
	protoRunPool(t, conn, q, mux)

	// 2 s = binary 10: 22 zeros for levels 23..2, then 1 (level 1), 0 (level 0).
	key := strings.Repeat("0.", 22) + "1.0." + q
	// The Go producer enters at the highest 1 bit (level 1); entering at
	// the top level, as this hand-written publish does, must work too.
	if ex, k, _ := broker.DelayRoute(q, 2*time.Second); ex != "warren.delay.1" || k != key {
		t.Fatalf("docs and code disagree: DelayRoute gives %q %q, the docs %q %q", ex, k, "warren.delay.1", key)
	}
	id := fmt.Sprintf("proto-delayed-%d", time.Now().UnixNano())
	start := time.Now()
	ch.publish(t, "warren.delay.23", key, amqp.Publishing{
		MessageId:    id,
		Type:         "report:build",
		ContentType:  "application/json",
		DeliveryMode: 2,
		Timestamp:    start,
		Headers: amqp.Table{
			"warren-attempt":     int32(1),
			"warren-enqueued-at": start.UnixMilli(),
			"warren-queue":       q,
			"warren-deliver-at":  start.Add(2 * time.Second).UnixMilli(),
		},
		Body: []byte(`{"month":"2026-11"}`),
	})
	r := protoWait(t, got, 10*time.Second)
	waited := r.at.Sub(start)
	t.Logf("delivered after %s", waited)
	if r.task.ID != id || string(r.task.Payload) != `{"month":"2026-11"}` || r.task.Attempt != 1 {
		t.Errorf("got %+v", r.task)
	}
	if waited < 1500*time.Millisecond || waited > 3500*time.Millisecond {
		t.Errorf("a 2 s delay took %s, want 1.5 s to 3.5 s", waited)
	}
}

// TestProtocolMalformed publishes a message with no type: the worker
// dead-letters it with reason malformed and the body untouched.
func TestProtocolMalformed(t *testing.T) {
	t.Parallel()
	conn, q, ch := protoSetup(t)
	mux, _ := protoRecorder("anything")
	protoRunPool(t, conn, q, mux)

	id := fmt.Sprintf("proto-malformed-%d", time.Now().UnixNano())
	body := []byte("\x00raw bytes, no type\xff")
	ch.publish(t, "", q, amqp.Publishing{
		MessageId:    id,
		DeliveryMode: 2,
		Headers:      amqp.Table{"tenant": "acme"},
		Body:         body,
	})
	d := ch.get(t, q+".dlq", id, 15*time.Second)
	if !bytes.Equal(d.Body, body) {
		t.Errorf("body %q, want %q", d.Body, body)
	}
	if r := d.Headers["warren-dead-reason"]; r != "malformed" {
		t.Errorf("warren-dead-reason = %v, want malformed (headers %v)", r, d.Headers)
	}
	if e, _ := d.Headers["warren-error"].(string); !strings.Contains(e, "no type") {
		t.Errorf("warren-error = %q, want it to mention the missing type", e)
	}
	if d.Headers["warren-queue"] != q || d.Headers["warren-worker-host"] != "protocol-test" || d.Headers["tenant"] != "acme" {
		t.Errorf("headers %v", d.Headers)
	}
	if _, ok := d.Headers["warren-failed-at"].(int64); !ok {
		t.Errorf("warren-failed-at = %T %v, want int64 Unix ms", d.Headers["warren-failed-at"], d.Headers["warren-failed-at"])
	}
	if d.DeliveryMode != 2 {
		t.Errorf("dead letter delivery mode %d, want 2", d.DeliveryMode)
	}
}

// TestProtocolRetryThenDeadLetter runs a task by hand through one retry
// and a permanent failure, then reads the dead letter as docs/protocol.md
// describes it.
func TestProtocolRetryThenDeadLetter(t *testing.T) {
	t.Parallel()
	conn, q, ch := protoSetup(t)
	seen := make(chan *warren.Task, 4)
	mux := worker.NewMux()
	mux.HandleFunc("charge", func(ctx context.Context, tk *warren.Task) error {
		seen <- tk
		if tk.Attempt == 1 {
			return retry.After(0, fmt.Errorf("gateway timeout"))
		}
		return retry.Permanent(fmt.Errorf("card declined"))
	})
	protoRunPool(t, conn, q, mux)

	id := fmt.Sprintf("proto-dead-%d", time.Now().UnixNano())
	ch.publish(t, "", q, amqp.Publishing{MessageId: id, Type: "charge", DeliveryMode: 2, Timestamp: time.Now(), Body: []byte(`{"cents":100}`)})

	d := ch.get(t, q+".dlq", id, 15*time.Second)
	var tasks []*warren.Task
	for len(tasks) < 2 {
		select {
		case tk := <-seen:
			tasks = append(tasks, tk)
		default:
			t.Fatalf("the handler ran %d times before the dead letter, want 2", len(tasks))
		}
	}
	if tasks[1].Attempt != 2 || tasks[1].LastError != "gateway timeout" || len(tasks[1].History) != 1 {
		t.Errorf("second attempt: %+v", tasks[1])
	}

	h := d.Headers
	if d.Type != "charge" || string(d.Body) != `{"cents":100}` {
		t.Errorf("dead letter type %q body %q", d.Type, d.Body)
	}
	for k, want := range map[string]any{
		"warren-dead-reason": "permanent_error",
		"warren-error":       "card declined",
		"warren-last-error":  "gateway timeout",
		"warren-attempt":     int32(2),
		"warren-queue":       q,
		"warren-worker-host": "protocol-test",
	} {
		if h[k] != want {
			t.Errorf("%s = %T %v, want %T %v", k, h[k], h[k], want, want)
		}
	}
	for _, k := range []string{"warren-failed-at", "warren-duration-ms"} {
		if _, ok := h[k].(int64); !ok {
			t.Errorf("%s = %T %v, want int64", k, h[k], h[k])
		}
	}
	for k := range h {
		// x-delivery-count is added by the broker as we read: basic.get on
		// a 3.10 quorum queue sets it (to 0 here). Nothing else of the
		// broker's may travel with a dead letter the worker published.
		if strings.HasPrefix(k, "x-") && k != "x-delivery-count" {
			t.Errorf("dead letter carries broker header %s = %T %v", k, h[k], h[k])
		}
	}
	hist, ok := h["warren-history"].([]any)
	if !ok || len(hist) != 2 {
		t.Fatalf("warren-history = %T %v, want an array of 2 tables", h["warren-history"], h["warren-history"])
	}
	for i, want := range []string{"gateway timeout", "card declined"} {
		e, ok := hist[i].(amqp.Table)
		if !ok {
			t.Fatalf("history[%d] is %T, want a table", i, hist[i])
		}
		if e["attempt"] != int32(i+1) || e["error"] != want || e["worker"] != "protocol-test" {
			t.Errorf("history[%d] = %v", i, e)
		}
		if _, ok := e["failed-at"].(int64); !ok {
			t.Errorf("history[%d].failed-at = %T", i, e["failed-at"])
		}
		if _, ok := e["duration-ms"].(int64); !ok {
			t.Errorf("history[%d].duration-ms = %T", i, e["duration-ms"])
		}
	}
}

// TestProtocolUnroutableDelayed: a delayed message whose queue is deleted
// while it waits ends in warren.unroutable through the delivery exchange's
// alternate exchange, not silently dropped.
func TestProtocolUnroutableDelayed(t *testing.T) {
	t.Parallel()
	_, q, ch := protoSetup(t)

	id := fmt.Sprintf("proto-unroutable-%d", time.Now().UnixNano())
	key := strings.Repeat("0.", 23) + "1." + q
	start := time.Now()
	ch.publish(t, "warren.delay.23", key, amqp.Publishing{
		MessageId: id, Type: "gone", DeliveryMode: 2, Body: []byte("orphan"),
	})
	if _, err := ch.QueueDelete(q, false, false, false); err != nil {
		t.Fatalf("delete %s: %v", q, err)
	}
	if took := time.Since(start); took > 800*time.Millisecond {
		t.Fatalf("publishing and deleting the queue took %s: the 1 s delay may have run out first", took)
	}
	d := ch.get(t, "warren.unroutable", id, 15*time.Second)
	t.Logf("in warren.unroutable after %s: exchange %q routing key %q", time.Since(start), d.Exchange, d.RoutingKey)
	if string(d.Body) != "orphan" || d.RoutingKey != key {
		t.Errorf("body %q routing key %q, want orphan and %q", d.Body, d.RoutingKey, key)
	}
	// The broker's x-death names the delay queue it waited in.
	deaths, _ := d.Headers["x-death"].([]any)
	var waited []string
	for _, e := range deaths {
		if tab, ok := e.(amqp.Table); ok {
			waited = append(waited, fmt.Sprintf("%v/%v", tab["queue"], tab["reason"]))
		}
	}
	if len(waited) != 1 || waited[0] != "warren.delay.0/expired" {
		t.Errorf("x-death: %v, want warren.delay.0/expired", waited)
	}
}
