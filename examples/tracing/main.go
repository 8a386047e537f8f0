// Command tracing shows a trace that follows a task from Enqueue through a
// failed attempt, its retry and its success, printed by OpenTelemetry's
// stdout exporter.
//
// Run it against a local RabbitMQ (WARREN_URL overrides the default
// amqp://guest:guest@127.0.0.1:5672/):
//
//	go run ./examples/tracing -queue examples-tracing
//
// It enqueues one task inside a "checkout" span, then runs a worker whose
// handler fails on attempt 1 and succeeds on attempt 2 (about a second
// later: the wait happens on the broker). Both handler runs log the same
// trace_id as the enqueue, and the exporter prints three spans of that one
// trace: "checkout" and two "process examples-tracing" consumer spans, the
// first with status Error. The program then exits.
//
// Wiring tracing into your own programs takes three lines: set a global
// tracer provider and propagator (with the exporter of your choice), set
// producer.Config.ContextHeaders to tracing.ContextHeaders(tracing.Config{}),
// and add tracing.Middleware(tracing.Config{}) to worker.Config.Middleware.
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

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/examples/tasks"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/tracing"
	"github.com/warrenq/warren/worker"
)

func main() {
	queue := flag.String("queue", "examples-tracing", "the Warren queue to use")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *queue); err != nil {
		fmt.Fprintln(os.Stderr, "tracing:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, queue string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	// 1. OpenTelemetry: an SDK tracer provider with the stdout exporter, and
	// the W3C trace context propagator, both global.
	exp, err := stdouttrace.New(stdouttrace.WithPrettyPrint())
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	conn, err := broker.Dial(ctx, tasks.URL(), broker.Config{Logger: log})
	if err != nil {
		return err
	}
	defer conn.Close()

	// 2. The producer writes the trace context of each Enqueue's ctx into
	// the task's headers.
	p, err := producer.New(ctx, conn, producer.Config{
		Queues:         []string{queue},
		ContextHeaders: tracing.ContextHeaders(tracing.Config{}),
		Logger:         log,
	})
	if err != nil {
		return err
	}
	defer p.Close(context.Background())

	// 3. The worker reads it back into each handler's context, inside a
	// consumer span.
	finished := make(chan struct{})
	handler := worker.HandlerFunc(func(ctx context.Context, t *warren.Task) error {
		log.Info("handler running", "task_id", t.ID, "attempt", t.Attempt,
			"trace_id", trace.SpanContextFromContext(ctx).TraceID().String())
		if t.Attempt == 1 {
			return errors.New("attempt 1 fails on purpose")
		}
		close(finished)
		return nil
	})
	pool, err := worker.New(conn, handler, worker.Config{
		Queues:     []string{queue},
		Retry:      retry.Policy{Base: time.Second, Cap: time.Second, Min: time.Second},
		Middleware: []worker.Middleware{tracing.Middleware(tracing.Config{})},
		Logger:     log,
	})
	if err != nil {
		return err
	}
	runCtx, stopPool := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pool.Run(runCtx) }()

	spanCtx, span := otel.Tracer("example").Start(ctx, "checkout")
	id, err := p.Enqueue(spanCtx, queue, "example:traced", []byte(`{}`))
	span.End()
	if err != nil {
		stopPool()
		return errors.Join(err, <-done)
	}
	log.Info("enqueued", "task_id", id, "trace_id", span.SpanContext().TraceID().String())

	select {
	case <-finished:
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		log.Error("the task did not succeed within 30s")
	}
	stopPool()
	return <-done
}
