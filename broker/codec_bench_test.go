package broker

import (
	"bytes"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
)

// The codec's hot paths, with allocations. Figures are kept in
// docs/benchmarks.md; run them with
//
//	go test -run '^$' -bench . -benchmem ./broker/

// benchTask is a task as a producer builds it for a first enqueue.
func benchTask() *warren.Task {
	return &warren.Task{
		ID:         "0192f8a4-6c1e-7b3a-9d2e-5f4a3b2c1d0e",
		Type:       "bench",
		Queue:      "bench-queue",
		Payload:    bytes.Repeat([]byte{'x'}, 256),
		Attempt:    1,
		EnqueuedAt: time.UnixMilli(1_700_000_000_123),
	}
}

// benchDelivery is what the client hands a consumer for msg: the headers
// come off the wire as int32, int64 and string values.
func benchDelivery(msg amqp.Publishing) *amqp.Delivery {
	return &amqp.Delivery{
		Headers: msg.Headers, ContentType: msg.ContentType, DeliveryMode: msg.DeliveryMode,
		MessageId: msg.MessageId, Type: msg.Type, Timestamp: msg.Timestamp, Body: msg.Body,
	}
}

func BenchmarkEncode(b *testing.B) {
	t := benchTask()
	b.ReportAllocs()
	for b.Loop() {
		_ = Encode(t)
	}
}

func BenchmarkDecode(b *testing.B) {
	d := benchDelivery(Encode(benchTask()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(d, "bench-queue"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRetried decodes a third attempt carrying its history and
// the broker's x-death headers.
func BenchmarkDecodeRetried(b *testing.B) {
	t := benchTask()
	t.Attempt = 3
	t.LastError = "smtp: 421 try again later"
	now := time.UnixMilli(1_700_000_000_123)
	t.History = []warren.Failure{
		{Attempt: 1, Error: "smtp: 421", FailedAt: now, Worker: "w1", Duration: 3 * time.Millisecond},
		{Attempt: 2, Error: "smtp: 421", FailedAt: now.Add(time.Second), Worker: "w1", Duration: 4 * time.Millisecond},
	}
	msg := Encode(t)
	msg.Headers["x-death"] = []any{amqp.Table{"count": int64(1), "queue": "warren.delay.1", "reason": "expired"}}
	msg.Headers["x-first-death-queue"] = "warren.delay.1"
	d := benchDelivery(msg)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(d, "bench-queue"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDerive builds a retry of a delivered task, as the worker does.
func BenchmarkDerive(b *testing.B) {
	d := benchDelivery(Encode(benchTask()))
	d.Headers["x-delivery-count"] = int64(1)
	hist := EncodeHistory([]warren.Failure{{Attempt: 1, Error: "boom", FailedAt: time.UnixMilli(1_700_000_000_123), Worker: "w1"}})
	b.ReportAllocs()
	for b.Loop() {
		_ = Derive(d, amqp.Table{
			warren.HeaderAttempt:   int32(2),
			warren.HeaderLastError: "boom",
			warren.HeaderHistory:   hist,
			warren.HeaderDeliverAt: int64(1_700_000_001_123),
		})
	}
}

func BenchmarkDelayRoute(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DelayRoute("bench-queue", 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}
