//go:build integration

package worker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/worker"
)

// BenchmarkDeliverHandleAck drains a backlog of b.N tasks through a pool
// with a no-op handler: delivery, decode, handler, ack. The backlog is
// published before the timer starts. Run it with
//
//	go test -tags integration -run '^$' -bench DeliverHandleAck -benchmem ./worker/
//
// Figures are kept in docs/benchmarks.md.
func BenchmarkDeliverHandleAck(b *testing.B) {
	for _, c := range []struct{ concurrency, prefetch int }{
		{10, 0}, // the defaults: prefetch 2 × concurrency
		{10, 200},
		{64, 500},
	} {
		b.Run(fmt.Sprintf("concurrency=%d/prefetch=%d", c.concurrency, c.prefetch), func(b *testing.B) {
			benchDrain(b, c.concurrency, c.prefetch)
		})
	}
}

func benchDrain(b *testing.B, concurrency, prefetch int) {
	e := setupBench(b)
	ctx := context.Background()
	payload := make([]byte, 256)
	jobs := make([]producer.Job, 256)
	for i := range jobs {
		jobs[i] = producer.Job{Queue: e.queue, Type: "bench", Payload: payload}
	}
	for done := 0; done < b.N; done += len(jobs) {
		res, err := e.prod.EnqueueBatch(ctx, jobs[:min(len(jobs), b.N-done)])
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}

	var handled atomic.Int64
	all := make(chan struct{})
	var once sync.Once
	h := worker.HandlerFunc(func(context.Context, *warren.Task) error {
		if handled.Add(1) == int64(b.N) {
			once.Do(func() { close(all) })
		}
		return nil
	})
	pool, err := worker.New(e.conn, h, worker.Config{
		Queues: []string{e.queue}, Concurrency: concurrency, Prefetch: prefetch, NoDeclare: true, Logger: quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	ran := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() { ran <- pool.Run(runCtx) }()
	select {
	case <-all:
	case err := <-ran:
		b.Fatalf("pool stopped after %d of %d: %v", handled.Load(), b.N, err)
	case <-time.After(2 * time.Minute):
		b.Fatalf("timeout: %d of %d handled", handled.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-ran; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
}

// setupBench is setup for a benchmark: a connection, a fresh queue and a
// producer for it.
func setupBench(b *testing.B) *env {
	b.Helper()
	conn := testbroker.Dial(b)
	q := testbroker.Queue(b, conn)
	ctx := testbroker.Context(b, 30*time.Second)
	p, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close(context.Background()) })
	return &env{conn: conn, queue: q, prod: p}
}
