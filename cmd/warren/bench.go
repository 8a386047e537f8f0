package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/bench"
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
	showProgress := isTerminal(a.stderr)
	progress := func(label string) func(done, total int) {
		if !showProgress {
			return nil
		}
		return func(done, total int) { drawProgress(a.stderr, label, done, total) }
	}
	mode := cmp.Or(o.Mode, bench.ModeE2E)

	env := bench.Describe(a.url)
	runWarren := func() (bench.Report, error) {
		o.Progress = progress("warren " + mode)
		defer clearProgress(a.stderr, showProgress)
		rep, err := f.profiled("warren", func() (bench.Report, error) { return bench.Run(ctx, o) })
		if err != nil {
			return rep, fmt.Errorf("bench: warren: %w", err)
		}
		return rep, nil
	}
	runBare := func() (bench.Report, error) {
		o.Progress = progress("bare " + mode)
		defer clearProgress(a.stderr, showProgress)
		rep, err := f.profiled("bare", func() (bench.Report, error) { return bench.RunBaseline(ctx, o) })
		if err != nil {
			return rep, fmt.Errorf("bench: bare: %w", err)
		}
		return rep, nil
	}
	// With a baseline, the clients take turns going first, so that neither
	// always meets a broker warmed up (or worn out) by the other.
	var warrens, bares, runs []bench.Report
	for i := range f.rounds {
		order := []func() (bench.Report, error){runWarren}
		if f.baseline {
			order = append(order, runBare)
			if i%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
		}
		for _, run := range order {
			rep, err := run()
			if err != nil {
				return err
			}
			runs = append(runs, rep)
			if rep.Client == "bare" {
				bares = append(bares, rep)
			} else {
				warrens = append(warrens, rep)
			}
		}
	}
	res := bench.Result{Report: bench.Median(warrens), Rounds: f.rounds, Environment: env}
	if f.rounds > 1 {
		res.Runs = runs
	}
	if f.baseline {
		b := bench.Median(bares)
		res.Baseline = &b
		res.Ratio = bench.Ratios(res.Report, b)
	}

	if f.output == "json" {
		enc := json.NewEncoder(a.stdout)
		return enc.Encode(res)
	}
	return writeBenchText(a.stdout, res)
}

// profiled runs one client's run under the CPU and allocation profilers
// that --cpuprofile and --memprofile ask for.
func (f *benchFlags) profiled(client string, run func() (bench.Report, error)) (bench.Report, error) {
	if f.cpuProfile != "" {
		file, err := os.Create(f.cpuProfile + "-" + client + ".pprof")
		if err != nil {
			return bench.Report{}, err
		}
		defer file.Close()
		if err := pprof.StartCPUProfile(file); err != nil {
			return bench.Report{}, err
		}
		defer pprof.StopCPUProfile()
	}
	if f.memProfile != "" {
		old := runtime.MemProfileRate
		runtime.MemProfileRate = 4096
		defer func() { runtime.MemProfileRate = old }()
		// Forget what was allocated before this run.
		runtime.GC()
	}
	rep, err := run()
	if f.memProfile != "" && err == nil {
		runtime.GC()
		file, ferr := os.Create(f.memProfile + "-" + client + ".pprof")
		if ferr != nil {
			return rep, ferr
		}
		defer file.Close()
		if werr := pprof.Lookup("allocs").WriteTo(file, 0); werr != nil {
			return rep, werr
		}
	}
	return rep, err
}

func writeBenchText(w io.Writer, res bench.Result) error {
	r := res.Report
	fmt.Fprintf(w, "warren bench: %s, %s of %d bytes on a %s queue, %s",
		r.Mode, plural(r.Jobs, "job", "jobs"), r.Size, r.QueueType, plural(r.Producers, "producer", "producers"))
	if r.Batch > 1 {
		fmt.Fprintf(w, " × batch %d", r.Batch)
	}
	fmt.Fprintf(w, ", concurrency %d, prefetch %d", r.Concurrency, r.Prefetch)
	if r.HandlerLatencyMS > 0 {
		fmt.Fprintf(w, ", handler %s", time.Duration(r.HandlerLatencyMS*float64(time.Millisecond)))
	}
	if r.Rate > 0 {
		fmt.Fprintf(w, ", rate %g/s", r.Rate)
	}
	fmt.Fprintln(w)
	e := res.Environment
	broker := "broker version unknown"
	if e.BrokerVersion != "" {
		broker = cmp.Or(e.BrokerProduct, "broker") + " " + e.BrokerVersion
	}
	fmt.Fprintf(w, "%s, %s %s/%s, %d CPUs", broker, e.GoVersion, e.OS, e.Arch, e.CPUs)
	if res.Rounds > 1 {
		fmt.Fprintf(w, "; medians of %d rounds", res.Rounds)
	}
	fmt.Fprint(w, "\n\n")
	if err := bench.WriteTable(w, r, res.Baseline); err != nil {
		return err
	}
	if r.Mode == bench.ModeRetry {
		fmt.Fprintln(w, "\nretry late by: how long after its due time (the failure plus the delay) each retry started")
	}
	if r.Redelivered > 0 || (res.Baseline != nil && res.Baseline.Redelivered > 0) {
		fmt.Fprintln(w, "\nnote: some jobs were delivered more than once")
	}
	return nil
}

// drawProgress redraws a one-line progress bar.
func drawProgress(w io.Writer, label string, done, total int) {
	const width = 30
	filled := 0
	if total > 0 {
		filled = min(done*width/total, width)
	}
	fmt.Fprintf(w, "\r%-14s [%s%s] %d/%d", label, strings.Repeat("=", filled), strings.Repeat(" ", width-filled), done, total)
}

func clearProgress(w io.Writer, shown bool) {
	if shown {
		fmt.Fprint(w, "\r\033[K")
	}
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
