//go:build integration

package worker

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// TestBatchAckerRejectRequeues: Reject sends basic.reject with requeue on
// the consumer's channel, and the quorum queue delivers the task again,
// counted (x-delivery-count 1), as a nack does on RabbitMQ 3.10.
func TestBatchAckerRejectRequeues(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := broker.Declare(ctx, conn, broker.QueueOptions{}, q); err != nil {
		t.Fatal(err)
	}
	pub, err := broker.NewPublisher(conn, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.PublishWait(ctx, "", q, amqp.Publishing{MessageId: "r1", Type: "x", Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := newBatchAcker(ch, 10)
	defer a.close()
	next := func() amqp.Delivery {
		t.Helper()
		select {
		case d := <-deliveries:
			return d
		case <-ctx.Done():
			t.Fatal("no delivery")
			return amqp.Delivery{}
		}
	}
	d := next()
	if d.Redelivered {
		t.Fatal("first delivery marked redelivered")
	}
	if err := a.Reject(d.DeliveryTag, true); err != nil {
		t.Fatal(err)
	}
	d = next()
	n, _ := broker.HeaderInt(d.Headers, "x-delivery-count")
	if d.MessageId != "r1" || !d.Redelivered || n != 1 {
		t.Fatalf("redelivery: id %q, redelivered %v, x-delivery-count %d; want r1, true, 1", d.MessageId, d.Redelivered, n)
	}
	if err := a.Ack(d.DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
}
