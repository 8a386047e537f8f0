//go:build integration

package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

// TestRetryAndDeadLetterDropTheSendersCC: a task a foreign client
// published with a CC header (RabbitMQ routes a copy to every queue it
// names, and keeps the header on the delivery) is retried through the
// delay levels and then dead-lettered. Neither republish may route a copy
// to the CC'd queue again: Derive drops CC and BCC.
func TestRetryAndDeadLetterDropTheSendersCC(t *testing.T) {
	e := setup(t)
	other := testbroker.Queue(t, e.conn)
	if err := broker.DeclareQueue(testbroker.Context(t, 10*time.Second), e.conn, other, broker.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	ch, err := e.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	if err := ch.PublishWithContext(context.Background(), "", e.queue, true, false, amqp.Publishing{
		MessageId: "cc-task", Type: "fails", DeliveryMode: amqp.Persistent, ContentType: "application/json",
		Headers: amqp.Table{"CC": []any{other}, warren.HeaderMaxAttempts: int32(2)},
		Body:    []byte(`{}`),
	}); err != nil {
		t.Fatal(err)
	}
	if c := <-confirms; !c.Ack {
		t.Fatal("publish nacked")
	}
	// The sender's own copy in the CC'd queue.
	if n := e.readyEventually(t, other, 1, 5*time.Second); n != 1 {
		t.Fatalf("%d messages in the CC'd queue after the publish, want the sender's 1", n)
	}
	obs := &events{finished: make(chan worker.Event, 4)}
	e.start(t, worker.HandlerFunc(func(context.Context, *warren.Task) error {
		return retry.After(time.Second, errors.New("always fails"))
	}), worker.Config{Observer: obs})
	if ev := obs.next(t, 10*time.Second); ev.Outcome != worker.Retried {
		t.Fatalf("attempt 1: %s, want retried", ev.Outcome)
	}
	if ev := obs.next(t, 15*time.Second); ev.Outcome != worker.DeadLettered {
		t.Fatalf("attempt 2: %s, want dead-lettered (max attempts 2)", ev.Outcome)
	}
	d := e.deadLetters(t, 1, 5*time.Second)[0]
	if _, ok := d.Headers["CC"]; ok {
		t.Errorf("the dead letter still carries CC: %v", d.Headers["CC"])
	}
	if n := e.readyEventually(t, other, 1, 2*time.Second); n != 1 {
		t.Errorf("%d messages in the CC'd queue, want only the sender's 1: the retry or the dead letter was copied there", n)
	}
}
