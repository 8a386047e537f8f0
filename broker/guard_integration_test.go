//go:build integration

package broker_test

import (
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

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

// recordingConn keeps what the client writes.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	out []byte
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out = append(c.out, p...)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// TestPropertiesSizeMatchesTheWire publishes messages with every kind of
// header value and compares broker.PropertiesSize with the content header
// frame amqp091-go actually wrote.
func TestPropertiesSizeMatchesTheWire(t *testing.T) {
	var rec *recordingConn
	dial := amqp.DefaultDial(10 * time.Second)
	c, err := amqp.DialConfig(testbroker.URL(), amqp.Config{Dial: func(n, a string) (net.Conn, error) {
		conn, err := dial(n, a)
		if err != nil {
			return nil, err
		}
		rec = &recordingConn{Conn: conn}
		return rec, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	msgs := []amqp.Publishing{
		{},
		{ContentType: "application/json", MessageId: "m", Type: "t", DeliveryMode: 2, Timestamp: time.Now(), Priority: 1,
			CorrelationId: "c", ReplyTo: "r", Expiration: "60000", AppId: "a", ContentEncoding: "gzip"},
		{Headers: amqp.Table{"bool": true, "byte": byte(1), "i8": int8(1), "i16": int16(1), "u16": uint16(1), "int": 1, "i32": int32(1),
			"u32": uint32(1), "i64": int64(1), "f32": float32(1), "f64": 1.0, "dec": amqp.Decimal{Scale: 1, Value: 1}, "s": "string",
			"bytes": []byte{1, 2, 3}, "time": time.Now(), "nil": nil, "arr": []any{"a", int32(1), amqp.Table{"x": "y"}},
			"table": amqp.Table{"nested": amqp.Table{"deeper": []any{}}}}},
	}
	for i, msg := range msgs {
		rec.mu.Lock()
		rec.out = nil
		rec.mu.Unlock()
		if err := ch.Publish("", "no-such-queue-"+t.Name(), false, false, msg); err != nil {
			t.Fatal(err)
		}
		rec.mu.Lock()
		b := rec.out
		rec.mu.Unlock()
		got := -1
		for len(b) >= 8 {
			size := int(binary.BigEndian.Uint32(b[3:7]))
			if b[0] == 2 {
				got = size
				break
			}
			b = b[7+size+1:]
		}
		if want := broker.PropertiesSize(&msg); got != want {
			t.Errorf("message %d: the client wrote a %d-byte content header, PropertiesSize says %d", i, got, want)
		}
	}
}
