package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultPrefetch is the prefetch of a consumer whose ConsumeOptions
// leave it 0.
const DefaultPrefetch = 100

// ConsumeOptions shape a Consumer. The zero value consumes with
// DefaultPrefetch and a tag of Warren's making.
type ConsumeOptions struct {
	// Prefetch is the channel's prefetch count (basic.qos): how many
	// deliveries the broker hands out before some are settled, 1 to
	// 65535. 0 means DefaultPrefetch.
	Prefetch int
	// Tag is the consumer tag, unique on the connection, as RabbitMQ's
	// tools show it. "" means "warren-<program>-<pid>-<n>".
	Tag string
}

// Consumer is one queue consumed on a channel of its own, with manual
// acknowledgements. Deliveries come from Deliveries; each is settled, once,
// by its delivery tag with Ack, Reject or Requeue, from any goroutine.
// Acks are batched: see Ack.
//
// A delivery may stay unsettled, held back, for as long as the consumer
// lives (and the broker's consumer_timeout allows): it takes one slot of
// the prefetch window, and the acks of later deliveries go out one by one
// after a few milliseconds instead of waiting for it. Once the channel
// closes (Close, a channel error, the connection dropping, the broker's
// consumer_timeout), every delivery still unsettled goes back to the
// queue, Done is closed, and settling returns ErrClosed: the consumer is
// not reopened, the caller consumes again. It is safe for concurrent use.
type Consumer struct {
	ch    *amqp.Channel
	queue string
	tag   string
	in    <-chan amqp.Delivery
	acker *acker

	lost      *closeWatch // Done and Err
	closeOnce sync.Once
	closeErr  error
}

var consumerSeq atomic.Uint64

// Consume opens a channel on c with o's prefetch and consumes queue on it
// with manual acknowledgements. A queue that does not exist is
// ErrQueueNotFound, a refused read permission ErrAccessRefused, both in
// an *OpError with OpConsume.
func Consume(ctx context.Context, c *Conn, queue string, o ConsumeOptions) (*Consumer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("broker: consume %s: %w", queue, err)
	}
	if o.Prefetch < 0 || o.Prefetch > 65535 {
		return nil, fmt.Errorf("broker: consume %s: prefetch must be 0 to 65535 (got %d)", queue, o.Prefetch)
	}
	if o.Prefetch == 0 {
		o.Prefetch = DefaultPrefetch
	}
	if o.Tag == "" {
		o.Tag = fmt.Sprintf("warren-%s-%d-%d", progName(), os.Getpid(), consumerSeq.Add(1))
	}
	ch, err := c.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Qos(o.Prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, &OpError{Op: OpConsume, Err: fmt.Errorf("broker: set prefetch on %s: %w", queue, err)}
	}
	in, err := ch.Consume(queue, o.Tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, consumeError(err, queue)
	}
	cs := &Consumer{ch: ch, queue: queue, tag: o.Tag, in: in, acker: newAcker(ch, o.Prefetch, ackFlushInterval), lost: watchClose(ch)}
	return cs, nil
}

// consumeError names a refused basic.consume: a missing queue and a
// refused permission by their sentinels, anything else (a transient
// INTERNAL_ERROR, say) as the broker said it.
func consumeError(err error, queue string) error {
	var ae *amqp.Error
	if errors.As(err, &ae) && (ae.Code == amqp.NotFound || ae.Code == amqp.AccessRefused) {
		return classify(err, OpConsume, "consume "+queue)
	}
	return &OpError{Op: OpConsume, Err: fmt.Errorf("broker: consume %s: %w", queue, err)}
}

// Queue returns the name of the queue consumed.
func (c *Consumer) Queue() string { return c.queue }

// Tag returns the consumer tag.
func (c *Consumer) Tag() string { return c.tag }

// Deliveries returns the deliveries, in the order the broker sent them.
// It is closed when the consumer is cancelled (by Cancel, or by the broker:
// its queue was deleted) or its channel closes. Settle each delivery with
// Ack, Reject or Requeue; never with the Delivery's own methods.
func (c *Consumer) Deliveries() <-chan amqp.Delivery { return c.in }

// Done is closed once the consumer's channel is gone: Close, a channel
// error, or the connection dropping. Its unsettled deliveries are then
// back in the queue.
func (c *Consumer) Done() <-chan struct{} { return c.lost.done }

// Err returns nil while the channel is open, and once Done is closed an
// error wrapping ErrClosed and, when the broker or the connection closed
// the channel, the *amqp.Error that says why.
func (c *Consumer) Err() error { return c.lost.Err() }

// Ack settles the delivery tag positively: the broker forgets the
// message. It returns before the ack is sent: acks of contiguous tags go
// out together, as one multiple ack, when a tenth of the prefetch window
// is settled or within 5ms. An ack still unsent when the channel dies is
// lost, and the message is delivered again (at-least-once). After the
// channel closed, Ack returns ErrClosed.
func (c *Consumer) Ack(tag uint64) error { return c.acker.settle(ackReq{tag: tag, ack: true}) }

// Reject settles the delivery tag negatively without requeueing
// (basic.reject): the broker dead-letters the message, as it holds it, to
// its queue's dead-letter target (the queue's .dlq for a queue Warren
// declared), or drops it when the queue has none. It is sent at once.
func (c *Consumer) Reject(tag uint64) error {
	return c.acker.settle(ackReq{tag: tag, reject: true})
}

// RequeueOptions shape Requeue. The zero value hands a message back
// without counting it toward its queue's delivery limit.
type RequeueOptions struct {
	// Counted hands the message back with basic.reject, which RabbitMQ
	// 4.3 and later count toward a quorum queue's delivery limit (as
	// every earlier version counts any hand-back): for a message whose
	// handling failed, so that one that can never move on is
	// dead-lettered in the end. false (the default) uses basic.nack,
	// which 4.3 does not count: for a message merely handed back, at
	// shutdown say (docs/compatibility.md).
	Counted bool
}

// Requeue hands the delivery tag back to its queue, for this or another
// consumer to receive again. It is sent at once.
func (c *Consumer) Requeue(tag uint64, o RequeueOptions) error {
	return c.acker.settle(ackReq{tag: tag, requeue: true, reject: o.Counted})
}

// Settled counts the deliveries settled through this consumer so far.
func (c *Consumer) Settled() int64 { return c.acker.settled.Load() }

// Cancel asks the broker to stop delivering (basic.cancel) and waits for
// its answer. The channel stays open: deliveries in hand can still be
// settled, and deliveries the broker sent before it stopped still arrive
// on Deliveries, which is then closed. Close hands the unsettled ones
// back.
func (c *Consumer) Cancel() error {
	if err := c.ch.Cancel(c.tag, false); err != nil {
		if errors.Is(err, amqp.ErrClosed) {
			return fmt.Errorf("%w: cancel %s: %w", ErrClosed, c.queue, err)
		}
		return &OpError{Op: OpConsume, Err: fmt.Errorf("broker: cancel consumer of %s: %w", c.queue, err)}
	}
	return nil
}

// Close sends the acks settled so far, then closes the channel: the broker
// takes back every delivery still unsettled. Settling afterwards returns
// ErrClosed. Close may be called more than once and from any goroutine; a
// channel already gone is no error.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() {
		c.acker.close()
		if err := c.ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
			c.closeErr = &OpError{Op: OpConsume, Err: fmt.Errorf("broker: close consumer of %s: %w", c.queue, err)}
		}
	})
	return c.closeErr
}

// closeWatch follows a channel until it closes: what Consumer and
// Subscription report as Done and Err.
type closeWatch struct {
	done chan struct{} // closed once the channel is gone
	err  error         // why, set before done is closed
}

// watchClose starts following ch.
func watchClose(ch *amqp.Channel) *closeWatch {
	w := &closeWatch{done: make(chan struct{})}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		if e := <-closed; e != nil {
			w.err = fmt.Errorf("%w: %w", ErrClosed, e)
		} else {
			w.err = ErrClosed
		}
		close(w.done)
	}()
	return w
}

// Err returns nil while the channel is open, and once done is closed an
// error wrapping ErrClosed and, when the broker or the connection closed
// the channel, the *amqp.Error that says why.
func (w *closeWatch) Err() error {
	select {
	case <-w.done:
		return w.err
	default:
		return nil
	}
}
