package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/bench"
	"github.com/warrenq/warren/internal/progress"
	"github.com/warrenq/warren/worker"
)

type benchFlags struct {
	mode           string
	jobs           int
	size           int
	producers      int
	batch          int
	concurrency    int
	prefetch       int
	queueType      string
	handlerLatency time.Duration
	rate           float64
	retryDelay     time.Duration
	baseline       bool
	rounds         int
	output         string
	cpuProfile     string
	memProfile     string
}

func (a *app) benchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench [--mode e2e|publish|consume|retry|idle] [--baseline]",
		Short: "Measure Warren's throughput, latency and memory on a broker, optionally against bare amqp091-go",
		Long: `Run producers and a worker pool in this process against the broker of --url,
on a fresh queue that is deleted afterwards, and report publish and consume
rates, the latency from enqueue to handler start (p50, p95, p99, max), the
peak RSS and the allocations per job.

Modes:
  e2e      publish and consume at once (the default); measures latency
  publish  publish with confirms only
  consume  publish a backlog first, then time draining it
  retry    fail every first attempt with a --retry-delay broker delay, at
           --rate (1,000/s by default), and report how late each retry starts
           after its due time
  idle     start a pool on an empty queue and report its resident memory

--baseline runs the identical workload with bare amqp091-go in the same
invocation (one confirm-mode channel shared by the producers, one consumer
channel with the same prefetch, one ack per message, a queue declared with the
same arguments) and prints the ratio warren/bare of each figure. Warren runs
first; each run's peak RSS is its own (the kernel's peak counter is reset
between runs), although the process's size after the first run is included.

Each producer waits for the confirms of what it published before publishing
again, so --producers × --batch publishes at most await a confirm. Warren's
own log lines below error level are not shown, so that a log line per task
does not measure the terminal. A progress bar is drawn on stderr when it is a
terminal.

Exit status: 0 on success, 1 on failure, 2 on bad input.`,
		Example: `  warren bench --baseline
  warren bench --mode publish --producers 256 --output json
  warren bench --concurrency 64 --prefetch 500 --handler-latency 5ms
  warren bench --rate 5000 --baseline     # latency at a fixed load
  warren bench --mode retry --rate 1000
  warren bench --mode idle --concurrency 64`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error { return a.runBench(cmd.Context(), &f) }),
	}
	fs := cmd.Flags()
	fs.StringVar(&f.mode, "mode", bench.ModeE2E, "`mode`: e2e, publish, consume, retry or idle")
	fs.IntVarP(&f.jobs, "jobs", "n", 0, fmt.Sprintf("jobs per run (0: %d, or %d in retry mode)", bench.DefaultJobs, bench.DefaultRetryJobs))
	fs.IntVar(&f.size, "size", bench.DefaultSize, "payload size in `bytes` (at least 16)")
	fs.IntVarP(&f.producers, "producers", "p", bench.DefaultProducers, "goroutines publishing at once")
	fs.IntVar(&f.batch, "batch", bench.DefaultBatch, "jobs per publish call (EnqueueBatch when above 1)")
	fs.IntVarP(&f.concurrency, "concurrency", "c", worker.DefaultConcurrency, "handlers run at once")
	fs.IntVar(&f.prefetch, "prefetch", 0, "consumer prefetch (0: the worker's default, twice the concurrency, at least 100)")
	fs.StringVar(&f.queueType, "queue-type", string(broker.Quorum), "queue `type`: quorum or classic")
	fs.DurationVar(&f.handlerLatency, "handler-latency", 0, "each handler sleeps this long (0: a no-op handler)")
	fs.Float64Var(&f.rate, "rate", 0, "cap the publish rate at this many jobs per second (0: unlimited; 1000 in retry mode)")
	fs.DurationVar(&f.retryDelay, "retry-delay", bench.DefaultRetryDelay, "retry mode: the broker delay of each retry (whole seconds)")
	fs.BoolVar(&f.baseline, "baseline", false, "also run the workload with bare amqp091-go and print the ratios")
	fs.IntVar(&f.rounds, "rounds", 3, "run each client this many times, alternating which goes first, and report the medians")
	fs.StringVarP(&f.output, "output", "o", "text", "output `format`: text or json")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of each run to `prefix`-warren.pprof (and prefix-bare.pprof)")
	fs.StringVar(&f.memProfile, "memprofile", "", "write an allocation profile of each run to `prefix`-warren.pprof (and prefix-bare.pprof)")
	noEnv(fs, "cpuprofile", "memprofile")
	return cmd
}

func (f *benchFlags) options(url string) (bench.Options, error) {
	o := bench.Options{
		URL:            url,
		Mode:           f.mode,
		Jobs:           f.jobs,
		Size:           f.size,
		Producers:      f.producers,
		Batch:          f.batch,
		Concurrency:    f.concurrency,
		Prefetch:       f.prefetch,
		QueueType:      broker.QueueType(f.queueType),
		HandlerLatency: f.handlerLatency,
		Rate:           f.rate,
		RetryDelay:     f.retryDelay,
	}
	var errs []string
	switch {
	case f.output != "text" && f.output != "json":
		errs = append(errs, fmt.Sprintf("--output %q: want text or json", f.output))
	case f.baseline && (f.mode == bench.ModeRetry || f.mode == bench.ModeIdle):
		errs = append(errs, fmt.Sprintf("--baseline: mode %s has no bare equivalent", f.mode))
	}
	for name, n := range map[string]int{"producers": f.producers, "batch": f.batch, "concurrency": f.concurrency, "size": f.size, "rounds": f.rounds} {
		if n <= 0 {
			errs = append(errs, fmt.Sprintf("--%s must be positive (got %d)", name, n))
		}
	}
	if f.jobs < 0 {
		errs = append(errs, fmt.Sprintf("--jobs cannot be negative (got %d)", f.jobs))
	}
	if len(errs) > 0 {
		return o, usagef("%s", strings.Join(errs, "; "))
	}
	if err := o.Validate(); err != nil {
		// The package names its fields; name the flags instead.
		msg := err.Error()
		for field, flag := range map[string]string{
			"Mode": "--mode", "Size": "--size", "Prefetch": "--prefetch", "QueueType": "--queue-type",
			"HandlerLatency": "--handler-latency", "Rate": "--rate", "RetryDelay": "--retry-delay",
		} {
			msg = strings.ReplaceAll(msg, "bench: "+field+" ", flag+" ")
		}
		return o, usagef("%s", strings.ReplaceAll(msg, "\n", "; "))
	}
	return o, nil
}

func (a *app) runBench(ctx context.Context, f *benchFlags) error {
	o, err := f.options(a.url)
	if err != nil {
		return err
	}
	// A log line per task would measure the log writer: show only errors.
	o.Logger = a.benchLogger()
	rc := bench.RoundsConfig{Rounds: f.rounds, Baseline: f.baseline, CPUProfile: f.cpuProfile, MemProfile: f.memProfile}
	if bar := progress.New(a.stderr); bar != nil {
		rc.Progress = func(label string) (func(done, total int), func()) {
			return func(done, total int) { bar.Draw(bench.ProgressLine(label, done, total)) }, bar.Clear
		}
	}
	res, err := bench.RunRounds(ctx, o, rc)
	if err != nil {
		return err
	}
	if f.output == "json" {
		return json.NewEncoder(a.stdout).Encode(res)
	}
	return bench.WriteText(a.stdout, res)
}

// benchLogger logs Warren's errors like the global logger does (--log-format,
// to stderr), and nothing below error level, whatever --log-level says: a
// line per task would measure the log writer rather than Warren.
func (a *app) benchLogger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelError}
	if strings.EqualFold(a.logFormat, "json") {
		return slog.New(slog.NewJSONHandler(a.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(a.stderr, opts))
}
