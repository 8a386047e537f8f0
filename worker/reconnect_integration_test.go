//go:build integration

package worker_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/internal/testnode"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/worker"
)

// reconnectEnv is setup with a connection whose name is unique, so the
// test can have the broker close it.
func reconnectEnv(t *testing.T) (*env, string) {
	t.Helper()
	name := fmt.Sprintf("test %s %d", t.Name(), time.Now().UnixNano())
	conn := testbroker.DialNamed(t, broker.Config{Name: name, Logger: quiet, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond})
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, 30*time.Second)
	p, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return &env{conn: conn, queue: q, prod: p}, name
}

func TestPoolResumesByItselfAfterTheBrokerClosesItsConnection(t *testing.T) {
	e, name := reconnectEnv(t)
	ctx := testbroker.Context(t, 2*time.Minute)
	started := make(chan struct{}, 1)
	cancelled := make(chan error, 1)
	rec := newRecorder(func(ctx context.Context, t *warren.Task) error {
		if t.Type == "block" && !t.Redelivered {
			started <- struct{}{}
			<-ctx.Done()
			cancelled <- context.Cause(ctx)
			return ctx.Err()
		}
		return nil
	})
	cfg := worker.Config{Queues: []string{e.queue}, Logger: quiet}
	pool, err := worker.New(e.conn, rec, cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	id, err := e.prod.Enqueue(ctx, e.queue, "block", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("blocking job did not start")
	}
	rec.next(t, time.Second) // its recorded call
	if n := testbroker.CloseConnection(t, name); n != 1 {
		t.Fatalf("closed %d connections named %q, want 1", n, name)
	}
	// The running handler is told.
	select {
	case cause := <-cancelled:
		if cause == nil || !strings.Contains(cause.Error(), "channel that delivered the task was lost") {
			t.Errorf("cancel cause %v, want the lost channel", cause)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the running handler's context was not cancelled when the connection dropped")
	}
	// The broker hands the job back, and the pool consumes again on its own.
	c := rec.next(t, 20*time.Second)
	if c.task.ID != id || !c.task.Redelivered {
		t.Fatalf("after reconnect: task %s redelivered=%v, want %s redelivered", c.task.ID, c.task.Redelivered, id)
	}
	// New work flows, enqueued through the same (reconnected) connection.
	want := map[string]bool{}
	for i := range 20 {
		id, err := e.prod.Enqueue(ctx, e.queue, "ok", []byte(fmt.Sprintf(`{"i":%d}`, i)))
		if err != nil {
			t.Fatalf("enqueue after reconnect: %v", err)
		}
		want[id] = true
	}
	for range 20 {
		c := rec.next(t, 10*time.Second)
		if !want[c.task.ID] {
			t.Fatalf("unexpected task %s (%s)", c.task.ID, c.task.Type)
		}
		delete(want, c.task.ID)
	}
	st := pool.Stats()
	if st.Reconnects < 1 || st.Voided != 1 || st.Redelivered < 1 {
		t.Errorf("stats after one reconnect: %+v", st)
	}
	if n := e.readyEventually(t, warren.DeadLetterQueue(e.queue), 0, time.Second); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}

func TestEnqueueWaitsForTheReconnect(t *testing.T) {
	e, name := reconnectEnv(t)
	ctx := testbroker.Context(t, time.Minute)
	if _, err := e.prod.Enqueue(ctx, e.queue, "t", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if n := testbroker.CloseConnection(t, name); n != 1 {
		t.Fatalf("closed %d connections", n)
	}
	// Published right after the close: each either rides the new
	// connection or fails with an error; none reports success unconfirmed.
	ok := 0
	for i := range 50 {
		if _, err := e.prod.Enqueue(ctx, e.queue, "t", []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatalf("enqueue %d across the reconnect: %v", i, err)
		}
		ok++
	}
	if e.conn.Reconnects() < 1 {
		t.Errorf("no reconnect counted")
	}
	if n := e.readyEventually(t, e.queue, ok+1, 5*time.Second); n < ok+1 {
		t.Errorf("%d on the queue, want at least %d confirmed", n, ok+1)
	}
}

func TestEnqueueGivesUpAtItsDeadlineWhileDisconnected(t *testing.T) {
	name := fmt.Sprintf("test %s %d", t.Name(), time.Now().UnixNano())
	conn := testbroker.DialNamed(t, broker.Config{Name: name, Logger: quiet, NoReconnect: true})
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, time.Minute)
	p, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	testbroker.CloseConnection(t, name)
	select {
	case <-conn.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed")
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = p.Enqueue(short, q, "t", []byte(`{}`))
	if err == nil {
		t.Fatal("enqueue succeeded with no connection")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("enqueue took %s to fail", time.Since(start))
	}
}

func TestPoolConsumesAgainAfterTheBrokerCancelsItsConsumer(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, 2*time.Minute)
	rec := newRecorder(nil)
	e.start(t, rec, worker.Config{ConsumerCheckInterval: time.Second})
	if _, err := e.prod.Enqueue(ctx, e.queue, "t", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	rec.next(t, 10*time.Second)
	// Deleting the queue makes the broker cancel the consumer (basic.cancel)
	// and leave its channel open. The pool must notice, declare the queue
	// again and consume from it.
	if out, err := exec.Command("rabbitmqctl", "-q", "delete_queue", e.queue).CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl delete_queue: %v: %s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := broker.Inspect(ctx, e.conn, e.queue)
		if err == nil && st.Consumers == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pool did not declare and consume the queue again: %+v %v", st, err)
		}
		<-tick.C
	}
	id, err := e.prod.Enqueue(ctx, e.queue, "t", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if c := rec.next(t, 30*time.Second); c.task.ID != id {
		t.Fatalf("got %s, want %s", c.task.ID, id)
	}
}

func TestPoolRecoversAConsumerTheBrokerSilencedByARedeclare(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, 2*time.Minute)
	rec := newRecorder(nil)
	e.start(t, rec, worker.Config{ConsumerCheckInterval: time.Second, Prefetch: 10})
	if _, err := e.prod.Enqueue(ctx, e.queue, "t", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	rec.next(t, 10*time.Second)
	// Deleted and declared again at once: RabbitMQ 3.10 sends no
	// basic.cancel and keeps a silent consumer that swallows a prefetch
	// window of deliveries.
	if out, err := exec.Command("rabbitmqctl", "-q", "delete_queue", e.queue).CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl delete_queue: %v: %s", err, out)
	}
	if err := broker.DeclareQueue(ctx, e.conn, e.queue, broker.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := range 30 {
		id, err := e.prod.Enqueue(ctx, e.queue, "t", []byte(fmt.Sprintf(`{"i":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		want[id] = true
	}
	for len(want) > 0 {
		c := rec.next(t, 30*time.Second)
		delete(want, c.task.ID)
	}
}

// TestRunStartedWhileTheBrokerIsDownWaitsForIt starts a pool whose
// connection has just lost its (private) broker: Run must neither fail nor
// return, and once the node is back it declares, consumes and runs the
// work. Before, Run returned the declare's "not connected" error at once
// and a worker started in the middle of a broker restart exited.
func TestRunStartedWhileTheBrokerIsDownWaitsForIt(t *testing.T) {
	node := testnode.New(t, testnode.Options{})
	ctx := testbroker.Context(t, 3*time.Minute)
	conn, err := broker.Dial(ctx, node.URL(), broker.Config{Logger: quiet, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	q := fmt.Sprintf("start-down-%d", time.Now().UnixNano())
	if err := node.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := conn.Await(testbroker.Context(t, 200*time.Millisecond)); err == nil {
		t.Fatal("the connection is still up after the node stopped")
	}
	rec := newRecorder(func(context.Context, *warren.Task) error { return nil })
	pool, err := worker.New(conn, rec, worker.Config{Queues: []string{q}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(runCtx) }()
	defer func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	}()
	select {
	case err := <-done:
		t.Fatalf("Run returned while the broker was down: %v", err)
	case <-time.After(2 * time.Second): // it must still be waiting
	}
	if err := pool.Ready(); err == nil {
		t.Error("Ready() = nil while the pool has not started")
	}
	if err := node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := conn.Await(ctx); err != nil {
		t.Fatal(err)
	}
	prod, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet, NoDeclare: true})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(context.Background())
	var id string
	// The pool declares the queue once it is connected; enqueue once it exists.
	for {
		id, err = prod.Enqueue(ctx, q, "t", []byte(`{}`))
		if err == nil {
			break
		}
		if !errors.Is(err, broker.ErrUnroutable) {
			t.Fatalf("enqueue: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("the pool never declared its queue after the broker came back")
		case <-time.After(100 * time.Millisecond):
		}
	}
	if c := rec.next(t, 30*time.Second); c.task.ID != id {
		t.Fatalf("ran task %s, want %s", c.task.ID, id)
	}
	if err := pool.Ready(); err != nil {
		t.Errorf("Ready() after the start: %v", err)
	}
}
