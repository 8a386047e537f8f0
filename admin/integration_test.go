//go:build integration

package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/fleet"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

// bundle is what most tests need: a connection, a declared queue and an Inspector.
type bundle struct {
	conn *broker.Conn
	adm  *Inspector
	q    string
	dlq  string
	ctx  context.Context
}

func setup(t *testing.T, opts broker.QueueOptions) *bundle {
	t.Helper()
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	t.Cleanup(func() { testbroker.DeleteQueue(t, conn, JournalQueue(q)) })
	ctx := testbroker.Context(t, 3*time.Minute)
	if err := broker.Declare(ctx, conn, opts, q); err != nil {
		t.Fatalf("declare %s: %v", q, err)
	}
	return &bundle{conn: conn, adm: New(conn, Config{Logger: testLogger(t)}), q: q, dlq: warren.DeadLetterQueue(q), ctx: ctx}
}

// testLogger sends warnings and errors to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		<-tick.C
	}
}

func ready(t testing.TB, b *bundle, queue string) int {
	t.Helper()
	st, err := broker.Inspect(b.ctx, b.conn, queue)
	if err != nil {
		t.Fatalf("inspect %s: %v", queue, err)
	}
	return st.Ready
}

func waitCount(t testing.TB, b *bundle, queue string, n int) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%s to hold %d messages", queue, n), func() (bool, error) {
		st, err := broker.Inspect(b.ctx, b.conn, queue)
		return err == nil && st.Ready == n, err
	})
}

// publishDead puts n dead letters into b's DLQ, built as a worker builds
// them (see workerDeadLetter), with IDs id-000... and the type typ(i).
func publishDead(t testing.TB, b *bundle, n int, typ func(i int) string) []string {
	t.Helper()
	return publishDeadRange(t, b, 0, n, typ)
}

// publishDeadFrom puts n more dead letters, numbered from first.
func publishDeadFrom(t testing.TB, b *bundle, first, n int) []string {
	t.Helper()
	return publishDeadRange(t, b, first, n, typeAB)
}

func publishDeadRange(t testing.TB, b *bundle, first, n int, typ func(i int) string) []string {
	t.Helper()
	pub, err := broker.NewPublisher(b.conn, 512)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ids := make([]string, n)
	pend := make([]*broker.Pending, n)
	now := time.Now()
	for j := range n {
		i := first + j
		ids[j] = fmt.Sprintf("id-%06d", i)
		task := &warren.Task{ID: ids[j], Type: typ(i), Queue: b.q, Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)),
			Attempt: 1, EnqueuedAt: now, Headers: map[string]any{"tenant": "acme"}}
		d := workerDeadLetter(taskDelivery(task), task, warren.ReasonPermanent, fmt.Sprintf("boom %d", i), "test-host", time.Millisecond, now, "")
		delete(d.Headers, "x-delivery-count")
		msg := broker.Derive(&d, nil)
		if pend[j], err = pub.Publish(b.ctx, "", b.dlq, msg); err != nil {
			t.Fatal(err)
		}
	}
	for _, pd := range pend {
		if err := pd.Wait(b.ctx); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func typeAB(i int) string {
	if i%2 == 0 {
		return "type:a"
	}
	return "type:b"
}

// drain reads and acks every message of queue, in order.
func drain(t testing.TB, b *bundle, queue string) []amqp.Delivery {
	t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
}

func ids(dls []DeadLetter) []string {
	out := make([]string, len(dls))
	for i, dl := range dls {
		out[i] = dl.ID
	}
	return out
}

func deliveryIDs(ds []amqp.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.MessageId
	}
	return out
}

func list(t testing.TB, b *bundle, f Filter) []DeadLetter {
	t.Helper()
	dls, err := b.adm.List(b.ctx, b.q, f)
	if err != nil {
		t.Fatalf("List(%+v): %v", f, err)
	}
	return dls
}

// sameStored compares what the broker stores of two dead letters: body,
// properties and headers, but not x-delivery-count, which RabbitMQ raises
// each time a pass hands a message back.
func sameStored(t testing.TB, before, after DeadLetter) {
	t.Helper()
	strip := func(h map[string]any) map[string]any {
		h = maps.Clone(h)
		delete(h, "x-delivery-count")
		return h
	}
	if before.ID != after.ID || before.Type != after.Type || string(before.Payload) != string(after.Payload) ||
		before.ContentType != after.ContentType || !reflect.DeepEqual(strip(before.Headers), strip(after.Headers)) {
		t.Errorf("dead letter %s changed:\nbefore %+v\nafter  %+v", before.ID, before, after)
	}
}

// runWorker runs a pool on b.q with mux until the returned stop is called.
func runWorker(t testing.TB, b *bundle, mux *worker.Mux, opts broker.QueueOptions) (stop func()) {
	t.Helper()
	pool, err := worker.New(b.conn, mux, worker.Config{
		Queues: []string{b.q}, Concurrency: 4, Hostname: "test-host",
		QueueOptions: opts, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newProducer(t testing.TB, b *bundle, opts broker.QueueOptions) *producer.Producer {
	t.Helper()
	p, err := producer.New(b.ctx, b.conn, producer.Config{Queues: []string{b.q}, QueueOptions: opts, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// TestListFromWorker dead-letters tasks through a real worker pool and
// reads them back with their metadata.
func TestListFromWorker(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	mux := worker.NewMux()
	mux.HandleFunc("card:charge", func(context.Context, *warren.Task) error {
		return retry.Permanent(errors.New("card declined"))
	})
	mux.HandleFunc("pdf:render", func(context.Context, *warren.Task) error { panic("nil font") })
	p := newProducer(t, b, broker.QueueOptions{})
	want := map[string]string{} // id → type
	for i := range 3 {
		id, err := p.Enqueue(b.ctx, b.q, "card:charge", []byte(fmt.Sprintf(`{"card":%d}`, i)), producer.WithMaxAttempts(5))
		if err != nil {
			t.Fatal(err)
		}
		want[id] = "card:charge"
	}
	id, err := p.Enqueue(b.ctx, b.q, "pdf:render", []byte(`{}`), producer.WithMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	want[id] = "pdf:render"
	id, err = p.Enqueue(b.ctx, b.q, "no:such:type", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	want[id] = "no:such:type"
	start := time.Now()
	stop := runWorker(t, b, mux, broker.QueueOptions{})
	waitCount(t, b, b.dlq, len(want))
	stop()

	dls := list(t, b, Filter{})
	if len(dls) != len(want) {
		t.Fatalf("List returned %d dead letters, want %d", len(dls), len(want))
	}
	for _, dl := range dls {
		typ, ok := want[dl.ID]
		if !ok || dl.Type != typ {
			t.Errorf("unexpected dead letter %s of type %s", dl.ID, dl.Type)
			continue
		}
		if dl.Queue != b.q || dl.Attempts != 1 || dl.WorkerHost != "test-host" || len(dl.History) != 1 ||
			dl.FailedAt.Before(start.Add(-time.Second)) || dl.EnqueuedAt.IsZero() || dl.ContentType != "application/json" {
			t.Errorf("metadata of %s: %+v", dl.ID, dl)
		}
		if dl.History[0].Error != dl.Error || dl.History[0].Worker != "test-host" {
			t.Errorf("history of %s: %+v", dl.ID, dl.History)
		}
		switch typ {
		case "card:charge":
			if dl.Reason != warren.ReasonPermanent || !strings.Contains(dl.Error, "card declined") || dl.MaxAttempts != 5 ||
				!strings.HasPrefix(string(dl.Payload), `{"card":`) {
				t.Errorf("card dead letter: %+v", dl)
			}
		case "pdf:render":
			if dl.Reason != warren.ReasonExhausted || !strings.Contains(dl.Error, "nil font") || !strings.Contains(dl.Stack, "goroutine") {
				t.Errorf("panic dead letter: reason %q error %q stack %d bytes", dl.Reason, dl.Error, len(dl.Stack))
			}
		case "no:such:type":
			if dl.Reason != warren.ReasonUnknownType {
				t.Errorf("unknown-type dead letter: reason %q", dl.Reason)
			}
		}
	}
	// Non-destructive: the same dead letters, the same order, the same content.
	if n := ready(t, b, b.dlq); n != len(want) {
		t.Fatalf("after List the DLQ holds %d, want %d", n, len(want))
	}
	again := list(t, b, Filter{})
	if !slices.Equal(ids(again), ids(dls)) {
		t.Fatalf("order changed by List:\nbefore %v\nafter  %v", ids(dls), ids(again))
	}
	for i := range dls {
		sameStored(t, dls[i], again[i])
		if again[i].DeliveryCount != dls[i].DeliveryCount+1 {
			t.Errorf("x-delivery-count of %s: %d then %d; RabbitMQ 3.10 counts each return", dls[i].ID, dls[i].DeliveryCount, again[i].DeliveryCount)
		}
	}
}

// TestListKeepsOrder checks on the real broker that passes hand dead
// letters back in their order, past the quorum client's soft limit of 32.
func TestListKeepsOrder(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	want := publishDead(t, b, 300, typeAB)

	for round := range 3 {
		if got := ids(list(t, b, Filter{})); !slices.Equal(got, want) {
			t.Fatalf("round %d: List order differs from the queue order:\n got %v\nwant %v", round, got[:20], want[:20])
		}
	}
	// Partial passes (a Limit, a Get deep in the queue) too.
	if got := ids(list(t, b, Filter{Limit: 40})); !slices.Equal(got, want[:40]) {
		t.Fatalf("Limit 40: %v", got)
	}
	if _, err := b.adm.Get(b.ctx, b.q, want[150]); err != nil {
		t.Fatal(err)
	}
	if got := ids(list(t, b, Filter{Types: []string{"type:b"}})); len(got) != 150 {
		t.Fatalf("type filter: %d", len(got))
	}
	// The broker's own order, read destructively, is still the original.
	if got := deliveryIDs(drain(t, b, b.dlq)); !slices.Equal(got, want) {
		t.Fatalf("queue order after passes differs:\n got %v\nwant %v", got[:20], want[:20])
	}
}

func TestListFilters(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	all := publishDead(t, b, 10, typeAB)
	for _, c := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"empty is all", Filter{}, all},
		{"all", Filter{All: true}, all},
		{"ids", Filter{IDs: []string{all[7], all[2], "nope"}}, []string{all[2], all[7]}},
		{"type", Filter{Types: []string{"type:b"}}, []string{all[1], all[3], all[5], all[7], all[9]}},
		{"types", Filter{Types: []string{"type:a", "type:b"}}, all},
		{"ids and type", Filter{IDs: []string{all[2], all[3]}, Types: []string{"type:b"}}, []string{all[3]}},
		{"limit", Filter{Limit: 3}, all[:3]},
		{"type and limit", Filter{Types: []string{"type:a"}, Limit: 2}, []string{all[0], all[2]}},
		{"no match", Filter{Types: []string{"type:z"}}, []string{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ids(list(t, b, c.f)); !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
	if _, err := b.adm.List(b.ctx, b.q, Filter{Limit: -1}); err == nil {
		t.Error("negative Limit accepted")
	}
	if _, err := b.adm.List(b.ctx, "no-such-queue-"+b.q, Filter{}); !errors.Is(err, broker.ErrQueueNotFound) {
		t.Errorf("List of a missing queue: %v, want ErrQueueNotFound", err)
	}
	if n := ready(t, b, b.dlq); n != 10 {
		t.Errorf("DLQ holds %d after the lists, want 10", n)
	}
}

func TestGet(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	all := publishDead(t, b, 50, typeAB)
	dl, err := b.adm.Get(b.ctx, b.q, all[33])
	if err != nil {
		t.Fatal(err)
	}
	if dl.ID != all[33] || dl.Type != "type:b" || string(dl.Payload) != `{"n":33}` || dl.Error != "boom 33" ||
		dl.Reason != warren.ReasonPermanent || dl.Headers["tenant"] != "acme" {
		t.Errorf("Get: %+v", dl)
	}
	if _, err := b.adm.Get(b.ctx, b.q, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
	if _, err := b.adm.Get(b.ctx, b.q, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(\"\") = %v, want ErrNotFound", err)
	}
	if got := ids(list(t, b, Filter{})); !slices.Equal(got, all) {
		t.Errorf("Get changed the DLQ: %v", got)
	}
}

// TestReplayByID replays one task through a real worker: it fails for
// good, is replayed, and succeeds; the other dead letters stay as they were.
func TestReplayByID(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	var fixed sync.Map // id → true once the "bug" is fixed for it
	processed := make(chan *warren.Task, 10)
	mux := worker.NewMux()
	mux.HandleFunc("report:build", func(_ context.Context, task *warren.Task) error {
		if _, ok := fixed.Load(task.ID); !ok {
			return retry.Permanent(errors.New("template missing"))
		}
		processed <- task
		return nil
	})
	p := newProducer(t, b, broker.QueueOptions{})
	var all []string
	for i := range 5 {
		id, err := p.Enqueue(b.ctx, b.q, "report:build", []byte(fmt.Sprintf(`{"report":%d}`, i)), producer.WithMaxAttempts(3))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, id)
	}
	stop := runWorker(t, b, mux, broker.QueueOptions{})
	waitCount(t, b, b.dlq, 5)
	stop()

	before := list(t, b, Filter{})
	target := before[2].ID
	res, err := b.adm.Replay(b.ctx, b.q, Filter{IDs: []string{target}}, ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 1 || res.Failed != 0 || res.Skipped != 4 || !slices.Equal(res.IDs, []string{target}) {
		t.Fatalf("Replay: %+v", res)
	}
	// The replayed message, as stored in the queue.
	msgs := peek(t, b, b.q)
	if len(msgs) != 1 {
		t.Fatalf("queue holds %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.MessageId != target || string(m.Body) != string(before[2].Payload) || m.Type != "report:build" || m.ContentType != "application/json" {
		t.Errorf("replayed message: %+v", m)
	}
	checkReplayHeaders(t, m, 1, b.q)
	if !reflect.DeepEqual(m.Headers[warren.HeaderHistory], before[2].Headers[warren.HeaderHistory]) {
		t.Errorf("history not kept: %v", m.Headers[warren.HeaderHistory])
	}
	if m.Headers[warren.HeaderMaxAttempts] != before[2].Headers[warren.HeaderMaxAttempts] {
		t.Errorf("max attempts not kept: %v", m.Headers[warren.HeaderMaxAttempts])
	}
	if !m.Timestamp.Equal(time.Unix(before[2].EnqueuedAt.Unix(), 0)) {
		t.Errorf("timestamp changed: %v vs %v", m.Timestamp, before[2].EnqueuedAt)
	}

	// The others are untouched, in order.
	after := list(t, b, Filter{})
	if len(after) != 4 {
		t.Fatalf("DLQ holds %d, want 4", len(after))
	}
	j := 0
	for _, dl := range before {
		if dl.ID == target {
			continue
		}
		if after[j].ID != dl.ID {
			t.Fatalf("order of the rest changed: %v", ids(after))
		}
		sameStored(t, dl, after[j])
		j++
	}

	// Fix the bug: a worker runs the replayed task as a first attempt.
	fixed.Store(target, true)
	stop = runWorker(t, b, mux, broker.QueueOptions{})
	select {
	case task := <-processed:
		if task.ID != target || task.Attempt != 1 || len(task.History) != 1 || string(task.Payload) != string(before[2].Payload) {
			t.Errorf("worker ran %+v", task)
		}
	case <-b.ctx.Done():
		t.Fatal("the replayed task never ran")
	}
	stop()
	waitCount(t, b, b.q, 0)
	if n := ready(t, b, b.dlq); n != 4 {
		t.Errorf("DLQ holds %d, want 4", n)
	}
}

// peek reads every message of queue and hands them back.
func peek(t testing.TB, b *bundle, queue string) []amqp.Delivery {
	t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

func checkReplayHeaders(t testing.TB, m amqp.Delivery, replayCount int, queue string) {
	t.Helper()
	h := m.Headers
	if n, _ := broker.HeaderInt(h, warren.HeaderAttempt); n != 1 {
		t.Errorf("attempt = %v, want 1", h[warren.HeaderAttempt])
	}
	if n, _ := broker.HeaderInt(h, warren.HeaderReplayCount); n != int64(replayCount) {
		t.Errorf("replay count = %v, want %d", h[warren.HeaderReplayCount], replayCount)
	}
	if at, ok := broker.HeaderTime(h, warren.HeaderReplayedAt); !ok || time.Since(at) > time.Minute {
		t.Errorf("replayed-at = %v", h[warren.HeaderReplayedAt])
	}
	if broker.HeaderString(h, warren.HeaderQueue) != queue {
		t.Errorf("queue header = %v, want %s", h[warren.HeaderQueue], queue)
	}
	for _, k := range deadLetterHeaders {
		if _, ok := h[k]; ok {
			t.Errorf("dead-letter header %s kept", k)
		}
	}
	for k := range h {
		if strings.HasPrefix(k, "x-") && k != "x-delivery-count" {
			t.Errorf("broker header %s kept: %v", k, h[k])
		}
	}
}

// TestReplayCountsRoundTrips: a task that fails again after a replay comes
// back with warren-replay-count 1, and the next replay makes it 2.
func TestReplayCountsRoundTrips(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	mux := worker.NewMux()
	mux.HandleFunc("always:fails", func(context.Context, *warren.Task) error {
		return retry.Permanent(errors.New("still broken"))
	})
	p := newProducer(t, b, broker.QueueOptions{})
	id, err := p.Enqueue(b.ctx, b.q, "always:fails", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	stop := runWorker(t, b, mux, broker.QueueOptions{})
	defer stop()
	for round := 1; round <= 2; round++ {
		waitCount(t, b, b.dlq, 1)
		dl, err := b.adm.Get(b.ctx, b.q, id)
		if err != nil {
			t.Fatal(err)
		}
		if dl.ReplayCount != round-1 || dl.Reason != warren.ReasonPermanent || dl.Attempts != 1 || len(dl.History) != round {
			t.Fatalf("round %d: dead letter %+v", round, dl)
		}
		res, err := b.adm.Replay(b.ctx, b.q, Filter{IDs: []string{id}}, ReplayOptions{})
		if err != nil || res.Replayed != 1 {
			t.Fatalf("round %d: Replay = %+v, %v", round, res, err)
		}
	}
	waitCount(t, b, b.dlq, 1)
	dl, err := b.adm.Get(b.ctx, b.q, id)
	if err != nil {
		t.Fatal(err)
	}
	if dl.ReplayCount != 2 || len(dl.History) != 3 {
		t.Errorf("after two replays: replay count %d, history %d", dl.ReplayCount, len(dl.History))
	}
}

func TestReplayAllAndDryRun(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	all := publishDead(t, b, 120, typeAB)
	before := list(t, b, Filter{})

	res, err := b.adm.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 120 || res.Failed != 0 || res.Skipped != 0 || !slices.Equal(res.IDs, all) {
		t.Fatalf("dry run: %+v", res)
	}
	res, err = b.adm.Replay(b.ctx, b.q, Filter{Types: []string{"type:b"}, Limit: 10}, ReplayOptions{DryRun: true})
	if err != nil || res.Replayed != 10 || res.Skipped != 10 {
		t.Fatalf("dry run by type: %+v, %v", res, err)
	}
	if n := ready(t, b, b.q); n != 0 {
		t.Fatalf("a dry run published %d messages", n)
	}
	after := list(t, b, Filter{})
	if !slices.Equal(ids(after), all) {
		t.Fatalf("a dry run changed the DLQ order")
	}
	for i := range after {
		sameStored(t, before[i], after[i])
	}

	res, err = b.adm.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 120 || res.Failed != 0 || !slices.Equal(res.IDs, all) {
		t.Fatalf("replay all: %+v", res)
	}
	if n := ready(t, b, b.dlq); n != 0 {
		t.Fatalf("DLQ holds %d after replay --all", n)
	}
	msgs := drain(t, b, b.q)
	if got := deliveryIDs(msgs); !slices.Equal(got, all) {
		t.Fatalf("replayed in another order or not all: %d messages", len(got))
	}
	for i, m := range msgs {
		checkReplayHeaders(t, m, 1, b.q)
		if string(m.Body) != string(before[i].Payload) || m.Headers["tenant"] != "acme" {
			t.Fatalf("message %s changed: %+v", m.MessageId, m)
		}
	}
}

func TestReplayByTypeLeavesTheRest(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	all := publishDead(t, b, 60, typeAB)
	before := list(t, b, Filter{})
	res, err := b.adm.Replay(b.ctx, b.q, Filter{Types: []string{"type:a"}}, ReplayOptions{})
	if err != nil || res.Replayed != 30 || res.Skipped != 30 {
		t.Fatalf("Replay = %+v, %v", res, err)
	}
	after := list(t, b, Filter{})
	var wantRest []DeadLetter
	for _, dl := range before {
		if dl.Type == "type:b" {
			wantRest = append(wantRest, dl)
		}
	}
	if len(after) != len(wantRest) {
		t.Fatalf("DLQ holds %d, want %d", len(after), len(wantRest))
	}
	for i := range after {
		sameStored(t, wantRest[i], after[i])
	}
	if got := deliveryIDs(drain(t, b, b.q)); len(got) != 30 || got[0] != all[0] {
		t.Fatalf("queue got %v", got)
	}
}

func TestReplayToMissingQueueFails(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	all := publishDead(t, b, 5, typeAB)
	res, err := b.adm.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{ToQueue: "missing-" + b.q})
	if err == nil || !errors.Is(err, broker.ErrQueueNotFound) {
		t.Fatalf("Replay to a missing queue: %v", err)
	}
	if res.Replayed != 0 || res.Failed != 5 {
		t.Fatalf("result: %+v", res)
	}
	if got := ids(list(t, b, Filter{})); !slices.Equal(got, all) {
		t.Fatalf("DLQ after a failed replay: %v", got)
	}
	if _, err := b.adm.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{ToQueue: b.dlq}); err == nil {
		t.Error("replay into the DLQ itself accepted")
	}
	if _, err := b.adm.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{ToQueue: "bad name"}); !errors.Is(err, warren.ErrInvalidQueueName) {
		t.Errorf("bad ToQueue: %v", err)
	}
}

// TestBrokerDeadLettered: a task whose workers keep dying reaches the DLQ
// through the broker's x-delivery-limit, with no Warren metadata. It is
// listed with the broker's reason, and replays clean.
func TestBrokerDeadLettered(t *testing.T) {
	opts := broker.QueueOptions{DeliveryLimit: 1}
	b := setup(t, opts)
	p := newProducer(t, b, opts)
	var all []string
	for i := range 2 {
		id, err := p.Enqueue(b.ctx, b.q, "video:encode", []byte(fmt.Sprintf(`{"video":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, id)
	}
	// "Crash" holding the tasks: take them without acking and close the
	// channel, until the broker gives up on them.
	eventually(t, 30*time.Second, "broker dead-lettering", func() (bool, error) {
		ch, err := b.conn.Channel()
		if err != nil {
			return false, err
		}
		for range 2 {
			if _, _, err := ch.Get(b.q, false); err != nil {
				return false, err
			}
		}
		if err := ch.Close(); err != nil {
			return false, err
		}
		st, err := broker.Inspect(b.ctx, b.conn, b.dlq)
		return err == nil && st.Ready == 2, err
	})

	dls := list(t, b, Filter{})
	if len(dls) != 2 {
		t.Fatalf("List: %d", len(dls))
	}
	for _, dl := range dls {
		if dl.Reason != warren.ReasonDeliveryLimit || dl.Queue != b.q || dl.FailedAt.IsZero() || dl.Error != "" || dl.Attempts != 1 {
			t.Errorf("broker dead letter: %+v", dl)
		}
		if _, ok := dl.Headers["x-death"]; !ok {
			t.Errorf("no x-death in %v", dl.Headers)
		}
	}

	// Replay one elsewhere to look at it: x-death is gone.
	aux := testbroker.Queue(t, b.conn)
	if err := broker.DeclareQueue(b.ctx, b.conn, aux, broker.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := b.adm.Replay(b.ctx, b.q, Filter{IDs: []string{all[0]}}, ReplayOptions{ToQueue: aux})
	if err != nil || res.Replayed != 1 {
		t.Fatalf("Replay = %+v, %v", res, err)
	}
	msgs := drain(t, b, aux)
	if len(msgs) != 1 {
		t.Fatalf("aux holds %d", len(msgs))
	}
	checkReplayHeaders(t, msgs[0], 1, aux)

	// Replay the other to its queue, where a healthy worker runs it.
	res, err = b.adm.Replay(b.ctx, b.q, Filter{IDs: []string{all[1]}}, ReplayOptions{})
	if err != nil || res.Replayed != 1 {
		t.Fatalf("Replay = %+v, %v", res, err)
	}
	ran := make(chan *warren.Task, 1)
	mux := worker.NewMux()
	mux.HandleFunc("video:encode", func(_ context.Context, task *warren.Task) error {
		ran <- task
		return nil
	})
	stop := runWorker(t, b, mux, opts)
	select {
	case task := <-ran:
		if task.ID != all[1] || task.Attempt != 1 || task.DeliveryCount != 0 {
			t.Errorf("worker ran %+v", task)
		}
	case <-b.ctx.Done():
		t.Fatal("the replayed task never ran")
	}
	stop()
	if n := ready(t, b, b.dlq); n != 0 {
		t.Errorf("DLQ holds %d", n)
	}
}

// TestBusy: while one operation holds a DLQ, every other one on it fails
// with ErrBusy, from this connection or another; then it is free again.
func TestBusy(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	all := publishDead(t, b, 20, typeAB)
	other := New(testbroker.Dial(t), Config{Logger: testLogger(t)})

	holding := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		first := true
		done <- b.adm.Each(b.ctx, b.q, Filter{}, func(DeadLetter) error {
			if first {
				first = false
				close(holding)
				<-release
			}
			return nil
		})
	}()
	<-holding
	for name, a := range map[string]*Inspector{"same connection": b.adm, "other connection": other} {
		if _, err := a.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{}); !errors.Is(err, ErrBusy) {
			t.Errorf("%s: Replay = %v, want ErrBusy", name, err)
		}
		if _, err := a.Purge(b.ctx, b.q, Filter{All: true}); !errors.Is(err, ErrBusy) {
			t.Errorf("%s: Purge = %v, want ErrBusy", name, err)
		}
		if _, err := a.List(b.ctx, b.q, Filter{}); !errors.Is(err, ErrBusy) {
			t.Errorf("%s: List = %v, want ErrBusy", name, err)
		}
	}
	_, err := other.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{})
	t.Logf("ErrBusy reads: %v", err)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	res, err := other.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{})
	if err != nil || res.Replayed != len(all) {
		t.Fatalf("Replay after the lock was freed: %+v, %v", res, err)
	}
}

// TestConcurrentReplays: two replays of everything at once, from two
// connections, replay each dead letter exactly once between them.
func TestConcurrentReplays(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	all := publishDead(t, b, 200, typeAB)
	admins := []*Inspector{b.adm, New(testbroker.Dial(t), Config{Logger: testLogger(t)})}
	results := make([]ReplayResult, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, a := range admins {
		wg.Go(func() { results[i], errs[i] = a.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{}) })
	}
	wg.Wait()
	total := 0
	for i := range 2 {
		if errs[i] != nil && !errors.Is(errs[i], ErrBusy) {
			t.Fatalf("replay %d: %v", i, errs[i])
		}
		total += results[i].Replayed
		t.Logf("replay %d: replayed %d, err %v", i, results[i].Replayed, errs[i])
	}
	if total != len(all) {
		t.Fatalf("replayed %d in total, want %d", total, len(all))
	}
	got := deliveryIDs(drain(t, b, b.q))
	slices.Sort(got)
	if !slices.Equal(got, all) {
		t.Fatalf("queue holds %d messages, want each of %d once", len(got), len(all))
	}
}

// TestKilledHolderFreesTheLock: an operation whose connection dies (a
// killed CLI) frees the lock and loses nothing.
func TestKilledHolderFreesTheLock(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	all := publishDead(t, b, 50, typeAB)
	conn2 := testbroker.Dial(t)
	victim := New(conn2, Config{Logger: quietLogger()})
	holding := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		n := 0
		done <- victim.Each(b.ctx, b.q, Filter{}, func(DeadLetter) error {
			if n++; n == 30 {
				close(holding)
				<-conn2.Done() // "killed" while holding 30 dead letters
			}
			return nil
		})
	}()
	<-holding
	if _, err := b.adm.List(b.ctx, b.q, Filter{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("List while held: %v", err)
	}
	if err := conn2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Log("the victim's pass ended without error")
	}
	waitCount(t, b, b.dlq, 50)
	got := ids(list(t, b, Filter{}))
	slices.Sort(got)
	if !slices.Equal(got, all) {
		t.Fatalf("after the holder died the DLQ holds %d, want all %d", len(got), len(all))
	}
}

// TestInterruptedReplayLosesNothing cancels a replay midway: every task is
// in the queue or still in the DLQ (at least once).
func TestInterruptedReplayLosesNothing(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	all := publishDead(t, b, 400, typeAB)
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	go func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			if st, err := broker.Inspect(b.ctx, b.conn, b.q); err != nil || st.Ready >= 20 {
				cancel()
				return
			}
		}
	}()
	res, err := b.adm.Replay(ctx, b.q, Filter{All: true}, ReplayOptions{})
	t.Logf("interrupted replay: %d replayed, err %v", res.Replayed, err)
	if res.Replayed == len(all) {
		t.Log("the replay finished before the cancel")
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted replay returned %v, want context.Canceled", err)
	}
	inQueue := deliveryIDs(drain(t, b, b.q))
	if len(inQueue) != res.Replayed {
		t.Errorf("queue holds %d, result says %d replayed", len(inQueue), res.Replayed)
	}
	waitCount(t, b, b.dlq, len(all)-res.Replayed)
	inDLQ := ids(list(t, b, Filter{}))
	seen := map[string]int{}
	for _, id := range slices.Concat(inQueue, inDLQ) {
		seen[id]++
	}
	for _, id := range all {
		if seen[id] == 0 {
			t.Errorf("task %s lost", id)
		}
		if seen[id] > 1 {
			t.Logf("task %s is both replayed and still dead (the documented duplicate window)", id)
		}
	}
}

func TestPurge(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	all := publishDead(t, b, 60, typeAB)
	if _, err := b.adm.Purge(b.ctx, b.q, Filter{}); !errors.Is(err, ErrNoSelector) {
		t.Errorf("Purge without selector: %v", err)
	}
	if _, err := b.adm.Replay(b.ctx, b.q, Filter{Limit: 5}, ReplayOptions{}); !errors.Is(err, ErrNoSelector) {
		t.Errorf("Replay without selector: %v", err)
	}
	before := list(t, b, Filter{})

	res, err := b.adm.Purge(b.ctx, b.q, Filter{IDs: []string{all[3], all[40], "missing"}})
	if err != nil || res.Purged != 2 || !slices.Equal(res.IDs, []string{all[3], all[40]}) {
		t.Fatalf("Purge by ID: %+v, %v", res, err)
	}
	res, err = b.adm.Purge(b.ctx, b.q, Filter{Types: []string{"type:b"}, Limit: 5})
	if err != nil || res.Purged != 5 || !slices.Equal(res.IDs, []string{all[1], all[5], all[7], all[9], all[11]}) {
		t.Fatalf("Purge by type with limit: %+v, %v", res, err)
	}
	gone := map[string]bool{all[3]: true, all[40]: true, all[1]: true, all[5]: true, all[7]: true, all[9]: true, all[11]: true}
	after := list(t, b, Filter{})
	var want []DeadLetter
	for _, dl := range before {
		if !gone[dl.ID] {
			want = append(want, dl)
		}
	}
	if len(after) != len(want) {
		t.Fatalf("DLQ holds %d, want %d", len(after), len(want))
	}
	for i := range after {
		sameStored(t, want[i], after[i])
	}
	res, err = b.adm.Purge(b.ctx, b.q, Filter{All: true})
	if err != nil || res.Purged != len(want) || !slices.Equal(res.IDs, ids(want)) {
		t.Fatalf("Purge all: %+v, %v", res, err)
	}
	if n := ready(t, b, b.dlq); n != 0 {
		t.Fatalf("DLQ holds %d after purge all", n)
	}
	if n := ready(t, b, b.q); n != 0 {
		t.Fatalf("purge published %d messages", n)
	}
}

// TestPurgeAcksAreFinal: many acks in one pass all take effect (RabbitMQ's
// quorum client loses stashed acks if the channel closes too early).
func TestPurgeAcksAreFinal(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	publishDead(t, b, 2000, typeAB)
	res, err := b.adm.Purge(b.ctx, b.q, Filter{All: true})
	if err != nil || res.Purged != 2000 {
		t.Fatalf("Purge: %+v, %v", res, err)
	}
	if n := ready(t, b, b.dlq); n != 0 {
		t.Fatalf("%d purged dead letters came back", n)
	}
}

func TestQueues(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	p := newProducer(t, b, broker.QueueOptions{})
	for range 3 {
		if _, err := p.Enqueue(b.ctx, b.q, "x", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Enqueue(b.ctx, b.q, "x", []byte(`{}`), producer.WithDelay(4*time.Second)); err != nil {
		t.Fatal(err)
	}
	publishDead(t, b, 2, typeAB)
	// Hold one task unacked, as a worker would.
	ch, err := b.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(b.q, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-deliveries
	missing := "missing-" + b.q
	infos, err := b.adm.Queues(b.ctx, []string{b.q, missing})
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Fatalf("Queues: %+v", infos)
	}
	got := infos[0]
	t.Logf("Queues: %+v", got)
	if got.Name != b.q || !got.Exists || got.Ready != 2 || got.DeadLetters != 2 || got.Consumers != 1 || got.Delayed < 1 {
		t.Errorf("Queues(%s) = %+v", b.q, got)
	}
	if _, lerr := exec.LookPath("rabbitmqctl"); lerr == nil && got.Unacked != -1 {
		// rabbitmqctl reports the broker's statistics, refreshed every few seconds.
		eventually(t, 20*time.Second, "rabbitmqctl to count the unacked task", func() (bool, error) {
			infos, err := b.adm.Queues(b.ctx, []string{b.q})
			return err == nil && infos[0].Unacked == 1, err
		})
	} else if lerr == nil {
		t.Log("rabbitmqctl is on PATH but could not report; Unacked unknown")
	} else if got.Unacked != -1 {
		t.Errorf("Unacked = %d without rabbitmqctl, want -1", got.Unacked)
	}
	if m := infos[1]; m.Name != missing || m.Exists || m.Ready != 0 || m.DeadLetters != 0 || m.Unacked != -1 || m.Delayed != got.Delayed {
		t.Errorf("Queues(missing) = %+v", m)
	}
	if _, err := b.adm.Queues(b.ctx, []string{"bad name"}); !errors.Is(err, warren.ErrInvalidQueueName) {
		t.Errorf("bad name: %v", err)
	}
	// Paused follows fleet.Pause and fleet.Resume.
	if got.Paused {
		t.Errorf("paused before any pause: %+v", got)
	}
	t.Cleanup(func() {
		_, _ = broker.DeleteQueue(context.Background(), b.conn, fleet.Marker(b.q), broker.DeleteOptions{})
	})
	for _, paused := range []bool{true, false} {
		do := fleet.Resume
		if paused {
			do = fleet.Pause
		}
		if err := do(b.ctx, b.conn, b.q); err != nil {
			t.Fatal(err)
		}
		infos, err := b.adm.Queues(b.ctx, []string{b.q})
		if err != nil || infos[0].Paused != paused {
			t.Errorf("after pause %v: %+v, %v", paused, infos, err)
		}
	}
	// A failing rabbitmqctl is not an error.
	b.adm.counts = func(context.Context, string) (map[string]queueCounts, error) { return nil, errors.New("no node") }
	infos, err = b.adm.Queues(b.ctx, []string{b.q})
	if err != nil || infos[0].Unacked != -1 || infos[0].DelayedHeld != -1 {
		t.Errorf("with rabbitmqctl failing: %+v, %v", infos, err)
	}
	// Messages a delay level holds beyond its ready and unacked ones are
	// dead-lettered and not yet confirmed by their queue: DelayedHeld.
	b.adm.counts = func(context.Context, string) (map[string]queueCounts, error) {
		return map[string]queueCounts{
			b.q:                         {Messages: 5, Ready: 2, Unacked: 3},
			broker.DelayExchange(0):     {Messages: 29},
			broker.DelayExchange(3):     {Messages: 4, Ready: 3},
			warren.DeadLetterQueue(b.q): {Messages: 2, Ready: 2},
		}, nil
	}
	infos, err = b.adm.Queues(b.ctx, []string{b.q})
	if err != nil || infos[0].Unacked != 3 || infos[0].DelayedHeld != 30 {
		t.Errorf("with rabbitmqctl counts: %+v, %v; want Unacked 3, DelayedHeld 30", infos, err)
	}
	_ = ch.Close()
	// Let the delayed task arrive before the queue is deleted.
	waitCount(t, b, b.q, 4)
}

// TestArrivalsDuringAPass: dead letters that arrive while a pass runs are
// kept, in their own order, and the old ones keep theirs.
func TestArrivalsDuringAPass(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	old := publishDead(t, b, 100, typeAB)
	var arrived []string
	calls := 0
	err := b.adm.Each(b.ctx, b.q, Filter{}, func(dl DeadLetter) error {
		if calls++; calls == 50 {
			arrived = publishDeadFrom(t, b, 1000, 10)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 100 {
		t.Fatalf("the pass visited %d dead letters, want the 100 it began with", calls)
	}
	got := deliveryIDs(drain(t, b, b.dlq))
	if len(got) != 110 {
		t.Fatalf("DLQ holds %d, want 110", len(got))
	}
	var gotOld, gotNew []string
	for _, id := range got {
		if slices.Contains(arrived, id) {
			gotNew = append(gotNew, id)
		} else {
			gotOld = append(gotOld, id)
		}
	}
	if !slices.Equal(gotOld, old) || !slices.Equal(gotNew, arrived) {
		t.Fatalf("order after a pass with arrivals:\n%v", got)
	}
	t.Logf("queue after a pass with arrivals: %v", got)
}

// TestClassicDLQ: a dead-letter queue that is not a standard Warren one
// (here classic, which requeues in place) is still read correctly.
func TestClassicDLQ(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, 2*time.Minute)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(warren.DeadLetterQueue(q), true, false, false, false, amqp.Table{"x-queue-type": "classic"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "classic"}); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()
	b := &bundle{conn: conn, adm: New(conn, Config{Logger: testLogger(t)}), q: q, dlq: warren.DeadLetterQueue(q), ctx: ctx}
	all := publishDead(t, b, 80, typeAB)
	for range 2 {
		if got := ids(list(t, b, Filter{})); !slices.Equal(got, all) {
			t.Fatalf("List of a classic DLQ: %v", got)
		}
	}
	res, err := b.adm.Replay(ctx, q, Filter{Types: []string{"type:a"}}, ReplayOptions{})
	if err != nil || res.Replayed != 40 {
		t.Fatalf("Replay: %+v, %v", res, err)
	}
	pres, err := b.adm.Purge(ctx, q, Filter{IDs: []string{all[1]}})
	if err != nil || pres.Purged != 1 {
		t.Fatalf("Purge: %+v, %v", pres, err)
	}
	var want []string
	for i, id := range all {
		if i%2 == 1 && i != 1 {
			want = append(want, id)
		}
	}
	if got := deliveryIDs(drain(t, b, b.dlq)); !slices.Equal(got, want) {
		t.Fatalf("classic DLQ after replay and purge: %v", got)
	}
	if got := deliveryIDs(drain(t, b, q)); len(got) != 40 {
		t.Fatalf("queue holds %d replayed, want 40", len(got))
	}
}
