//go:build integration

package tracing_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/tracing"
	"github.com/warrenq/warren/worker"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type seen struct {
	attempt int
	replays bool
	trace   trace.TraceID
	err     error
}

// TestTraceSurvivesRetryDeadLetterAndReplay enqueues a task inside a span,
// fails its first attempt (a retry through the delay levels), fails the
// second for good (dead-lettered), replays it with admin, and checks that
// every handler run joined the producer's trace.
func TestTraceSurvivesRetryDeadLetterAndReplay(t *testing.T) {
	s := newSetup(t)
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, 90*time.Second)
	p, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet, ContextHeaders: tracing.ContextHeaders(s.cfg)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())

	runs := make(chan seen, 10)
	var replayed atomic.Bool
	h := worker.HandlerFunc(func(ctx context.Context, task *warren.Task) error {
		sc := trace.SpanContextFromContext(ctx)
		var err error
		switch {
		case replayed.Load():
		case task.Attempt == 1:
			err = errors.New("first attempt fails")
		default:
			err = retry.Permanent(errors.New("second attempt fails for good"))
		}
		runs <- seen{attempt: task.Attempt, trace: sc.TraceID(), err: err}
		return err
	})
	pool, err := worker.New(conn, h, worker.Config{Queues: []string{q}, Logger: quiet,
		Retry:      retry.Policy{MaxAttempts: 5, Base: time.Second, Cap: time.Second, Min: time.Second},
		Middleware: []worker.Middleware{tracing.Middleware(s.cfg)}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("pool: %v", err)
		}
	}()

	spanCtx, span := s.tp.Tracer("test").Start(ctx, "checkout")
	id, err := p.Enqueue(spanCtx, q, "traced", []byte(`{}`))
	span.End()
	if err != nil {
		t.Fatal(err)
	}
	want := span.SpanContext().TraceID()

	next := func(what string) seen {
		t.Helper()
		select {
		case r := <-runs:
			if r.trace != want {
				t.Errorf("%s: handler trace %s, want the producer's %s", what, r.trace, want)
			}
			return r
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: the handler did not run", what)
			return seen{}
		}
	}
	if r := next("first attempt"); r.attempt != 1 {
		t.Errorf("first run is attempt %d", r.attempt)
	}
	if r := next("retry"); r.attempt != 2 {
		t.Errorf("retry is attempt %d", r.attempt)
	}

	adm := admin.New(conn, admin.Config{Logger: quiet})
	var dl admin.DeadLetter
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if dl, err = adm.Get(ctx, q, id); err == nil {
			break
		}
		if !errors.Is(err, admin.ErrNotFound) && !errors.Is(err, admin.ErrBusy) || time.Now().After(deadline) {
			t.Fatalf("dead letter %s: %v", id, err)
		}
		<-tick.C // the worker's dead-letter publish is confirmed before its ack, not before this poll
	}
	if dl.Headers["traceparent"] == nil {
		t.Errorf("the dead letter lost its traceparent: %v", dl.Headers)
	}
	replayed.Store(true)
	res, err := adm.Replay(ctx, q, admin.Filter{IDs: []string{id}}, admin.ReplayOptions{})
	if err != nil || res.Replayed != 1 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	if r := next("after replay"); r.attempt != 1 || r.err != nil {
		t.Errorf("after replay: attempt %d, err %v", r.attempt, r.err)
	}
}
