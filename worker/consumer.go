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
	// live ends when the channel that delivered d closes: d can then no
	// longer be acked, and the broker has requeued it.
	live context.Context
}

// consumer is one queue's channel and its deliveries.
type consumer struct {
	p     *Pool
	queue string
	ch    *amqp.Channel
	tag   string
	in    <-chan amqp.Delivery
	live  context.Context
	acker *batchAcker

	delivered atomic.Int64 // deliveries received on this channel
	lastSeen  int64        // delivered at the last checkAlive
}

var consumerSeq atomic.Uint64

// close ends a consumer that never forwarded anything: its channel goes,
// and with it any delivery the broker had already sent.
func (c *consumer) close() {
	c.acker.close()
	_ = c.ch.Close()
}

func (p *Pool) consume(queue string) (*consumer, error) {
	ch, err := p.conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Qos(p.cfg.Prefetch, 0, false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("set prefetch on %s: %w", queue, err)
	}
	tag := fmt.Sprintf("warren-%s-%d-%d", p.cfg.Hostname, os.Getpid(), consumerSeq.Add(1))
	in, err := ch.Consume(queue, tag, false, false, false, false, nil)
	if err != nil {
		ch.Close()
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return nil, &broker.OpError{Op: broker.OpConsume, Err: fmt.Errorf("%w: consume %s: %s", broker.ErrQueueNotFound, queue, ae.Reason)}
		}
		if errors.As(err, &ae) && ae.Code == amqp.AccessRefused {
			return nil, &broker.OpError{Op: broker.OpConsume, Err: fmt.Errorf("%w: consume %s: %s", broker.ErrAccessRefused, queue, ae.Reason)}
		}
		return nil, &broker.OpError{Op: broker.OpConsume, Err: fmt.Errorf("consume %s: %w", queue, err)}
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	live, cancel := context.WithCancelCause(context.Background())
	p.active.Add(1)
	go func() {
		defer p.active.Add(-1)
		e := <-closed
		if e != nil {
			cancel(fmt.Errorf("%w: %w", errChannelLost, e))
		} else {
			cancel(errChannelLost)
		}
	}()
	return &consumer{p: p, queue: queue, ch: ch, tag: tag, in: in, live: live, acker: newBatchAcker(ch, p.cfg.Prefetch)}, nil
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
			_ = c.ch.Cancel(c.tag, false)
			// Deliveries still buffered go back to the broker when the
			// pool closes the channel (after the handlers finish).
			return nil
		case d, ok := <-c.in:
			if !ok {
				if err := c.reopen(stop); err != nil {
					return err
				}
				continue
			}
			d.Acknowledger = c.acker
			c.delivered.Add(1)
			select {
			case jobs <- job{d: d, queue: c.queue, live: c.live}:
			case <-stop:
				// Not started: leave it unacked for the broker to requeue.
				_ = c.ch.Cancel(c.tag, false)
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
	case st.Ready == 0 || !idle || got-c.acker.settled.Load() >= int64(c.p.cfg.Prefetch):
		return
	}
	c.p.log.Warn("worker: the consumer gets no deliveries from the broker; consuming again", "queue", c.queue, "ready", st.Ready, "err", err)
	_ = c.ch.Close() // the forward loop sees its deliveries end and reopens
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
		_ = c.ch.Close()
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
	backoff := 100 * time.Millisecond
	for {
		if err := c.p.conn.Await(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // stopping
			}
			return err // closed for good
		}
		nc, err := c.p.consume(c.queue)
		if err == nil {
			_ = c.ch.Close()
			go c.acker.close()
			c.ch, c.tag, c.in, c.live, c.acker = nc.ch, nc.tag, nc.in, nc.live, nc.acker
			c.delivered.Store(0)
			c.lastSeen = 0
			c.p.log.Info("worker: consuming again", "queue", c.queue)
			return nil
		}
		if errors.Is(err, broker.ErrClosed) {
			return err
		}
		if errors.Is(err, broker.ErrQueueNotFound) && !c.p.cfg.NoDeclare {
			if derr := broker.DeclareQueue(ctx, c.p.conn, c.queue, c.p.cfg.QueueOptions); derr == nil {
				continue
			}
		}
		c.p.log.Warn("worker: consume again failed", "queue", c.queue, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
