//go:build integration

package broker_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// TestCursorReadsReturnsAndAcks reads a quorum queue with a Cursor,
// returns some messages and acks others, and checks what the queue holds
// after: the returned ones at its back, in order; the acked ones gone;
// the ones left unsettled at Close requeued.
func TestCursorReadsReturnsAndAcks(t *testing.T) {
	conn := testbroker.Dial(t)
	ctx := testbroker.Context(t, 60*time.Second)
	q := testbroker.Queue(t, conn)
	if err := broker.DeclarePlain(ctx, conn, q, broker.DeclareOptions{}); err != nil {
		t.Fatal(err)
	}
	pub, err := broker.NewPublisher(conn, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for i := range 5 {
		if err := pub.PublishWait(ctx, "", q, amqp.Publishing{MessageId: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}

	cur, err := broker.OpenCursor(ctx, conn, q, broker.CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := cur.Ready(ctx); err != nil || n != 5 {
		t.Fatalf("Ready = %d, %v; want 5", n, err)
	}
	var ids []string
	for i := range 5 {
		d, how, err := cur.Next(ctx)
		if err != nil || how != broker.ReadGet {
			t.Fatalf("Next %d: %v, %v", i, how, err)
		}
		if i == 0 && d.MessageCount != 4 {
			t.Errorf("first message: MessageCount %d, want 4", d.MessageCount)
		}
		ids = append(ids, d.MessageId)
		if i%2 == 1 {
			err = cur.Ack(d.DeliveryTag)
		} else {
			err = cur.Return(d.DeliveryTag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"0", "1", "2", "3", "4"}; !slices.Equal(ids, want) {
		t.Fatalf("read %v, want %v", ids, want)
	}
	// The returns are at the back of the queue, in order; the acked
	// messages are gone. Two read and left unsettled go back at Close.
	ids = nil
	for range 2 {
		d, how, err := cur.Next(ctx)
		if err != nil || how != broker.ReadGet {
			t.Fatalf("Next after the returns: %v, %v", how, err)
		}
		ids = append(ids, d.MessageId)
	}
	if want := []string{"0", "2"}; !slices.Equal(ids, want) {
		t.Fatalf("after the returns, read %v, want %v", ids, want)
	}
	if err := cur.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cur.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := cur.Next(ctx); broker.OpOf(err) != broker.OpConsume {
		t.Fatalf("Next after Close = %v, want an OpConsume error", err)
	}

	cur, err = broker.OpenCursor(ctx, conn, q, broker.CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := cur.Ready(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready = %d after Close, want 3", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ids = nil
	for {
		d, how, err := cur.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if how == broker.ReadEmpty {
			break
		}
		ids = append(ids, d.MessageId)
		if err := cur.Ack(d.DeliveryTag); err != nil {
			t.Fatal(err)
		}
	}
	// RabbitMQ 3.10 puts what a closing channel held before the messages
	// returned with a nack: the order of 0 and 2 is the broker's.
	slices.Sort(ids)
	if want := []string{"0", "2", "4"}; !slices.Equal(ids, want) {
		t.Fatalf("left %v, want %v", ids, want)
	}
}

// TestCursorPrefetchKeepsTheOrder reads a quorum queue through a Cursor's
// consumer, returning each message as it reads it: the Cursor reads the
// queue's messages once each, in order, the last with basic.get, and
// never one it returned; a pass whose context ends midway reads on, in
// order, with basic.get; the queue is in its order after each pass.
func TestCursorPrefetchKeepsTheOrder(t *testing.T) {
	const n = 300
	conn := testbroker.Dial(t)
	ctx := testbroker.Context(t, 120*time.Second)
	q := testbroker.Queue(t, conn)
	if err := broker.DeclarePlain(ctx, conn, q, broker.DeclareOptions{}); err != nil {
		t.Fatal(err)
	}
	pub, err := broker.NewPublisher(conn, 256)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("m%04d", i))
		if _, err := pub.Publish(ctx, "", q, amqp.Publishing{MessageId: want[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	pass := func(name string, stopAt int) {
		t.Helper()
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		cur, err := broker.OpenCursor(pctx, conn, q, broker.CursorOptions{Prefetch: 16, Reads: n})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		var hows []broker.Read
		for i := range n {
			if i == stopAt {
				cancel()
			}
			d, how, err := cur.Next(pctx)
			if err != nil || how == broker.ReadEmpty {
				t.Fatalf("%s: Next %d: %v, %v", name, i, how, err)
			}
			got, hows = append(got, d.MessageId), append(hows, how)
			if err := cur.Return(d.DeliveryTag); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: read %v, want %v", name, got, want)
		}
		if hows[0] != broker.ReadConsumed || hows[n-1] != broker.ReadGet {
			t.Fatalf("%s: read the first with %d, the last with %d; want the consumer, then basic.get", name, hows[0], hows[n-1])
		}
		// The last returns show in the queue before the next pass.
		deadline := time.Now().Add(10 * time.Second)
		for {
			r, err := cur.Ready(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d ready, want %d", name, r, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := cur.Close(); err != nil {
			t.Fatal(err)
		}
	}
	pass("full pass", -1)
	pass("pass interrupted at 100", 100)
	pass("full pass after", -1)
}
