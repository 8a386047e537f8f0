//go:build integration

package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

func (e *events) next(t *testing.T, timeout time.Duration) worker.Event {
	t.Helper()
	select {
	case ev := <-e.finished:
		return ev
	case <-time.After(timeout):
		t.Fatalf("no delivery finished within %s", timeout)
		return worker.Event{}
	}
}

// TestIdempotentSkipsACopyOfACompletedTask: two copies of one task ID (a
// producer's resend after a lost confirm looks like this) and a task that
// fails once and is retried through the broker. With the Idempotent
// middleware the first copy runs and the second is acked unrun (Skipped);
// the failed attempt is not remembered, so its retry runs; a copy of the
// retried task enqueued after it completed is skipped too. Nothing is
// left on the queue or dead-lettered.
func TestIdempotentSkipsACopyOfACompletedTask(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	dup := fmt.Sprintf("dup-%d", time.Now().UnixNano())
	for range 2 {
		if _, err := e.prod.Enqueue(ctx, e.queue, "ok", []byte(`{}`), producer.WithID(dup)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	runs := map[string]int{}
	h := worker.HandlerFunc(func(_ context.Context, task *warren.Task) error {
		mu.Lock()
		defer mu.Unlock()
		runs[task.ID]++
		if task.Type == "flaky" && task.Attempt == 1 {
			return retry.After(time.Second, errors.New("first attempt fails"))
		}
		return nil
	})
	store := worker.NewMemoryStore(0, 0)
	obs := &events{finished: make(chan worker.Event, 16)}
	e.start(t, h, worker.Config{
		Concurrency: 1, // one copy at a time: two at once could both run
		Middleware:  []worker.Middleware{worker.Idempotent(store, worker.IdempotentConfig{})},
		Observer:    obs,
	})
	first, second := obs.next(t, 10*time.Second), obs.next(t, 10*time.Second)
	if first.Task.ID != dup || first.Outcome != worker.Succeeded || second.Task.ID != dup || second.Outcome != worker.Skipped {
		t.Fatalf("outcomes %s %s, %s %s; want %s succeeded then skipped", first.Task.ID, first.Outcome, second.Task.ID, second.Outcome, dup)
	}

	flaky := dup + "-flaky"
	if _, err := e.prod.Enqueue(ctx, e.queue, "flaky", []byte(`{}`), producer.WithID(flaky)); err != nil {
		t.Fatal(err)
	}
	if ev := obs.next(t, 10*time.Second); ev.Outcome != worker.Retried {
		t.Fatalf("first attempt of %s: %s, want retried", flaky, ev.Outcome)
	}
	if ev := obs.next(t, 15*time.Second); ev.Task.ID != flaky || ev.Outcome != worker.Succeeded || ev.Task.Attempt != 2 {
		t.Fatalf("retry of %s: %s attempt %d, want succeeded on attempt 2", flaky, ev.Outcome, ev.Task.Attempt)
	}
	if _, err := e.prod.Enqueue(ctx, e.queue, "flaky", []byte(`{}`), producer.WithID(flaky)); err != nil {
		t.Fatal(err)
	}
	if ev := obs.next(t, 10*time.Second); ev.Task.ID != flaky || ev.Outcome != worker.Skipped {
		t.Fatalf("late copy of %s: %s, want skipped", flaky, ev.Outcome)
	}
	mu.Lock()
	if runs[dup] != 1 || runs[flaky] != 2 {
		t.Errorf("handler runs: %s %d (want 1), %s %d (want 2: the failure and its retry)", dup, runs[dup], flaky, runs[flaky])
	}
	mu.Unlock()
	if n := e.readyEventually(t, e.queue, 0, 5*time.Second); n != 0 {
		t.Errorf("%d tasks left on the queue", n)
	}
	if n := e.readyEventually(t, warren.DeadLetterQueue(e.queue), 0, time.Second); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}
