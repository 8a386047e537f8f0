package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/fleet"
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

// feed is one channel a consumer consumes, or consumed, its queue on.
type feed struct {
	bc *broker.Consumer
	// live ends when bc's channel closes (see job.live).
	live      context.Context
	delivered atomic.Int64 // deliveries received from bc
	uncount   func()       // stops counting bc among the queues consumed; once
}

// unsettled counts the deliveries of f held now: received, and neither
// settled nor handed back with the channel.
func (f *feed) unsettled() int64 {
	select {
	case <-f.bc.Done():
		return 0
	default:
	}
	return max(0, f.delivered.Load()-f.bc.Settled())
}

// consumer is one queue's consumer, consuming again when it is lost, and
// holding back while the queue is paused.
type consumer struct {
	p     *Pool
	queue string
	// f is the feed consumed now; nil while the queue is paused (or the
	// consumer stops). Only the forward loop, or start before it, uses it.
	f        *feed
	lastSeen int64 // f.delivered at the last checkAlive
	paused   atomic.Bool

	mu sync.Mutex
	// feeds are the feeds not closed yet: f, and those of a pause whose
	// running tasks still have to settle.
	feeds []*feed
}

var consumerSeq atomic.Uint64

// newConsumer returns queue's consumer: consuming it, or paused.
func (p *Pool) newConsumer(ctx context.Context, queue string) (*consumer, error) {
	c := &consumer{p: p, queue: queue}
	if err := c.open(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// close ends a consumer: its channels go, and with them any delivery the
// broker had sent and no handler settled.
func (c *consumer) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.feeds {
		_ = f.bc.Close()
	}
	c.feeds = nil
}

// unacked counts the deliveries the consumer holds unsettled now.
func (c *consumer) unacked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, f := range c.feeds {
		n += f.unsettled()
	}
	return int(n)
}

// setFeed makes f the feed consumed.
func (c *consumer) setFeed(f *feed) {
	c.mu.Lock()
	c.feeds = append(c.feeds, f)
	c.mu.Unlock()
	c.f, c.lastSeen = f, 0
}

// drop closes f and forgets it.
func (c *consumer) drop(f *feed) {
	_ = f.bc.Close()
	c.mu.Lock()
	c.feeds = slices.DeleteFunc(c.feeds, func(g *feed) bool { return g == f })
	c.mu.Unlock()
	if c.f == f {
		c.f = nil
	}
}

// closeSettled closes the feeds of past pauses whose deliveries are all
// settled (or gone with their channel).
func (c *consumer) closeSettled() {
	c.mu.Lock()
	var done []*feed
	c.feeds = slices.DeleteFunc(c.feeds, func(f *feed) bool {
		if f != c.f && f.unsettled() == 0 {
			done = append(done, f)
			return true
		}
		return false
	})
	c.mu.Unlock()
	for _, f := range done {
		_ = f.bc.Close()
	}
}

// setPaused records whether the queue is paused.
func (c *consumer) setPaused(paused bool) {
	if c.paused.Swap(paused) == paused {
		return
	}
	if paused {
		c.p.pausedQueues.Add(1)
	} else {
		c.p.pausedQueues.Add(-1)
	}
}

// isPaused asks the broker whether the queue is paused. An error means
// "do not know": the caller keeps to what it does.
func (c *consumer) isPaused(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	paused, err := fleet.Paused(ctx, c.p.conn, c.queue)
	if err != nil {
		c.p.log.Debug("worker: could not tell whether the queue is paused", "queue", c.queue, "err", err)
	}
	return paused, err
}

// open consumes the queue on a new feed or, when the queue is paused (or
// checking for pauses is on and fails: see isPaused), leaves the consumer
// paused and logs so.
func (c *consumer) open(ctx context.Context) error {
	if c.p.cfg.PauseCheckInterval > 0 {
		if paused, err := c.isPaused(ctx); err == nil && paused {
			c.setPaused(true)
			c.p.log.Info("worker: queue paused; taking none of its tasks until it is resumed", "queue", c.queue)
			return nil
		}
	}
	f, err := c.p.openFeed(ctx, c.queue)
	if err != nil {
		return err
	}
	c.setPaused(false)
	c.setFeed(f)
	return nil
}

func (p *Pool) openFeed(ctx context.Context, queue string) (*feed, error) {
	bc, err := broker.Consume(ctx, p.conn, queue, broker.ConsumeOptions{
		Prefetch: p.cfg.Prefetch,
		Tag:      fmt.Sprintf("warren-%s-%d-%d", p.cfg.Hostname, os.Getpid(), consumerSeq.Add(1)),
	})
	if err != nil {
		return nil, err
	}
	live, cancel := context.WithCancelCause(context.Background())
	p.active.Add(1)
	var once sync.Once
	uncount := func() { once.Do(func() { p.active.Add(-1) }) }
	go func() {
		defer uncount()
		<-bc.Done()
		cancel(fmt.Errorf("%w: %w", errChannelLost, bc.Err()))
	}()
	return &feed{bc: bc, live: live, uncount: uncount}, nil
}

// forward hands deliveries to the handlers until stop is closed. When the
// channel closes (a channel error, consumer_timeout, or the connection
// dropping), it waits for the connection and consumes again; the old
// channel's unacked deliveries are back on the queue. Every
// PauseCheckInterval it asks whether the queue is paused, and pauses or
// resumes. It returns an error only when the connection is closed for
// good.
func (c *consumer) forward(stop <-chan struct{}, jobs chan<- job) error {
	check := time.NewTicker(c.p.cfg.ConsumerCheckInterval)
	defer check.Stop()
	var pauseTick <-chan time.Time // nil (never) when checks are off
	if c.p.cfg.PauseCheckInterval > 0 {
		t := time.NewTicker(c.p.cfg.PauseCheckInterval)
		defer t.Stop()
		pauseTick = t.C
	}
	// pausedNow checks on a pause tick whether the queue is paused.
	pausedNow := func() bool {
		c.closeSettled()
		paused, err := c.isPaused(context.Background())
		return err == nil && paused
	}
	for {
		f := c.f
		if f == nil {
			if !c.paused.Load() {
				return nil // stopping
			}
			select {
			case <-stop:
				return nil
			case <-c.p.conn.Done():
				// Closed for good: no channel of ours notices it now.
				return cmp.Or(c.p.conn.Err(), broker.ErrClosed)
			case <-pauseTick:
				if !pausedNow() {
					if err := c.resume(stop); err != nil {
						return err
					}
				}
			}
			continue
		}
		select {
		case <-check.C:
			c.checkAlive()
		case <-pauseTick:
			if pausedNow() {
				c.pause(nil)
			}
		case <-stop:
			_ = f.bc.Cancel()
			// Deliveries still buffered go back to the broker when the
			// pool closes the channel (after the handlers finish).
			return nil
		case d, ok := <-f.bc.Deliveries():
			if !ok {
				if err := c.reopen(stop); err != nil {
					return err
				}
				continue
			}
			f.delivered.Add(1)
			j := job{d: d, queue: c.queue, from: f.bc, live: f.live}
		hand:
			for {
				select {
				case jobs <- j:
					break hand
				case <-stop:
					// Not started: leave it unacked for the broker to requeue.
					_ = f.bc.Cancel()
					return nil
				case <-pauseTick:
					// Every handler is busy: the task has not started.
					if pausedNow() {
						c.pause(&d)
						break hand
					}
				}
			}
		}
	}
}

// pause stops consuming the queue: it cancels the consumer, hands back
// uncounted the deliveries not started (held, the one in hand, and those
// still buffered), and keeps the channel open for the running tasks to
// settle on it (closeSettled closes it once they did).
func (c *consumer) pause(held *amqp.Delivery) {
	f := c.f
	_ = f.bc.Cancel()
	handed := 0
	handBack := func(d *amqp.Delivery) {
		if err := f.bc.Requeue(d.DeliveryTag, broker.RequeueOptions{}); err == nil {
			handed++
		}
	}
	if held != nil {
		handBack(held)
	}
	// Closed once the deliveries sent before the cancel are in.
	for d := range f.bc.Deliveries() {
		f.delivered.Add(1)
		handBack(&d)
	}
	c.p.requeued.Add(uint64(handed))
	c.f = nil
	f.uncount()
	c.setPaused(true)
	c.p.log.Info("worker: queue paused; taking none of its tasks until it is resumed", "queue", c.queue,
		"handed_back", handed, "running", f.unsettled())
	c.closeSettled()
}

// resume consumes the queue again after a pause.
func (c *consumer) resume(stop <-chan struct{}) error {
	c.p.log.Info("worker: queue resumed; consuming it again", "queue", c.queue)
	c.setPaused(false)
	return c.consumeAgain(stop)
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
	f := c.f
	if f.live.Err() != nil {
		return
	}
	got := f.delivered.Load()
	idle := got == c.lastSeen
	c.lastSeen = got
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := broker.Inspect(ctx, c.p.conn, c.queue)
	switch {
	case errors.Is(err, broker.ErrQueueNotFound):
	case err != nil:
		return // the connection's own trouble is handled elsewhere
	case st.Ready == 0 || !idle || got-f.bc.Settled() >= int64(c.p.cfg.Prefetch):
		return
	}
	c.p.log.Warn("worker: the consumer gets no deliveries from the broker; consuming again", "queue", c.queue, "ready", st.Ready, "err", err)
	_ = f.bc.Close() // the forward loop sees its deliveries end and reopens
}

func (c *consumer) reopen(stop <-chan struct{}) error {
	// The delivery channel closed: either the AMQP channel died, or the
	// broker cancelled the consumer (the queue was deleted, or a classic
	// queue's node went down) and left the channel open. Close it in that
	// case too: its unacked deliveries go back to the queue.
	f := c.f
	select {
	case <-f.live.Done():
	default:
		c.p.log.Warn("worker: the broker cancelled the consumer", "queue", c.queue)
		_ = f.bc.Close()
		select {
		case <-f.live.Done():
		case <-stop:
			return nil
		}
	}
	c.drop(f)
	c.p.log.Warn("worker: consumer channel closed; consuming again when the broker is back", "queue", c.queue, "err", context.Cause(f.live))
	if err := c.consumeAgain(stop); err != nil {
		return err
	}
	if c.f != nil {
		c.p.log.Info("worker: consuming again", "queue", c.queue)
	}
	return nil
}

// consumeAgain waits for the connection and consumes the queue again (or
// finds it paused), with backoff, until stop is closed. It returns an error
// only when the connection is closed for good.
func (c *consumer) consumeAgain(stop <-chan struct{}) error {
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
		err := c.open(ctx)
		if err == nil {
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
