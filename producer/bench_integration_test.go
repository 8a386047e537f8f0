//go:build integration

package producer_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/producer"
)

// Publish benchmarks on the real broker, with confirms. They run only with
// -bench and the integration tag:
//
//	go test -tags integration -run '^$' -bench . -benchmem ./producer/
//
// Figures are kept in docs/benchmarks.md; warren bench measures the same
// against bare amqp091-go.

func benchProducer(b *testing.B) (*producer.Producer, string) {
	b.Helper()
	conn := testbroker.Dial(b)
	q := testbroker.Queue(b, conn)
	ctx := testbroker.Context(b, time.Minute)
	p, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close(context.Background()) })
	return p, q
}

var benchPayload = bytes.Repeat([]byte{'x'}, 256)

// BenchmarkEnqueue enqueues one task at a time, each waiting for its
// confirm: the round trip to a quorum queue's majority bounds it.
func BenchmarkEnqueue(b *testing.B) {
	p, q := benchProducer(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	for b.Loop() {
		if _, err := p.Enqueue(ctx, q, "bench", benchPayload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueueConcurrent runs 256 goroutines that call Enqueue, so
// that up to 256 publishes await a confirm at once (pipelined confirms).
func BenchmarkEnqueueConcurrent(b *testing.B) {
	p, q := benchProducer(b)
	ctx := context.Background()
	const workers = 256
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := p.Enqueue(ctx, q, "bench", benchPayload); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

// BenchmarkEnqueueBatch enqueues batches of 256 tasks with EnqueueBatch.
func BenchmarkEnqueueBatch(b *testing.B) {
	p, q := benchProducer(b)
	ctx := context.Background()
	const size = 256
	jobs := make([]producer.Job, size)
	for i := range jobs {
		jobs[i] = producer.Job{Queue: q, Type: "bench", Payload: benchPayload}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < b.N; done += size {
		res, err := p.EnqueueBatch(ctx, jobs[:min(size, b.N-done)])
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}
