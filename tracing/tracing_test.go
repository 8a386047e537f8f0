package tracing_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/tracing"
	"github.com/warrenq/warren/worker"
)

type setup struct {
	rec *tracetest.SpanRecorder
	tp  *sdktrace.TracerProvider
	cfg tracing.Config
}

func newSetup(t *testing.T) setup {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return setup{rec: rec, tp: tp, cfg: tracing.Config{
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		TracerProvider: tp,
	}}
}

// enqueue returns the headers a producer would add, and the producer's span.
func (s setup) enqueue(t *testing.T) (map[string]any, trace.SpanContext) {
	t.Helper()
	ctx, span := s.tp.Tracer("test").Start(context.Background(), "enqueue")
	defer span.End()
	h := tracing.ContextHeaders(s.cfg)(ctx)
	if _, ok := h["traceparent"].(string); !ok {
		t.Fatalf("no traceparent header: %v", h)
	}
	return h, span.SpanContext()
}

func attrs(kv []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, a := range kv {
		m[a.Key] = a.Value
	}
	return m
}

func TestHandlerJoinsTheProducersTrace(t *testing.T) {
	s := newSetup(t)
	headers, parent := s.enqueue(t)
	task := &warren.Task{ID: "id-1", Type: "email:send", Queue: "emails", Attempt: 3, Headers: headers}
	var seen trace.SpanContext
	h := tracing.Middleware(s.cfg)(worker.HandlerFunc(func(ctx context.Context, _ *warren.Task) error {
		seen = trace.SpanContextFromContext(ctx)
		return nil
	}))
	if err := h.ProcessTask(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	if seen.TraceID() != parent.TraceID() {
		t.Fatalf("handler trace %s, producer trace %s", seen.TraceID(), parent.TraceID())
	}
	var consumer sdktrace.ReadOnlySpan
	for _, sp := range s.rec.Ended() {
		if sp.SpanKind() == trace.SpanKindConsumer {
			consumer = sp
		}
	}
	if consumer == nil {
		t.Fatal("no consumer span")
	}
	if consumer.Name() != "process emails" || consumer.Parent().SpanID() != parent.SpanID() || consumer.SpanContext().SpanID() != seen.SpanID() {
		t.Errorf("span %q parent %s (want %s)", consumer.Name(), consumer.Parent().SpanID(), parent.SpanID())
	}
	a := attrs(consumer.Attributes())
	want := map[attribute.Key]attribute.Value{
		tracing.AttrMessageID:   attribute.StringValue("id-1"),
		tracing.AttrTaskType:    attribute.StringValue("email:send"),
		tracing.AttrDestination: attribute.StringValue("emails"),
		tracing.AttrAttempt:     attribute.IntValue(3),
		tracing.AttrSystem:      attribute.StringValue("rabbitmq"),
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("attribute %s = %v, want %v", k, a[k].Emit(), v.Emit())
		}
	}
	if consumer.Status().Code == codes.Error {
		t.Errorf("status %v for a success", consumer.Status())
	}
}

func TestErrorIsRecorded(t *testing.T) {
	s := newSetup(t)
	headers, _ := s.enqueue(t)
	h := tracing.Middleware(s.cfg)(worker.HandlerFunc(func(context.Context, *warren.Task) error {
		return errors.New("smtp: 421 try later")
	}))
	if err := h.ProcessTask(context.Background(), &warren.Task{ID: "x", Type: "t", Queue: "q", Attempt: 1, Headers: headers}); err == nil {
		t.Fatal("the error was swallowed")
	}
	sp := s.rec.Ended()[len(s.rec.Ended())-1]
	if sp.Status().Code != codes.Error || sp.Status().Description != "smtp: 421 try later" {
		t.Errorf("status %+v", sp.Status())
	}
	if len(sp.Events()) == 0 || sp.Events()[0].Name != "exception" {
		t.Errorf("no exception event: %+v", sp.Events())
	}
}

func TestPanicIsRecordedAndGoesOn(t *testing.T) {
	s := newSetup(t)
	h := tracing.Middleware(s.cfg)(worker.HandlerFunc(func(context.Context, *warren.Task) error { panic("kaboom") }))
	func() {
		defer func() {
			if r := recover(); r != "kaboom" {
				t.Errorf("recovered %v, want the handler's panic", r)
			}
		}()
		_ = h.ProcessTask(context.Background(), &warren.Task{ID: "x", Type: "t", Queue: "q", Attempt: 1})
	}()
	ended := s.rec.Ended()
	if len(ended) != 1 || ended[0].Status().Code != codes.Error {
		t.Fatalf("ended spans %v", ended)
	}
}

func TestNoTraceContextStartsANewTrace(t *testing.T) {
	s := newSetup(t)
	if h := tracing.ContextHeaders(s.cfg)(context.Background()); h != nil {
		t.Errorf("headers without a span: %v", h)
	}
	var seen trace.SpanContext
	h := tracing.Middleware(s.cfg)(worker.HandlerFunc(func(ctx context.Context, _ *warren.Task) error {
		seen = trace.SpanContextFromContext(ctx)
		return nil
	}))
	_ = h.ProcessTask(context.Background(), &warren.Task{ID: "x", Type: "t", Queue: "q", Attempt: 1})
	if !seen.IsValid() {
		t.Fatal("no span in the handler's context")
	}
}

func TestHeadersAsBytes(t *testing.T) {
	s := newSetup(t)
	headers, parent := s.enqueue(t)
	headers["traceparent"] = []byte(headers["traceparent"].(string)) // as another AMQP client may write it
	ctx := tracing.Extract(context.Background(), s.cfg, &warren.Task{Headers: headers})
	if got := trace.SpanContextFromContext(ctx).TraceID(); got != parent.TraceID() {
		t.Fatalf("trace %s, want %s", got, parent.TraceID())
	}
}

func TestZeroConfigUsesTheGlobals(t *testing.T) {
	s := newSetup(t)
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(s.tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })

	headers, parent := newSetup(t).enqueueWith(t, tracing.Config{})
	var seen trace.SpanContext
	h := tracing.Middleware(tracing.Config{})(worker.HandlerFunc(func(ctx context.Context, _ *warren.Task) error {
		seen = trace.SpanContextFromContext(ctx)
		return nil
	}))
	_ = h.ProcessTask(context.Background(), &warren.Task{ID: "x", Type: "t", Queue: "q", Attempt: 1, Headers: headers})
	if seen.TraceID() != parent.TraceID() {
		t.Fatalf("trace %s, want %s", seen.TraceID(), parent.TraceID())
	}
	if len(s.rec.Ended()) == 0 {
		t.Fatal("the global tracer provider recorded nothing")
	}
}

func (s setup) enqueueWith(t *testing.T, cfg tracing.Config) (map[string]any, trace.SpanContext) {
	t.Helper()
	ctx, span := s.tp.Tracer("test").Start(context.Background(), "enqueue")
	defer span.End()
	return tracing.ContextHeaders(cfg)(ctx), span.SpanContext()
}
