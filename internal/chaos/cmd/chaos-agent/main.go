// Command chaos-agent is the producer or worker process of Warren's chaos
// suite (package internal/chaos):
//
//	chaos-agent producer --url LIST --queue Q --jobs N --ledger FILE [--prefix P --poison K --rate R]
//	chaos-agent worker   --url LIST --queue Q --concurrency C --ledger FILE
//
// SIGTERM or SIGINT stops it gracefully (a worker drains, then exits 0).
// It exits on its own after --lifetime, so that a crashed suite never
// leaves it behind.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/warrenq/warren/internal/chaos"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: chaos-agent producer|worker [flags]")
		return 2
	}
	role := args[0]
	fs := flag.NewFlagSet("chaos-agent "+role, flag.ContinueOnError)
	url := fs.String("url", "amqp://guest:guest@127.0.0.1:5672/", "broker URL, or a comma-separated list")
	queue := fs.String("queue", "", "queue")
	ledger := fs.String("ledger", "", "ledger file (appended)")
	limit := fs.Int("delivery-limit", 3, "the queue's x-delivery-limit")
	lifetime := fs.Duration("lifetime", 30*time.Minute, "exit after this long whatever happens")
	verbose := fs.Bool("v", false, "log at info level (default warn)")
	// producer
	jobs := fs.Int("jobs", 100, "producer: healthy jobs to enqueue")
	poison := fs.Int("poison", 0, "producer: poison jobs to enqueue among them")
	phase := fs.Float64("poison-phase", 0.5, "producer: where among the jobs poison jobs go (0 to 1, per poison slice)")
	flaky := fs.Int("flaky-every", 0, "producer: make every n-th job fail its first attempt (0: none)")
	prefix := fs.String("prefix", "p", "producer: key prefix")
	rate := fs.Float64("rate", 0, "producer: jobs per second (0: no pacing)")
	inflight := fs.Int("inflight", 8, "producer: concurrent enqueues")
	giveUp := fs.Duration("give-up", 3*time.Minute, "producer: stop retrying one job after this long")
	// worker
	conc := fs.Int("concurrency", 4, "worker: handlers at once")
	prefetch := fs.Int("prefetch", 0, "worker: prefetch (0: the pool's default, 2 x concurrency)")
	minSleep := fs.Duration("min-sleep", 20*time.Millisecond, "worker: shortest job")
	maxSleep := fs.Duration("max-sleep", 200*time.Millisecond, "worker: longest job")
	shutdown := fs.Duration("shutdown-timeout", 10*time.Second, "worker: drain bound after SIGTERM")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *queue == "" || *ledger == "" {
		fmt.Fprintln(os.Stderr, "chaos-agent: --queue and --ledger are required")
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("role", role, "pid", os.Getpid())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()

	var err error
	switch role {
	case "producer":
		err = chaos.RunProducer(ctx, chaos.ProducerConfig{
			URL: *url, Queue: *queue, Prefix: *prefix, Jobs: *jobs, Poison: *poison, PoisonPhase: *phase, FlakyEvery: *flaky, Rate: *rate,
			InFlight: *inflight, DeliveryLimit: *limit, GiveUpAfter: *giveUp, Ledger: *ledger, Logger: log,
		})
		if ctx.Err() != nil && err == ctx.Err() {
			err = nil // stopped by a signal: what was confirmed is in the ledger
		}
	case "worker":
		err = chaos.RunWorker(ctx, chaos.WorkerConfig{
			URL: *url, Queue: *queue, Concurrency: *conc, Prefetch: *prefetch, DeliveryLimit: *limit,
			MinSleep: *minSleep, MaxSleep: *maxSleep, ShutdownTimeout: *shutdown, Ledger: *ledger, Logger: log,
		})
	default:
		fmt.Fprintf(os.Stderr, "chaos-agent: unknown role %q: want producer or worker\n", role)
		return 2
	}
	if err != nil {
		log.Error("chaos-agent: exiting", "err", err)
		return 1
	}
	return 0
}
