package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultWindow is how many publishes a Publisher keeps unconfirmed at most.
const DefaultWindow = 512

// Publisher publishes mandatory messages on one channel in confirm mode and
// reports each message's confirm. It is safe for concurrent use; concurrent
// publishes are pipelined, up to a window of unconfirmed messages.
//
// Once the channel closes (a channel error, or the connection dropping),
// every unconfirmed publish fails with ErrConfirmLost and later publishes
// fail with ErrClosed: the caller opens a new Publisher.
type Publisher struct {
	conn   *Conn
	ch     *amqp.Channel
	window chan struct{}

	mu       sync.Mutex // serialises sequence numbers with publishes
	pending  map[uint64]*Pending
	returned map[string]int // message IDs returned by the broker, awaiting their confirm
	expect   uint64         // the lowest sequence number not yet confirmed
	err      error          // set once the channel is gone
	done     chan struct{}
	nacked   atomic.Bool // the broker nacked a publish on this channel
}

// Pending is one published message awaiting its confirm.
type Pending struct {
	seq  uint64
	id   string
	done chan struct{}
	err  error
	pub  *Publisher
}

// NewPublisher opens a channel on c in confirm mode. window bounds the
// unconfirmed publishes (0 means DefaultWindow).
func NewPublisher(c *Conn, window int) (*Publisher, error) {
	if window <= 0 {
		window = DefaultWindow
	}
	ch, err := c.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, classify(err, OpChannel, "enable publisher confirms")
	}
	p := &Publisher{
		conn:     c,
		ch:       ch,
		window:   make(chan struct{}, window),
		pending:  make(map[uint64]*Pending),
		returned: make(map[string]int),
		done:     make(chan struct{}),
		expect:   1,
	}
	// Returns must be unbuffered: the client's reader then hands a return
	// over before it reads the confirm that follows it, and the single
	// tracker goroutine sees them in that order.
	returns := ch.NotifyReturn(make(chan amqp.Return))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window+16))
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	go p.track(returns, confirms, closes)
	return p, nil
}

func (p *Publisher) track(returns <-chan amqp.Return, confirms <-chan amqp.Confirmation, closes <-chan *amqp.Error) {
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			p.mu.Lock()
			p.returned[r.MessageId]++
			p.mu.Unlock()
		case c, ok := <-confirms:
			if !ok {
				confirms = nil
				p.fail(fmt.Errorf("%w: channel closed", ErrConfirmLost))
				return
			}
			p.confirm(c)
		case e := <-closes:
			// Confirms already queued before the close are still valid.
			for {
				select {
				case c, ok := <-confirms:
					if ok {
						p.confirm(c)
						continue
					}
				default:
				}
				break
			}
			if e != nil {
				p.fail(fmt.Errorf("%w: channel closed: %w", ErrConfirmLost, classify(e, OpPublish, "channel closed by the broker")))
			} else {
				p.fail(fmt.Errorf("%w: channel closed", ErrConfirmLost))
			}
			return
		}
	}
}

func (p *Publisher) confirm(c amqp.Confirmation) {
	p.mu.Lock()
	pd, ok := p.pending[c.DeliveryTag]
	if !ok {
		p.mu.Unlock()
		return
	}
	delete(p.pending, c.DeliveryTag)
	// Confirms arrive in order: any older publish still pending lost its
	// confirm (the client drops a notification it cannot hand over).
	for seq := p.expect; seq < c.DeliveryTag; seq++ {
		if old, ok := p.pending[seq]; ok {
			delete(p.pending, seq)
			old.finish(fmt.Errorf("%w: confirm for message %s went missing", ErrConfirmLost, old.id))
		}
	}
	p.expect = c.DeliveryTag + 1
	var err error
	switch {
	case !c.Ack:
		p.nacked.Store(true)
		err = fmt.Errorf("%w: message %s", ErrNacked, pd.id)
	case p.returned[pd.id] > 0:
		if p.returned[pd.id]--; p.returned[pd.id] == 0 {
			delete(p.returned, pd.id)
		}
		err = fmt.Errorf("%w: message %s", ErrUnroutable, pd.id)
	}
	p.mu.Unlock()
	pd.finish(err)
}

func (p *Publisher) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = fmt.Errorf("%w: %w", ErrClosed, err)
		close(p.done)
	}
	pend := p.pending
	p.pending = map[uint64]*Pending{}
	p.mu.Unlock()
	for _, pd := range pend {
		pd.finish(err)
	}
}

func (pd *Pending) finish(err error) {
	pd.err = err
	close(pd.done)
	<-pd.pub.window
}

// Publish sends msg to exchange with routing key, mandatory, and returns
// at once with a Pending for its confirm. It blocks only while the window
// of unconfirmed publishes is full or the broker blocks publishing (an
// alarm), up to ctx's end.
func (p *Publisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (*Pending, error) {
	if err := p.conn.AwaitUnblocked(ctx); err != nil {
		return nil, err
	}
	select {
	case p.window <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("broker: publish: waiting for the confirm window: %w", ctx.Err())
	case <-p.done:
		return nil, p.Err()
	}
	pd := &Pending{id: msg.MessageId, done: make(chan struct{}), pub: p}
	p.mu.Lock()
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		<-p.window
		return nil, err
	}
	pd.seq = p.ch.GetNextPublishSeqNo()
	p.pending[pd.seq] = pd
	err := p.ch.PublishWithContext(ctx, exchange, key, true, false, msg)
	if err != nil {
		delete(p.pending, pd.seq)
	}
	p.mu.Unlock()
	if err != nil {
		<-p.window
		if errors.Is(err, amqp.ErrClosed) {
			return nil, fmt.Errorf("%w: publish: %w", ErrClosed, err)
		}
		return nil, classify(err, OpPublish, "publish")
	}
	return pd, nil
}

// PublishWait publishes msg and waits for its confirm.
func (p *Publisher) PublishWait(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	pd, err := p.Publish(ctx, exchange, key, msg)
	if err != nil {
		return err
	}
	return pd.Wait(ctx)
}

// Wait blocks until the broker confirms the message, and returns nil only
// for a positive confirm of a routed message. It returns ErrNacked,
// ErrUnroutable or ErrConfirmLost otherwise, or ctx's error: then the
// message may still be confirmed later, and the caller must treat it as
// not known to be stored.
func (pd *Pending) Wait(ctx context.Context) error {
	select {
	case <-pd.done:
		return pd.err
	case <-ctx.Done():
		select {
		case <-pd.done:
			return pd.err
		default:
		}
		return fmt.Errorf("%w: waiting for the confirm of message %s: %w", ErrConfirmLost, pd.id, ctx.Err())
	}
}

// Done is closed once the confirm (or its failure) is known.
func (pd *Pending) Done() <-chan struct{} { return pd.done }

// Nacked reports whether the broker has nacked a publish on this channel.
// Callers should then publish on a new Publisher: RabbitMQ 3.10 keeps
// nacking a channel's publishes to a quorum queue whose leader died before
// the channel's first publish, for as long as that node stays down, while
// a new channel publishes fine.
func (p *Publisher) Nacked() bool { return p.nacked.Load() }

// Err returns why the publisher can no longer publish, or nil.
func (p *Publisher) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Closed is closed once the publisher's channel is gone.
func (p *Publisher) Closed() <-chan struct{} { return p.done }

// Flush waits until every publish made so far is confirmed or failed, or ctx ends.
func (p *Publisher) Flush(ctx context.Context) error {
	p.mu.Lock()
	list := make([]*Pending, 0, len(p.pending))
	for _, pd := range p.pending {
		list = append(list, pd)
	}
	p.mu.Unlock()
	for _, pd := range list {
		select {
		case <-pd.done:
		case <-ctx.Done():
			return fmt.Errorf("broker: flush: %d publishes unconfirmed: %w", len(list), ctx.Err())
		}
	}
	return nil
}

// Close closes the channel. Unconfirmed publishes fail with ErrConfirmLost;
// call Flush first to wait for them.
func (p *Publisher) Close() error {
	if p.ch == nil {
		return nil
	}
	err := p.ch.Close()
	if errors.Is(err, amqp.ErrClosed) {
		err = nil
	}
	<-p.done
	return err
}

// ClosedPublisher returns a Publisher that is already closed: a placeholder
// whose Err is never nil, for callers that open publishers lazily.
func ClosedPublisher() *Publisher {
	p := &Publisher{done: make(chan struct{}), window: make(chan struct{}), pending: map[uint64]*Pending{}}
	p.err = fmt.Errorf("%w: no channel opened yet", ErrClosed)
	close(p.done)
	return p
}
