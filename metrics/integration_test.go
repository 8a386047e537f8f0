//go:build integration

package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/metrics"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestMetricsMoveForEachOutcome runs a producer and a pool on the test
// broker with one Metrics and checks every counter moves as the tasks do.
func TestMetricsMoveForEachOutcome(t *testing.T) {
	m, reg := newMetrics(t, metrics.Config{})
	conn := testbroker.Dial(t)
	m.AddConn(conn)
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, time.Minute)
	p, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	m.AddProducer(p)

	mux := worker.NewMux()
	mux.HandleFunc("ok", func(context.Context, *warren.Task) error { return nil })
	mux.HandleFunc("once", func(_ context.Context, task *warren.Task) error {
		if task.Attempt == 1 {
			return errors.New("first attempt fails")
		}
		return nil
	})
	mux.HandleFunc("perm", func(context.Context, *warren.Task) error { return retry.Permanent(errors.New("never")) })
	pool, err := worker.New(conn, mux, worker.Config{Queues: []string{q}, Logger: quiet, Observer: m,
		Retry: retry.Policy{MaxAttempts: 3, Base: time.Second, Cap: time.Second, Min: time.Second}})
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

	for _, typ := range []string{"ok", "ok", "once", "perm"} {
		if _, err := p.Enqueue(ctx, q, typ, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Enqueue(ctx, q+"-missing", "ok", []byte(`{}`)); err == nil {
		t.Fatal("enqueue to a missing queue succeeded")
	}

	finished := func(typ, outcome string) float64 {
		v, _ := lookup(t, reg, "warren_tasks_finished_total", map[string]string{"queue": q, "type": typ, "outcome": outcome})
		return v
	}
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for finished("ok", "succeeded") < 2 || finished("once", "succeeded") < 1 || finished("perm", "dead_lettered") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("outcomes not reached: ok %v, once %v, perm %v", finished("ok", "succeeded"), finished("once", "succeeded"), finished("perm", "dead_lettered"))
		}
		<-tick.C
	}

	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"warren_tasks_enqueued_total", map[string]string{"queue": q, "type": "ok", "result": "ok"}, 2},
		{"warren_tasks_enqueued_total", map[string]string{"queue": q + "-missing", "type": "ok", "result": "error"}, 1},
		{"warren_enqueue_duration_seconds", map[string]string{"queue": q}, 4},
		{"warren_tasks_started_total", map[string]string{"queue": q, "type": "once"}, 2},
		{"warren_tasks_finished_total", map[string]string{"queue": q, "type": "once", "outcome": "retried"}, 1},
		{"warren_tasks_failed_total", map[string]string{"queue": q, "type": "once"}, 1},
		{"warren_tasks_failed_total", map[string]string{"queue": q, "type": "perm"}, 1},
		{"warren_tasks_dead_lettered_total", map[string]string{"queue": q, "type": "perm", "reason": "permanent_error"}, 1},
		{"warren_handler_duration_seconds", map[string]string{"queue": q, "type": "ok"}, 2},
		{"warren_tasks_in_flight", map[string]string{"queue": q}, 0},
		{"warren_broker_connected", nil, 1},
		{"warren_broker_blocked", nil, 0},
		{"warren_reconnects_total", nil, 0},
		{"warren_publish_breaker_state", nil, 0},
	}
	for _, c := range checks {
		if got := value(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
