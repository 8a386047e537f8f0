package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

// taskType is the type of every benchmark task.
const taskType = "bench"

// Run runs the workload of o with Warren: a producer.Producer shared by the
// producers (Enqueue, or EnqueueBatch when o.Batch > 1) and a worker.Pool
// with a no-op (or sleeping) handler, each on its own connection. The
// topology is declared before the timed part, so the producer and the pool
// run with NoDeclare.
func Run(ctx context.Context, o Options) (Report, error) {
	if err := o.Validate(); err != nil {
		return Report{}, err
	}
	o = o.withDefaults()
	c, err := dialWarren(ctx, o)
	if err != nil {
		return Report{}, err
	}
	defer c.close()
	switch o.Mode {
	case ModeRetry:
		return runRetry(ctx, o, c)
	case ModeIdle:
		return runIdle(ctx, o, c)
	}
	return drive(ctx, o, c, "warren")
}

type warrenClient struct {
	o   Options
	sub *broker.Conn // the pool's; also declares and deletes
	pub *broker.Conn // the producer's, dialled on first use
}

func (c *warrenClient) dial(ctx context.Context, role string) (*broker.Conn, error) {
	conn, err := broker.Dial(ctx, c.o.URL, broker.Config{
		Name:        fmt.Sprintf("warren bench %s (pid %d)", role, os.Getpid()),
		DialRetries: -1,
		Logger:      c.o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return conn, nil
}

func dialWarren(ctx context.Context, o Options) (*warrenClient, error) {
	c := &warrenClient{o: o}
	sub, err := c.dial(ctx, "worker")
	if err != nil {
		return nil, err
	}
	c.sub = sub
	return c, nil
}

func (c *warrenClient) close() error {
	err := c.sub.Close()
	if c.pub != nil {
		err = errors.Join(err, c.pub.Close())
	}
	return err
}

func (c *warrenClient) queueOptions() broker.QueueOptions {
	return broker.QueueOptions{Type: c.o.QueueType}
}

func (c *warrenClient) declare(ctx context.Context, queue string) error {
	if err := broker.Declare(ctx, c.sub, c.queueOptions(), queue); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

func (c *warrenClient) remove(ctx context.Context, queue string) error {
	var errs []error
	for _, q := range []string{queue, warren.DeadLetterQueue(queue)} {
		if _, err := broker.DeleteQueue(ctx, c.sub, q, broker.DeleteOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("bench: %w", err))
		}
	}
	return errors.Join(errs...)
}

type warrenPublisher struct {
	p     *producer.Producer
	queue string
}

func (c *warrenClient) publisher(ctx context.Context, queue string) (publisher, error) {
	if c.pub == nil {
		conn, err := c.dial(ctx, "producer")
		if err != nil {
			return nil, err
		}
		c.pub = conn
	}
	p, err := producer.New(ctx, c.pub, producer.Config{NoDeclare: true, QueueOptions: c.queueOptions(), Logger: c.o.Logger})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return &warrenPublisher{p: p, queue: queue}, nil
}

func (p *warrenPublisher) publish(ctx context.Context, bodies [][]byte) error {
	if len(bodies) == 1 {
		_, err := p.p.Enqueue(ctx, p.queue, taskType, bodies[0])
		return err
	}
	jobs := make([]producer.Job, len(bodies))
	for i, b := range bodies {
		jobs[i] = producer.Job{Queue: p.queue, Type: taskType, Payload: b}
	}
	res, err := p.p.EnqueueBatch(ctx, jobs)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

func (p *warrenPublisher) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.p.Close(ctx)
}

func (c *warrenClient) consume(ctx context.Context, queue string, h func([]byte)) (func() error, <-chan error, error) {
	return c.startPool(ctx, queue, worker.HandlerFunc(func(_ context.Context, t *warren.Task) error {
		h(t.Payload)
		return nil
	}), retry.Policy{})
}

// startPool runs a pool on queue and returns once its consumer is
// registered on the broker.
func (c *warrenClient) startPool(ctx context.Context, queue string, h worker.Handler, policy retry.Policy) (func() error, <-chan error, error) {
	pool, err := worker.New(c.sub, h, worker.Config{
		Queues:          []string{queue},
		Concurrency:     c.o.Concurrency,
		Prefetch:        c.o.Prefetch,
		QueueOptions:    c.queueOptions(),
		NoDeclare:       true,
		Retry:           policy,
		ShutdownTimeout: 10 * time.Second,
		Logger:          c.o.Logger,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ran := make(chan error, 1)
	failed := make(chan error, 1)
	go func() {
		err := pool.Run(runCtx)
		ran <- err
		if runCtx.Err() == nil {
			if err == nil {
				err = errors.New("worker pool stopped")
			}
			failed <- err
		}
	}()
	stop := func() error {
		cancel()
		select {
		case err := <-ran:
			return err
		case err := <-failed:
			return err
		}
	}
	// Wait until the broker has the consumer, so that e2e latencies do not
	// include the pool's start.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := broker.Inspect(ctx, c.sub, queue)
		if err == nil && st.Consumers > 0 {
			return stop, failed, nil
		}
		select {
		case err := <-failed:
			cancel()
			return nil, nil, fmt.Errorf("bench: start pool: %w", err)
		case <-ctx.Done():
			_ = stop()
			return nil, nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = stop()
			return nil, nil, errors.New("bench: the pool's consumer did not register within 10s")
		}
	}
}

// errBenchRetry is the failure of each job's first attempt in ModeRetry.
var errBenchRetry = errors.New("bench: first attempt fails on purpose")

// runRetry fails every job's first attempt with retry.After(o.RetryDelay)
// and records, for the second attempt, how long after its due time (the
// first attempt's failure plus the delay) it started.
func runRetry(ctx context.Context, o Options, c *warrenClient) (rep Report, err error) {
	rep = o.report("warren")
	queue := queueName(o.Mode)
	if err := c.declare(ctx, queue); err != nil {
		return rep, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if rerr := c.remove(cctx, queue); rerr != nil && err == nil {
			err = rerr
		}
	}()
	pub, err := c.publisher(ctx, queue)
	if err != nil {
		return rep, err
	}
	defer func() {
		if cerr := pub.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	rec := newRecorder(o.Jobs, 0)
	delay := time.Duration(broker.DelaySeconds(o.RetryDelay)) * time.Second
	h := worker.HandlerFunc(func(_ context.Context, t *warren.Task) error {
		if t.Attempt == 1 {
			if o.HandlerLatency > 0 {
				time.Sleep(o.HandlerLatency)
			}
			return retry.After(delay, errBenchRetry)
		}
		seq, _, ok := readHeader(t.Payload)
		if !ok || len(t.History) == 0 {
			rec.dup.Add(1)
			return nil
		}
		due := t.History[len(t.History)-1].FailedAt.Add(delay)
		rec.record(seq, time.Since(due))
		return nil
	})
	stopProgress := o.progress(func() int { return int(rec.done.Load()) })
	defer stopProgress()
	stop, failed, err := c.startPool(ctx, queue, h, retry.Policy{MaxAttempts: 3})
	if err != nil {
		return rep, err
	}
	m := startMeasure()
	start := rec.now()
	var published atomic.Int64
	perr := produce(ctx, o, pub, rec, &published)
	pubDur := time.Duration(rec.now() - start)
	var werr error
	if perr == nil {
		werr = rec.wait(ctx, failed)
	}
	serr := stop()
	if err := errors.Join(perr, werr, serr); err != nil {
		return rep, err
	}
	m.stop(&rep, o.Jobs)
	rep.Duration = time.Duration(rec.last.Load() - start)
	rep.PublishPerSec = perSec(o.Jobs, pubDur)
	rep.ConsumePerSec = perSec(o.Jobs, rep.Duration)
	rep.LatencyP50, rep.LatencyP95, rep.LatencyP99, rep.LatencyMax = rec.percentiles()
	rep.Redelivered = int(rec.dup.Load())
	return rep, nil
}

// runIdle starts a pool on an empty queue, waits o.IdleSettle and reads the
// process's memory.
func runIdle(ctx context.Context, o Options, c *warrenClient) (rep Report, err error) {
	rep = o.report("warren")
	rep.Jobs = 0
	queue := queueName(o.Mode)
	if err := c.declare(ctx, queue); err != nil {
		return rep, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if rerr := c.remove(cctx, queue); rerr != nil && err == nil {
			err = rerr
		}
	}()
	resetPeakRSS()
	stop, failed, err := c.startPool(ctx, queue, worker.HandlerFunc(func(context.Context, *warren.Task) error { return nil }), retry.Policy{})
	if err != nil {
		return rep, err
	}
	t := time.NewTimer(o.IdleSettle)
	defer t.Stop()
	select {
	case <-t.C:
	case err := <-failed:
		return rep, fmt.Errorf("bench: pool stopped: %w", err)
	case <-ctx.Done():
		_ = stop()
		return rep, ctx.Err()
	}
	rep.IdleRSSBytes = currentRSS()
	rep.PeakRSSBytes = peakRSS()
	rep.Duration = o.IdleSettle
	return rep, stop()
}
