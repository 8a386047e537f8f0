package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// client is what the driver needs from Warren or from bare amqp091-go.
type client interface {
	// declare declares queue (and its dead-letter queue).
	declare(ctx context.Context, queue string) error
	// remove deletes queue and its dead-letter queue.
	remove(ctx context.Context, queue string) error
	// publisher returns a publisher for queue, safe for concurrent use.
	publisher(ctx context.Context, queue string) (publisher, error)
	// consume starts consuming queue, calling h on each body, and returns
	// once the broker has registered the consumer. stop ends consuming and
	// waits for the handlers; failed is closed if consuming stops by itself.
	consume(ctx context.Context, queue string, h func(body []byte)) (stop func() error, failed <-chan error, err error)
	close() error
}

// publisher publishes bodies to its queue and waits for all their confirms.
type publisher interface {
	publish(ctx context.Context, bodies [][]byte) error
	close() error
}

// stallTimeout fails a run in which no job completes for this long.
const stallTimeout = 30 * time.Second

// drive runs one of ModeE2E, ModePublish and ModeConsume through c.
func drive(ctx context.Context, o Options, c client, name string) (rep Report, err error) {
	rep = o.report(name)
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
	rec := newRecorder(o.Jobs, o.HandlerLatency)

	switch o.Mode {
	case ModePublish:
		var published atomic.Int64
		stopProgress := o.progress(func() int { return int(published.Load()) })
		m := startMeasure()
		start := time.Now()
		err := produce(ctx, o, pub, rec, &published)
		rep.Duration = time.Since(start)
		stopProgress()
		if err != nil {
			return rep, err
		}
		m.stop(&rep, o.Jobs)
		rep.PublishPerSec = perSec(o.Jobs, rep.Duration)
		return rep, nil

	case ModeConsume:
		// The backlog is published first, outside the measurement.
		var published atomic.Int64
		start := time.Now()
		if err := produce(ctx, o, pub, rec, &published); err != nil {
			return rep, err
		}
		rep.PublishPerSec = perSec(o.Jobs, time.Since(start))
		stopProgress := o.progress(func() int { return int(rec.done.Load()) })
		defer stopProgress()
		m := startMeasure()
		stop, failed, err := c.consume(ctx, queue, rec.handle)
		if err != nil {
			return rep, err
		}
		werr := rec.wait(ctx, failed)
		serr := stop()
		if err := errors.Join(werr, serr); err != nil {
			return rep, err
		}
		m.stop(&rep, o.Jobs)
		rep.Duration = time.Duration(rec.last.Load() - rec.first.Load())
		rep.ConsumePerSec = perSec(o.Jobs, rep.Duration)
		rep.Redelivered = int(rec.dup.Load())
		return rep, nil

	default: // ModeE2E
		stopProgress := o.progress(func() int { return int(rec.done.Load()) })
		defer stopProgress()
		stop, failed, err := c.consume(ctx, queue, rec.handle)
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
}

// produce runs o.Producers goroutines that publish o.Jobs payloads, each
// stamped with its sequence number and the time of the publish call.
func produce(ctx context.Context, o Options, pub publisher, rec *recorder, published *atomic.Int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	pace := newPacer(o.Rate)
	for range min(o.Producers, o.Jobs) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bodies := make([][]byte, o.Batch)
			for i := range bodies {
				bodies[i] = newPayload(o.Size)
			}
			for {
				from := next.Add(int64(o.Batch)) - int64(o.Batch)
				if from >= int64(o.Jobs) {
					return
				}
				n := min(int64(o.Batch), int64(o.Jobs)-from)
				if err := pace.wait(ctx, from); err != nil {
					return
				}
				stamp := rec.now()
				for i := range n {
					putHeader(bodies[i], uint64(from+i), stamp)
				}
				if err := pub.publish(ctx, bodies[:n]); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
				published.Add(n)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("bench: publish: %w", first)
	}
	return ctx.Err()
}

func newPayload(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = 'x'
	}
	return b
}

// putHeader writes a job's sequence number and enqueue time into its payload.
func putHeader(b []byte, seq uint64, stamp int64) {
	binary.LittleEndian.PutUint64(b[0:8], seq)
	binary.LittleEndian.PutUint64(b[8:16], uint64(stamp))
}

func readHeader(b []byte) (seq uint64, stamp int64, ok bool) {
	if len(b) < minSize {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(b[0:8]), int64(binary.LittleEndian.Uint64(b[8:16])), true
}

// pacer spaces publishes rate per second apart, across all producers.
type pacer struct {
	start time.Time
	rate  float64
}

func newPacer(rate float64) *pacer { return &pacer{start: time.Now(), rate: rate} }

// wait blocks until job k is due.
func (p *pacer) wait(ctx context.Context, k int64) error {
	if p.rate <= 0 {
		return ctx.Err()
	}
	due := p.start.Add(time.Duration(float64(k) / p.rate * float64(time.Second)))
	d := time.Until(due)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// recorder keeps each job's latency and counts the jobs done.
type recorder struct {
	base     time.Time // times are nanoseconds since base, on the monotonic clock
	n        int
	sleep    time.Duration
	seen     []atomic.Bool
	lat      []int64 // per job: latency in ns, written once by the job's claimant
	done     atomic.Int64
	dup      atomic.Int64
	first    atomic.Int64 // first handler start
	last     atomic.Int64 // last job's end
	finished chan struct{}
}

func newRecorder(n int, sleep time.Duration) *recorder {
	return &recorder{base: time.Now(), n: n, sleep: sleep, seen: make([]atomic.Bool, n), lat: make([]int64, n), finished: make(chan struct{})}
}

func (r *recorder) now() int64 { return int64(time.Since(r.base)) }

// handle is the benchmark's handler: it records the latency, sleeps if
// asked to, and counts the job done.
func (r *recorder) handle(body []byte) {
	now := r.now()
	r.first.CompareAndSwap(0, now)
	seq, stamp, ok := readHeader(body)
	fresh := ok && r.claim(seq)
	if fresh {
		r.lat[seq] = now - stamp
	}
	if r.sleep > 0 {
		time.Sleep(r.sleep)
	}
	if !fresh {
		r.dup.Add(1)
		return
	}
	r.finish()
}

// record stores a latency measured elsewhere for job seq (ModeRetry).
func (r *recorder) record(seq uint64, lat time.Duration) {
	r.first.CompareAndSwap(0, r.now())
	if !r.claim(seq) {
		r.dup.Add(1)
		return
	}
	r.lat[seq] = int64(lat)
	r.finish()
}

// claim reports whether seq is a job of this run seen for the first time.
func (r *recorder) claim(seq uint64) bool {
	return seq < uint64(r.n) && r.seen[seq].CompareAndSwap(false, true)
}

func (r *recorder) finish() {
	if r.done.Add(1) == int64(r.n) {
		r.last.Store(r.now())
		close(r.finished)
	}
}

// wait returns once every job is done, failing if the consumer fails, ctx
// ends, or nothing completes for stallTimeout.
func (r *recorder) wait(ctx context.Context, failed <-chan error) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	seen, since := r.done.Load(), time.Now()
	for {
		select {
		case <-r.finished:
			return nil
		case err := <-failed:
			return fmt.Errorf("bench: consumer stopped after %d of %d jobs: %w", r.done.Load(), r.n, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if d := r.done.Load(); d != seen {
				seen, since = d, time.Now()
			} else if time.Since(since) > stallTimeout {
				return fmt.Errorf("bench: stalled: %d of %d jobs done, none for %s", d, r.n, stallTimeout)
			}
		}
	}
}

func (r *recorder) percentiles() (p50, p95, p99, pmax time.Duration) {
	return percentiles(r.lat)
}

// measure brackets the timed part of a run: heap allocations and peak RSS.
type measure struct {
	m0  runtime.MemStats
	cpu time.Duration
}

func startMeasure() *measure {
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	m := &measure{cpu: processCPU()}
	runtime.ReadMemStats(&m.m0)
	return m
}

func (m *measure) stop(rep *Report, jobs int) {
	cpu := processCPU() - m.cpu
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	if jobs > 0 {
		rep.CPUPerJob = cpu / time.Duration(jobs)
		rep.AllocsPerJob = float64(m1.Mallocs-m.m0.Mallocs) / float64(jobs)
		rep.BytesPerJob = float64(m1.TotalAlloc-m.m0.TotalAlloc) / float64(jobs)
	}
	rep.PeakRSSBytes = peakRSS()
}

// progress calls o.Progress with done() about ten times a second until the
// returned function is called.
func (o Options) progress(done func() int) (stop func()) {
	if o.Progress == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				o.Progress(done(), o.Jobs)
				return
			case <-t.C:
				o.Progress(done(), o.Jobs)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); wg.Wait() }) }
}

func (o Options) report(client string) Report {
	return Report{
		Client: client, Mode: o.Mode, Jobs: o.Jobs, Size: o.Size, Producers: o.Producers, Batch: o.Batch,
		Concurrency: o.Concurrency, Prefetch: o.Prefetch, QueueType: string(o.QueueType),
		HandlerLatencyMS: ms(o.HandlerLatency), Rate: o.Rate,
	}
}

// queueName returns a fresh queue name for one run.
func queueName(mode string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "bench-" + mode + "-" + hex.EncodeToString(b[:])
}

func perSec(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
