// Package bench measures Warren against bare amqp091-go on the same broker:
// publish and consume throughput, the latency from enqueue to handler start,
// peak memory and allocations per job. It backs the warren bench command.
//
// Run drives Warren's producer.Producer and worker.Pool; RunBaseline drives
// the same workload with plain amqp091-go (one confirm-mode channel shared by
// the producers, one consuming channel with the same prefetch, manual acks,
// one ack per message). Both go through the same driver: the same payloads,
// the same pacing, the same timing and the same latency recording, so the
// ratio of their figures is the cost of Warren's own code.
//
// Each run declares a fresh queue with a unique name and deletes it, and
// its dead-letter queue, when it ends.
package bench

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/worker"
)

// Modes of a run.
const (
	// ModeE2E publishes and consumes at once; it measures latency.
	ModeE2E = "e2e"
	// ModePublish only publishes, with confirms.
	ModePublish = "publish"
	// ModeConsume publishes a backlog first (not timed), then drains it.
	ModeConsume = "consume"
	// ModeRetry (Warren only) fails each job's first attempt with a fixed
	// broker delay and measures how late the retry starts after its due time.
	ModeRetry = "retry"
	// ModeIdle (Warren only) starts a pool on an empty queue and reports
	// its memory once it has settled.
	ModeIdle = "idle"
)

// Defaults of a zero Options.
const (
	DefaultJobs      = 20_000
	DefaultRetryJobs = 10_000
	DefaultSize      = 256
	DefaultProducers = 256
	DefaultBatch     = 1
	// DefaultRetryRate is the publish rate of ModeRetry, in jobs per second.
	DefaultRetryRate  = 1000
	DefaultRetryDelay = 2 * time.Second
	DefaultIdleSettle = 3 * time.Second
	// minSize holds the job's sequence number and its enqueue time.
	minSize = 16
	maxSize = 16 << 20
)

// Options describe one benchmark run. The zero value is the default e2e
// run: 20,000 jobs of 256 bytes on a quorum queue.
type Options struct {
	// URL is the broker. "" means broker.DefaultURL.
	URL string
	// Mode is ModeE2E, ModePublish, ModeConsume, ModeRetry or ModeIdle.
	// "" means ModeE2E.
	Mode string
	// Jobs is how many jobs to publish. 0 means DefaultJobs (DefaultRetryJobs
	// in ModeRetry).
	Jobs int
	// Size is each payload's size in bytes, at least 16. 0 means 256.
	Size int
	// Producers is how many goroutines publish at once. Each waits for the
	// confirms of what it published before it publishes again, so at most
	// Producers × Batch publishes await a confirm. 0 means 256.
	Producers int
	// Batch is how many jobs a producer publishes per call (EnqueueBatch for
	// Warren). 0 means 1 (Enqueue).
	Batch int
	// Concurrency is how many handlers run at once. 0 means
	// worker.DefaultConcurrency.
	Concurrency int
	// Prefetch is the consumer's prefetch count. 0 means the worker's
	// default, 2 × Concurrency; the baseline uses the same number.
	Prefetch int
	// QueueType is the type of the queue. "" means broker.Quorum.
	QueueType broker.QueueType
	// HandlerLatency is how long each handler sleeps. 0 means a no-op handler.
	HandlerLatency time.Duration
	// Rate caps the publish rate in jobs per second, across the producers.
	// 0 means unlimited (DefaultRetryRate in ModeRetry).
	Rate float64
	// RetryDelay is the broker delay of each retry in ModeRetry. 0 means 2s.
	RetryDelay time.Duration
	// IdleSettle is how long ModeIdle waits before reading the memory. 0 means 3s.
	IdleSettle time.Duration
	// Logger receives Warren's logs. nil discards them: the pool logs each
	// job at info level, which would measure the log writer.
	Logger *slog.Logger
	// Progress, if not nil, is called about ten times a second with the
	// jobs done so far (handled, or confirmed in ModePublish).
	Progress func(done, total int)
}

func (o Options) withDefaults() Options {
	o.Mode = cmp.Or(o.Mode, ModeE2E)
	o.URL = cmp.Or(o.URL, broker.DefaultURL)
	if o.Jobs == 0 {
		o.Jobs = DefaultJobs
		if o.Mode == ModeRetry {
			o.Jobs = DefaultRetryJobs
		}
	}
	o.Size = cmp.Or(o.Size, DefaultSize)
	o.Producers = cmp.Or(o.Producers, DefaultProducers)
	o.Batch = cmp.Or(o.Batch, DefaultBatch)
	o.Concurrency = cmp.Or(o.Concurrency, worker.DefaultConcurrency)
	// Keep in step with worker.Config.withDefaults.
	o.Prefetch = cmp.Or(o.Prefetch, worker.DefaultPrefetch(o.Concurrency))
	o.QueueType = cmp.Or(o.QueueType, broker.Quorum)
	if o.Rate == 0 && o.Mode == ModeRetry {
		o.Rate = DefaultRetryRate
	}
	o.RetryDelay = cmp.Or(o.RetryDelay, DefaultRetryDelay)
	o.IdleSettle = cmp.Or(o.IdleSettle, DefaultIdleSettle)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports every problem with o at once.
func (o Options) Validate() error {
	var errs []error
	switch o.Mode {
	case "", ModeE2E, ModePublish, ModeConsume, ModeRetry, ModeIdle:
	default:
		errs = append(errs, fmt.Errorf("bench: Mode %q: want e2e, publish, consume, retry or idle", o.Mode))
	}
	if o.Jobs < 0 {
		errs = append(errs, fmt.Errorf("bench: Jobs cannot be negative (got %d)", o.Jobs))
	}
	if o.Size != 0 && o.Size < minSize {
		errs = append(errs, fmt.Errorf("bench: Size must be at least %d bytes (got %d): the payload carries a sequence number and a timestamp", minSize, o.Size))
	}
	if o.Size > maxSize {
		errs = append(errs, fmt.Errorf("bench: Size cannot exceed %d bytes (got %d)", maxSize, o.Size))
	}
	if o.Producers < 0 {
		errs = append(errs, fmt.Errorf("bench: Producers cannot be negative (got %d)", o.Producers))
	}
	if o.Batch < 0 {
		errs = append(errs, fmt.Errorf("bench: Batch cannot be negative (got %d)", o.Batch))
	}
	if o.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("bench: Concurrency cannot be negative (got %d)", o.Concurrency))
	}
	if o.Prefetch < 0 || o.Prefetch > 65535 {
		errs = append(errs, fmt.Errorf("bench: Prefetch must be 0 to 65535 (got %d)", o.Prefetch))
	}
	if o.QueueType != "" && o.QueueType != broker.Quorum && o.QueueType != broker.Classic {
		errs = append(errs, fmt.Errorf("bench: QueueType %q: want quorum or classic", o.QueueType))
	}
	if o.HandlerLatency < 0 {
		errs = append(errs, fmt.Errorf("bench: HandlerLatency cannot be negative (got %s)", o.HandlerLatency))
	}
	if o.Rate < 0 {
		errs = append(errs, fmt.Errorf("bench: Rate cannot be negative (got %g)", o.Rate))
	}
	if o.RetryDelay < 0 {
		errs = append(errs, fmt.Errorf("bench: RetryDelay cannot be negative (got %s)", o.RetryDelay))
	} else if o.RetryDelay > 0 && broker.DelaySeconds(o.RetryDelay) == 0 {
		errs = append(errs, fmt.Errorf("bench: RetryDelay %s rounds to 0s: the delay levels count whole seconds", o.RetryDelay))
	}
	if o.IdleSettle < 0 {
		errs = append(errs, fmt.Errorf("bench: IdleSettle cannot be negative (got %s)", o.IdleSettle))
	}
	return errors.Join(errs...)
}

// Report holds the figures of one run. A figure the mode does not measure is 0.
type Report struct {
	// Client is "warren" or "bare".
	Client string `json:"client"`
	// Options, as run (defaults filled in).
	Mode             string  `json:"mode"`
	Jobs             int     `json:"jobs"`
	Size             int     `json:"size"`
	Producers        int     `json:"producers"`
	Batch            int     `json:"batch"`
	Concurrency      int     `json:"concurrency"`
	Prefetch         int     `json:"prefetch"`
	QueueType        string  `json:"queue_type"`
	HandlerLatencyMS float64 `json:"handler_latency_ms"`
	Rate             float64 `json:"rate"`

	// PublishPerSec is jobs published and confirmed per second.
	PublishPerSec float64 `json:"publish_per_sec"`
	// ConsumePerSec is jobs handled per second: in ModeE2E from the first
	// publish to the last handler's end, in ModeConsume from the first
	// handler's start to the last one's end.
	ConsumePerSec float64 `json:"consume_per_sec"`
	// Latency from the enqueue call to the handler's start (ModeE2E), or
	// how late a retry started after its due time (ModeRetry).
	LatencyP50 time.Duration `json:"-"`
	LatencyP95 time.Duration `json:"-"`
	LatencyP99 time.Duration `json:"-"`
	LatencyMax time.Duration `json:"-"`
	// PeakRSSBytes is the process's peak resident memory during the timed
	// part of the run (VmHWM, reset before it starts; Linux only).
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// IdleRSSBytes is the resident memory of an idle pool (ModeIdle).
	IdleRSSBytes int64 `json:"idle_rss_bytes,omitempty"`
	// AllocsPerJob and BytesPerJob are the process's heap allocations during
	// the timed part, divided by the jobs: producer, consumer and client
	// library together.
	AllocsPerJob float64 `json:"allocs_per_job"`
	BytesPerJob  float64 `json:"bytes_per_job"`
	// CPUPerJob is the process's CPU time (user and system) during the
	// timed part, divided by the jobs: what the client costs, whatever the
	// broker's speed.
	CPUPerJob time.Duration `json:"-"`
	// Duration is the wall time of the timed part.
	Duration time.Duration `json:"-"`
	// Redelivered counts jobs handled more than once (should be 0).
	Redelivered int `json:"redelivered"`
}
