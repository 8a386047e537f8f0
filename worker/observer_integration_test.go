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
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

type events struct {
	mu       sync.Mutex
	started  int
	finished chan worker.Event
}

func (e *events) TaskStarted(*warren.Task)     { e.mu.Lock(); e.started++; e.mu.Unlock() }
func (e *events) TaskFinished(ev worker.Event) { e.finished <- ev }

func TestObserverAndMiddlewareSeeEveryOutcome(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, time.Minute)
	obs := &events{finished: make(chan worker.Event, 100)}
	var mwSaw sync.Map
	mw := func(next worker.Handler) worker.Handler {
		return worker.HandlerFunc(func(ctx context.Context, t *warren.Task) error {
			mwSaw.Store(t.ID, true)
			return next.ProcessTask(ctx, t)
		})
	}
	mux := worker.NewMux()
	mux.HandleFunc("ok", func(context.Context, *warren.Task) error { return nil })
	mux.HandleFunc("perm", func(context.Context, *warren.Task) error { return retry.Permanent(errors.New("no")) })
	mux.HandleFunc("once", func(_ context.Context, t *warren.Task) error {
		if t.Attempt == 1 {
			return errors.New("first time fails")
		}
		return nil
	})
	e.start(t, mux, worker.Config{Observer: obs, Middleware: []worker.Middleware{mw}, Retry: fastRetry(3)})
	ids := map[string]string{}
	for _, typ := range []string{"ok", "perm", "once", "unknown"} {
		id, err := e.prod.Enqueue(ctx, e.queue, typ, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = typ
	}
	got := map[string][]worker.Outcome{}
	for range 5 { // "once" finishes twice: retried, then succeeded
		select {
		case ev := <-obs.finished:
			got[ids[ev.Task.ID]] = append(got[ids[ev.Task.ID]], ev.Outcome)
			if ev.Outcome == worker.DeadLettered && ev.Reason == "" {
				t.Errorf("dead letter without a reason: %+v", ev)
			}
			if ev.Outcome == worker.Retried && ev.Delay != time.Second {
				t.Errorf("retry delay %s", ev.Delay)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("observer saw only %v", got)
		}
	}
	want := map[string][]worker.Outcome{
		"ok": {worker.Succeeded}, "perm": {worker.DeadLettered}, "once": {worker.Retried, worker.Succeeded}, "unknown": {worker.DeadLettered},
	}
	for typ, w := range want {
		if len(got[typ]) != len(w) || got[typ][0] != w[0] || got[typ][len(w)-1] != w[len(w)-1] {
			t.Errorf("%s: outcomes %v, want %v", typ, got[typ], w)
		}
	}
	for id := range ids {
		if _, ok := mwSaw.Load(id); !ok {
			t.Errorf("middleware did not see %s (%s)", id, ids[id])
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.started != 5 {
		t.Errorf("TaskStarted called %d times, want 5", obs.started)
	}
}

func TestReadyFollowsTheConnection(t *testing.T) {
	// Reconnecting waits at least 2s, so the test sees the pool unready.
	name := fmt.Sprintf("test %s %d", t.Name(), time.Now().UnixNano())
	conn := testbroker.DialNamed(t, broker.Config{Name: name, Logger: quiet, ReconnectMin: 2 * time.Second, ReconnectMax: 2 * time.Second})
	e := &env{conn: conn, queue: testbroker.Queue(t, conn)}
	pool, err := worker.New(e.conn, worker.HandlerFunc(func(context.Context, *warren.Task) error { return nil }),
		worker.Config{Queues: []string{e.queue}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Ready(); !errors.Is(err, worker.ErrNotReady) {
		t.Errorf("before Run: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s (Ready: %v)", what, pool.Ready())
			}
			<-tick.C
		}
	}
	waitFor("ready", func() bool { return pool.Ready() == nil })
	testbroker.CloseConnection(t, name)
	waitFor("not ready after the connection was closed", func() bool { return pool.Ready() != nil })
	waitFor("ready again after the reconnect", func() bool { return pool.Ready() == nil })
}

func TestContextHeadersTravelWithTheTask(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	type key struct{}
	ctx := context.WithValue(testbroker.Context(t, time.Minute), key{}, "00-trace-span-01")
	p, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet,
		ContextHeaders: func(ctx context.Context) map[string]any {
			if v, ok := ctx.Value(key{}).(string); ok {
				return map[string]any{"traceparent": v}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	e := &env{conn: conn, queue: q, prod: p}
	rec := newRecorder(func(_ context.Context, t *warren.Task) error {
		if t.Attempt == 1 {
			return errors.New("retry me")
		}
		return nil
	})
	e.start(t, rec, worker.Config{Retry: fastRetry(3)})
	if _, err := p.Enqueue(ctx, q, "traced", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		c := rec.next(t, 10*time.Second)
		if c.task.Headers["traceparent"] != "00-trace-span-01" {
			t.Errorf("attempt %d: headers %v", i, c.task.Headers)
		}
	}
}
