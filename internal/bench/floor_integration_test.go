//go:build integration

package bench

import (
	"bytes"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// BenchmarkClientPublish measures what amqp091-go itself spends on one
// publish on a confirm-mode channel (no confirm awaited), for the message
// the baseline publishes and for the one Warren's producer publishes (a
// first enqueue: message_id, type, timestamp and the warren-enqueued-at
// header on top). Its allocs/op are the floor of warren bench's
// allocs/job for each client:
//
//	go test -tags integration -run '^$' -bench ClientPublish -benchmem ./internal/bench/
func BenchmarkClientPublish(b *testing.B) {
	conn, err := amqp.Dial(testbroker.URL())
	if err != nil {
		b.Skipf("broker unreachable: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	// A server-named, exclusive queue that goes with the connection;
	// its length bound keeps the broker's memory flat.
	q, err := ch.QueueDeclare("", false, true, true, false, amqp.Table{"x-max-length": int32(1000)})
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte{'x'}, DefaultSize)
	task := &warren.Task{ID: "0192f0c8-1234-7abc-8def-0123456789ab", Type: taskType, Queue: q.Name, Payload: body, Attempt: 1, EnqueuedAt: time.Now()}
	for _, c := range []struct {
		name string
		msg  amqp.Publishing
	}{
		{"bare", amqp.Publishing{ContentType: broker.DefaultContentType, DeliveryMode: amqp.Persistent, Body: body}},
		{"warren", broker.Encode(task)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ch.PublishWithDeferredConfirm("", q.Name, true, false, c.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
