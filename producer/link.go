package producer

import (
	"context"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/broker"
)

// link is what a Producer uses of the broker once New has declared the
// topology: connLink over a *broker.Conn and its *broker.Sender, or a fake
// in unit tests.
type link interface {
	// FrameMax is the frame size negotiated with the broker (0: no limit).
	FrameMax() int
	// publish sends a mandatory msg and returns at once with its pending
	// confirm. It waits (up to ctx) while the connection is down, and
	// publishes on a new channel after a channel loss or a nack (see
	// broker.Sender).
	publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (confirm, error)
	// inspect returns nil if queue exists (broker.ErrQueueNotFound if not).
	inspect(ctx context.Context, queue string) error
	// close closes the publishing channel; pending confirms fail with
	// broker.ErrConfirmLost, later publishes with broker.ErrClosed.
	close() error
}

// confirm is one publish awaiting its confirm (a *broker.Pending).
type confirm interface {
	// Wait returns nil for a positive confirm of a routed message.
	Wait(ctx context.Context) error
}

// connLink is the link of a *broker.Conn, publishing through a broker.Sender.
type connLink struct {
	conn *broker.Conn
	s    *broker.Sender
}

func (l connLink) FrameMax() int { return l.conn.FrameMax() }

func (l connLink) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (confirm, error) {
	pd, err := l.s.Publish(ctx, exchange, key, msg)
	if err != nil {
		return nil, err // not a nil *Pending in a non-nil confirm
	}
	return pd, nil
}

func (l connLink) inspect(ctx context.Context, queue string) error {
	_, err := broker.Inspect(ctx, l.conn, queue)
	return err
}

func (l connLink) close() error { return l.s.Close() }

var _ link = connLink{}
