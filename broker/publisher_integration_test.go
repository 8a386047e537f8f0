//go:build integration

package broker_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

func msgID(id string) amqp.Publishing {
	return amqp.Publishing{MessageId: id, Type: "t", DeliveryMode: amqp.Persistent, Body: []byte("{}")}
}

// declareRejecting declares a classic queue that holds one message and
// nacks every publish past it (x-overflow reject-publish).
func declareRejecting(t *testing.T, c *broker.Conn) string {
	t.Helper()
	q := testbroker.Queue(t, c)
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{
		"x-queue-type": "classic", "x-max-length": int32(1), "x-overflow": "reject-publish",
	}); err != nil {
		t.Fatal(err)
	}
	return q
}

// TestPublisherConfirmsEachPublishInterleaved pipelines routed and
// unroutable publishes through a window smaller than their number: each
// gets its own verdict, and the routed ones are all in the queue.
func TestPublisherConfirmsEachPublishInterleaved(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, 30*time.Second)
	if err := broker.DeclareQueue(ctx, conn, q, broker.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	pub, err := broker.NewPublisher(conn, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	const n = 300
	pend := make([]*broker.Pending, n)
	for i := range n {
		key := q
		if i%7 == 3 {
			key = q + "-nowhere"
		}
		if pend[i], err = pub.Publish(ctx, "", key, msgID(fmt.Sprint("m", i))); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	routed := 0
	// Wait in reverse: a later verdict waits for the earlier ones.
	for i := n - 1; i >= 0; i-- {
		err := pend[i].Wait(ctx)
		if i%7 == 3 {
			if !errors.Is(err, broker.ErrUnroutable) {
				t.Errorf("publish %d to a missing queue: %v, want ErrUnroutable", i, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("publish %d: %v", i, err)
		}
		routed++
		select {
		case <-pend[i].Done():
		default:
			t.Errorf("publish %d: Done not closed after Wait", i)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := broker.Inspect(ctx, conn, q)
	if err != nil || st.Ready != routed {
		t.Errorf("queue holds %d messages (%v), want %d", st.Ready, err, routed)
	}
	if pub.Nacked() || pub.Err() != nil {
		t.Errorf("Nacked %v, Err %v", pub.Nacked(), pub.Err())
	}
}

// TestPublisherVerdictsUnderConcurrentPublishers has goroutines publish
// and wait at once, routed and unroutable messages mixed, through a small
// window: each gets its own message's verdict.
func TestPublisherVerdictsUnderConcurrentPublishers(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, 60*time.Second)
	if err := broker.DeclareQueue(ctx, conn, q, broker.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	pub, err := broker.NewPublisher(conn, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	const workers, each = 8, 60
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key, want := q, error(nil)
				if (w+i)%5 == 0 {
					key, want = q+"-nowhere", broker.ErrUnroutable
				}
				err := pub.PublishWait(ctx, "", key, msgID(fmt.Sprint(w, "-", i)))
				if (want == nil && err != nil) || (want != nil && !errors.Is(err, want)) {
					t.Errorf("worker %d publish %d to %s: %v, want %v", w, i, key, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestPublisherReportsTheBrokersNack(t *testing.T) {
	conn := testbroker.Dial(t)
	q := declareRejecting(t, conn)
	ctx := testbroker.Context(t, 30*time.Second)
	pub, err := broker.NewPublisher(conn, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.PublishWait(ctx, "", q, msgID("first")); err != nil {
		t.Fatalf("first publish: %v", err)
	}
	if err := pub.PublishWait(ctx, "", q, msgID("second")); !errors.Is(err, broker.ErrNacked) || errors.Is(err, broker.ErrConfirmLost) {
		t.Fatalf("publish past x-max-length: %v, want ErrNacked", err)
	}
	if !pub.Nacked() || pub.Err() != nil {
		t.Errorf("Nacked %v, Err %v: want a nacked, open channel", pub.Nacked(), pub.Err())
	}
}

// TestPublisherChannelErrorLosesThePendingConfirms publishes to a missing
// exchange, which makes the broker close the channel: the publish is lost
// (not nacked) with the broker's reason, and the publisher is closed.
func TestPublisherChannelErrorLosesThePendingConfirms(t *testing.T) {
	conn := testbroker.Dial(t)
	ctx := testbroker.Context(t, 30*time.Second)
	pub, err := broker.NewPublisher(conn, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	pd, err := pub.Publish(ctx, "no-such-exchange-"+t.Name(), "k", msgID("x"))
	if err != nil {
		t.Fatal(err)
	}
	err = pd.Wait(ctx)
	if !errors.Is(err, broker.ErrConfirmLost) || errors.Is(err, broker.ErrNacked) {
		t.Fatalf("publish to a missing exchange: %v, want ErrConfirmLost", err)
	}
	if !strings.Contains(err.Error(), "NOT_FOUND") {
		t.Errorf("the broker's reason is not kept: %v", err)
	}
	<-pub.Closed()
	if _, err := pub.Publish(ctx, "", "q", msgID("y")); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("publish on the closed publisher: %v, want ErrClosed", err)
	}
}

func TestSenderPublishesOnANewChannelAfterAChannelError(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, 30*time.Second)
	if err := broker.DeclareQueue(ctx, conn, q, broker.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := broker.NewSender(conn, broker.SenderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PublishWait(ctx, "no-such-exchange-"+t.Name(), "k", msgID("x")); !errors.Is(err, broker.ErrConfirmLost) {
		t.Fatalf("publish to a missing exchange: %v, want ErrConfirmLost", err)
	}
	if err := s.PublishWait(ctx, "", q, msgID("y")); err != nil {
		t.Fatalf("publish after the channel error: %v", err)
	}
	if s.Reopens() != 1 {
		t.Errorf("Reopens = %d, want 1", s.Reopens())
	}
}

func TestSenderPublishesOnANewChannelAfterANack(t *testing.T) {
	conn := testbroker.Dial(t)
	full := declareRejecting(t, conn)
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, 30*time.Second)
	if err := broker.DeclareQueue(ctx, conn, q, broker.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := broker.NewSender(conn, broker.SenderConfig{RetireTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, want := range []error{nil, broker.ErrNacked} {
		if err := s.PublishWait(ctx, "", full, msgID(fmt.Sprint("f", i))); !errors.Is(err, want) {
			t.Fatalf("publish %d to the full queue: %v, want %v", i, err, want)
		}
	}
	if s.Reopens() != 0 {
		t.Fatalf("Reopens = %d before the next publish", s.Reopens())
	}
	if err := s.PublishWait(ctx, "", q, msgID("y")); err != nil {
		t.Fatalf("publish after the nack: %v", err)
	}
	if s.Reopens() != 1 {
		t.Errorf("Reopens = %d, want 1: a nacked channel is replaced", s.Reopens())
	}
}

func TestSenderPublishesAfterTheConnectionComesBack(t *testing.T) {
	name := fmt.Sprintf("test %s %d", t.Name(), time.Now().UnixNano())
	conn := testbroker.DialNamed(t, broker.Config{Name: name, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond})
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, 60*time.Second)
	if err := broker.DeclareQueue(ctx, conn, q, broker.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := broker.NewSender(conn, broker.SenderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PublishWait(ctx, "", q, msgID("before")); err != nil {
		t.Fatal(err)
	}
	lost := conn.Lost()
	if testbroker.CloseConnection(t, name) == 0 {
		t.Fatal("the broker closed no connection")
	}
	select {
	case <-lost:
	case <-ctx.Done():
		t.Fatal("the connection loss was not noticed")
	}
	if err := s.PublishWait(ctx, "", q, msgID("after")); err != nil {
		t.Fatalf("publish across the reconnect: %v", err)
	}
	if s.Reopens() != 1 {
		t.Errorf("Reopens = %d, want 1", s.Reopens())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.PublishWait(ctx, "", q, msgID("closed")); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("publish after Close: %v, want ErrClosed", err)
	}
}
