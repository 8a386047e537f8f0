package producer

import (
	"context"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/broker"
)

// link is what a Producer uses of its connection once New has declared the
// topology: connLink over a *broker.Conn, or a fake in unit tests.
type link interface {
	// FrameMax is the frame size negotiated with the broker (0: no limit).
	FrameMax() int
	// Await blocks until the connection is up, or ctx ends.
	Await(ctx context.Context) error
	// openPublisher opens a confirm-mode publisher with a window of
	// unconfirmed publishes (0: broker.DefaultWindow).
	openPublisher(window int) (publisher, error)
	// inspect returns nil if queue exists (broker.ErrQueueNotFound if not).
	inspect(ctx context.Context, queue string) error
}

// publisher publishes mandatory messages and reports their confirms: a
// *broker.Publisher through brokerPublisher, or a fake.
type publisher interface {
	// Publish sends msg and returns at once with its pending confirm.
	Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (confirm, error)
	// Err returns why the publisher can no longer publish, or nil.
	Err() error
	// Nacked reports whether the broker has nacked a publish on it.
	Nacked() bool
	// Flush waits for every pending confirm, or ctx's end.
	Flush(ctx context.Context) error
	// Close closes it; pending confirms fail with broker.ErrConfirmLost.
	Close() error
}

// confirm is one publish awaiting its confirm (a *broker.Pending).
type confirm interface {
	// Wait returns nil for a positive confirm of a routed message.
	Wait(ctx context.Context) error
}

// connLink is the link of a *broker.Conn.
type connLink struct{ *broker.Conn }

func (l connLink) openPublisher(window int) (publisher, error) {
	pub, err := broker.NewPublisher(l.Conn, window)
	if err != nil {
		return nil, err
	}
	return brokerPublisher{pub}, nil
}

func (l connLink) inspect(ctx context.Context, queue string) error {
	_, err := broker.Inspect(ctx, l.Conn, queue)
	return err
}

// brokerPublisher is the publisher of a *broker.Publisher.
type brokerPublisher struct{ *broker.Publisher }

// Publish publishes through the broker.Publisher.
func (b brokerPublisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (confirm, error) {
	pd, err := b.Publisher.Publish(ctx, exchange, key, msg)
	if err != nil {
		return nil, err // not a nil *Pending in a non-nil confirm
	}
	return pd, nil
}

var (
	_ link      = connLink{}
	_ publisher = brokerPublisher{}
)
