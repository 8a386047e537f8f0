package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/retry"
)

// ErrConnectionLost is returned (wrapped) by Run when the connection to the
// broker is closed for good (the Conn was closed, or it does not
// reconnect). A connection that drops and comes back does not stop Run.
var ErrConnectionLost = errors.New("worker: connection to the broker lost")

// Stats counts what a pool has done since it started.
type Stats struct {
	Started      uint64 // handler runs started
	Succeeded    uint64
	Skipped      uint64 // tasks acked without running: already done (ErrAlreadyDone, Idempotent)
	Retried      uint64 // failures republished for a later attempt
	DeadLettered uint64
	Requeued     uint64 // deliveries handed back to the broker (shutdown, a pause, or an outcome that could not be published)
	Redelivered  uint64 // deliveries the broker had delivered before
	Voided       uint64 // runs whose delivery was lost with its channel: outcome dropped, the broker redelivers
	Unreadable   uint64 // deliveries whose headers this client could not read (dead-lettered, or Held)
	Oversized    uint64 // outcomes whose headers had to be trimmed, or could not fit at all, under the frame size
	Held         uint64 // unreadable deliveries left unacked in place: their queue has no dead-letter target
	Reconnects   uint64 // connections re-established (see broker.Conn.Reconnects)
	InFlight     int64
	Paused       int // queues paused now (fleet.Pause): the pool takes none of their tasks
}

// Pool consumes queues and runs a Handler on each task. Create it with New
// and start it with Run.
type Pool struct {
	conn    *broker.Conn
	handler Handler
	cfg     Config
	rules   rules // what decide applies, from cfg
	log     *slog.Logger

	started, succeeded, skipped, retried, dead, requeued, redelivered, voided atomic.Uint64
	unreadable, oversized, held                                               atomic.Uint64
	inFlight                                                                  atomic.Int64

	running      atomic.Bool
	stopping     atomic.Bool
	active       atomic.Int32 // queues being consumed now
	pausedQueues atomic.Int32 // queues paused now

	beats // heartbeats: who the pool is, what it runs (beat.go)
}

// ErrNotReady is wrapped by Ready's error.
var ErrNotReady = errors.New("worker: not ready")

// Ready returns nil while the pool consumes every queue on a live,
// unblocked connection: the answer a readiness probe wants. Otherwise it
// says why not. A paused queue (fleet.Pause) counts as consumed.
func (p *Pool) Ready() error {
	switch {
	case !p.running.Load():
		return fmt.Errorf("%w: not started", ErrNotReady)
	case p.stopping.Load():
		return fmt.Errorf("%w: shutting down", ErrNotReady)
	case !p.conn.Connected():
		return fmt.Errorf("%w: not connected to the broker", ErrNotReady)
	case p.conn.Blocked() != "":
		return fmt.Errorf("%w: the broker blocks publishing: %s", ErrNotReady, p.conn.Blocked())
	}
	// A paused queue is as intended: it counts as consumed.
	if n, want := int(p.active.Load()+p.pausedQueues.Load()), len(p.cfg.Queues); n < want {
		return fmt.Errorf("%w: consuming %d of %d queues", ErrNotReady, n, want)
	}
	return nil
}

// New returns a Pool that consumes cfg.Queues on conn and runs h.
func New(conn *broker.Conn, h Handler, cfg Config) (*Pool, error) {
	if conn == nil {
		return nil, errors.New("worker: nil connection")
	}
	if h == nil {
		return nil, errors.New("worker: nil handler")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	for i := len(cfg.Middleware) - 1; i >= 0; i-- {
		h = cfg.Middleware[i](h)
	}
	p := &Pool{conn: conn, handler: h, cfg: cfg, log: cfg.Logger,
		rules: rules{retry: cfg.Retry, byType: cfg.RetryByType, noDeclare: cfg.NoDeclare}}
	p.beats.init(cfg)
	return p, nil
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	return Stats{
		Started:      p.started.Load(),
		Succeeded:    p.succeeded.Load(),
		Skipped:      p.skipped.Load(),
		Retried:      p.retried.Load(),
		DeadLettered: p.dead.Load(),
		Requeued:     p.requeued.Load(),
		Redelivered:  p.redelivered.Load(),
		Voided:       p.voided.Load(),
		Unreadable:   p.unreadable.Load(),
		Oversized:    p.oversized.Load(),
		Held:         p.held.Load(),
		Reconnects:   p.conn.Reconnects(),
		InFlight:     p.inFlight.Load(),
		Paused:       int(p.pausedQueues.Load()),
	}
}

// Run consumes until ctx ends, then drains: it cancels the consumers, lets
// running handlers finish for up to ShutdownTimeout, then cancels their
// contexts and waits for them to return. Whatever was not acked goes back
// to the broker. While the broker is away at start, Run waits for it (see
// broker.Transient). Run returns nil after a drain started by ctx (or if
// ctx ends while it waits to start), or an error if it could not start
// (access refused, a queue that is missing or declared with other
// options) or the connection was lost for good (ErrConnectionLost). A
// Pool runs once.
func (p *Pool) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("worker: Pool.Run called twice")
	}
	pubs, starting, err := p.start(ctx)
	if err != nil {
		if ctx.Err() != nil && broker.Transient(err) {
			p.log.Info("worker: stopped before the broker came back", "err", err)
			return nil
		}
		return fmt.Errorf("worker: %w", err)
	}
	defer pubs.close()
	if !p.cfg.NoDeclare {
		// Only once the queues were declared: a hook that fails (the queue
		// declared with other options) would fail every reconnect of a
		// connection others may share.
		p.conn.OnReconnect(func(ctx context.Context, c *broker.Conn) error {
			return broker.Declare(ctx, c, p.cfg.QueueOptions, p.cfg.Queues...)
		})
	}

	// hardCtx is what handlers run under: it ends ShutdownTimeout after ctx.
	hardCtx, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	stop := make(chan struct{}) // closed when consumers must stop
	jobs := make(chan job)

	var consumers sync.WaitGroup
	var open []*consumer
	// Closing the consumer channels hands every unacked delivery back to
	// the broker; it happens only after the handlers are done.
	defer func() {
		for _, c := range open {
			c.close()
		}
	}()
	lost := make(chan error, len(p.cfg.Queues))
	for _, c := range starting {
		open = append(open, c)
		consumers.Add(1)
		go func() {
			defer consumers.Done()
			if err := c.forward(stop, jobs); err != nil {
				lost <- err
			}
		}()
	}

	var handlers sync.WaitGroup
	for range p.cfg.Concurrency {
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			for {
				select {
				case <-stop:
					return
				case j := <-jobs:
					p.process(hardCtx, pubs, j)
				}
			}
		}()
	}
	p.log.Info("worker: started", "queues", p.cfg.Queues, "concurrency", p.cfg.Concurrency, "prefetch", p.cfg.Prefetch)
	beatsDone := p.startBeats(open)

	var runErr error
	select {
	case <-ctx.Done():
		p.log.Info("worker: shutting down", "in_flight", p.inFlight.Load(), "shutdown_timeout", p.cfg.ShutdownTimeout)
	case err := <-lost:
		runErr = fmt.Errorf("%w: %w", ErrConnectionLost, err)
		hardCancel() // their deliveries are gone with the connection
		p.log.Error("worker: stopping", "err", runErr)
	}
	p.stopping.Store(true)
	close(stop)
	consumers.Wait()

	drained := make(chan struct{})
	go func() { handlers.Wait(); close(drained) }()
	timer := time.NewTimer(p.cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-drained:
	case <-timer.C:
		p.log.Warn("worker: shutdown timeout: cancelling running handlers", "in_flight", p.inFlight.Load())
		hardCancel()
		<-drained
	}
	beatsDone(runErr == nil)
	p.log.Info("worker: stopped", "succeeded", p.succeeded.Load(), "retried", p.retried.Load(), "dead_lettered", p.dead.Load())
	return runErr
}

// start declares the queues (unless NoDeclare), opens the publisher and
// one consumer per queue. While the broker is away or drops the connection
// meanwhile (a transient error: broker.Transient), it waits for the
// connection and tries again, with backoff, until ctx ends; other errors
// (access refused, a missing or mismatched queue) it returns at once.
func (p *Pool) start(ctx context.Context) (*publishers, []*consumer, error) {
	for attempt := 1; ; attempt++ {
		pubs, cs, err := p.startOnce(ctx)
		if err == nil {
			if attempt > 1 {
				p.log.Info("worker: started after the broker came back", "attempts", attempt)
			}
			return pubs, cs, nil
		}
		if errors.Is(err, broker.ErrClosed) || !broker.Transient(err) || ctx.Err() != nil {
			return nil, nil, err
		}
		backoff := infraBackoff.Backoff(attempt)
		p.log.Warn("worker: could not start; trying again once the broker is back", "err", err, "attempt", attempt, "retry_in", backoff)
		if werr := p.conn.Await(ctx); werr != nil {
			if ctx.Err() != nil {
				return nil, nil, fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
			}
			return nil, nil, werr
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
		case <-time.After(backoff):
		}
	}
}

// infraBackoff spaces the pool's own tries while the broker is away
// (starting, consuming again): 100 ms doubling to 5 s, with full jitter.
var infraBackoff = retry.Policy{Base: 100 * time.Millisecond, Cap: 5 * time.Second, Min: 100 * time.Millisecond}

func (p *Pool) startOnce(ctx context.Context) (*publishers, []*consumer, error) {
	if !p.cfg.NoDeclare {
		if err := broker.Declare(ctx, p.conn, p.cfg.QueueOptions, p.cfg.Queues...); err != nil {
			return nil, nil, err
		}
	}
	pubs, err := newPublishers(p.conn)
	if err != nil {
		return nil, nil, err
	}
	var cs []*consumer
	for _, q := range p.cfg.Queues {
		c, err := p.newConsumer(ctx, q)
		if err != nil {
			for _, c := range cs {
				c.close()
			}
			pubs.close()
			return nil, nil, err
		}
		cs = append(cs, c)
	}
	return pubs, cs, nil
}
