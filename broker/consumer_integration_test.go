//go:build integration

package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// consumerEnv is a declared queue holding n published messages m0…m(n-1).
func consumerEnv(t *testing.T, n int) (*broker.Conn, string, context.Context) {
	t.Helper()
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, 30*time.Second)
	if err := broker.Declare(ctx, conn, broker.QueueOptions{}, q); err != nil {
		t.Fatal(err)
	}
	pub, err := broker.NewPublisher(conn, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for i := range n {
		if _, err := pub.Publish(ctx, "", q, amqp.Publishing{MessageId: fmt.Sprint("m", i), Type: "x", Body: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return conn, q, ctx
}

func next(ctx context.Context, t *testing.T, c *broker.Consumer) amqp.Delivery {
	t.Helper()
	select {
	case d, ok := <-c.Deliveries():
		if !ok {
			t.Fatal("deliveries closed")
		}
		return d
	case <-ctx.Done():
		t.Fatal("no delivery")
		return amqp.Delivery{}
	}
}

// ready waits until q holds want ready messages, and fails after a while.
func ready(ctx context.Context, t *testing.T, conn *broker.Conn, q string, want int) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	got := -1
	for {
		st, err := broker.Inspect(ctx, conn, q)
		if err != nil {
			t.Fatal(err)
		}
		if got = st.Ready; got == want {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s holds %d ready messages, want %d", q, got, want)
		}
	}
}

// TestConsumerRequeueCountedRedelivers: Requeue with Counted sends
// basic.reject with requeue, and the quorum queue delivers the message
// again, counted (x-delivery-count 1), as a nack does on RabbitMQ 3.10.
func TestConsumerRequeueCountedRedelivers(t *testing.T) {
	conn, q, ctx := consumerEnv(t, 1)
	c, err := broker.Consume(ctx, conn, q, broker.ConsumeOptions{Prefetch: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := next(ctx, t, c)
	if d.Redelivered {
		t.Fatal("first delivery marked redelivered")
	}
	if err := c.Requeue(d.DeliveryTag, broker.RequeueOptions{Counted: true}); err != nil {
		t.Fatal(err)
	}
	d = next(ctx, t, c)
	n, _ := broker.HeaderInt(d.Headers, "x-delivery-count")
	if d.MessageId != "m0" || !d.Redelivered || n != 1 {
		t.Fatalf("redelivery: id %q, redelivered %v, x-delivery-count %d; want m0, true, 1", d.MessageId, d.Redelivered, n)
	}
	if err := c.Ack(d.DeliveryTag); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ready(ctx, t, conn, q, 0)
	if got := c.Settled(); got != 2 {
		t.Errorf("Settled = %d, want 2", got)
	}
}

// TestConsumerHeldDeliveryGoesBackOthersAcked: with the first delivery
// held unsettled and every later one acked, the acks still reach the
// broker (one by one, as no multiple ack can cover them), Close sends the
// last ones, and only the held message comes back to the queue. Reject
// dead-letters its message to the queue's .dlq.
func TestConsumerHeldDeliveryGoesBackOthersAcked(t *testing.T) {
	const n = 30
	conn, q, ctx := consumerEnv(t, n)
	c, err := broker.Consume(ctx, conn, q, broker.ConsumeOptions{Prefetch: 50, Tag: "held-" + q})
	if err != nil {
		t.Fatal(err)
	}
	if c.Tag() != "held-"+q || c.Queue() != q {
		t.Errorf("Tag, Queue = %q, %q", c.Tag(), c.Queue())
	}
	held := next(ctx, t, c)
	rejected := next(ctx, t, c)
	if err := c.Reject(rejected.DeliveryTag); err != nil {
		t.Fatal(err)
	}
	for range n - 2 {
		if err := c.Ack(next(ctx, t, c).DeliveryTag); err != nil {
			t.Fatal(err)
		}
	}
	ready(ctx, t, conn, warren.DeadLetterQueue(q), 1)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ready(ctx, t, conn, q, 1)
	if err := c.Ack(held.DeliveryTag); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Ack after Close = %v, want ErrClosed", err)
	}
	if err := c.Err(); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Err after Close = %v, want ErrClosed", err)
	}
	c2, err := broker.Consume(ctx, conn, q, broker.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if d := next(ctx, t, c2); d.MessageId != held.MessageId || !d.Redelivered {
		t.Errorf("after Close: %s redelivered=%v, want the held %s", d.MessageId, d.Redelivered, held.MessageId)
	}
}

// TestConsumerCancelKeepsSettling: after Cancel the deliveries end, and
// a delivery in hand can still be acked; Close then hands nothing back.
func TestConsumerCancelKeepsSettling(t *testing.T) {
	conn, q, ctx := consumerEnv(t, 1)
	c, err := broker.Consume(ctx, conn, q, broker.ConsumeOptions{Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	d := next(ctx, t, c)
	if err := c.Cancel(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-c.Deliveries():
		if ok {
			t.Fatal("a delivery after Cancel with the prefetch window full")
		}
	case <-ctx.Done():
		t.Fatal("deliveries not closed after Cancel")
	}
	if err := c.Ack(d.DeliveryTag); err != nil {
		t.Fatal(err)
	}
	if c.Err() != nil {
		t.Errorf("Err = %v with the channel open", c.Err())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ready(ctx, t, conn, q, 0)
}

// TestConsumerDoneOnChannelError: a channel error (acking a tag the
// broker never delivered) closes the channel: Done is closed, Err carries
// the broker's *amqp.Error, and settling returns ErrClosed.
func TestConsumerDoneOnChannelError(t *testing.T) {
	conn, q, ctx := consumerEnv(t, 1)
	c, err := broker.Consume(ctx, conn, q, broker.ConsumeOptions{Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := next(ctx, t, c)
	if err := c.Ack(d.DeliveryTag + 1000); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed after a channel error")
	}
	var ae *amqp.Error
	if err := c.Err(); !errors.Is(err, broker.ErrClosed) || !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		t.Errorf("Err = %v, want ErrClosed with the broker's PRECONDITION_FAILED", err)
	}
	// The acker may still take a settle or two before it notices; the
	// frames fail, and the message is back in the queue either way.
	ready(ctx, t, conn, q, 1)
	_ = c.Close()
	if err := c.Ack(d.DeliveryTag); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Ack after the channel died and Close = %v, want ErrClosed", err)
	}
}

// TestConsumeMissingQueue: consuming a queue that does not exist is
// ErrQueueNotFound, from OpConsume, and leaves no channel behind.
func TestConsumeMissingQueue(t *testing.T) {
	conn := testbroker.Dial(t)
	ctx := testbroker.Context(t, 10*time.Second)
	_, err := broker.Consume(ctx, conn, "no-such-queue-"+t.Name(), broker.ConsumeOptions{})
	if !errors.Is(err, broker.ErrQueueNotFound) || broker.OpOf(err) != broker.OpConsume {
		t.Fatalf("Consume of a missing queue = %v (op %q), want ErrQueueNotFound from consume", err, broker.OpOf(err))
	}
	if _, err := broker.Consume(ctx, conn, "q", broker.ConsumeOptions{Prefetch: 70000}); err == nil {
		t.Error("prefetch 70000 accepted")
	}
}
