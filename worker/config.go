package worker

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

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
	// DefaultPauseCheckInterval is how often a zero Config checks whether
	// a queue is paused.
	DefaultPauseCheckInterval = 500 * time.Millisecond
	// DefaultHeartbeatInterval is how often a zero Config's pool publishes
	// its heartbeat.
	DefaultHeartbeatInterval = 2 * time.Second
)

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
	// PauseCheckInterval is how often each queue is checked for a pause
	// (fleet.Pause): while its marker queue exists the pool takes none of
	// its tasks, hands back those prefetched, and lets those running
	// finish. Each check is a passive declare, on a channel of its own.
	// 0 means 500ms, so that a pause takes hold within a second; negative
	// turns the checks off (the pool never pauses).
	PauseCheckInterval time.Duration
	// HeartbeatInterval is how often the pool publishes a heartbeat
	// (fleet.Beat) to the fanout exchange fleet.HeartbeatExchange, for
	// dashboards (fleet.Roster) to list it. 0 means 2s; negative turns
	// heartbeats off. A user that may not declare the exchange or publish
	// to it gets one log line and no heartbeats; the pool runs on.
	HeartbeatInterval time.Duration
	// Version is the version the heartbeats state. "" means the version of
	// the warren module in the program's build information, or "dev".
	Version string
	// Logger receives the pool's events. nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.Prefetch = cmp.Or(c.Prefetch, DefaultPrefetch(c.Concurrency))
	c.HandlerTimeout = cmp.Or(c.HandlerTimeout, DefaultHandlerTimeout)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	c.ConsumerTimeout = cmp.Or(c.ConsumerTimeout, DefaultConsumerTimeout)
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	if c.ConsumerCheckInterval <= 0 {
		c.ConsumerCheckInterval = 10 * time.Second
	}
	c.PauseCheckInterval = cmp.Or(c.PauseCheckInterval, DefaultPauseCheckInterval)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.Version = cmp.Or(c.Version, moduleVersion())
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return c
}

// modulePath is the warren module's path, as build information names it.
const modulePath = "github.com/warrenq/warren"

// moduleVersion is the version of the warren module the program was built
// with, or "dev" when unknown (a build from a checkout, or a test).
func moduleVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	mods := append([]*debug.Module{&info.Main}, info.Deps...)
	for _, m := range mods {
		if m.Path != modulePath {
			continue
		}
		v := m.Version
		if m.Replace != nil {
			v = m.Replace.Version
		}
		if v != "" && v != "(devel)" {
			return v
		}
	}
	return "dev"
}

// FieldError is one problem Config.Validate found, with the Config field
// at fault: a CLI can name its own flag for it.
type FieldError struct {
	// Field is the Config field at fault: "Queues", "Concurrency",
	// "Prefetch", "HandlerTimeout", "ShutdownTimeout", "Retry",
	// `RetryByType["T"]` or "QueueOptions".
	Field string
	// Err is the problem, in words that name the field.
	Err error
}

// Error returns Err's text.
func (e *FieldError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *FieldError) Unwrap() error { return e.Err }

// Validate reports every problem with c at once, joined, each a
// *FieldError. A zero field counts as its default, as in New, which runs
// the same checks: call Validate to check a configuration before
// connecting.
func (c Config) Validate() error { return c.withDefaults().validate() }

// validate is Validate on a Config that has its defaults.
func (c Config) validate() error {
	var errs []error
	bad := func(field string, err error) { errs = append(errs, &FieldError{Field: field, Err: err}) }
	if len(c.Queues) == 0 {
		bad("Queues", errors.New("worker: Queues: at least one queue is required"))
	}
	seen := map[string]bool{}
	for _, q := range c.Queues {
		if err := warren.ValidateQueueName(q); err != nil {
			bad("Queues", fmt.Errorf("worker: Queues: %w", err))
		}
		if seen[q] {
			bad("Queues", fmt.Errorf("worker: Queues: %q listed twice", q))
		}
		seen[q] = true
	}
	if c.Concurrency < 0 {
		bad("Concurrency", fmt.Errorf("worker: Concurrency cannot be negative (got %d)", c.Concurrency))
	}
	if c.Prefetch < 0 || c.Prefetch > 65535 {
		bad("Prefetch", fmt.Errorf("worker: Prefetch must be 0 to 65535 (got %d)", c.Prefetch))
	}
	if c.HandlerTimeout < 0 {
		bad("HandlerTimeout", fmt.Errorf("worker: HandlerTimeout cannot be negative (got %s)", c.HandlerTimeout))
	}
	if c.ShutdownTimeout < 0 {
		bad("ShutdownTimeout", fmt.Errorf("worker: ShutdownTimeout cannot be negative (got %s)", c.ShutdownTimeout))
	}
	if c.HandlerTimeout > c.ConsumerTimeout-consumerTimeoutMargin {
		bad("HandlerTimeout", fmt.Errorf("worker: HandlerTimeout %s is too close to the broker's consumer_timeout %s: "+
			"the broker would close the channel and redeliver the task while it still runs; keep it at most %s, "+
			"or raise consumer_timeout on the broker and set ConsumerTimeout to match",
			c.HandlerTimeout, c.ConsumerTimeout, c.ConsumerTimeout-consumerTimeoutMargin))
	}
	if err := c.Retry.Validate(); err != nil {
		bad("Retry", fmt.Errorf("worker: Retry: %w", err))
	}
	for typ, p := range c.RetryByType {
		if err := p.Validate(); err != nil {
			bad(fmt.Sprintf("RetryByType[%q]", typ), fmt.Errorf("worker: RetryByType[%q]: %w", typ, err))
		}
	}
	if err := c.QueueOptions.Validate(); err != nil {
		bad("QueueOptions", fmt.Errorf("worker: %w", err))
	}
	return errors.Join(errs...)
}
