//go:build integration

package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

var quiet = slog.New(slog.NewTextHandler(logOut(), &slog.HandlerOptions{Level: slog.LevelDebug}))

func logOut() io.Writer {
	if os.Getenv("WARREN_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

type env struct {
	conn  *broker.Conn
	queue string
	prod  *producer.Producer
}

func setup(t *testing.T) *env {
	t.Helper()
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, 30*time.Second)
	p, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return &env{conn: conn, queue: q, prod: p}
}

// start runs a pool until the test ends and returns a stop function that
// cancels it and waits for Run to return.
func (e *env) start(t *testing.T, h worker.Handler, cfg worker.Config) (stop func() error) {
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
	stop = func() error {
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
	return stop
}

type call struct {
	task *warren.Task
	at   time.Time
}

// recorder is a handler that reports each call on a channel and answers
// with the result of fn.
type recorder struct {
	calls chan call
	fn    func(ctx context.Context, t *warren.Task) error
}

func newRecorder(fn func(ctx context.Context, t *warren.Task) error) *recorder {
	return &recorder{calls: make(chan call, 1000), fn: fn}
}

func (r *recorder) ProcessTask(ctx context.Context, t *warren.Task) error {
	r.calls <- call{task: t, at: time.Now()}
	if r.fn == nil {
		return nil
	}
	return r.fn(ctx, t)
}

func (r *recorder) next(t *testing.T, timeout time.Duration) call {
	t.Helper()
	select {
	case c := <-r.calls:
		return c
	case <-time.After(timeout):
		t.Fatalf("no handler call within %s", timeout)
		return call{}
	}
}

func (r *recorder) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case c := <-r.calls:
		t.Fatalf("unexpected handler call: task %s attempt %d", c.task.ID, c.task.Attempt)
	case <-time.After(within):
	}
}

// deadLetters consumes n messages from the queue's dead-letter queue.
func (e *env) deadLetters(t *testing.T, n int, timeout time.Duration) []amqp.Delivery {
	t.Helper()
	ch, err := e.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	in, err := ch.Consume(warren.DeadLetterQueue(e.queue), "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []amqp.Delivery
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case d := <-in:
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		case <-deadline:
			t.Fatalf("got %d dead letters within %s, want %d", len(out), timeout, n)
		}
	}
	return out
}

func (e *env) ready(t *testing.T, queue string) int {
	t.Helper()
	st, err := broker.Inspect(context.Background(), e.conn, queue)
	if err != nil {
		t.Fatal(err)
	}
	return st.Ready
}

// readyEventually polls the ready count until it equals want or timeout
// passes, and returns the last count.
func (e *env) readyEventually(t *testing.T, queue string, want int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		n := e.ready(t, queue)
		if n == want || time.Now().After(deadline) {
			return n
		}
		<-tick.C
	}
}

func fastRetry(max int) retry.Policy {
	return retry.Policy{MaxAttempts: max, Base: time.Second, Cap: time.Second, Min: time.Second}
}

func TestSuccessIsAckedOnce(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, time.Minute)
	ids := map[string]bool{}
	for i := range 20 {
		id, err := e.prod.Enqueue(ctx, e.queue, "ok", []byte(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	rec := newRecorder(nil)
	stop := e.start(t, rec, worker.Config{Concurrency: 4})
	for range 20 {
		c := rec.next(t, 10*time.Second)
		if !ids[c.task.ID] {
			t.Fatalf("unexpected or duplicate task %s", c.task.ID)
		}
		delete(ids, c.task.ID)
		if c.task.Attempt != 1 || c.task.Queue != e.queue || c.task.EnqueuedAt.IsZero() {
			t.Errorf("task metadata: %+v", c.task)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	rec.none(t, 100*time.Millisecond)
	if n := e.ready(t, e.queue); n != 0 {
		t.Errorf("%d messages left in the queue after success: not acked", n)
	}
}

func TestFailTwiceThenSucceedRunsThreeTimesWithBrokerDelays(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, time.Minute)
	rec := newRecorder(func(_ context.Context, t *warren.Task) error {
		if t.Attempt < 3 {
			return fmt.Errorf("transient failure %d", t.Attempt)
		}
		return nil
	})
	e.start(t, rec, worker.Config{Retry: fastRetry(5)})
	id, err := e.prod.Enqueue(ctx, e.queue, "flaky", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	c1 := rec.next(t, 10*time.Second)
	c2 := rec.next(t, 10*time.Second)
	c3 := rec.next(t, 10*time.Second)
	for i, c := range []call{c1, c2, c3} {
		if c.task.ID != id || c.task.Attempt != i+1 {
			t.Fatalf("call %d: id %s attempt %d", i+1, c.task.ID, c.task.Attempt)
		}
	}
	// The policy's delay is exactly 1s: the broker held the task that long.
	for i, gap := range []time.Duration{c2.at.Sub(c1.at), c3.at.Sub(c2.at)} {
		if gap < 900*time.Millisecond || gap > 3*time.Second {
			t.Errorf("retry %d came after %s, want about 1s", i+1, gap)
		}
	}
	if c3.task.LastError != "transient failure 2" || len(c3.task.History) != 2 || c3.task.History[0].Error != "transient failure 1" {
		t.Errorf("attempt 3 carries last error %q and history %+v", c3.task.LastError, c3.task.History)
	}
	if !c1.task.EnqueuedAt.Equal(c3.task.EnqueuedAt) {
		t.Errorf("first-enqueued time changed across retries: %s → %s", c1.task.EnqueuedAt, c3.task.EnqueuedAt)
	}
	rec.none(t, 1500*time.Millisecond)
	if n := e.ready(t, warren.DeadLetterQueue(e.queue)); n != 0 {
		t.Errorf("%d dead letters for a task that succeeded", n)
	}
}

func TestPermanentErrorDeadLettersAtOnceWithMetadata(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, time.Minute)
	rec := newRecorder(func(context.Context, *warren.Task) error {
		return fmt.Errorf("charge card: %w", retry.Permanent(errors.New("card declined")))
	})
	e.start(t, rec, worker.Config{Retry: fastRetry(10), Hostname: "test-host"})
	id, err := e.prod.Enqueue(ctx, e.queue, "charge", []byte(`{"amount":5}`), producer.WithHeaders(map[string]any{"tenant": "acme"}))
	if err != nil {
		t.Fatal(err)
	}
	rec.next(t, 10*time.Second)
	dl := e.deadLetters(t, 1, 10*time.Second)[0]
	rec.none(t, 1500*time.Millisecond)
	h := dl.Headers
	if dl.MessageId != id || dl.Type != "charge" || string(dl.Body) != `{"amount":5}` {
		t.Errorf("dead letter lost the task: %s %s %q", dl.MessageId, dl.Type, dl.Body)
	}
	checks := map[string]any{
		warren.HeaderDeadReason: string(warren.ReasonPermanent),
		warren.HeaderError:      "charge card: card declined",
		warren.HeaderQueue:      e.queue,
		warren.HeaderWorkerHost: "test-host",
		"tenant":                "acme",
	}
	for k, want := range checks {
		if h[k] != want {
			t.Errorf("header %s = %v, want %v", k, h[k], want)
		}
	}
	if n, _ := broker.HeaderInt(h, warren.HeaderAttempt); n != 1 {
		t.Errorf("attempt = %d, want 1", n)
	}
	if ts, ok := broker.HeaderTime(h, warren.HeaderFailedAt); !ok || time.Since(ts) > time.Minute {
		t.Errorf("failed-at = %v", h[warren.HeaderFailedAt])
	}
	if _, ok := broker.HeaderTime(h, warren.HeaderEnqueuedAt); !ok {
		t.Error("no enqueued-at")
	}
	if _, ok := broker.HeaderInt(h, warren.HeaderDurationMS); !ok {
		t.Error("no duration")
	}
}

func TestAlwaysFailingTaskDeadLettersAfterMaxAttempts(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, time.Minute)
	rec := newRecorder(func(_ context.Context, t *warren.Task) error { return fmt.Errorf("down (attempt %d)", t.Attempt) })
	e.start(t, rec, worker.Config{Retry: fastRetry(10)})
	id, err := e.prod.Enqueue(ctx, e.queue, "doomed", []byte(`{}`), producer.WithMaxAttempts(3))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if c := rec.next(t, 10*time.Second); c.task.Attempt != i || c.task.MaxAttempts != 3 {
			t.Fatalf("call %d: attempt %d max %d", i, c.task.Attempt, c.task.MaxAttempts)
		}
	}
	dl := e.deadLetters(t, 1, 10*time.Second)[0]
	rec.none(t, 1500*time.Millisecond)
	if dl.MessageId != id || dl.Headers[warren.HeaderDeadReason] != string(warren.ReasonExhausted) || dl.Headers[warren.HeaderError] != "down (attempt 3)" {
		t.Errorf("dead letter: id %s headers %v", dl.MessageId, dl.Headers)
	}
	task, err := broker.Decode(&dl, e.queue)
	if err != nil {
		t.Fatal(err)
	}
	if task.Attempt != 3 || len(task.History) != 3 || task.History[2].Error != "down (attempt 3)" {
		t.Errorf("attempts %d, history %+v", task.Attempt, task.History)
	}
}

func TestPanicIsRecoveredAndRecordedWithItsStack(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, time.Minute)
	rec := newRecorder(func(_ context.Context, t *warren.Task) error {
		if t.Attempt == 1 {
			var m map[string]int
			m["boom"]++ // nil map write: a real runtime panic
		}
		panic("handler exploded")
	})
	e.start(t, rec, worker.Config{Retry: fastRetry(2)})
	if _, err := e.prod.Enqueue(ctx, e.queue, "panicky", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	rec.next(t, 10*time.Second)
	c2 := rec.next(t, 10*time.Second)
	if !strings.Contains(c2.task.LastError, "assignment to entry in nil map") {
		t.Errorf("retry's last error = %q", c2.task.LastError)
	}
	dl := e.deadLetters(t, 1, 10*time.Second)[0]
	stack, _ := dl.Headers[warren.HeaderStack].(string)
	if dl.Headers[warren.HeaderError] != "panic: handler exploded" || !strings.Contains(stack, "pool_integration_test.go") {
		t.Errorf("error %v, stack %q", dl.Headers[warren.HeaderError], stack)
	}
}

func TestUnknownTypeDeadLettersAtOnce(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, time.Minute)
	mux := worker.NewMux()
	mux.HandleFunc("known", func(context.Context, *warren.Task) error { return nil })
	e.start(t, mux, worker.Config{Retry: fastRetry(10)})
	id, err := e.prod.Enqueue(ctx, e.queue, "mystery", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	dl := e.deadLetters(t, 1, 10*time.Second)[0]
	if dl.MessageId != id || dl.Headers[warren.HeaderDeadReason] != string(warren.ReasonUnknownType) ||
		!strings.Contains(dl.Headers[warren.HeaderError].(string), `"mystery"`) {
		t.Errorf("dead letter: %s %v", dl.MessageId, dl.Headers)
	}
}

func TestMalformedMessageDeadLettersWithItsBodyIntact(t *testing.T) {
	e := setup(t)
	rec := newRecorder(nil)
	e.start(t, rec, worker.Config{})
	ch, err := e.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	// The warren-queue header names a queue that does not exist: the dead
	// letter must still go to the dead-letter queue of the queue it came from.
	body := []byte("\x00not a warren task\xff")
	if err := ch.Publish("", e.queue, true, false, amqp.Publishing{MessageId: "foreign-1", Body: body, Headers: amqp.Table{"warren-attempt": "lots", "warren-queue": "no-such-queue-anywhere"}}); err != nil {
		t.Fatal(err)
	}
	dl := e.deadLetters(t, 1, 10*time.Second)[0]
	rec.none(t, 200*time.Millisecond)
	if string(dl.Body) != string(body) || dl.MessageId != "foreign-1" || dl.Headers[warren.HeaderDeadReason] != string(warren.ReasonMalformed) {
		t.Errorf("dead letter: %q %s %v", dl.Body, dl.MessageId, dl.Headers)
	}
	if msg, _ := dl.Headers[warren.HeaderError].(string); !strings.Contains(msg, "no type") || !strings.Contains(msg, "warren-attempt") {
		t.Errorf("error does not say what is wrong: %q", msg)
	}
}

func TestJSONHandlerDeadLettersUndecodablePayload(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, time.Minute)
	type args struct{ N int }
	got := make(chan int, 10)
	mux := worker.NewMux()
	worker.HandleJSON(mux, "typed", func(_ context.Context, a args) error { got <- a.N; return nil })
	e.start(t, mux, worker.Config{Retry: fastRetry(10)})
	if _, err := producer.EnqueueJSON(ctx, e.prod, e.queue, "typed", args{N: 7}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if n != 7 {
			t.Errorf("handler got %d", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("typed handler not called")
	}
	if _, err := e.prod.Enqueue(ctx, e.queue, "typed", []byte(`{"N":"seven"}`)); err != nil {
		t.Fatal(err)
	}
	dl := e.deadLetters(t, 1, 10*time.Second)[0]
	if dl.Headers[warren.HeaderDeadReason] != string(warren.ReasonPermanent) {
		t.Errorf("reason %v, error %v", dl.Headers[warren.HeaderDeadReason], dl.Headers[warren.HeaderError])
	}
}

func TestHandlerTimeoutIsAFailure(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, time.Minute)
	rec := newRecorder(func(ctx context.Context, _ *warren.Task) error {
		<-ctx.Done()
		return ctx.Err()
	})
	e.start(t, rec, worker.Config{HandlerTimeout: 300 * time.Millisecond, Retry: fastRetry(1)})
	if _, err := e.prod.Enqueue(ctx, e.queue, "slow", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	c := rec.next(t, 10*time.Second)
	dl := e.deadLetters(t, 1, 10*time.Second)[0]
	if msg := dl.Headers[warren.HeaderError].(string); !strings.Contains(msg, "handler timeout after 300ms") {
		t.Errorf("error %q", msg)
	}
	if d, _ := broker.HeaderInt(dl.Headers, warren.HeaderDurationMS); d < 250 || d > 5000 {
		t.Errorf("duration %dms for a 300ms timeout (call at %s)", d, c.at)
	}
}

func TestGracefulShutdownLetsTheRunningJobFinish(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, time.Minute)
	release := make(chan struct{})
	finished := make(chan struct{})
	rec := newRecorder(func(ctx context.Context, _ *warren.Task) error {
		<-release
		close(finished)
		return ctx.Err() // nil: shutdown must not cancel a job within the timeout
	})
	stop := e.start(t, rec, worker.Config{ShutdownTimeout: 20 * time.Second})
	if _, err := e.prod.Enqueue(ctx, e.queue, "long", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	rec.next(t, 10*time.Second)
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case <-stopped:
		t.Fatal("Run returned while a job was running")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	<-finished
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if n := e.ready(t, e.queue); n != 0 {
		t.Errorf("the finished job went back to the queue (%d ready)", n)
	}
}

func TestShutdownTimeoutHandsTheJobBackToTheBroker(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, time.Minute)
	rec := newRecorder(func(ctx context.Context, _ *warren.Task) error {
		<-ctx.Done()
		return ctx.Err()
	})
	stop := e.start(t, rec, worker.Config{ShutdownTimeout: 200 * time.Millisecond})
	id, err := e.prod.Enqueue(ctx, e.queue, "stuck", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	rec.next(t, 10*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// A quorum queue applies the requeue asynchronously: allow it a moment.
	if n := e.readyEventually(t, e.queue, 1, 5*time.Second); n != 1 {
		t.Fatalf("%d ready after the cut-off job, want it back on the queue", n)
	}
	if n := e.ready(t, warren.DeadLetterQueue(e.queue)); n != 0 {
		t.Errorf("%d dead letters: a shutdown must not count as a failure", n)
	}
	// A new pool gets it, as the same attempt, marked redelivered.
	rec2 := newRecorder(nil)
	e.start(t, rec2, worker.Config{})
	c := rec2.next(t, 10*time.Second)
	if c.task.ID != id || c.task.Attempt != 1 || !c.task.Redelivered {
		t.Errorf("redelivery: id %s attempt %d redelivered %v", c.task.ID, c.task.Attempt, c.task.Redelivered)
	}
}

func TestDelayedEnqueueWaitsOnTheBroker(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, time.Minute)
	rec := newRecorder(nil)
	e.start(t, rec, worker.Config{})
	start := time.Now()
	id, err := e.prod.Enqueue(ctx, e.queue, "later", []byte(`{}`), producer.WithDelay(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	atID, err := e.prod.Enqueue(ctx, e.queue, "at", []byte(`{}`), producer.WithProcessAt(start.Add(3*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	c := rec.next(t, 10*time.Second)
	if c.task.ID != id {
		t.Fatalf("first call is %s", c.task.ID)
	}
	if d := c.at.Sub(start); d < 1500*time.Millisecond || d > 3500*time.Millisecond {
		t.Errorf("2s delay arrived after %s", d)
	}
	c = rec.next(t, 10*time.Second)
	if d := c.at.Sub(start); c.task.ID != atID || d < 2500*time.Millisecond || d > 4500*time.Millisecond {
		t.Errorf("process-at +3s arrived after %s", d)
	}
}

func TestEnqueueToAMissingQueueFails(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, time.Minute)
	missing := e.queue + "-missing"
	if _, err := e.prod.Enqueue(ctx, missing, "t", []byte(`{}`)); !errors.Is(err, producer.ErrUnroutable) {
		t.Errorf("direct: err = %v, want ErrUnroutable", err)
	}
	if _, err := e.prod.Enqueue(ctx, missing, "t", []byte(`{}`), producer.WithDelay(5*time.Second)); !errors.Is(err, producer.ErrUnroutable) {
		t.Errorf("delayed: err = %v, want ErrUnroutable", err)
	}
	// The producer still works afterwards.
	if _, err := e.prod.Enqueue(ctx, e.queue, "t", []byte(`{}`)); err != nil {
		t.Errorf("enqueue after an unroutable one: %v", err)
	}
}

func TestEnqueueRefusesBadInput(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, time.Minute)
	p, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, MaxPayloadSize: 1024, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if _, err := p.Enqueue(ctx, q, "t", make([]byte, 1025)); !errors.Is(err, producer.ErrPayloadTooLarge) {
		t.Errorf("oversized: %v", err)
	}
	if _, err := p.Enqueue(ctx, q, "", []byte(`{}`)); !errors.Is(err, producer.ErrInvalid) {
		t.Errorf("empty type: %v", err)
	}
	if _, err := p.Enqueue(ctx, "bad queue", "t", []byte(`{}`)); !errors.Is(err, producer.ErrInvalid) {
		t.Errorf("bad queue name: %v", err)
	}
	if _, err := p.Enqueue(ctx, q, "t", nil, producer.WithHeaders(map[string]any{"x-death": 1})); !errors.Is(err, producer.ErrInvalid) {
		t.Errorf("reserved header: %v", err)
	}
	if _, err := p.Enqueue(ctx, q, "t", nil, producer.WithDelay(broker.MaxDelay+time.Hour)); !errors.Is(err, producer.ErrInvalid) {
		t.Errorf("delay too long: %v", err)
	}
	if n := (&env{conn: conn}).ready(t, q); n != 0 {
		t.Errorf("%d messages enqueued by refused calls", n)
	}
}

func TestConcurrentEnqueuesArePipelinedAndAllArrive(t *testing.T) {
	e := setup(t)
	ctx := testbroker.Context(t, 2*time.Minute)
	const goroutines, each = 16, 50
	var mu sync.Mutex
	ids := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id, err := e.prod.Enqueue(ctx, e.queue, "c", []byte(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				ids[id] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(ids) != goroutines*each {
		t.Fatalf("%d distinct IDs, want %d", len(ids), goroutines*each)
	}
	if n := e.ready(t, e.queue); n != goroutines*each {
		t.Fatalf("%d on the queue, want %d", n, goroutines*each)
	}
	jobs := make([]producer.Job, 100)
	for i := range jobs {
		jobs[i] = producer.Job{Queue: e.queue, Type: "b", Payload: []byte(`{}`)}
	}
	jobs[50].Queue = e.queue + "-nope"
	res, err := e.prod.EnqueueBatch(ctx, jobs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if (i == 50) != (r.Err != nil) {
			t.Errorf("batch job %d: err %v", i, r.Err)
		}
	}
	if n := e.ready(t, e.queue); n != goroutines*each+99 {
		t.Errorf("%d on the queue after the batch, want %d", n, goroutines*each+99)
	}
}
