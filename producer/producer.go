package producer

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eapache/go-resiliency/breaker"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/retry"
)

// Errors a caller can branch on with errors.Is.
var (
	// ErrClosed: the producer is closed.
	ErrClosed = errors.New("producer: closed")
	// ErrUnroutable: the queue does not exist.
	ErrUnroutable = broker.ErrUnroutable
	// ErrNacked: the broker refused the message.
	ErrNacked = broker.ErrNacked
	// ErrConfirmLost: no confirm arrived; the task may or may not be stored.
	// Enqueue it again with the same ID to be sure (handlers see it twice at worst).
	ErrConfirmLost = broker.ErrConfirmLost
	// ErrPayloadTooLarge: the payload exceeds Config.MaxPayloadSize.
	ErrPayloadTooLarge = errors.New("producer: payload too large")
	// ErrInvalid: an argument of the enqueue is invalid.
	ErrInvalid = errors.New("producer: invalid task")
	// ErrBreakerOpen: recent publishes failed on the broker side; calls fail
	// fast for a while before the producer probes the broker again.
	ErrBreakerOpen = retry.ErrBreakerOpen
)

// DefaultMaxPayloadSize is the payload limit of a zero Config.
const DefaultMaxPayloadSize = 1 << 20

// Config tunes a Producer. The zero Config is ready to use.
type Config struct {
	// Queues are declared (with the shared delay topology) by New, unless
	// NoDeclare. nil declares only the shared topology.
	Queues []string
	// QueueOptions are used to declare Queues. The zero value is a quorum
	// queue with broker.DefaultDeliveryLimit.
	QueueOptions broker.QueueOptions
	// NoDeclare skips all declarations, for a user without the configure
	// permission. The topology must then be declared by someone else
	// (warren topology declare).
	NoDeclare bool
	// Window bounds the publishes awaiting a confirm. 0 means broker.DefaultWindow (512).
	Window int
	// MaxPayloadSize bounds a payload in bytes. 0 means 1 MiB; negative means no limit
	// (the broker's own max_message_size, 128 MiB by default, still applies).
	MaxPayloadSize int
	// QueueCheckTTL is how long a delayed enqueue trusts that a queue it has
	// checked still exists. 0 means 30s.
	QueueCheckTTL time.Duration
	// ContextHeaders, if set, adds headers taken from each Enqueue's
	// context: W3C trace context, a tenant, a request ID. The headers of
	// WithHeaders win over them.
	ContextHeaders func(ctx context.Context) map[string]any
	// Observer is told the outcome of every enqueue, for metrics. nil means none.
	Observer Observer
	// Logger receives the producer's events. nil means slog.Default().
	Logger *slog.Logger
}

// Observer is told the outcome of each enqueued task. It must be safe for
// concurrent use and quick.
type Observer interface {
	// Enqueued reports one task: err is nil once the broker confirmed it;
	// latency runs from the call to the confirm.
	Enqueued(queue, taskType string, err error, latency time.Duration)
}

func (c Config) withDefaults() Config {
	if c.MaxPayloadSize == 0 {
		c.MaxPayloadSize = DefaultMaxPayloadSize
	}
	if c.QueueCheckTTL == 0 {
		c.QueueCheckTTL = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.Window < 0 {
		errs = append(errs, fmt.Errorf("producer: Window cannot be negative (got %d)", c.Window))
	}
	if c.QueueCheckTTL < 0 {
		errs = append(errs, fmt.Errorf("producer: QueueCheckTTL cannot be negative (got %s)", c.QueueCheckTTL))
	}
	for _, q := range c.Queues {
		if err := warren.ValidateQueueName(q); err != nil {
			errs = append(errs, fmt.Errorf("producer: Queues: %w", err))
		}
	}
	if err := c.QueueOptions.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Producer enqueues tasks. It is safe for concurrent use.
type Producer struct {
	link    link
	cfg     Config
	breaker *breaker.Breaker

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // in-flight enqueues

	republished atomic.Uint64

	checked sync.Map // queue name → time.Time of the last successful existence check
}

// New returns a Producer that publishes on conn, after declaring the
// topology (see Config.Queues and Config.NoDeclare).
func New(ctx context.Context, conn *broker.Conn, cfg Config) (*Producer, error) {
	if conn == nil {
		return nil, errors.New("producer: nil connection")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if !cfg.NoDeclare {
		if err := broker.Declare(ctx, conn, cfg.QueueOptions, cfg.Queues...); err != nil {
			return nil, fmt.Errorf("producer: %w", err)
		}
	}
	s, err := broker.NewSender(conn, broker.SenderConfig{Window: cfg.Window})
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	p := newProducer(connLink{conn: conn, s: s}, cfg)
	if !cfg.NoDeclare {
		conn.OnReconnect(func(ctx context.Context, c *broker.Conn) error {
			return broker.Declare(ctx, c, cfg.QueueOptions, cfg.Queues...)
		})
	}
	return p, nil
}

// newProducer returns a Producer with cfg (its defaults set) that
// publishes through l.
func newProducer(l link, cfg Config) *Producer {
	return &Producer{link: l, cfg: cfg, breaker: retry.Breaker(5, 5*time.Second)}
}

// Job is one task of an EnqueueBatch.
type Job struct {
	Queue   string
	Type    string
	Payload []byte
	Options []Option
}

// Result is the outcome of one Job of an EnqueueBatch.
type Result struct {
	// ID is the task ID (set even when Err is not nil).
	ID string
	// Err is nil when the broker confirmed the task.
	Err error
}

// Enqueue publishes a task of type taskType with payload to queue and
// returns its ID once the broker has confirmed it. On any error the task
// must be considered not enqueued (see ErrConfirmLost for the one case
// where it may have been).
func (p *Producer) Enqueue(ctx context.Context, queue, taskType string, payload []byte, opts ...Option) (string, error) {
	if !p.begin() {
		return "", ErrClosed
	}
	defer p.wg.Done()
	now := time.Now()
	j := Job{Queue: queue, Type: taskType, Payload: payload, Options: opts}
	var s sent
	id, err := p.send(ctx, &j, now, &s)
	if err == nil {
		err = p.await(ctx, &s, id, queue)
	}
	if obs := p.cfg.Observer; obs != nil {
		obs.Enqueued(queue, taskType, err, time.Since(now))
	}
	return id, err
}

// EnqueueJSON marshals v as JSON and enqueues it.
func EnqueueJSON[T any](ctx context.Context, p *Producer, queue, taskType string, v T, opts ...Option) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("%w: encode payload as JSON: %w", ErrInvalid, err)
	}
	return p.Enqueue(ctx, queue, taskType, b, opts...)
}

// EnqueueBatch publishes every job, pipelined, and waits for all their
// confirms. It returns one Result per job, in order; each job succeeds or
// fails on its own. The error is non-nil only when the producer is closed
// or ctx ended before anything could be published.
func (p *Producer) EnqueueBatch(ctx context.Context, jobs []Job) ([]Result, error) {
	if !p.begin() {
		return nil, ErrClosed
	}
	defer p.wg.Done()

	results := make([]Result, len(jobs))
	pend := make([]sent, len(jobs))
	now := time.Now()
	for i := range jobs {
		results[i].ID, results[i].Err = p.send(ctx, &jobs[i], now, &pend[i])
	}
	for i := range pend {
		if pend[i].pd == nil {
			continue
		}
		results[i].Err = p.await(ctx, &pend[i], results[i].ID, jobs[i].Queue)
	}
	if obs := p.cfg.Observer; obs != nil {
		lat := time.Since(now)
		for i, r := range results {
			obs.Enqueued(jobs[i].Queue, jobs[i].Type, r.Err, lat)
		}
	}
	return results, nil
}

// begin counts an enqueue in flight, unless the producer is closed.
func (p *Producer) begin() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	return true
}

// sent is one published task awaiting its confirm, with what it takes to
// publish it again.
type sent struct {
	pd            confirm
	exchange, key string
	msg           amqp.Publishing
}

// send builds, checks, routes and publishes the task of j, and fills s
// (whose pd stays nil when it fails). It returns the task's ID, set even
// when it fails.
func (p *Producer) send(ctx context.Context, j *Job, now time.Time, s *sent) (string, error) {
	var t warren.Task
	o, err := p.build(ctx, j, now, &t)
	if err != nil {
		return t.ID, err
	}
	delay := o.delay
	if !o.processAt.IsZero() {
		delay = o.processAt.Sub(now)
	}
	exchange, key, err := broker.DelayRoute(t.Queue, delay)
	if err != nil {
		return t.ID, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	msg := broker.Encode(&t)
	if exchange != "" {
		// The delay levels accept any destination; make sure the queue
		// exists now, as mandatory publishing does for direct ones.
		if err := p.checkQueue(ctx, t.Queue); err != nil {
			return t.ID, err
		}
		msg.Headers[warren.HeaderDeliverAt] = now.Add(delay).UnixMilli()
	}
	// RabbitMQ closes the whole connection on a header frame past
	// frame_max: refuse it here, keeping room for a retry's metadata.
	if err := broker.CheckSize(&msg, broker.HeaderBudget(p.link.FrameMax())); err != nil {
		return t.ID, fmt.Errorf("%w: task %s: %w", ErrInvalid, t.ID, err)
	}
	pd, err := p.publish(ctx, exchange, key, msg)
	if err != nil {
		return t.ID, fmt.Errorf("producer: enqueue %s to %q: %w", t.ID, t.Queue, err)
	}
	*s = sent{pd: pd, exchange: exchange, key: key, msg: msg}
	return t.ID, nil
}

// await waits for the confirm of s, the task id bound for queue.
func (p *Producer) await(ctx context.Context, s *sent, id, queue string) error {
	err := s.pd.Wait(ctx)
	// The channel died before the broker confirmed: publish the same
	// task (same ID) again on the next channel. The broker may then
	// hold it twice; handlers see it at least once, never zero times.
	for try := 0; try < maxRepublish && republishable(err) && ctx.Err() == nil; try++ {
		if errors.Is(err, ErrNacked) && !sleep(ctx, time.Duration(100<<min(try, 4))*time.Millisecond) {
			break
		}
		p.republished.Add(1)
		var pd confirm
		if pd, err = p.publish(ctx, s.exchange, s.key, s.msg); err == nil {
			err = pd.Wait(ctx)
		}
	}
	if err != nil {
		return fmt.Errorf("producer: enqueue %s to %q: %w", id, queue, err)
	}
	return nil
}

// options applies opts over the headers of Config.ContextHeaders. It
// allocates nothing when there is nothing to apply.
func (p *Producer) options(ctx context.Context, opts []Option) options {
	var h map[string]any
	if p.cfg.ContextHeaders != nil {
		h = p.cfg.ContextHeaders(ctx)
	}
	if len(opts) == 0 && len(h) == 0 {
		return options{}
	}
	o := new(options)
	if len(h) > 0 {
		o.headers = make(map[string]any, len(h))
		for k, v := range h {
			o.headers[k] = v
		}
	}
	for _, opt := range opts {
		opt(o)
	}
	return *o
}

// build fills t from j and its options and checks them.
func (p *Producer) build(ctx context.Context, j *Job, now time.Time, t *warren.Task) (options, error) {
	o := p.options(ctx, j.Options)
	*t = warren.Task{
		ID:          o.id,
		Type:        j.Type,
		Queue:       j.Queue,
		Payload:     j.Payload,
		ContentType: o.contentType,
		Attempt:     1,
		MaxAttempts: o.maxAttempts,
		EnqueuedAt:  now,
		Headers:     o.headers,
	}
	if t.ID == "" {
		t.ID = newID(now)
	}
	var errs []error
	if err := warren.ValidateQueueName(j.Queue); err != nil {
		errs = append(errs, err)
	}
	if j.Type == "" || len(j.Type) > 255 {
		errs = append(errs, fmt.Errorf("task type must be 1 to 255 bytes (got %d)", len(j.Type)))
	}
	if len(t.ID) > 255 {
		errs = append(errs, fmt.Errorf("task ID must be at most 255 bytes (got %d)", len(t.ID)))
	}
	if o.maxAttempts < 0 {
		errs = append(errs, fmt.Errorf("max attempts cannot be negative (got %d)", o.maxAttempts))
	}
	if o.delay < 0 {
		errs = append(errs, fmt.Errorf("delay cannot be negative (got %s)", o.delay))
	}
	for k := range o.headers {
		if strings.HasPrefix(k, "x-") || strings.HasPrefix(k, warren.HeaderPrefix) {
			errs = append(errs, fmt.Errorf("header %q: names starting with x- or %s are reserved", k, warren.HeaderPrefix))
		}
	}
	if err := broker.CheckHeaders(o.headers); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	if p.cfg.MaxPayloadSize > 0 && len(j.Payload) > p.cfg.MaxPayloadSize {
		return o, fmt.Errorf("%w: %d bytes, the limit is %d", ErrPayloadTooLarge, len(j.Payload), p.cfg.MaxPayloadSize)
	}
	return o, nil
}

// lastID is the time part of the last task ID made in this process:
// milliseconds since the epoch << 12, plus a 12-bit sub-millisecond
// sequence, as uuid.NewV7 keeps it.
var lastID atomic.Int64

// newID returns a new UUIDv7 made at now, the same as uuid.NewV7 gives
// (a time part that grows with each ID made in the process, random bits
// from crypto/rand) with one allocation fewer: the ID's string.
func newID(now time.Time) string {
	var u uuid.UUID
	_, _ = rand.Read(u[:]) // it never fails: it crashes the program instead
	nano := now.UnixNano()
	ms := nano / int64(time.Millisecond)
	t := ms<<12 + (nano-ms*int64(time.Millisecond))>>8
	for {
		last := lastID.Load()
		if t <= last {
			t = last + 1
		}
		if lastID.CompareAndSwap(last, t) {
			break
		}
	}
	ms, seq := t>>12, t&0xfff
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	u[6] = 0x70 | byte(seq>>8)&0x0f // version 7
	u[7] = byte(seq)
	u[8] = u[8]&0x3f | 0x80 // variant 10
	return u.String()
}

// publish sends one message through the circuit breaker. The link waits
// for the connection while it is down, up to ctx's end, and replaces a
// channel killed by a channel error, a connection loss or a nack.
func (p *Producer) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (confirm, error) {
	var pd confirm
	err := p.breaker.Run(func() error {
		var err error
		pd, err = p.link.publish(ctx, exchange, key, msg)
		return err
	})
	if errors.Is(err, retry.ErrBreakerOpen) {
		return nil, fmt.Errorf("%w: the broker failed recently; failing fast for a few seconds", ErrBreakerOpen)
	}
	if errors.Is(err, broker.ErrClosed) && p.isClosed() {
		return nil, ErrClosed
	}
	return pd, err
}

func (p *Producer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// maxRepublish bounds how many times one enqueue republishes a task whose
// confirm was lost.
const maxRepublish = 10

// republishable reports a failed publish worth sending again: its confirm
// was lost (the channel died), or the broker nacked it (the publisher
// channel is then replaced: see broker.Publisher.Nacked).
func republishable(err error) bool {
	return (errors.Is(err, ErrConfirmLost) && !refused(err)) || errors.Is(err, ErrNacked)
}

// sleep waits d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// refused reports an error the broker will give again: no republish helps.
func refused(err error) bool {
	return errors.Is(err, broker.ErrAccessRefused) || errors.Is(err, broker.ErrQueueNotFound) || errors.Is(err, broker.ErrQueueMismatch)
}

// BreakerState is "closed" while publishing works, "open" while it fails
// fast after broker failures, and "half-open" while it probes the broker.
func (p *Producer) BreakerState() string {
	switch p.breaker.GetState() {
	case breaker.Open:
		return "open"
	case breaker.HalfOpen:
		return "half-open"
	default:
		return "closed"
	}
}

// Republished counts tasks published again because their first publish
// lost its confirm to a connection or channel failure.
func (p *Producer) Republished() uint64 { return p.republished.Load() }

func (p *Producer) checkQueue(ctx context.Context, queue string) error {
	if at, ok := p.checked.Load(queue); ok && time.Since(at.(time.Time)) < p.cfg.QueueCheckTTL {
		return nil
	}
	if err := p.link.inspect(ctx, queue); err != nil {
		if errors.Is(err, broker.ErrQueueNotFound) {
			return fmt.Errorf("producer: enqueue to %q: %w: %w", queue, ErrUnroutable, err)
		}
		return fmt.Errorf("producer: enqueue to %q: %w", queue, err)
	}
	p.checked.Store(queue, time.Now())
	return nil
}

// Close stops new enqueues, waits (up to ctx) for the ones in flight to get
// their confirms, and closes the producer's channel. It does not close the
// connection.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("producer: close: enqueues still waiting for confirms: %w", ctx.Err())
	}
	if cerr := p.link.close(); cerr != nil && err == nil {
		err = fmt.Errorf("producer: close: %w", cerr)
	}
	return err
}
