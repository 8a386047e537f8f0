//go:build chaos

package chaos_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/chaos"
	"github.com/warrenq/warren/internal/testnode"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/worker"
)

// TestConsumerTimeoutRedeliversAndThePoolResumes shows what the broker's
// consumer_timeout does to a Warren worker: a delivery held unacked past it
// makes the broker close the channel with PRECONDITION_FAILED and requeue
// the delivery. The pool cancels the handler that was running it, drops its
// outcome, consumes again on a new channel, and the task runs a second
// time. The node runs with consumer_timeout = 3s and checks it every 500ms
// (channel_tick_interval) instead of 30 minutes checked once a minute.
func TestConsumerTimeoutRedeliversAndThePoolResumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts := chaos.NodeOptions(t.Logf)
	opts.Config += "consumer_timeout = 3000\n"
	opts.Advanced = "[{rabbit, [{channel_tick_interval, 500}]}]."
	node := startCluster(t, ctx, testnode.ClusterOptions{Tag: "ct", Node: opts}).Nodes[0]
	conn, err := broker.Dial(ctx, node.URL(), broker.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const q = "consumer-timeout"
	prod, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}

	type run struct {
		redelivered bool
		cause       error
		took        time.Duration
	}
	runs := make(chan run, 10)
	var mu sync.Mutex
	first := true
	h := worker.HandlerFunc(func(ctx context.Context, task *warren.Task) error {
		mu.Lock()
		slow := first
		first = false
		mu.Unlock()
		start := time.Now()
		if !slow {
			runs <- run{redelivered: task.Redelivered, took: time.Since(start)}
			return nil
		}
		// The first run outlives the broker's consumer_timeout.
		<-ctx.Done()
		runs <- run{redelivered: task.Redelivered, cause: context.Cause(ctx), took: time.Since(start)}
		return ctx.Err()
	})
	pool, err := worker.New(conn, h, worker.Config{Queues: []string{q}, Concurrency: 1, Prefetch: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pool.Run(runCtx) }()

	id, err := prod.Enqueue(ctx, q, "slow", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	next := func(d time.Duration) run {
		t.Helper()
		select {
		case r := <-runs:
			return r
		case <-time.After(d):
			t.Fatalf("no handler run within %s", d)
			return run{}
		}
	}
	r1 := next(60 * time.Second)
	if r1.cause == nil || !strings.Contains(r1.cause.Error(), "PRECONDITION_FAILED") {
		t.Fatalf("first run ended with cause %v, want the channel closed by the broker (PRECONDITION_FAILED)", r1.cause)
	}
	if r1.took < 3*time.Second {
		t.Errorf("first run was cancelled after %s, before the 3s consumer_timeout", r1.took)
	}
	t.Logf("first run cancelled after %s: %v", r1.took.Round(time.Millisecond), r1.cause)
	r2 := next(30 * time.Second)
	if !r2.redelivered {
		t.Errorf("second run of %s not marked redelivered", id)
	}
	// The pool consumes again: a new task runs too.
	if _, err := prod.Enqueue(ctx, q, "fast", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	next(30 * time.Second)

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	st := pool.Stats()
	if st.Voided != 1 || st.Succeeded != 2 || st.Redelivered < 1 {
		t.Errorf("stats %+v, want 1 voided run, 2 successes, a redelivery", st)
	}
	ictx, icancel := context.WithTimeout(ctx, 10*time.Second)
	defer icancel()
	for _, name := range []string{q, warren.DeadLetterQueue(q)} {
		if st, err := broker.Inspect(ictx, conn, name); err != nil || st.Ready != 0 {
			t.Errorf("%s: %d ready (%v), want 0", name, st.Ready, err)
		}
	}
}
