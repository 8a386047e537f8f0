//go:build integration

package worker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/fleet"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/worker"
)

// startPool runs a pool on e's queue until the test ends, as e.start
// does, and returns it too.
func (e *env) startPool(t *testing.T, h worker.Handler, cfg worker.Config) (*worker.Pool, func() error) {
	t.Helper()
	cfg.Queues = []string{e.queue}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	pool, err := worker.New(e.conn, h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("Run did not return within 30s of cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("pool: %v", err)
		}
	})
	return pool, stop
}

// unpauseAtEnd deletes the queue's pause marker when the test ends.
func unpauseAtEnd(t *testing.T, conn *broker.Conn, queue string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := broker.DeleteQueue(ctx, conn, fleet.Marker(queue), broker.DeleteOptions{}); err != nil {
			t.Logf("cleanup of the pause marker: %v", err)
		}
	})
}

// waitUntil polls cond every 20ms until it holds, failing the test after d.
func waitUntil(t *testing.T, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: "+format, append([]any{d}, args...)...)
		}
		<-tick.C
	}
}

func (e *env) stats(t *testing.T) broker.QueueStats {
	t.Helper()
	st, err := broker.Inspect(context.Background(), e.conn, e.queue)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestPauseHoldsBackTasksAndResumeTakesThemAgain pauses a pool that runs a
// long task and holds three more prefetched: within a second it consumes
// no more, the three are back in the queue, tasks enqueued meanwhile wait,
// the long task finishes and is acked, and the pool stays ready. Resumed,
// it runs them all.
func TestPauseHoldsBackTasksAndResumeTakesThemAgain(t *testing.T) {
	e := setup(t)
	unpauseAtEnd(t, e.conn, e.queue)
	ctx := testbroker.Context(t, 2*time.Minute)
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	rec := newRecorder(func(ctx context.Context, task *warren.Task) error {
		if task.Type == "long" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	})
	// One handler: the quick tasks wait in the prefetch buffer, one of
	// them in the hand of the consumer, while the long one runs.
	pool, _ := e.startPool(t, rec, worker.Config{Concurrency: 1, Prefetch: 10, HeartbeatInterval: -1, ShutdownTimeout: 2 * time.Second})
	longID, err := e.prod.Enqueue(ctx, e.queue, "long", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if c := rec.next(t, 10*time.Second); c.task.ID != longID {
		t.Fatalf("first call: %s, want the long task", c.task.ID)
	}
	for range 3 {
		if _, err := e.prod.Enqueue(ctx, e.queue, "quick", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 10*time.Second, func() bool { return e.stats(t).Ready == 0 }, "the quick tasks were not prefetched")

	pausedAt := time.Now()
	if err := fleet.Pause(ctx, e.conn, e.queue); err != nil {
		t.Fatal(err)
	}
	// A quorum queue counts a cancelled consumer among its consumers
	// until the deliveries it holds are settled: the long task's.
	waitUntil(t, time.Second, func() bool { return e.stats(t).Ready == 3 },
		"the pool did not hand back the 3 prefetched tasks (%+v)", e.stats(t))
	t.Logf("paused within %s", time.Since(pausedAt).Round(time.Millisecond))
	if st := pool.Stats(); st.Paused != 1 || st.Requeued != 3 {
		t.Errorf("stats while paused: Paused %d, Requeued %d; want 1 and 3", st.Paused, st.Requeued)
	}
	if err := pool.Ready(); err != nil {
		t.Errorf("a paused pool is not ready: %v", err)
	}

	// Enqueueing still works; nothing runs.
	for range 2 {
		if _, err := e.prod.Enqueue(ctx, e.queue, "quick", []byte(`{}`)); err != nil {
			t.Fatalf("enqueue while paused: %v", err)
		}
	}
	if n := e.readyEventually(t, e.queue, 5, 5*time.Second); n != 5 {
		t.Fatalf("ready while paused: %d, want 5", n)
	}
	rec.none(t, 1500*time.Millisecond)

	// The long task, started before the pause, finishes and is acked:
	// once its channel is closed, it is not back in the queue.
	releaseOnce.Do(func() { close(release) })
	waitUntil(t, 10*time.Second, func() bool { return pool.Stats().Succeeded == 1 }, "the long task did not succeed")
	// Its channel is closed once it is settled: the broker forgets the
	// cancelled consumer, and the task is not back in the queue.
	waitUntil(t, 5*time.Second, func() bool { return e.stats(t).Consumers == 0 }, "the drained channel is still open: %+v", e.stats(t))
	rec.none(t, time.Second)
	if st := e.stats(t); st.Ready != 5 {
		t.Fatalf("after the long task: %+v, want 5 ready (was it acked?)", st)
	}

	if err := fleet.Resume(ctx, e.conn, e.queue); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if c := rec.next(t, 10*time.Second); c.task.Type != "quick" {
			t.Errorf("after resume: ran %s (%s)", c.task.ID, c.task.Type)
		}
	}
	waitUntil(t, 10*time.Second, func() bool { return pool.Stats().Succeeded == 6 }, "the quick tasks did not all succeed: %+v", pool.Stats())
	if st := pool.Stats(); st.Paused != 0 || st.Started != 6 {
		t.Errorf("stats after resume: %+v", st)
	}
	if n := e.ready(t, e.queue); n != 0 {
		t.Errorf("ready after resume: %d", n)
	}
}

// TestPauseHoldsAcrossAWorkerRestart starts a pool on a paused queue: it
// takes nothing, is ready, and takes the tasks once the queue is resumed.
func TestPauseHoldsAcrossAWorkerRestart(t *testing.T) {
	e := setup(t)
	unpauseAtEnd(t, e.conn, e.queue)
	ctx := testbroker.Context(t, time.Minute)
	if err := fleet.Pause(ctx, e.conn, e.queue); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := e.prod.Enqueue(ctx, e.queue, "quick", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRecorder(nil)
	pool, stop := e.startPool(t, rec, worker.Config{HeartbeatInterval: -1})
	waitUntil(t, 10*time.Second, func() bool { return pool.Ready() == nil }, "the pool is not ready: %v", pool.Ready())
	rec.none(t, 1500*time.Millisecond)
	if st := e.stats(t); st.Ready != 3 || st.Consumers != 0 {
		t.Fatalf("a pool started on a paused queue: %+v, want 3 ready and no consumer", st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Another pool, as after a restart, still holds back.
	rec = newRecorder(nil)
	pool, _ = e.startPool(t, rec, worker.Config{HeartbeatInterval: -1})
	waitUntil(t, 10*time.Second, func() bool { return pool.Ready() == nil && pool.Stats().Paused == 1 }, "the pool is not paused")
	rec.none(t, time.Second)
	if err := fleet.Resume(ctx, e.conn, e.queue); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		rec.next(t, 10*time.Second)
	}
}

// TestPauseCheckOffIgnoresPauses: with PauseCheckInterval negative a pool
// never pauses.
func TestPauseCheckOffIgnoresPauses(t *testing.T) {
	e := setup(t)
	unpauseAtEnd(t, e.conn, e.queue)
	ctx := testbroker.Context(t, time.Minute)
	if err := fleet.Pause(ctx, e.conn, e.queue); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(nil)
	e.start(t, rec, worker.Config{PauseCheckInterval: -1, HeartbeatInterval: -1})
	if _, err := e.prod.Enqueue(ctx, e.queue, "quick", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	rec.next(t, 10*time.Second)
}

// TestPausedPoolStopsWhenTheConnectionCloses: a pool holding back a paused
// queue has no channel to notice its connection closing for good, and
// still returns ErrConnectionLost.
func TestPausedPoolStopsWhenTheConnectionCloses(t *testing.T) {
	e := setup(t)
	unpauseAtEnd(t, e.conn, e.queue)
	ctx := testbroker.Context(t, time.Minute)
	if err := fleet.Pause(ctx, e.conn, e.queue); err != nil {
		t.Fatal(err)
	}
	own := testbroker.Dial(t)
	pool, err := worker.New(own, newRecorder(nil), worker.Config{Queues: []string{e.queue}, HeartbeatInterval: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	waitUntil(t, 10*time.Second, func() bool { return pool.Stats().Paused == 1 }, "the pool is not paused")
	_ = own.Close()
	select {
	case err := <-done:
		if !errors.Is(err, worker.ErrConnectionLost) {
			t.Errorf("Run: %v, want ErrConnectionLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of the connection closing")
	}
}
