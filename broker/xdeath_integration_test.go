//go:build integration

package broker_test

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// docs/protocol.md section 6: for a task that went through the delay
// levels and was then dead-lettered by the broker (delivery limit), the
// reason is in the most recent death, x-death[0]; x-first-death-reason is
// the delay queue's "expired".
func TestProtocolDeliveryLimitAfterDelayXDeath(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	if err := broker.Declare(testbroker.Context(t, 30*time.Second), conn, broker.QueueOptions{DeliveryLimit: 1}, q); err != nil {
		t.Fatalf("declare: %v", err)
	}
	ch := protoDial(t)
	id := "xdeath-" + q
	key := strings.Repeat("0.", broker.DelayLevels-1) + "1." + q // 1 s
	ch.publish(t, "warren.delay.0", key, amqp.Publishing{MessageId: id, Type: "t", DeliveryMode: amqp.Persistent, Body: []byte("{}")})

	// Take it and give it back by closing the channel, until the broker
	// dead-letters it (delivery limit 1: the second return).
	bare, err := amqp.Dial(testbroker.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	ctx := testbroker.Context(t, 30*time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for returned := 0; returned < 2; {
		c, err := bare.Channel()
		if err != nil {
			t.Fatal(err)
		}
		d, ok, err := c.Get(q, false)
		if err != nil {
			t.Fatal(err)
		}
		if ok && d.MessageId == id {
			returned++
		}
		_ = c.Close()
		if !ok {
			select { // the delay is not over yet
			case <-ctx.Done():
				t.Fatalf("returned the task %d times in 30s", returned)
			case <-tick.C:
			}
		}
	}
	d := ch.get(t, warren.DeadLetterQueue(q), id, 30*time.Second)
	deaths, ok := d.Headers["x-death"].([]any)
	if !ok || len(deaths) < 2 {
		t.Fatalf("x-death = %#v, want the delay level's death and the delivery limit's", d.Headers["x-death"])
	}
	latest, _ := deaths[0].(amqp.Table)
	if latest["reason"] != "delivery_limit" || latest["queue"] != q {
		t.Errorf("x-death[0] = %v, want reason delivery_limit, queue %s", latest, q)
	}
	if r := d.Headers["x-first-death-reason"]; r != "expired" {
		t.Errorf("x-first-death-reason = %v, want expired (the delay level's)", r)
	}
	if fq := d.Headers["x-first-death-queue"]; fq != "warren.delay.0" {
		t.Errorf("x-first-death-queue = %v, want warren.delay.0", fq)
	}
}

// docs/protocol.md section 3: a delayed task that enters the delay levels
// below its highest 1 bit is delivered early, silently: 6 s (bits 2 and 1)
// entered at level 1 waits only level 1's 2 s.
func TestProtocolDelayEnteredTooLowComesEarly(t *testing.T) {
	_, q, ch := protoSetup(t)
	id := "early-" + q
	key := strings.Repeat("0.", broker.DelayLevels-3) + "1.1.0." + q // 6 s
	start := time.Now()
	ch.publish(t, "warren.delay.1", key, amqp.Publishing{MessageId: id, Type: "t", DeliveryMode: amqp.Persistent, Body: []byte("{}")})
	ch.get(t, q, id, 5*time.Second)
	if took := time.Since(start); took < 1500*time.Millisecond || took > 4*time.Second {
		t.Errorf("arrived after %s, want about 2 s (the 4 s of level 2 skipped)", took)
	}
}
