package worker

import (
	"context"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/broker"
)

// publishers publishes the pool's retries and dead letters on a
// broker.Sender, which reopens its channel after a channel error, a
// connection loss or a nack.
type publishers struct {
	s *broker.Sender
}

func newPublishers(c *broker.Conn) (*publishers, error) {
	s, err := broker.NewSender(c, broker.SenderConfig{})
	if err != nil {
		return nil, err
	}
	return &publishers{s: s}, nil
}

// publishTimeout bounds one publish and its confirm: a confirm that never
// comes must not hold the delivery forever.
const publishTimeout = time.Minute

func (ps *publishers) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	return ps.s.PublishWait(ctx, exchange, key, msg)
}

func (ps *publishers) close() {
	_ = ps.s.Close()
}
