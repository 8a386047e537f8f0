// Command worker runs the tasks that the example producer enqueues, until
// SIGINT or SIGTERM.
//
// Run it against a local RabbitMQ (WARREN_URL overrides the default
// amqp://guest:guest@127.0.0.1:5672/), after or alongside the producer:
//
//	go run ./examples/producer -queue examples
//	go run ./examples/worker -queue examples
//
// What to watch for in its log:
//   - email:send succeeds, except the one with no recipient: retry.Permanent
//     sends it straight to the dead-letter queue "examples.dlq";
//   - report:build fails on purpose on attempts 1 and 2 and succeeds on
//     attempt 3; between attempts it waits on the broker, 1 s then 1-2 s
//     (retry policy: Base 1s, Cap 5s, full jitter);
//   - 100 thumbnail:make tasks succeed.
//
// Press Ctrl-C to stop: the pool stops taking tasks, lets the running ones
// finish, and exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/examples/tasks"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

func main() {
	queue := flag.String("queue", "examples", "the Warren queue to consume")
	concurrency := flag.Int("concurrency", 4, "handlers running at once")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *queue, *concurrency); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, queue string, concurrency int) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	conn, err := broker.Dial(ctx, tasks.URL(), broker.Config{Logger: log})
	if err != nil {
		return err
	}
	defer conn.Close()

	mux := worker.NewMux()
	mux.Use(logDuration(log))
	worker.HandleJSON(mux, tasks.TypeEmailSend, sendEmail(log))
	worker.HandleJSON(mux, tasks.TypeReportBuild, buildReport(log))
	worker.HandleJSON(mux, tasks.TypeThumbnailMake, func(ctx context.Context, a tasks.ThumbnailMake) error {
		return nil // pretend to resize image a.Image to a.Width
	})

	pool, err := worker.New(conn, mux, worker.Config{
		Queues:      []string{queue},
		Concurrency: concurrency,
		Retry:       retry.Policy{Base: time.Second, Cap: 5 * time.Second},
		Logger:      log,
	})
	if err != nil {
		return err
	}
	// Run blocks until ctx ends (a signal), then drains.
	return pool.Run(ctx)
}

func sendEmail(log *slog.Logger) func(context.Context, tasks.EmailSend) error {
	return func(ctx context.Context, a tasks.EmailSend) error {
		if a.To == "" {
			// No retry can fix bad input: dead-letter it at once.
			return retry.Permanent(errors.New("email:send: no recipient"))
		}
		t, _ := worker.TaskFromContext(ctx)
		log.Info("sending email", "task_id", t.ID, "to", a.To, "subject", a.Subject)
		return nil
	}
}

func buildReport(log *slog.Logger) func(context.Context, tasks.ReportBuild) error {
	return func(ctx context.Context, a tasks.ReportBuild) error {
		t, _ := worker.TaskFromContext(ctx)
		if t.Attempt < 3 {
			// Fails on purpose: any error other than retry.Permanent is
			// retried after the policy's backoff.
			return fmt.Errorf("report:build %s: warehouse not ready (failing on purpose on attempt %d)", a.Month, t.Attempt)
		}
		log.Info("report built", "task_id", t.ID, "month", a.Month, "attempt", t.Attempt, "earlier_failures", len(t.History))
		return nil
	}
}

// logDuration is middleware that logs every handler run with its duration.
func logDuration(log *slog.Logger) worker.Middleware {
	return func(next worker.Handler) worker.Handler {
		return worker.HandlerFunc(func(ctx context.Context, t *warren.Task) error {
			start := time.Now()
			err := next.ProcessTask(ctx, t)
			log.Info("handler ran", "task_id", t.ID, "type", t.Type, "attempt", t.Attempt,
				"duration", time.Since(start), "err", err)
			return err
		})
	}
}
