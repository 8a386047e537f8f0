//go:build chaos

package chaos_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime/pprof"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/chaos"
	"github.com/warrenq/warren/internal/testnode"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/worker"
)

// Regression tests for library bugs the chaos suite found (fixed in
// b545033). Each reproduces the fault on private nodes; they failed on the
// code before the fix.

var quiet = func() *slog.Logger {
	if os.Getenv("WARREN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}()

// startCluster starts the nodes opts describe in a run directory of the
// suite's (SweepStale finds it if the test binary dies). The nodes stop and
// the directory goes when the test ends.
func startCluster(t *testing.T, ctx context.Context, opts testnode.ClusterOptions) *testnode.Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", chaos.DirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	nodes, err := testnode.NewCluster(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nodes.Close)
	if err := nodes.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return nodes
}

// privateNode starts one private RabbitMQ node for the test.
func privateNode(t *testing.T, ctx context.Context) *testnode.Node {
	t.Helper()
	return startCluster(t, ctx, testnode.ClusterOptions{Tag: "bug", Node: chaos.NodeOptions(t.Logf)}).Nodes[0]
}

// TestPoolResumesAfterTheBrokerCancelsItsConsumer: when the broker cancels a
// consumer (basic.cancel: the queue was deleted, or, for a classic queue,
// its node went down), amqp091-go closes the delivery channel but keeps the
// AMQP channel open. The pool used to take that for a dead channel and wait
// for its close notification, which never came, without watching for its
// own stop: it consumed nothing more, and Run hung when its context ended
// (until the connection closed). It must consume again, and stop when told.
func TestPoolResumesAfterTheBrokerCancelsItsConsumer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	node := privateNode(t, ctx)
	conn, err := broker.Dial(ctx, node.URL(), broker.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const q = "bug-cancel"
	prod, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var ran atomic.Int64
	pool, err := worker.New(conn, worker.HandlerFunc(func(context.Context, *warren.Task) error {
		ran.Add(1)
		return nil
	}), worker.Config{Queues: []string{q}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pool.Run(runCtx) }()

	waitFor := func(d time.Duration, what string, cond func() bool) bool {
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				t.Errorf("%s: not within %s", what, d)
				return false
			}
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
		return true
	}
	if _, err := prod.Enqueue(ctx, q, "t", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(30*time.Second, "first job", func() bool { return ran.Load() == 1 })

	// The broker cancels the consumer: delete the queue. A consumer of our
	// own on the same queue tells when the broker has sent its basic.cancel
	// (the pool's comes in the same step); only then is the queue declared
	// again. Declared again at once, RabbitMQ 3.10 may send no cancel at
	// all and leave the consumer attached to nothing.
	// Admin operations go through a connection of their own: RabbitMQ may
	// answer a declaration right after a deletion with a connection error.
	adm, err := broker.Dial(ctx, node.URL(), broker.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	sentinel, err := adm.Channel()
	if err != nil {
		t.Fatal(err)
	}
	cancelled := sentinel.NotifyCancel(make(chan string, 1))
	if _, err := sentinel.Consume(q, "sentinel", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Ctl(ctx, "delete_queue", q); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("no basic.cancel for the sentinel consumer within 10s of delete_queue")
	}
	var derr error
	waitFor(30*time.Second, "the queue declared again", func() bool {
		if err := adm.Await(ctx); err != nil {
			return false
		}
		derr = broker.DeclareQueue(ctx, adm, q, broker.QueueOptions{})
		return derr == nil
	})
	if derr != nil {
		t.Fatalf("declare %s again: %v", q, derr)
	}
	if _, err := prod.Enqueue(ctx, q, "t", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, "the pool consumes again after the broker cancelled its consumer", func() bool { return ran.Load() == 2 }) && os.Getenv("CHAOS_DUMP") == "1" {
		_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
	}

	stop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("Run did not return within 15s of its context ending (stuck in consumer.reopen)")
	}
}

// TestEnqueueKeepsItsDeadlineBehindAnotherEnqueue: while the connection is
// down, the Producer used to hold a mutex during the first caller's wait for
// the reconnect, and every other Enqueue waited on that mutex without looking
// at its own context: a call with a 500ms deadline returned after 19.7s. It
// must give up at its own deadline.
func TestEnqueueKeepsItsDeadlineBehindAnotherEnqueue(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	node := privateNode(t, ctx)
	conn, err := broker.Dial(ctx, node.URL(), broker.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const q = "bug-deadline"
	prod, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := node.StopApp(ctx); err != nil { // the connection drops and cannot come back
		t.Fatal(err)
	}
	lost := time.Now().Add(10 * time.Second)
	for conn.Connected() && time.Now().Before(lost) {
		time.Sleep(20 * time.Millisecond) // wait for the client to notice the loss
	}
	if conn.Connected() {
		t.Fatal("connection still up after stop_app")
	}
	long, cancelLong := context.WithTimeout(ctx, 20*time.Second)
	defer cancelLong()
	longDone := make(chan struct{})
	go func() {
		defer close(longDone)
		_, _ = prod.Enqueue(long, q, "t", []byte(`{}`)) // waits for the reconnect, up to 20s
	}()
	time.Sleep(300 * time.Millisecond) // let it take pubMu (test setup only)
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancelShort()
	start := time.Now()
	_, err = prod.Enqueue(short, q, "t", []byte(`{}`))
	took := time.Since(start)
	if err == nil {
		t.Fatal("enqueue succeeded with the broker down")
	}
	if took > 3*time.Second {
		t.Errorf("Enqueue with a 500ms deadline returned after %s (behind another Enqueue's 20s wait): %v", took.Round(time.Millisecond), err)
	}
	cancelLong()
	<-longDone
	_ = node.StartApp(ctx)
}

// TestEnqueueGoesOnThroughTheSurvivorsWhenTheLeaderDies: when the node that
// leads a quorum queue dies, a channel whose first publish to the queue
// comes before the cluster has moved on (a client that was connected to the
// dead node and reconnected to a survivor at once) has every publish nacked
// by RabbitMQ 3.10, at once, for as long as the old leader is down, while a
// channel opened a couple of seconds later publishes fine (shown with bare
// amqp091-go as well). The Producer used to keep its channel after a nack,
// so every Enqueue failed with ErrNacked, with a healthy majority: for 92s in
// one chaos run, until the killed node came back. It must enqueue through
// the survivors within seconds.
func TestEnqueueGoesOnThroughTheSurvivorsWhenTheLeaderDies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	nodes := startCluster(t, ctx, testnode.ClusterOptions{Nodes: 3, Tag: "nack", Node: chaos.NodeOptions(t.Logf)})
	n1, n2 := nodes.Nodes[0], nodes.Nodes[1]
	const q = "bug-nack"
	// Declared through node 1, so node 1 leads the queue.
	c1, err := broker.Dial(ctx, n1.URL(), broker.Config{Logger: quiet, NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.Declare(ctx, c1, broker.QueueOptions{}, q); err != nil {
		t.Fatal(err)
	}
	c1.Close()
	killed := time.Now()
	if err := n1.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	// A producer that was on node 1 comes back through node 2 at once.
	conn, err := broker.Dial(ctx, n2.URL(), broker.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	prod, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	nacks := 0
	var lastErr error
	for time.Since(killed) < 30*time.Second {
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := prod.Enqueue(ectx, q, "t", []byte(`{}`))
		cancel()
		if err == nil {
			t.Logf("first Enqueue confirmed %.1fs after the leader's node died (%d nacked before)", time.Since(killed).Seconds(), nacks)
			return
		}
		lastErr = err
		if errors.Is(err, producer.ErrNacked) {
			nacks++
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(200 * time.Millisecond): // the caller's retry
		}
	}
	t.Errorf("no Enqueue through node 2 succeeded in the 30s after the leader's node died (%d nacked; last: %v); nodes 2 and 3 are a healthy majority", nacks, lastErr)
	// The remedy: a new channel. A second Producer on the same connection
	// opens one, and its Enqueue is confirmed at once.
	fresh, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ectx, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if _, err := fresh.Enqueue(ectx, q, "t", []byte(`{}`)); err != nil {
		t.Logf("a new Producer (new channel) on the same connection fails too: %v", err)
	} else {
		t.Logf("a new Producer (new channel) on the same connection enqueues at once, while the first still gets nacks")
	}
}
