//go:build integration

package broker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// TestGuardKeepsTheConnectionThroughUnreadableHeaders publishes, with
// pika, messages whose headers sit on both sides of amqp091-go's limits,
// and reads them all on one connection: the ones the client would refuse
// arrive with HeaderUnreadable saying why, the others as sent, and the
// connection never drops. Without the guard the first unreadable message
// closes the connection (502, invalid field or value inside of a frame).
func TestGuardKeepsTheConnectionThroughUnreadableHeaders(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, 60*time.Second)
	if err := broker.Declare(ctx, conn, broker.QueueOptions{}, q); err != nil {
		t.Fatal(err)
	}
	frameMax := conn.FrameMax()
	if frameMax != 131072 {
		t.Fatalf("FrameMax = %d, want the broker's default 131072", frameMax)
	}
	cases := []struct {
		msg  testbroker.Foreign
		want string // "" readable, else a part of the reason
	}{
		{testbroker.Foreign{ID: "plain"}, ""},
		{testbroker.Foreign{ID: "deep-31", Deep: 31}, ""},
		{testbroker.Foreign{ID: "deep-32", Deep: 32}, "nested more than 32 deep"},
		{testbroker.Foreign{ID: "wide-8100", Wide: 8100}, ""},
		{testbroker.Foreign{ID: "wide-8300", Wide: 8300}, "more than 8192 entries"},
		{testbroker.Foreign{ID: "deep-200", Deep: 200}, "nested more than 32 deep"},
		{testbroker.Foreign{ID: "after"}, ""},
	}
	var msgs []testbroker.Foreign
	for _, c := range cases {
		c.msg.Type, c.msg.Body = "t", `{"id":"`+c.msg.ID+`"}`
		msgs = append(msgs, c.msg)
	}
	testbroker.PublishForeign(t, q, msgs...)

	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	for _, c := range cases {
		d, ok, err := ch.Get(q, false)
		if err != nil || !ok {
			t.Fatalf("%s: get: %v, ok %v (reconnects %d)", c.msg.ID, err, ok, conn.Reconnects())
		}
		if d.MessageId != c.msg.ID {
			t.Fatalf("got %q, want %q", d.MessageId, c.msg.ID)
		}
		if string(d.Body) != `{"id":"`+c.msg.ID+`"}` || d.Type != "t" || d.ContentType != "application/json" || d.DeliveryMode != 2 {
			t.Errorf("%s: body or properties changed: %q type %q ct %q mode %d", c.msg.ID, d.Body, d.Type, d.ContentType, d.DeliveryMode)
		}
		note := broker.HeaderString(d.Headers, warren.HeaderUnreadable)
		if c.want == "" && note != "" {
			t.Errorf("%s: readable message marked unreadable: %s", c.msg.ID, note)
		}
		if c.want != "" && !strings.Contains(note, c.want) {
			t.Errorf("%s: unreadable note %q, want it to say %q (headers %d)", c.msg.ID, note, c.want, len(d.Headers))
		}
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if n := conn.Reconnects(); n != 0 {
		t.Errorf("the connection dropped %d times", n)
	}
	if n := conn.Unreadable(); n != 3 {
		t.Errorf("Unreadable() = %d, want 3", n)
	}
}
