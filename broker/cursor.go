package broker

import (
	"context"
	"errors"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Cursor reads a queue one message at a time, in order, with basic.get
// without auto-ack, and settles each message it read: Ack removes it,
// Return hands it back. It is the broker side of admin's passes over a
// dead-letter queue, which decide what to keep and when to settle.
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
}

// OpenCursor opens a Cursor over queue on its own channel.
func OpenCursor(ctx context.Context, c *Conn, queue string) (*Cursor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch, err := c.Channel()
	if err != nil {
		return nil, err
	}
	return &Cursor{c: c, queue: queue, ch: ch}, nil
}

// Queue returns the queue the Cursor reads.
func (r *Cursor) Queue() string { return r.queue }

// Next reads the next message of the queue with basic.get, or reports false
// if the queue has no message ready. The message's MessageCount is the
// number of messages the queue held ready after it. On a quorum queue,
// basic.get is a command of the queue's Raft log: the broker has applied
// every ack and return the Cursor sent before it. An error (OpConsume)
// means the channel is closed: the Cursor can neither read nor settle.
func (r *Cursor) Next() (amqp.Delivery, bool, error) {
	d, ok, err := r.ch.Get(r.queue, false)
	if err != nil {
		return d, false, classify(err, OpConsume, "read "+r.queue)
	}
	return d, ok, nil
}

// Ack removes the message read with delivery tag tag from the queue.
func (r *Cursor) Ack(tag uint64) error {
	if err := r.ch.Ack(tag, false); err != nil {
		return classify(err, OpConsume, "ack a message of "+r.queue)
	}
	return nil
}

// Return hands the message read with delivery tag tag back to the queue
// (basic.nack with requeue). A quorum queue puts it at its back; a classic
// queue, back in its place.
func (r *Cursor) Return(tag uint64) error {
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

// Close closes the Cursor's channels: the broker requeues whatever the
// Cursor read and did not settle. It returns the error of closing the
// reading channel, unless that channel was already closed. Later calls do
// nothing.
func (r *Cursor) Close() error {
	if r.done {
		return nil
	}
	r.done = true
	if r.info != nil {
		_ = r.info.Close()
	}
	if err := r.ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return classify(err, OpChannel, "close channel on "+r.queue)
	}
	return nil
}
