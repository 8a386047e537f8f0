package broker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Cursor reads a queue in order, without auto-ack, and settles each
// message it read: Ack removes it, Return hands it back. It is the broker
// side of admin's passes over a dead-letter queue, which decide what to
// keep and when to settle.
//
// A Cursor reads with basic.get, one round trip a message. With
// CursorOptions.Prefetch it reads the head of the queue through a
// consumer instead, Prefetch messages ahead, and goes on with basic.get
// for the last of the first CursorOptions.Reads messages: the consumer
// never takes a message past them (one the caller returned, or one that
// arrived after the Cursor opened). It stops the consumer only once the
// consumer's window is spent, so that no delivery is in flight when the
// broker cancels it: RabbitMQ 3.10.8 held deliveries of a quorum queue
// still in flight at the cancel unacked and undelivered until the channel
// closed, then requeued them out of their place. The settles the caller
// makes past the cap wait in the Cursor until the consumer has stopped,
// in order.
//
// What a Cursor has read and not settled stays on the broker, unacked: if
// the Cursor's channel or connection closes, the broker requeues it.
//
// A Cursor is not safe for concurrent use.
type Cursor struct {
	c     *Conn
	queue string
	ch    *amqp.Channel // reads and settles
	info  *amqp.Channel // passive declares; reopened after an error
	done  bool

	prefetch   int
	limit      int                  // settles the consumer's messages may send while it runs
	deliveries <-chan amqp.Delivery // the consumer's; nil once stopped
	tag        string               // the consumer's tag
	received   int                  // deliveries taken from the consumer
	sent       int                  // settles sent while the consumer ran
	deferred   []settle             // settles held until the consumer stops, in order
	buffered   []amqp.Delivery      // delivered before the consumer stopped, not read yet
}

type settle struct {
	tag uint64
	ack bool
}

// CursorOptions shape a Cursor. The zero value reads with basic.get only.
type CursorOptions struct {
	// Prefetch, above 0, reads through a consumer with this prefetch
	// window (basic.qos) when Reads is more than twice Prefetch. The
	// broker then holds at most Prefetch acks and returns of the Cursor
	// unapplied. 0 means basic.get only.
	Prefetch int
	// Reads is how many messages, from the head of the queue, the caller
	// means to read at most. It matters only with Prefetch.
	Reads int
}

// Read says how Cursor.Next read a message.
type Read int

// How Next read a message.
const (
	ReadEmpty    Read = iota // no message: basic.get found the queue empty
	ReadGet                  // basic.get: a barrier; MessageCount is set
	ReadConsumed             // delivered by the running consumer
	ReadBuffered             // delivered by the consumer before it stopped
)

// stallTimeout is how long a Cursor waits for its consumer's next
// delivery before it stops the consumer and reads on with basic.get.
const stallTimeout = 2 * time.Second

var cursorTags atomic.Uint64

// OpenCursor opens a Cursor over queue on its own channel.
func OpenCursor(ctx context.Context, c *Conn, queue string, o CursorOptions) (*Cursor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch, err := c.Channel()
	if err != nil {
		return nil, err
	}
	r := &Cursor{c: c, queue: queue, ch: ch}
	if o.Prefetch > 0 && o.Reads > 2*o.Prefetch {
		// The consumer delivers one message for each settle the broker
		// applies, beyond its window: sent+Prefetch in all. Capping the
		// settles it sends at Reads-Prefetch-1 leaves the last of the
		// Reads to basic.get.
		r.prefetch, r.limit = o.Prefetch, o.Reads-o.Prefetch-1
		if err := ch.Qos(o.Prefetch, 0, false); err != nil {
			_ = ch.Close()
			return nil, classify(err, OpConsume, "set the prefetch on "+queue)
		}
		r.tag = fmt.Sprintf("warren-cursor-%d", cursorTags.Add(1))
		if r.deliveries, err = ch.Consume(queue, r.tag, false, false, false, false, nil); err != nil {
			_ = ch.Close()
			return nil, classify(err, OpConsume, "consume "+queue)
		}
	}
	return r, nil
}

// Consuming reports whether the Cursor's consumer runs.
func (r *Cursor) Consuming() bool { return r.deliveries != nil }

// Next reads the next message of the queue and says how (ReadGet,
// ReadConsumed, ReadBuffered), or returns ReadEmpty if the queue has no
// message ready.
//
// Read with basic.get, the message's MessageCount is the number of
// messages the queue held ready after it, and on a quorum queue the read
// is a barrier: basic.get is a command of the queue's Raft log, so the
// broker has applied every ack and return the Cursor sent before it.
//
// Through the consumer, Next waits for its next delivery. Once the
// consumer has spent its window, once ctx has ended (Next does not fail
// for that: a caller finishing its work reads on), or after stallTimeout
// without a delivery, Next stops the consumer (Stop) and reads on, the
// messages it had delivered first.
//
// An error (OpConsume) means the channel is closed: the Cursor can
// neither read nor settle.
func (r *Cursor) Next(ctx context.Context) (amqp.Delivery, Read, error) {
	if r.deliveries != nil && (r.sent >= r.limit || ctx.Err() != nil) {
		if err := r.Stop(); err != nil {
			return amqp.Delivery{}, ReadEmpty, err
		}
	}
	if r.deliveries != nil {
		t := time.NewTimer(stallTimeout)
		defer t.Stop()
		select {
		case d, ok := <-r.deliveries:
			if ok {
				r.received++
				return d, ReadConsumed, nil
			}
		case <-ctx.Done():
		case <-t.C:
		}
		if err := r.Stop(); err != nil {
			return amqp.Delivery{}, ReadEmpty, err
		}
	}
	if len(r.buffered) > 0 {
		d := r.buffered[0]
		r.buffered = r.buffered[1:]
		return d, ReadBuffered, nil
	}
	d, ok, err := r.ch.Get(r.queue, false)
	if err != nil {
		return d, ReadEmpty, classify(err, OpConsume, "read "+r.queue)
	}
	if !ok {
		return d, ReadEmpty, nil
	}
	return d, ReadGet, nil
}

// Stop stops the consumer, if the Cursor reads through one: it waits
// (up to stallTimeout between deliveries) for the deliveries the settles
// it sent still bring, keeps them, in order, for Next, cancels the
// consumer, and sends the settles it held back. Next then reads on with
// basic.get. Stop on a Cursor without a consumer does nothing.
func (r *Cursor) Stop() error {
	if r.deliveries == nil {
		return nil
	}
	t := time.NewTimer(stallTimeout)
	defer t.Stop()
wait:
	for r.received < r.sent+r.prefetch {
		select {
		case d, ok := <-r.deliveries:
			if !ok {
				break wait
			}
			r.received++
			r.buffered = append(r.buffered, d)
			t.Reset(stallTimeout)
		case <-t.C:
			break wait
		}
	}
	err := r.ch.Cancel(r.tag, false)
	if err == nil {
		for d := range r.deliveries { // closed after cancel-ok, once drained
			r.received++
			r.buffered = append(r.buffered, d)
		}
	}
	r.deliveries = nil
	if err != nil {
		return classify(err, OpConsume, "cancel the consumer of "+r.queue)
	}
	for len(r.deferred) > 0 {
		s := r.deferred[0]
		if err := r.settle(s.tag, s.ack); err != nil {
			return err
		}
		r.deferred = r.deferred[1:]
	}
	return nil
}

// Ack removes the message read with delivery tag tag from the queue.
func (r *Cursor) Ack(tag uint64) error { return r.settle(tag, true) }

// Return hands the message read with delivery tag tag back to the queue
// (basic.nack with requeue). A quorum queue puts it at its back; a classic
// queue, back in its place.
func (r *Cursor) Return(tag uint64) error { return r.settle(tag, false) }

func (r *Cursor) settle(tag uint64, ack bool) error {
	if r.deliveries != nil {
		if r.sent >= r.limit {
			r.deferred = append(r.deferred, settle{tag, ack})
			return nil
		}
		r.sent++
	}
	if ack {
		if err := r.ch.Ack(tag, false); err != nil {
			return classify(err, OpConsume, "ack a message of "+r.queue)
		}
		return nil
	}
	if err := r.ch.Nack(tag, false, true); err != nil {
		return classify(err, OpConsume, "return a message to "+r.queue)
	}
	return nil
}

// Ready returns how many messages the queue holds ready for delivery (a
// passive declare, on a channel of its own, reopened after an error).
func (r *Cursor) Ready(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if r.info == nil || r.info.IsClosed() {
		ch, err := r.c.Channel()
		if err != nil {
			return 0, err
		}
		r.info = ch
	}
	q, err := r.info.QueueDeclarePassive(r.queue, true, false, false, false, nil)
	if err != nil {
		return 0, classify(err, OpInspect, "queue "+r.queue)
	}
	return q.Messages, nil
}

// Close stops the consumer (Stop: the settles it held back are sent) and
// closes the Cursor's channels: the broker requeues whatever the Cursor
// read and did not settle. It returns the error of the first that failed,
// unless the reading channel was already closed. Later calls do nothing.
func (r *Cursor) Close() error {
	if r.done {
		return nil
	}
	r.done = true
	stopErr := r.Stop()
	if r.info != nil {
		_ = r.info.Close()
	}
	if err := r.ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return classify(err, OpChannel, "close channel on "+r.queue)
	}
	if errors.Is(stopErr, amqp.ErrClosed) {
		return nil
	}
	return stopErr
}
