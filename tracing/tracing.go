// Package tracing carries W3C trace context (or whatever propagator the
// program uses) with each task, through the OpenTelemetry API, so that a
// handler's spans join the trace of the code that enqueued the task.
//
// On the producer side, ContextHeaders goes in producer.Config.ContextHeaders:
// every Enqueue writes the context's trace headers (traceparent, tracestate,
// baggage, as the propagator decides) into the task's headers. Warren keeps
// the caller's headers on every retry, on dead-lettering and on replay, so
// every attempt of a task belongs to the trace that enqueued it.
//
// On the worker side, Middleware goes in worker.Config.Middleware: it reads
// those headers back into the handler's context and runs the handler inside
// a consumer span named "process <queue>", with the task's ID, type, queue
// and attempt as attributes, recording an error or a panic.
//
// This package depends on the OpenTelemetry API only. A program chooses its
// SDK and exporter, and sets them globally with otel.SetTracerProvider and
// otel.SetTextMapPropagator (see examples/tracing); until it does, the
// global propagator carries nothing and the global tracer records nothing.
package tracing

import (
	"cmp"
	"context"
	"fmt"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/worker"
)

// ScopeName is the instrumentation scope of the spans this package starts.
const ScopeName = "github.com/warrenq/warren/tracing"

// Span attribute keys. The messaging.* keys follow the OpenTelemetry
// semantic conventions for messaging; the warren.* ones are Warren's own.
const (
	AttrSystem      = attribute.Key("messaging.system")
	AttrOperation   = attribute.Key("messaging.operation.name")
	AttrOpType      = attribute.Key("messaging.operation.type")
	AttrDestination = attribute.Key("messaging.destination.name")
	AttrMessageID   = attribute.Key("messaging.message.id")
	AttrTaskType    = attribute.Key("warren.task.type")
	AttrAttempt     = attribute.Key("warren.task.attempt")
	AttrRedelivered = attribute.Key("warren.task.redelivered")
)

// Config chooses the propagator and the tracer provider. The zero Config
// uses the global ones, read at each call, so that a program may set them
// after building its producers and workers.
type Config struct {
	// Propagator writes and reads the trace headers. nil means
	// otel.GetTextMapPropagator().
	Propagator propagation.TextMapPropagator
	// TracerProvider starts the consumer spans. nil means
	// otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
}

func (c Config) propagator() propagation.TextMapPropagator {
	if c.Propagator != nil {
		return c.Propagator
	}
	return otel.GetTextMapPropagator()
}

func (c Config) tracer() trace.Tracer {
	tp := c.TracerProvider
	tp = cmp.Or(tp, otel.GetTracerProvider())
	return tp.Tracer(ScopeName)
}

// ContextHeaders returns a function for producer.Config.ContextHeaders
// that writes ctx's trace context as task headers. It returns nil when
// there is nothing to carry (no span in ctx, or a no-op propagator).
func ContextHeaders(cfg Config) func(ctx context.Context) map[string]any {
	return func(ctx context.Context) map[string]any {
		carrier := propagation.MapCarrier{}
		cfg.propagator().Inject(ctx, carrier)
		if len(carrier) == 0 {
			return nil
		}
		h := make(map[string]any, len(carrier))
		for k, v := range carrier {
			h[k] = v
		}
		return h
	}
}

// Extract returns ctx with the trace context read from a task's headers.
func Extract(ctx context.Context, cfg Config, t *warren.Task) context.Context {
	if t == nil || len(t.Headers) == 0 {
		return ctx
	}
	return cfg.propagator().Extract(ctx, headerCarrier(t.Headers))
}

// Middleware returns a worker.Middleware that runs each handler in a
// consumer span, child of the trace context the task carries (see
// ContextHeaders). The handler's context holds the span. A handler error is
// recorded on the span, whose status is then Error; a panic is recorded
// too, and goes on up to the pool.
func Middleware(cfg Config) worker.Middleware {
	return func(next worker.Handler) worker.Handler {
		return worker.HandlerFunc(func(ctx context.Context, t *warren.Task) (err error) {
			ctx = Extract(ctx, cfg, t)
			ctx, span := cfg.tracer().Start(ctx, "process "+t.Queue,
				trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(
					AttrSystem.String("rabbitmq"),
					AttrOperation.String("process"),
					AttrOpType.String("process"),
					AttrDestination.String(t.Queue),
					AttrMessageID.String(t.ID),
					AttrTaskType.String(t.Type),
					AttrAttempt.Int(t.Attempt),
					AttrRedelivered.Bool(t.Redelivered),
				))
			defer func() {
				if r := recover(); r != nil {
					perr := fmt.Errorf("panic: %v", r)
					span.RecordError(perr, trace.WithStackTrace(true))
					span.SetStatus(codes.Error, perr.Error())
					span.End()
					panic(r)
				}
				if err != nil {
					span.RecordError(err)
					span.SetStatus(codes.Error, err.Error())
				}
				span.End()
			}()
			return next.ProcessTask(ctx, t)
		})
	}
}

// headerCarrier reads task headers for a propagator. AMQP headers written
// by other clients may hold bytes rather than strings.
type headerCarrier map[string]any

func (c headerCarrier) Get(key string) string {
	switch v := c[key].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case nil:
		return ""
	case fmt.Stringer:
		return v.String()
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return ""
}

// Set is not used: the worker never writes headers through the carrier.
func (c headerCarrier) Set(key, value string) { c[key] = value }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
