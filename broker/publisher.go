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
// fail with ErrClosed: the caller opens a new Publisher, or uses a Sender,
// which does that by itself.
type Publisher struct {
	conn    *Conn
	ch      *amqp.Channel
	window  int
	returns chan amqp.Return // buffered: read under mu, never by a goroutine of ours
	done    chan struct{}    // closed once the channel is gone
	nacked  atomic.Bool      // the broker nacked a publish on this channel

	pubMu sync.Mutex // serialises publishes: the ring is in publish order
	mu    sync.Mutex // guards what follows; never held across I/O
	// returnsClosed: the client closed returns (the channel is gone).
	returnsClosed bool
	unsettled     []*Pending     // published, verdict not yet taken, in publish order (a ring)
	head, n       int            // the ring's oldest entry and its length
	returned      map[string]int // message IDs returned by the broker, awaiting their confirm
	err           error          // set once the channel is gone: ErrClosed wrapping lost
	lost          error          // set with err: what the unconfirmed publishes fail with
}

// Pending is one published message awaiting its confirm.
type Pending struct {
	dc  *amqp.DeferredConfirmation
	id  string
	pub *Publisher
	// Under pub.mu:
	settled bool  // the verdict is taken
	err     error // the verdict
	lost    bool  // lost with the channel: the verdict is pub.lost
}

// result is the verdict of pd, which is settled. The publisher's lock is
// not held.
func (pd *Pending) result() error {
	if !pd.lost {
		return pd.err
	}
	p := pd.pub
	<-p.done // soon: the channel is closed
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lost
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
		conn:      c,
		ch:        ch,
		window:    window,
		unsettled: make([]*Pending, window),
		returned:  make(map[string]int),
		done:      make(chan struct{}),
	}
	// The confirms themselves come through amqp091-go's
	// DeferredConfirmation of each publish: no listener of ours, no
	// goroutine hop and no timer per confirm. A return is queued in this
	// buffer by the client's reader before it resolves the confirm that
	// follows it, so whoever sees a confirm resolved and then drains the
	// buffer sees that message's return. At most window publishes are
	// unconfirmed and each publish drains the buffer first, so it cannot
	// fill up.
	p.returns = ch.NotifyReturn(make(chan amqp.Return, window+16))
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	go p.watch(closes)
	return p, nil
}

// watch records why the channel closed. The client fails every
// unconfirmed DeferredConfirmation itself when the channel goes.
func (p *Publisher) watch(closes <-chan *amqp.Error) {
	e := <-closes
	var err error
	if e != nil {
		err = fmt.Errorf("%w: channel closed: %w", ErrConfirmLost, classify(e, OpPublish, "channel closed by the broker"))
	} else {
		err = fmt.Errorf("%w: channel closed", ErrConfirmLost)
	}
	p.mu.Lock()
	p.lost = err
	p.err = fmt.Errorf("%w: %w", ErrClosed, err)
	p.mu.Unlock()
	close(p.done)
}

// drainReturns records the returns the client has queued. p.mu is held.
func (p *Publisher) drainReturns() {
	if p.returnsClosed || len(p.returns) == 0 {
		return
	}
	for {
		select {
		case r, ok := <-p.returns:
			if !ok {
				p.returnsClosed = true
				return
			}
			p.returned[r.MessageId]++
		default:
			return
		}
	}
}

// settleHead takes the verdicts of the oldest publishes whose confirms are
// in, in publish order, and reports whether it settled them all. p.mu is
// held.
func (p *Publisher) settleHead() bool {
	p.drainReturns() // keeps the buffer short while nothing is confirmed
	for p.n > 0 {
		pd := p.unsettled[p.head]
		select {
		case <-pd.dc.Done():
		default:
			return false
		}
		// The client queued the message's return, if any, before it
		// resolved the confirm just seen: read it now.
		p.drainReturns()
		p.unsettled[p.head] = nil
		p.head = (p.head + 1) % p.window
		p.n--
		pd.err = p.verdict(pd)
		pd.settled = true
	}
	return true
}

// verdict is the outcome of pd, whose confirm is in. p.mu is held.
func (p *Publisher) verdict(pd *Pending) error {
	if !pd.dc.Acked() {
		// The client nacks what was unconfirmed when the channel closed,
		// after marking it closed: a nack seen on an open channel came from
		// the broker. (One that came just before the close counts as lost:
		// the safe side.) Why the channel closed is known once watch has
		// run: the waiter reads it then.
		if p.ch.IsClosed() {
			pd.lost = true
			return nil
		}
		p.nacked.Store(true)
		return fmt.Errorf("%w: message %s", ErrNacked, pd.id)
	}
	if n := p.returned[pd.id]; n > 0 {
		if n == 1 {
			delete(p.returned, pd.id)
		} else {
			p.returned[pd.id] = n - 1
		}
		return fmt.Errorf("%w: message %s", ErrUnroutable, pd.id)
	}
	return nil
}

// Publish sends msg to exchange with routing key, mandatory, and returns
// at once with a Pending for its confirm. It blocks only while the window
// of unconfirmed publishes is full or the broker blocks publishing (an
// alarm), up to ctx's end.
func (p *Publisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (*Pending, error) {
	if err := p.conn.AwaitUnblocked(ctx); err != nil {
		return nil, err
	}
	p.pubMu.Lock()
	p.mu.Lock()
	for {
		if p.err != nil {
			err := p.err
			p.mu.Unlock()
			p.pubMu.Unlock()
			return nil, err
		}
		if p.settleHead() || p.n < p.window {
			break
		}
		// The window is full: wait for the oldest confirm.
		oldest := p.unsettled[p.head].dc.Done()
		p.mu.Unlock()
		p.pubMu.Unlock()
		select {
		case <-oldest:
		case <-p.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("broker: publish: waiting for the confirm window: %w", ctx.Err())
		}
		p.pubMu.Lock()
		p.mu.Lock()
	}
	p.mu.Unlock()
	// Only the holder of pubMu adds to the ring: the room checked above is
	// still there, and the ring stays in the order of the channel's
	// sequence numbers. Waiters settle meanwhile, under mu alone.
	dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, msg)
	if err != nil {
		p.pubMu.Unlock()
		if errors.Is(err, amqp.ErrClosed) {
			return nil, fmt.Errorf("%w: publish: %w", ErrClosed, err)
		}
		return nil, classify(err, OpPublish, "publish")
	}
	pd := &Pending{dc: dc, id: msg.MessageId, pub: p}
	p.mu.Lock()
	p.unsettled[(p.head+p.n)%p.window] = pd
	p.n++
	p.mu.Unlock()
	p.pubMu.Unlock()
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
	for {
		select {
		case <-pd.dc.Done():
		case <-ctx.Done():
			select {
			case <-pd.dc.Done():
			default:
				return fmt.Errorf("%w: waiting for the confirm of message %s: %w", ErrConfirmLost, pd.id, ctx.Err())
			}
		}
		// Verdicts are taken in publish order, as the confirms came: a
		// return counts against the oldest publish of its message ID.
		p := pd.pub
		p.mu.Lock()
		if pd.settled || p.settleHead() {
			p.mu.Unlock()
			return pd.result()
		}
		older := p.unsettled[p.head]
		p.mu.Unlock()
		if older == pd {
			continue // its confirm is in: settle it
		}
		select {
		case <-older.dc.Done():
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for the confirm of message %s: %w", ErrConfirmLost, pd.id, ctx.Err())
		}
	}
}

// Done is closed once the confirm (or its failure) is known.
func (pd *Pending) Done() <-chan struct{} { return pd.dc.Done() }

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
	list := make([]*Pending, 0, p.n)
	for i := range p.n {
		list = append(list, p.unsettled[(p.head+i)%p.window])
	}
	p.mu.Unlock()
	for _, pd := range list {
		select {
		case <-pd.dc.Done():
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
	p := &Publisher{done: make(chan struct{})}
	p.err = fmt.Errorf("%w: no channel opened yet", ErrClosed)
	close(p.done)
	return p
}
