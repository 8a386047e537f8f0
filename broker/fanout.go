package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// This file holds what a broadcast needs: a fanout exchange, a
// fire-and-forget publisher for it, and a private queue that hears it.
// Warren's worker heartbeats use them (package fleet); nothing here is for
// tasks, which always go through confirmed publishes and acked consumes.

// DeclareFanout declares exchange as a durable fanout exchange. It is
// idempotent; an exchange of that name and another kind fails with
// ErrQueueMismatch.
func DeclareFanout(ctx context.Context, c *Conn, exchange string) error {
	return c.withChannel(ctx, "declare exchange "+exchange, func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare(exchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
			return classify(err, OpDeclare, "declare exchange "+exchange)
		}
		return nil
	})
}

// Broadcaster publishes messages without confirms and without the
// mandatory flag: for messages whose loss costs nothing, such as
// heartbeats, sent again a moment later anyway. It opens its channel when
// it first publishes and again after the channel closes. It is safe for
// concurrent use.
type Broadcaster struct {
	conn *Conn

	mu     sync.Mutex
	ch     *amqp.Channel
	closes chan *amqp.Error // the channel's close notification
	closed bool
}

// NewBroadcaster returns a Broadcaster on c. It opens no channel yet.
func NewBroadcaster(c *Conn) *Broadcaster { return &Broadcaster{conn: c} }

// Publish sends msg to exchange with routing key, and returns once it is
// written: no confirm is awaited, so a message the broker drops is not
// reported. While the broker blocks publishing (an alarm) it waits up to
// ctx's end and fails with ErrBlocked. A broker that closed the channel
// after the previous publish (ACCESS_REFUSED for a user without the write
// permission, NOT_FOUND for a missing exchange) makes this Publish fail
// with that error, classified (ErrAccessRefused, ErrQueueNotFound), and
// the next one open a new channel. After Close it fails with ErrClosed.
func (b *Broadcaster) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	if err := b.conn.AwaitUnblocked(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("%w: broadcaster closed", ErrClosed)
	}
	if b.ch != nil {
		select {
		case e, ok := <-b.closes:
			b.ch = nil
			if ok && e != nil {
				return classify(e, OpPublish, "publish to "+exchange)
			}
		default:
		}
	}
	if b.ch == nil {
		ch, err := b.conn.Channel()
		if err != nil {
			return err
		}
		b.ch = ch
		b.closes = ch.NotifyClose(make(chan *amqp.Error, 1))
	}
	if err := b.ch.PublishWithContext(ctx, exchange, key, false, false, msg); err != nil {
		_ = b.ch.Close()
		b.ch = nil
		if errors.Is(err, amqp.ErrClosed) {
			return fmt.Errorf("%w: publish to %s: %w", ErrNotConnected, exchange, err)
		}
		return classify(err, OpPublish, "publish to "+exchange)
	}
	return nil
}

// Close closes the Broadcaster's channel; later publishes fail with
// ErrClosed. It does not close the connection.
func (b *Broadcaster) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.ch == nil {
		return nil
	}
	err := b.ch.Close()
	b.ch = nil
	if err != nil && !errors.Is(err, amqp.ErrClosed) {
		return err
	}
	return nil
}

// Subscription is a private queue bound to a fanout exchange and consumed
// with automatic acknowledgements: each message is the broker's to forget
// as soon as it is sent. The queue is server-named, exclusive and
// auto-delete: it goes with the subscription's connection. Once the
// channel closes (Close, a channel error, the connection dropping), Done
// is closed and the caller subscribes again. It is safe for concurrent use.
type Subscription struct {
	ch    *amqp.Channel
	queue string
	in    <-chan amqp.Delivery
	lost  *closeWatch // Done and Err
	once  sync.Once
}

// Subscribe declares a private queue on c (server-named, exclusive,
// auto-delete, classic, holding at most maxLen messages: the oldest go
// first), binds it to exchange, which must exist, and consumes it with
// automatic acknowledgements. maxLen 0 means no bound.
func Subscribe(ctx context.Context, c *Conn, exchange string, maxLen int) (*Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("broker: subscribe to %s: %w", exchange, err)
	}
	ch, err := c.Channel()
	if err != nil {
		return nil, err
	}
	args := amqp.Table{"x-queue-type": string(Classic)}
	if maxLen > 0 {
		args["x-max-length"] = int64(maxLen)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, args)
	if err != nil {
		_ = ch.Close()
		return nil, classify(err, OpDeclare, "declare a queue for "+exchange)
	}
	if err := ch.QueueBind(q.Name, "", exchange, false, nil); err != nil {
		_ = ch.Close()
		return nil, classify(err, OpBind, "bind "+q.Name+" to "+exchange)
	}
	in, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, classify(err, OpConsume, "consume "+q.Name)
	}
	return &Subscription{ch: ch, queue: q.Name, in: in, lost: watchClose(ch)}, nil
}

// Queue returns the name the broker gave the subscription's queue.
func (s *Subscription) Queue() string { return s.queue }

// Deliveries returns the messages, already acknowledged. It is closed when
// the channel closes.
func (s *Subscription) Deliveries() <-chan amqp.Delivery { return s.in }

// Done is closed once the subscription's channel is gone.
func (s *Subscription) Done() <-chan struct{} { return s.lost.done }

// Err returns nil while the channel is open, and once Done is closed an
// error wrapping ErrClosed and, when the broker or the connection closed
// the channel, the *amqp.Error that says why.
func (s *Subscription) Err() error { return s.lost.Err() }

// Close closes the channel; the broker deletes the queue. It may be
// called more than once.
func (s *Subscription) Close() error {
	var err error
	s.once.Do(func() {
		if cerr := s.ch.Close(); cerr != nil && !errors.Is(cerr, amqp.ErrClosed) {
			err = cerr
		}
	})
	return err
}
