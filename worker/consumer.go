package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/broker"
)

// errChannelLost cancels handlers whose delivery's channel is gone.
var errChannelLost = errors.New("worker: the channel that delivered the task was lost; the broker delivers it again")

// job is one delivery on its way from a consumer to a handler.
type job struct {
	d     amqp.Delivery
	queue string
	// from is the consumer that delivered d: d is settled there.
	from settler
	// live ends when the channel that delivered d closes: d can then no
	// longer be acked, and the broker has requeued it.
	live context.Context
}

// settler settles deliveries on the channel they came from: a
// *broker.Consumer, or a fake in tests.
type settler interface {
	Ack(tag uint64) error
	Reject(tag uint64) error
	Requeue(tag uint64, o broker.RequeueOptions) error
}

// consumer is one queue's consumer, consuming again when it is lost.
type consumer struct {
	p     *Pool
	queue string
	bc    *broker.Consumer
	live  context.Context

	delivered atomic.Int64 // deliveries received from bc
	lastSeen  int64        // delivered at the last checkAlive
}

var consumerSeq atomic.Uint64

// close ends a consumer: its channel goes, and with it any delivery the
// broker had sent and no handler settled.
func (c *consumer) close() { _ = c.bc.Close() }

func (p *Pool) consume(ctx context.Context, queue string) (*consumer, error) {
	bc, err := broker.Consume(ctx, p.conn, queue, broker.ConsumeOptions{
		Prefetch: p.cfg.Prefetch,
		Tag:      fmt.Sprintf("warren-%s-%d-%d", p.cfg.Hostname, os.Getpid(), consumerSeq.Add(1)),
	})
	if err != nil {
		return nil, err
	}
	live, cancel := context.WithCancelCause(context.Background())
	p.active.Add(1)
	go func() {
		defer p.active.Add(-1)
		<-bc.Done()
		cancel(fmt.Errorf("%w: %w", errChannelLost, bc.Err()))
	}()
	return &consumer{p: p, queue: queue, bc: bc, live: live}, nil
}

// forward hands deliveries to the handlers until stop is closed. When the
// channel closes (a channel error, consumer_timeout, or the connection
// dropping), it waits for the connection and consumes again; the old
// channel's unacked deliveries are back on the queue. It returns an error
// only when the connection is closed for good.
func (c *consumer) forward(stop <-chan struct{}, jobs chan<- job) error {
	check := time.NewTicker(c.p.cfg.ConsumerCheckInterval)
	defer check.Stop()
	for {
		select {
		case <-check.C:
			c.checkAlive()
		case <-stop:
			_ = c.bc.Cancel()
			// Deliveries still buffered go back to the broker when the
			// pool closes the channel (after the handlers finish).
			return nil
		case d, ok := <-c.bc.Deliveries():
			if !ok {
				if err := c.reopen(stop); err != nil {
					return err
				}
				continue
			}
			c.delivered.Add(1)
			select {
			case jobs <- job{d: d, queue: c.queue, from: c.bc, live: c.live}:
			case <-stop:
				// Not started: leave it unacked for the broker to requeue.
				_ = c.bc.Cancel()
				return nil
			}
		}
	}
}

// checkAlive asks the broker whether this consumer still gets deliveries:
// a queue that is gone, or a queue with ready messages while this consumer
// has room in its prefetch window and got nothing since the last check,
// makes it start over. RabbitMQ 3.10 can leave a consumer registered but
// silent: when its queue is deleted and declared again at once, it sends
// no basic.cancel and keeps handing the old consumer up to a prefetch
// window of deliveries that never reach the client. Once more messages
// wait than that window holds, this check closes the channel (its stuck
// deliveries go back) and consumes again.
func (c *consumer) checkAlive() {
	if c.live.Err() != nil {
		return
	}
	got := c.delivered.Load()
	idle := got == c.lastSeen
	c.lastSeen = got
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := broker.Inspect(ctx, c.p.conn, c.queue)
	switch {
	case errors.Is(err, broker.ErrQueueNotFound):
	case err != nil:
		return // the connection's own trouble is handled elsewhere
	case st.Ready == 0 || !idle || got-c.bc.Settled() >= int64(c.p.cfg.Prefetch):
		return
	}
	c.p.log.Warn("worker: the consumer gets no deliveries from the broker; consuming again", "queue", c.queue, "ready", st.Ready, "err", err)
	_ = c.bc.Close() // the forward loop sees its deliveries end and reopens
}

func (c *consumer) reopen(stop <-chan struct{}) error {
	// The delivery channel closed: either the AMQP channel died, or the
	// broker cancelled the consumer (the queue was deleted, or a classic
	// queue's node went down) and left the channel open. Close it in that
	// case too: its unacked deliveries go back to the queue.
	select {
	case <-c.live.Done():
	default:
		c.p.log.Warn("worker: the broker cancelled the consumer", "queue", c.queue)
		_ = c.bc.Close()
		select {
		case <-c.live.Done():
		case <-stop:
			return nil
		}
	}
	c.p.log.Warn("worker: consumer channel closed; consuming again when the broker is back", "queue", c.queue, "err", context.Cause(c.live))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for attempt := 1; ; attempt++ {
		if err := c.p.conn.Await(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // stopping
			}
			return err // closed for good
		}
		nc, err := c.p.consume(ctx, c.queue)
		if err == nil {
			_ = c.bc.Close()
			c.bc, c.live = nc.bc, nc.live
			c.delivered.Store(0)
			c.lastSeen = 0
			c.p.log.Info("worker: consuming again", "queue", c.queue)
			return nil
		}
		if errors.Is(err, broker.ErrClosed) {
			return err
		}
		if ctx.Err() != nil {
			return nil // stopping
		}
		if errors.Is(err, broker.ErrQueueNotFound) && !c.p.cfg.NoDeclare {
			if derr := broker.DeclareQueue(ctx, c.p.conn, c.queue, c.p.cfg.QueueOptions); derr == nil {
				continue
			}
		}
		backoff := infraBackoff.Backoff(attempt)
		c.p.log.Warn("worker: consume again failed", "queue", c.queue, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}
