package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/retry"
)

// Defaults of a zero Config.
const (
	DefaultConcurrency     = 10
	DefaultHandlerTimeout  = 5 * time.Minute
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultConsumerTimeout is RabbitMQ's default consumer_timeout: the
	// broker closes a channel that holds a delivery unacked for longer.
	DefaultConsumerTimeout = 30 * time.Minute
	// consumerTimeoutMargin is kept free between the handler timeout and
	// the broker's consumer_timeout, for the outcome's publish and ack and
	// for the broker's once-a-minute check.
	consumerTimeoutMargin = time.Minute
)

// ErrConnectionLost is returned (wrapped) by Run when the connection to the
// broker is closed for good (the Conn was closed, or it does not
// reconnect). A connection that drops and comes back does not stop Run.
var ErrConnectionLost = errors.New("worker: connection to the broker lost")

// errChannelLost cancels handlers whose delivery's channel is gone.
var errChannelLost = errors.New("worker: the channel that delivered the task was lost; the broker delivers it again")

// DefaultPrefetch is the prefetch a zero Config.Prefetch gets for a
// concurrency: max(2 × concurrency, 100).
func DefaultPrefetch(concurrency int) int { return max(2*concurrency, 100) }

// Config tunes a Pool. Queues is required; every other zero value has a default.
type Config struct {
	// Queues to consume. Required.
	Queues []string
	// Concurrency is how many handlers run at once, across all queues.
	// 0 means 10.
	Concurrency int
	// Prefetch is each queue's AMQP prefetch count: deliveries the broker
	// sends ahead of the handlers. 0 means max(2 × Concurrency, 100):
	// quorum queues deliver slowly below about 100. Deliveries waiting in
	// the prefetch buffer count against the broker's consumer_timeout
	// too: for long tasks keep Prefetch/Concurrency × typical handler time
	// well under it (for one-minute tasks at Concurrency 10, Prefetch 100
	// lets the last buffered task wait about 10 minutes).
	Prefetch int
	// HandlerTimeout bounds one handler run; the handler's context ends
	// then and the run counts as a failure. 0 means 5m. It must stay a
	// minute under ConsumerTimeout.
	HandlerTimeout time.Duration
	// ShutdownTimeout is how long Run waits, once its context ends, for
	// running handlers to finish before it cancels their contexts. 0 means 30s.
	ShutdownTimeout time.Duration
	// ConsumerTimeout is the broker's consumer_timeout. 0 means 30m, the
	// RabbitMQ default; set it if your broker's setting differs.
	ConsumerTimeout time.Duration
	// Retry is the retry policy. The zero Policy uses retry's defaults
	// (10 attempts, 1s base, 1h cap, full jitter).
	Retry retry.Policy
	// RetryByType overrides Retry for some task types.
	RetryByType map[string]retry.Policy
	// QueueOptions are used to declare Queues. The zero value is a quorum
	// queue with broker.DefaultDeliveryLimit.
	QueueOptions broker.QueueOptions
	// NoDeclare skips declaring the topology at start and after reconnects.
	NoDeclare bool
	// KeepRunningOnDisconnect lets running handlers go on when the
	// connection (or the channel) that delivered their task is lost. By
	// default their context is cancelled: the broker has already handed
	// the task back to the queue, and another worker may be running it.
	// Either way the outcome of such a run is dropped, not acked.
	KeepRunningOnDisconnect bool
	// Hostname is recorded in dead letters. "" means os.Hostname().
	Hostname string
	// Middleware wraps the handler for every task, outermost first: for
	// tracing, metrics or idempotency that must hold whatever the handler.
	Middleware []Middleware
	// Observer is told when each task starts and how it ends, for metrics.
	// nil means none.
	Observer Observer
	// ConsumerCheckInterval is how often each queue is checked for a
	// consumer the broker dropped without telling (see consumer.checkAlive).
	// 0 means 10s.
	ConsumerCheckInterval time.Duration
	// Logger receives the pool's events. nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Prefetch == 0 {
		c.Prefetch = DefaultPrefetch(c.Concurrency)
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = DefaultHandlerTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.ConsumerTimeout == 0 {
		c.ConsumerTimeout = DefaultConsumerTimeout
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	if c.ConsumerCheckInterval <= 0 {
		c.ConsumerCheckInterval = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate reports every problem at once; it runs after withDefaults.
func (c Config) validate() error {
	var errs []error
	if len(c.Queues) == 0 {
		errs = append(errs, errors.New("worker: Queues: at least one queue is required"))
	}
	seen := map[string]bool{}
	for _, q := range c.Queues {
		if err := warren.ValidateQueueName(q); err != nil {
			errs = append(errs, fmt.Errorf("worker: Queues: %w", err))
		}
		if seen[q] {
			errs = append(errs, fmt.Errorf("worker: Queues: %q listed twice", q))
		}
		seen[q] = true
	}
	if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("worker: Concurrency cannot be negative (got %d)", c.Concurrency))
	}
	if c.Prefetch < 0 || c.Prefetch > 65535 {
		errs = append(errs, fmt.Errorf("worker: Prefetch must be 0 to 65535 (got %d)", c.Prefetch))
	}
	if c.HandlerTimeout < 0 {
		errs = append(errs, fmt.Errorf("worker: HandlerTimeout cannot be negative (got %s)", c.HandlerTimeout))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("worker: ShutdownTimeout cannot be negative (got %s)", c.ShutdownTimeout))
	}
	if c.HandlerTimeout > c.ConsumerTimeout-consumerTimeoutMargin {
		errs = append(errs, fmt.Errorf("worker: HandlerTimeout %s is too close to the broker's consumer_timeout %s: "+
			"the broker would close the channel and redeliver the task while it still runs; keep it at most %s, "+
			"or raise consumer_timeout on the broker and set ConsumerTimeout to match",
			c.HandlerTimeout, c.ConsumerTimeout, c.ConsumerTimeout-consumerTimeoutMargin))
	}
	if err := c.Retry.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("worker: Retry: %w", err))
	}
	for typ, p := range c.RetryByType {
		if err := p.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("worker: RetryByType[%q]: %w", typ, err))
		}
	}
	if err := c.QueueOptions.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("worker: %w", err))
	}
	return errors.Join(errs...)
}

// Stats counts what a pool has done since it started.
type Stats struct {
	Started      uint64 // handler runs started
	Succeeded    uint64
	Skipped      uint64 // tasks acked without running: already done (ErrAlreadyDone, Idempotent)
	Retried      uint64 // failures republished for a later attempt
	DeadLettered uint64
	Requeued     uint64 // deliveries handed back to the broker (shutdown, or an outcome that could not be published)
	Redelivered  uint64 // deliveries the broker had delivered before
	Voided       uint64 // runs whose delivery was lost with its channel: outcome dropped, the broker redelivers
	Unreadable   uint64 // deliveries whose headers this client could not read (dead-lettered, or Held)
	Oversized    uint64 // outcomes whose headers had to be trimmed, or could not fit at all, under the frame size
	Held         uint64 // unreadable deliveries left unacked in place: their queue has no dead-letter target
	Reconnects   uint64 // connections re-established (see broker.Conn.Reconnects)
	InFlight     int64
}

// Pool consumes queues and runs a Handler on each task. Create it with New
// and start it with Run.
type Pool struct {
	conn    *broker.Conn
	handler Handler
	cfg     Config
	log     *slog.Logger

	started, succeeded, skipped, retried, dead, requeued, redelivered, voided atomic.Uint64
	unreadable, oversized, held                                               atomic.Uint64
	inFlight                                                                  atomic.Int64

	running  atomic.Bool
	stopping atomic.Bool
	active   atomic.Int32 // queues being consumed now
}

// ErrNotReady is wrapped by Ready's error.
var ErrNotReady = errors.New("worker: not ready")

// Ready returns nil while the pool consumes every queue on a live,
// unblocked connection: the answer a readiness probe wants. Otherwise it
// says why not.
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
	if n, want := int(p.active.Load()), len(p.cfg.Queues); n < want {
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
	return &Pool{conn: conn, handler: h, cfg: cfg, log: cfg.Logger}, nil
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
	}
}

type job struct {
	d     amqp.Delivery
	queue string
	// live ends when the channel that delivered d closes: d can then no
	// longer be acked, and the broker has requeued it.
	live context.Context
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
			c.acker.close()
			_ = c.ch.Close()
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
	p.log.Info("worker: stopped", "succeeded", p.succeeded.Load(), "retried", p.retried.Load(), "dead_lettered", p.dead.Load())
	return runErr
}

// start declares the queues (unless NoDeclare), opens the publisher and
// one consumer per queue. While the broker is away or drops the connection
// meanwhile (a transient error: broker.Transient), it waits for the
// connection and tries again, with backoff, until ctx ends; other errors
// (access refused, a missing or mismatched queue) it returns at once.
func (p *Pool) start(ctx context.Context) (*publishers, []*consumer, error) {
	backoff := 100 * time.Millisecond
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
		backoff = min(2*backoff, 5*time.Second)
	}
}

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
		c, err := p.consume(q)
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

// close ends a consumer that never forwarded anything: its channel goes,
// and with it any delivery the broker had already sent.
func (c *consumer) close() {
	c.acker.close()
	_ = c.ch.Close()
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
			return nil, fmt.Errorf("%w: consume %s: %s", broker.ErrQueueNotFound, queue, ae.Reason)
		}
		if errors.As(err, &ae) && ae.Code == amqp.AccessRefused {
			return nil, fmt.Errorf("%w: consume %s: %s", broker.ErrAccessRefused, queue, ae.Reason)
		}
		return nil, fmt.Errorf("consume %s: %w", queue, err)
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

// process runs one delivery to its outcome.
func (p *Pool) process(hardCtx context.Context, pubs *publishers, j job) {
	d := &j.d
	if d.Redelivered {
		p.redelivered.Add(1)
	}
	t, err := broker.Decode(d, j.queue)
	// The task lives in the queue it was consumed from: retries and dead
	// letters go there, whatever a header claims.
	t.Queue = j.queue
	ev := Event{Task: t, Redelivered: d.Redelivered}
	if obs := p.cfg.Observer; obs != nil {
		defer func() { obs.TaskFinished(ev) }()
	}
	if note := broker.HeaderString(d.Headers, warren.HeaderUnreadable); note != "" {
		// The guard under the client replaced headers it could not read:
		// the broker still has them, so the broker dead-letters it.
		ev.Err, ev.Reason = fmt.Errorf("worker: unreadable message: %s", note), warren.ReasonUnreadable
		p.unreadable.Add(1)
		ev.Outcome = p.reject(d, t, ev.Reason, ev.Err)
		return
	}
	if err != nil {
		ev.Err, ev.Reason = err, warren.ReasonMalformed
		ev.Outcome = p.deadLetter(hardCtx, pubs, d, t, warren.ReasonMalformed, err, 0)
		return
	}
	if p.cfg.Observer != nil {
		p.cfg.Observer.TaskStarted(t)
	}
	p.started.Add(1)
	p.inFlight.Add(1)
	start := time.Now()
	runCtx := hardCtx
	if !p.cfg.KeepRunningOnDisconnect && j.live != nil {
		var cancel context.CancelCauseFunc
		runCtx, cancel = context.WithCancelCause(hardCtx)
		stopWatch := context.AfterFunc(j.live, func() { cancel(context.Cause(j.live)) })
		defer stopWatch()
		defer cancel(nil)
	}
	err = p.run(runCtx, t)
	dur := time.Since(start)
	p.inFlight.Add(-1)
	ev.Err, ev.Duration = err, dur

	if j.live != nil && j.live.Err() != nil {
		// The delivery died with its channel: the broker has requeued it,
		// and any outcome published now would duplicate the task.
		p.voided.Add(1)
		ev.Outcome = Voided
		p.logTask(slog.LevelWarn, t, "worker: delivery lost with its channel; outcome dropped, the broker delivers the task again", "err", err, "duration", dur)
		return
	}

	if err == nil || errors.Is(err, ErrAlreadyDone) {
		if aerr := d.Ack(false); aerr != nil {
			ev.Outcome = Voided
			p.logTask(slog.LevelWarn, t, "worker: ack failed; the broker will deliver the task again", "err", aerr)
			return
		}
		if err != nil {
			p.skipped.Add(1)
			ev.Outcome, ev.Err = Skipped, nil
			p.logTask(slog.LevelInfo, t, "job skipped: already done", "why", err)
			return
		}
		p.succeeded.Add(1)
		ev.Outcome = Succeeded
		p.logTask(slog.LevelInfo, t, "job succeeded", "duration", dur)
		return
	}
	if hardCtx.Err() != nil && errors.Is(err, context.Canceled) {
		// Cut off by shutdown: hand it back to the broker untouched; the
		// attempt does not count.
		ev.Outcome = p.requeue(d, t, "shutdown", false)
		return
	}
	if errors.Is(err, ErrUnknownType) {
		ev.Reason = warren.ReasonUnknownType
		ev.Outcome = p.deadLetter(hardCtx, pubs, d, t, ev.Reason, err, dur)
		return
	}
	policy := p.cfg.Retry
	if tp, ok := p.cfg.RetryByType[t.Type]; ok {
		policy = tp
	}
	dec := policy.Decide(t.Attempt, t.MaxAttempts, err)
	switch {
	case dec.Permanent:
		ev.Reason = warren.ReasonPermanent
		ev.Outcome = p.deadLetter(hardCtx, pubs, d, t, ev.Reason, err, dur)
	case !dec.Retry:
		ev.Reason = warren.ReasonExhausted
		ev.Outcome = p.deadLetter(hardCtx, pubs, d, t, ev.Reason, err, dur)
	default:
		ev.Delay = dec.Delay
		ev.Outcome = p.retryLater(hardCtx, pubs, d, t, err, dur, dec.Delay)
		if ev.Outcome == DeadLettered { // the retry could not fit in a frame
			ev.Reason, ev.Delay = warren.ReasonOversized, 0
		}
	}
}

// logTask logs with the fixed task keys, building nothing when level is off.
func (p *Pool) logTask(level slog.Level, t *warren.Task, msg string, args ...any) {
	ctx := context.Background()
	if !p.log.Enabled(ctx, level) {
		return
	}
	p.log.Log(ctx, level, msg, append([]any{"task_id", t.ID, "type", t.Type, "queue", t.Queue, "attempt", t.Attempt}, args...)...)
}

// run calls the handler under the handler timeout, turning a panic into a
// *PanicError and a run past its deadline into a timeout error.
func (p *Pool) run(hardCtx context.Context, t *warren.Task) (err error) {
	ctx, cancel := context.WithTimeout(context.WithValue(hardCtx, taskKey{}, t), p.cfg.HandlerTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	err = p.handler.ProcessTask(ctx, t)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && hardCtx.Err() == nil {
		err = fmt.Errorf("worker: handler timeout after %s: %w", p.cfg.HandlerTimeout, err)
	}
	return err
}

func (p *Pool) retryLater(ctx context.Context, pubs *publishers, d *amqp.Delivery, t *warren.Task, cause error, dur, delay time.Duration) Outcome {
	now := time.Now()
	hist := append(t.History, warren.Failure{Attempt: t.Attempt, Error: cause.Error(), FailedAt: now, Worker: p.cfg.Hostname, Duration: dur})
	set := amqp.Table{
		warren.HeaderAttempt:   int32(t.Attempt + 1),
		warren.HeaderLastError: broker.Truncate(cause.Error(), broker.MaxErrorLen),
		warren.HeaderHistory:   broker.EncodeHistory(hist),
		warren.HeaderQueue:     t.Queue,
	}
	exchange, key, err := broker.DelayRoute(t.Queue, delay)
	if err != nil { // only for a delay past MaxDelay: clamp
		exchange, key, _ = broker.DelayRoute(t.Queue, broker.MaxDelay)
		delay = broker.MaxDelay
	}
	set[warren.HeaderDeliverAt] = nil
	if exchange != "" {
		set[warren.HeaderDeliverAt] = now.Add(delay).UnixMilli()
	}
	msg := broker.Derive(d, set)
	budget := broker.HeaderBudget(p.conn.FrameMax())
	if exchange != "" {
		budget = broker.DelayedHeaderBudget(p.conn.FrameMax())
	}
	if trimmed, err := broker.Fit(&msg, budget); err != nil {
		p.oversized.Add(1)
		return p.deadLetter(ctx, pubs, d, t, warren.ReasonOversized, fmt.Errorf("worker: cannot retry: %w (last error: %w)", err, cause), dur)
	} else if trimmed {
		p.oversized.Add(1)
		p.logTask(slog.LevelWarn, t, "worker: retry metadata trimmed to fit the broker's frame size")
	}
	if err := pubs.publish(ctx, exchange, key, msg); err != nil {
		p.logTask(slog.LevelError, t, "worker: could not schedule the retry; handing the task back to the broker", "err", err, "cause", cause)
		return p.requeue(d, t, "retry publish failed", true)
	}
	if err := d.Ack(false); err != nil {
		// The retry is stored; the original will come back too: the task
		// may run twice (at-least-once).
		p.logTask(slog.LevelWarn, t, "worker: ack after retry failed; the task may run twice", "err", err)
	}
	p.retried.Add(1)
	p.logTask(slog.LevelWarn, t, "job retrying", "err", cause, "delay", time.Duration(broker.DelaySeconds(delay))*time.Second, "next_attempt", t.Attempt+1)
	return Retried
}

func (p *Pool) deadLetter(ctx context.Context, pubs *publishers, d *amqp.Delivery, t *warren.Task, reason warren.DeadReason, cause error, dur time.Duration) Outcome {
	now := time.Now()
	set := amqp.Table{
		warren.HeaderDeadReason: string(reason),
		warren.HeaderError:      broker.Truncate(cause.Error(), broker.MaxErrorLen),
		warren.HeaderFailedAt:   now.UnixMilli(),
		warren.HeaderWorkerHost: p.cfg.Hostname,
		warren.HeaderDurationMS: dur.Milliseconds(),
		warren.HeaderQueue:      t.Queue,
		warren.HeaderDeliverAt:  nil,
	}
	if reason != warren.ReasonMalformed {
		set[warren.HeaderAttempt] = int32(t.Attempt)
		set[warren.HeaderHistory] = broker.EncodeHistory(append(t.History,
			warren.Failure{Attempt: t.Attempt, Error: cause.Error(), FailedAt: now, Worker: p.cfg.Hostname, Duration: dur}))
		if t.EnqueuedAt.IsZero() {
			set[warren.HeaderEnqueuedAt] = now.UnixMilli()
		}
	}
	var pe *PanicError
	if errors.As(cause, &pe) {
		set[warren.HeaderStack] = broker.Truncate(string(pe.Stack), broker.MaxStackLen)
	}
	if warren.IsDeadLetterQueue(t.Queue) {
		// A dead-letter queue consumed as a queue is its own dead-letter
		// queue: publishing there would run the task again at once.
		return p.hold(t, reason, cause)
	}
	msg := broker.Derive(d, set)
	if trimmed, err := broker.Fit(&msg, broker.HeaderBudget(p.conn.FrameMax())); err != nil {
		// The task's own headers leave no room for a dead letter's
		// story: the broker dead-letters the original instead.
		p.oversized.Add(1)
		return p.reject(d, t, warren.ReasonOversized, fmt.Errorf("%w (dead-lettering: %w)", err, cause))
	} else if trimmed {
		p.oversized.Add(1)
		p.logTask(slog.LevelWarn, t, "worker: dead-letter metadata trimmed to fit the broker's frame size")
	}
	if err := pubs.publish(ctx, "", warren.DeadLetterQueue(t.Queue), msg); err != nil {
		p.logTask(slog.LevelError, t, "worker: could not dead-letter the task; handing it back to the broker", "err", err, "cause", cause)
		return p.requeue(d, t, "dead-letter publish failed", true)
	}
	if err := d.Ack(false); err != nil {
		p.logTask(slog.LevelWarn, t, "worker: ack after dead-lettering failed; the task may be dead-lettered twice", "err", err)
	}
	p.dead.Add(1)
	p.logTask(slog.LevelError, t, "job dead-lettered", "reason", string(reason), "err", cause)
	return DeadLettered
}

// reject hands a delivery Warren cannot carry on (unreadable, or too
// large for a dead letter's metadata) to the broker's own dead-lettering:
// basic.reject without requeue moves the message, exactly as the broker
// holds it, to the queue's dead-letter target (Q.dlq for a queue Warren
// declared), with an x-death reason "rejected". A queue Warren did not
// declare may have no such target, and a reject would drop the message:
// there the delivery is Held, unacked, until the channel closes.
func (p *Pool) reject(d *amqp.Delivery, t *warren.Task, reason warren.DeadReason, cause error) Outcome {
	if p.cfg.NoDeclare || warren.IsDeadLetterQueue(t.Queue) {
		return p.hold(t, reason, cause)
	}
	if err := d.Reject(false); err != nil {
		p.logTask(slog.LevelWarn, t, "worker: reject failed; the broker will deliver the message again", "err", err)
		return Voided
	}
	p.dead.Add(1)
	p.logTask(slog.LevelError, t, "job dead-lettered by the broker (rejected)", "reason", string(reason), "err", cause)
	return DeadLettered
}

// requeue hands a delivery back to the broker. failed says that handling
// the task failed (its retry or dead letter could not be published): the
// delivery is then rejected, which RabbitMQ 4.3 and later count toward the
// queue's delivery limit, as every earlier line counts any hand-back, so a
// task that can never move on is dead-lettered by the broker in the end.
// Otherwise (shutdown) it is nacked, which 4.3 does not count
// (docs/compatibility.md).
// hold leaves a delivery unacked in place: its queue has nowhere to
// dead-letter it to. The broker delivers it again once the channel closes.
func (p *Pool) hold(t *warren.Task, reason warren.DeadReason, cause error) Outcome {
	p.held.Add(1)
	p.logTask(slog.LevelError, t, "worker: this task cannot go on and its queue has no dead-letter target; leaving it unacked in place until the worker stops (warren dlq purge or replay moves it)", "reason", string(reason), "err", cause)
	return Held
}

func (p *Pool) requeue(d *amqp.Delivery, t *warren.Task, why string, failed bool) Outcome {
	p.requeued.Add(1)
	var err error
	if failed {
		err = d.Reject(true)
	} else {
		err = d.Nack(false, true)
	}
	if err != nil {
		p.logTask(slog.LevelDebug, t, "worker: hand-back failed; the broker requeues the task when the channel closes", "why", why, "err", err)
	}
	return Requeued
}

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
