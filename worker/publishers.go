package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/broker"
)

// publishers hands out a confirm-mode publisher, reopening it after a
// channel error.
type publishers struct {
	conn *broker.Conn
	mu   sync.Mutex
	pub  *broker.Publisher
}

func newPublishers(c *broker.Conn) (*publishers, error) {
	pub, err := broker.NewPublisher(c, 0)
	if err != nil {
		return nil, err
	}
	return &publishers{conn: c, pub: pub}, nil
}

func (ps *publishers) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	// Bound the wait: a confirm that never comes must not hold the delivery forever.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	pub, err := ps.get(ctx)
	if err != nil {
		return err
	}
	return pub.PublishWait(ctx, exchange, key, msg)
}

// get returns a live publisher, opening a new one (after the connection
// is back) if a channel error or a connection loss killed the last.
func (ps *publishers) get(ctx context.Context) (*broker.Publisher, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if old := ps.pub; old.Err() == nil && old.Nacked() {
		// A nacked channel may go on nacking (see broker.Publisher.Nacked).
		go func() {
			fctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = old.Flush(fctx)
			_ = old.Close()
		}()
		ps.pub = broker.ClosedPublisher()
	}
	for ps.pub.Err() != nil {
		if err := ps.conn.Await(ctx); err != nil {
			return nil, err
		}
		pub, err := broker.NewPublisher(ps.conn, 0)
		if err != nil {
			if errors.Is(err, broker.ErrNotConnected) {
				continue // lost again at once: wait for the next connection
			}
			return nil, err
		}
		ps.pub = pub
	}
	return ps.pub, nil
}

func (ps *publishers) close() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	_ = ps.pub.Close()
}
