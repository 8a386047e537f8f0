package broker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultRetireTimeout is how long a Sender keeps a nacked channel open
// for its other unconfirmed publishes, once it has moved to a new one.
const DefaultRetireTimeout = time.Minute

// SenderConfig tunes a Sender. The zero value is ready to use.
type SenderConfig struct {
	// Window bounds the unconfirmed publishes on the Sender's channel.
	// 0 means DefaultWindow (512).
	Window int
	// RetireTimeout bounds how long a channel the broker has nacked stays
	// open for its other unconfirmed publishes once the Sender publishes
	// on a new one. 0 means DefaultRetireTimeout (one minute).
	RetireTimeout time.Duration
}

func (c SenderConfig) withDefaults() SenderConfig {
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.RetireTimeout <= 0 {
		c.RetireTimeout = DefaultRetireTimeout
	}
	return c
}

// Sender publishes mandatory messages in confirm mode, as a Publisher
// does, on a channel it replaces by itself:
//
//   - after a channel error or a connection loss, the next Publish waits
//     (up to its ctx) for the connection to be back and opens a new
//     channel; publishes that were awaiting a confirm on the lost channel
//     fail with ErrConfirmLost, and the caller decides whether to publish
//     them again;
//   - after the broker nacks a publish, the next Publish opens a new
//     channel (see Publisher.Nacked); the nacked channel is closed once
//     its other publishes are confirmed, or after RetireTimeout.
//
// It is safe for concurrent use, and publishes are pipelined up to
// SenderConfig.Window unconfirmed. A Publish that finds the channel
// usable takes no lock of the Sender's.
type Sender struct {
	conn *Conn
	cfg  SenderConfig
	none *Publisher // the placeholder while no channel is open

	sem     chan struct{} // held while replacing the channel; a waiter can give up (ctx)
	cur     atomic.Pointer[Publisher]
	closed  atomic.Bool
	reopens atomic.Uint64
}

// errSenderClosed is what a Publish on a closed Sender fails with.
var errSenderClosed = fmt.Errorf("%w: sender closed", ErrClosed)

// NewSender opens a Sender's first channel on c, and fails if it cannot:
// later channels are opened as they are needed.
func NewSender(c *Conn, cfg SenderConfig) (*Sender, error) {
	cfg = cfg.withDefaults()
	pub, err := NewPublisher(c, cfg.Window)
	if err != nil {
		return nil, err
	}
	s := &Sender{conn: c, cfg: cfg, none: ClosedPublisher(), sem: make(chan struct{}, 1)}
	s.cur.Store(pub)
	return s, nil
}

// usable reports whether p can take a publish: its channel is open and
// the broker has nacked nothing on it.
func usable(p *Publisher) bool {
	select {
	case <-p.done:
		return false
	default:
		return !p.nacked.Load()
	}
}

// publisher returns a usable Publisher, opening a new channel (once the
// connection is up, waiting for it up to ctx's end) if the last one is
// gone or nacked.
func (s *Sender) publisher(ctx context.Context) (*Publisher, error) {
	if p := s.cur.Load(); usable(p) && !s.closed.Load() {
		return p, nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for the broker: %w", ErrNotConnected, ctx.Err())
	}
	defer func() { <-s.sem }()
	for {
		if s.closed.Load() {
			return nil, errSenderClosed
		}
		p := s.cur.Load()
		if usable(p) {
			return p, nil // another caller replaced it meanwhile
		}
		if p != s.none && p.Nacked() && p.Err() == nil {
			// A nacked channel may go on nacking: close it once its
			// other publishes have their confirms.
			go s.retire(p)
		}
		s.cur.Store(s.none)
		if err := s.conn.Await(ctx); err != nil {
			return nil, err
		}
		np, err := NewPublisher(s.conn, s.cfg.Window)
		if err != nil {
			if errors.Is(err, ErrNotConnected) {
				continue // lost again at once: wait for the next connection
			}
			return nil, err
		}
		s.cur.Store(np)
		s.reopens.Add(1)
	}
}

func (s *Sender) retire(p *Publisher) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RetireTimeout)
	defer cancel()
	_ = p.Flush(ctx)
	_ = p.Close()
}

// Publish sends msg to exchange with routing key, mandatory, and returns
// with a Pending for its confirm. It waits, up to ctx's end, while the
// connection is down, the window of unconfirmed publishes is full, or the
// broker blocks publishing (an alarm). A channel found closed is replaced
// and the publish made on the new one. After Close it fails with ErrClosed.
func (s *Sender) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (*Pending, error) {
	for {
		p, err := s.publisher(ctx)
		if err != nil {
			return nil, err
		}
		pd, err := p.Publish(ctx, exchange, key, msg)
		if err != nil && errors.Is(err, ErrClosed) && ctx.Err() == nil {
			if s.closed.Load() {
				return nil, errSenderClosed
			}
			select {
			case <-s.conn.Done():
				return nil, err // the Conn is closed for good
			default:
			}
			continue // that channel is gone: take the next one
		}
		return pd, err
	}
}

// PublishWait publishes msg and waits for its confirm (see Pending.Wait).
func (s *Sender) PublishWait(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	pd, err := s.Publish(ctx, exchange, key, msg)
	if err != nil {
		return err
	}
	return pd.Wait(ctx)
}

// Flush waits until every publish made so far on the current channel is
// confirmed or failed, or ctx ends.
func (s *Sender) Flush(ctx context.Context) error {
	return s.cur.Load().Flush(ctx)
}

// Reopens counts the channels the Sender opened after its first one.
func (s *Sender) Reopens() uint64 { return s.reopens.Load() }

// Close closes the Sender's channel; later publishes fail with ErrClosed.
// Unconfirmed publishes fail with ErrConfirmLost: call Flush first to wait
// for them. It does not close the connection.
func (s *Sender) Close() error {
	s.closed.Store(true)
	s.sem <- struct{}{}
	p := s.cur.Swap(s.none)
	<-s.sem
	return p.Close()
}
