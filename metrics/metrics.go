package metrics

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/check"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/worker"
)

// Defaults of a zero Config.
const (
	DefaultMaxTaskTypes = 200
	DefaultMaxQueues    = 100
)

// Other is the label value that stands for every task type (or queue)
// past the cap.
const Other = "other"

// DefaultHandlerBuckets are the bounds, in seconds, of
// warren_handler_duration_seconds: 5ms to 5m.
var DefaultHandlerBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// DefaultEnqueueBuckets are the bounds, in seconds, of
// warren_enqueue_duration_seconds: 1ms to 10s.
var DefaultEnqueueBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Config tunes New. The zero Config is ready to use.
type Config struct {
	// Registerer receives the collectors. nil means
	// prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
	// MaxTaskTypes caps the distinct values of the type label; later types
	// are counted as "other". 0 means 200.
	MaxTaskTypes int
	// MaxQueues caps the distinct values of the queue label. 0 means 100.
	MaxQueues int
	// HandlerBuckets are the bucket bounds of
	// warren_handler_duration_seconds. nil means DefaultHandlerBuckets.
	HandlerBuckets []float64
	// EnqueueBuckets are the bucket bounds of
	// warren_enqueue_duration_seconds. nil means DefaultEnqueueBuckets.
	EnqueueBuckets []float64
}

func (c Config) withDefaults() Config {
	c.Registerer = cmp.Or(c.Registerer, prometheus.DefaultRegisterer)
	c.MaxTaskTypes = cmp.Or(c.MaxTaskTypes, DefaultMaxTaskTypes)
	c.MaxQueues = cmp.Or(c.MaxQueues, DefaultMaxQueues)
	if c.HandlerBuckets == nil {
		c.HandlerBuckets = DefaultHandlerBuckets
	}
	if c.EnqueueBuckets == nil {
		c.EnqueueBuckets = DefaultEnqueueBuckets
	}
	return c
}

func (c Config) validate() error {
	return errors.Join(
		check.NotNegative("metrics: MaxTaskTypes", c.MaxTaskTypes),
		check.NotNegative("metrics: MaxQueues", c.MaxQueues),
	)
}

// Metrics records Warren's metrics. It implements worker.Observer and
// producer.Observer. It is safe for concurrent use.
type Metrics struct {
	types, queues *limiter

	enqueued       *prometheus.CounterVec
	enqueueSeconds *prometheus.HistogramVec
	started        *prometheus.CounterVec
	finished       *prometheus.CounterVec
	failed         *prometheus.CounterVec
	deadLettered   *prometheus.CounterVec
	handlerSeconds *prometheus.HistogramVec
	inFlight       *prometheus.GaugeVec
	redeliveries   *prometheus.CounterVec

	state *stateCollector

	pairs   sync.Map // "queue\x00type" seen → struct{}
	running sync.Map // *warren.Task → labels, between TaskStarted and TaskFinished
}

var (
	_ worker.Observer   = (*Metrics)(nil)
	_ producer.Observer = (*Metrics)(nil)
)

// New creates the metrics and registers them with cfg.Registerer. It
// fails if they are registered there already.
func New(cfg Config) (*Metrics, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m := &Metrics{
		types:  newLimiter(cfg.MaxTaskTypes),
		queues: newLimiter(cfg.MaxQueues),
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_tasks_enqueued_total",
			Help: "Tasks enqueued, by result: ok once the broker confirmed the task, error otherwise.",
		}, []string{"queue", "type", "result"}),
		enqueueSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "warren_enqueue_duration_seconds",
			Help:    "Time from an enqueue call to the broker's confirm (or the error).",
			Buckets: cfg.EnqueueBuckets,
		}, []string{"queue"}),
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_tasks_started_total",
			Help: "Handler runs started.",
		}, []string{"queue", "type"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_tasks_finished_total",
			Help: "Deliveries settled, by outcome: succeeded, skipped, retried, dead_lettered, requeued, voided or held.",
		}, []string{"queue", "type", "outcome"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_tasks_failed_total",
			Help: "Handler runs that returned an error (whatever happened to the task next).",
		}, []string{"queue", "type"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_tasks_dead_lettered_total",
			Help: "Tasks moved to their queue's dead-letter queue by a worker, by reason.",
		}, []string{"queue", "type", "reason"}),
		handlerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "warren_handler_duration_seconds",
			Help:    "How long handlers ran.",
			Buckets: cfg.HandlerBuckets,
		}, []string{"queue", "type"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warren_tasks_in_flight",
			Help: "Handlers running now.",
		}, []string{"queue"}),
		redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_redeliveries_total",
			Help: "Deliveries the broker had delivered before (a worker died or lost its connection holding them).",
		}, []string{"queue"}),
		state: &stateCollector{},
	}
	for _, c := range []prometheus.Collector{
		m.enqueued, m.enqueueSeconds, m.started, m.finished, m.failed, m.deadLettered,
		m.handlerSeconds, m.inFlight, m.redeliveries, m.state,
	} {
		if err := cfg.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// AddConn reports c's state at each scrape: warren_broker_connected,
// warren_broker_blocked and warren_reconnects_total. With several
// connections, connected is 1 only while all are up, blocked is 1 while
// any is blocked, and reconnects is their sum.
func (m *Metrics) AddConn(c *broker.Conn) { m.state.addConn(c) }

// AddProducer reports p's circuit breaker at each scrape as
// warren_publish_breaker_state (0 closed, 1 half-open, 2 open). With
// several producers, the worst state is reported.
func (m *Metrics) AddProducer(p *producer.Producer) { m.state.addProducer(p) }

// labels are a task's label values, as capped.
type labels struct{ queue, typ string }

func (m *Metrics) labels(queue, typ string) labels {
	l := labels{queue: m.queues.value(queue), typ: m.types.value(typ)}
	key := l.queue + "\x00" + l.typ
	if _, seen := m.pairs.LoadOrStore(key, struct{}{}); !seen {
		// Start every series of the pair at zero, so that the first
		// increment shows in rate() and increase().
		m.started.WithLabelValues(l.queue, l.typ)
		m.failed.WithLabelValues(l.queue, l.typ)
		for _, o := range outcomes {
			m.finished.WithLabelValues(l.queue, l.typ, string(o))
		}
	}
	return l
}

var outcomes = []worker.Outcome{worker.Succeeded, worker.Skipped, worker.Retried, worker.DeadLettered, worker.Requeued, worker.Voided, worker.Held}

// Enqueued implements producer.Observer.
func (m *Metrics) Enqueued(queue, taskType string, err error, latency time.Duration) {
	q, typ := m.queues.value(queue), m.types.value(taskType)
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.enqueued.WithLabelValues(q, typ, result).Inc()
	m.enqueueSeconds.WithLabelValues(q).Observe(latency.Seconds())
}

// TaskStarted implements worker.Observer.
func (m *Metrics) TaskStarted(t *warren.Task) {
	if t == nil {
		return
	}
	l := m.labels(t.Queue, t.Type)
	m.running.Store(t, l)
	m.started.WithLabelValues(l.queue, l.typ).Inc()
	m.inFlight.WithLabelValues(l.queue).Inc()
}

// TaskFinished implements worker.Observer.
func (m *Metrics) TaskFinished(e worker.Event) {
	if e.Task == nil {
		return
	}
	var l labels
	v, ran := m.running.LoadAndDelete(e.Task)
	if ran {
		l = v.(labels)
		m.inFlight.WithLabelValues(l.queue).Dec()
		m.handlerSeconds.WithLabelValues(l.queue, l.typ).Observe(e.Duration.Seconds())
		if e.Err != nil {
			m.failed.WithLabelValues(l.queue, l.typ).Inc()
		}
	} else {
		l = m.labels(e.Task.Queue, e.Task.Type) // a message that did not decode
	}
	if e.Redelivered {
		m.redeliveries.WithLabelValues(l.queue).Inc()
	}
	if e.Outcome != "" {
		m.finished.WithLabelValues(l.queue, l.typ, string(e.Outcome)).Inc()
	}
	if e.Outcome == worker.DeadLettered {
		m.deadLettered.WithLabelValues(l.queue, l.typ, string(e.Reason)).Inc()
	}
}

// limiter caps the distinct values of a label.
type limiter struct {
	mu   sync.RWMutex
	max  int
	seen map[string]struct{}
}

func newLimiter(max int) *limiter { return &limiter{max: max, seen: make(map[string]struct{})} }

// value returns s, made valid UTF-8, while it is one of the first max
// values seen; Other after that.
func (l *limiter) value(s string) string {
	s = clean(s)
	l.mu.RLock()
	_, ok := l.seen[s]
	full := len(l.seen) >= l.max
	l.mu.RUnlock()
	if ok {
		return s
	}
	if full {
		return Other
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[s]; ok {
		return s
	}
	if len(l.seen) >= l.max {
		return Other
	}
	l.seen[s] = struct{}{}
	return s
}

// maxLabelLen bounds a label value; AMQP short strings (types) are at most
// 255 bytes anyway.
const maxLabelLen = 255

func clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) > maxLabelLen {
		s = s[:maxLabelLen]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}
