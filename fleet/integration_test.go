//go:build integration

package fleet_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/fleet"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/worker"
)

var quiet = slog.New(slog.NewTextHandler(logOut(), &slog.HandlerOptions{Level: slog.LevelDebug}))

func logOut() io.Writer {
	if os.Getenv("WARREN_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

// declared returns a Warren queue that exists, deleted (with its pause
// marker) when the test ends.
func declared(t *testing.T, conn *broker.Conn) string {
	t.Helper()
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, 30*time.Second)
	if err := broker.Declare(ctx, conn, broker.QueueOptions{}, q); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = broker.DeleteQueue(ctx, conn, fleet.Marker(q), broker.DeleteOptions{})
	})
	return q
}

func TestPauseResumePaused(t *testing.T) {
	conn := testbroker.Dial(t)
	ctx := testbroker.Context(t, time.Minute)
	q := declared(t, conn)
	paused := func() bool {
		t.Helper()
		p, err := fleet.Paused(ctx, conn, q)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if paused() {
		t.Fatal("paused at first")
	}
	if err := fleet.Resume(ctx, conn, q); err != nil {
		t.Fatalf("resuming a running queue: %v", err)
	}
	for range 2 { // pausing twice is no error
		if err := fleet.Pause(ctx, conn, q); err != nil {
			t.Fatal(err)
		}
		if !paused() {
			t.Fatal("not paused after Pause")
		}
	}
	// Nothing changes for producers.
	p, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if _, err := p.Enqueue(ctx, q, "t", []byte(`{}`)); err != nil {
		t.Fatalf("enqueue while paused: %v", err)
	}
	if st, err := broker.Inspect(ctx, conn, q); err != nil || st.Ready != 1 {
		t.Fatalf("after an enqueue while paused: %+v, %v", st, err)
	}
	if err := fleet.Resume(ctx, conn, q); err != nil {
		t.Fatal(err)
	}
	if paused() {
		t.Fatal("paused after Resume")
	}
}

func TestPauseErrors(t *testing.T) {
	conn := testbroker.Dial(t)
	ctx := testbroker.Context(t, time.Minute)
	missing := testbroker.Queue(t, conn) // never declared
	if err := fleet.Pause(ctx, conn, missing); !errors.Is(err, fleet.ErrQueueNotFound) || !errors.Is(err, broker.ErrQueueNotFound) {
		t.Errorf("Pause of a missing queue: %v", err)
	}
	if _, err := broker.Inspect(ctx, conn, fleet.Marker(missing)); !errors.Is(err, broker.ErrQueueNotFound) {
		t.Errorf("Pause of a missing queue left a marker: %v", err)
	}
	if err := fleet.Resume(ctx, conn, missing); !errors.Is(err, fleet.ErrQueueNotFound) {
		t.Errorf("Resume of a missing queue: %v", err)
	}
	if p, err := fleet.Paused(ctx, conn, missing); err != nil || p {
		t.Errorf("Paused of a missing queue: %v, %v", p, err)
	}
	for _, bad := range []string{"", "warren.x", "a b", "amq.q"} {
		if err := fleet.Pause(ctx, conn, bad); !errors.Is(err, warren.ErrInvalidQueueName) {
			t.Errorf("Pause(%q): %v", bad, err)
		}
		if err := fleet.Resume(ctx, conn, bad); !errors.Is(err, warren.ErrInvalidQueueName) {
			t.Errorf("Resume(%q): %v", bad, err)
		}
		if _, err := fleet.Paused(ctx, conn, bad); !errors.Is(err, warren.ErrInvalidQueueName) {
			t.Errorf("Paused(%q): %v", bad, err)
		}
	}
	// A queue deleted while paused: Resume still removes the marker.
	q := declared(t, conn)
	if err := fleet.Pause(ctx, conn, q); err != nil {
		t.Fatal(err)
	}
	testbroker.DeleteQueue(t, conn, q)
	if err := fleet.Resume(ctx, conn, q); !errors.Is(err, fleet.ErrQueueNotFound) {
		t.Errorf("Resume of a queue deleted while paused: %v", err)
	}
	if p, err := fleet.Paused(ctx, conn, q); err != nil || p {
		t.Errorf("the marker outlived Resume: %v, %v", p, err)
	}
}

// runRoster runs a roster on its own connection until the test ends.
func runRoster(t *testing.T) *fleet.Roster {
	t.Helper()
	return runRosterOn(t, testbroker.Dial(t))
}

func runRosterOn(t *testing.T, conn *broker.Conn) *fleet.Roster {
	t.Helper()
	r := fleet.NewRoster(conn, fleet.RosterConfig{Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("roster: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("roster: Run did not return within 10s of cancel")
		}
	})
	return r
}

// find returns the roster's worker id, once cond holds of it, failing the
// test after d.
func find(t *testing.T, r *fleet.Roster, id string, d time.Duration, what string, cond func(w fleet.Worker) bool) fleet.Worker {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last *fleet.Worker
	for {
		for _, w := range r.Workers() {
			if w.ID == id {
				last = &w
				if cond(w) {
					return w
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, worker %s is not %s: %+v", d, id, what, last)
		}
		<-tick.C
	}
}

// pool runs a worker pool on queue, on a connection of its own, that
// beats every interval and blocks tasks of type "block" until release is
// closed. stop cancels Run and waits for it.
func startPool(t *testing.T, queue string, interval time.Duration, release <-chan struct{}) (p *worker.Pool, conn *broker.Conn, stop func() error) {
	t.Helper()
	conn = testbroker.Dial(t)
	h := worker.HandlerFunc(func(ctx context.Context, task *warren.Task) error {
		if task.Type == "block" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	})
	p, err := worker.New(conn, h, worker.Config{Queues: []string{queue}, Concurrency: 3, HeartbeatInterval: interval,
		Version: "v-test", ShutdownTimeout: 5 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	var runErr error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("Run did not return within 30s")
			}
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return p, conn, stop
}

// TestRosterSeesPoolsComeAndGo: a roster lists a pool with its queue and
// the task it runs, its counts, its pause; marks it gone when it stops
// (its last beat says so) and when it falls silent (its connection closed:
// no last beat).
func TestRosterSeesPoolsComeAndGo(t *testing.T) {
	conn := testbroker.Dial(t)
	q := declared(t, conn)
	ctx := testbroker.Context(t, 2*time.Minute)
	r := runRoster(t)
	const interval = 150 * time.Millisecond
	release := make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	pool, _, stop := startPool(t, q, interval, release)

	prod, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(context.Background())
	taskID, err := prod.Enqueue(ctx, q, "block", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	w := find(t, r, pool.ID(), 10*time.Second, "running the task", func(w fleet.Worker) bool {
		return len(w.Running) == 1 && w.Running[0].ID == taskID
	})
	if w.Gone || w.Host != host || w.PID != os.Getpid() || w.Version != "v-test" || w.Concurrency != 3 ||
		!slices.Equal(w.Queues, []string{q}) || w.Interval != interval || w.RunningTotal != 1 || w.Counts[q].Unacked != 1 ||
		w.Running[0].Type != "block" || w.Running[0].Queue != q || w.Started.IsZero() {
		t.Errorf("worker: %+v", w)
	}
	if qs := r.Queues(); !slices.Contains(qs, q) {
		t.Errorf("Queues() lacks %s: %v", q, qs)
	}
	close(release)
	find(t, r, pool.ID(), 10*time.Second, "done with the task", func(w fleet.Worker) bool {
		return len(w.Running) == 0 && w.Counts[q].Succeeded == 1 && w.Counts[q].Unacked == 0
	})

	// Paused queues show in the beats.
	if err := fleet.Pause(ctx, conn, q); err != nil {
		t.Fatal(err)
	}
	find(t, r, pool.ID(), 10*time.Second, "paused", func(w fleet.Worker) bool { return slices.Equal(w.Paused, []string{q}) })
	if err := fleet.Resume(ctx, conn, q); err != nil {
		t.Fatal(err)
	}
	find(t, r, pool.ID(), 10*time.Second, "resumed", func(w fleet.Worker) bool { return len(w.Paused) == 0 })

	// A pool that stops says so in its last beat: gone at once.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	find(t, r, pool.ID(), 2*time.Second, "gone after its shutdown", func(w fleet.Worker) bool { return w.Gone && w.Stopping })

	// A pool that falls silent is gone after three intervals.
	pool2, conn2, stop2 := startPool(t, q, interval, release)
	find(t, r, pool2.ID(), 10*time.Second, "live", func(w fleet.Worker) bool { return !w.Gone })
	_ = conn2.Close() // no last beat: the connection is gone
	silent := time.Now()
	w = find(t, r, pool2.ID(), 5*time.Second, "gone after its silence", func(w fleet.Worker) bool { return w.Gone })
	if w.Stopping {
		t.Error("a silent pool sent a stopping beat")
	}
	t.Logf("gone %s after the connection closed", time.Since(silent).Round(time.Millisecond))
	if err := stop2(); !errors.Is(err, worker.ErrConnectionLost) {
		t.Errorf("pool 2: %v", err)
	}
	// Both still listed, gone, after the live ones.
	ws := r.Workers()
	for i, w := range ws {
		if (w.ID == pool.ID() || w.ID == pool2.ID()) && !w.Gone {
			t.Errorf("%s live", w.ID)
		}
		if i > 0 && ws[i-1].Gone && !w.Gone {
			t.Errorf("live %s after gone %s", w.ID, ws[i-1].ID)
		}
	}
}

// TestRosterIgnoresMalformedBeats publishes junk to the heartbeat exchange
// next to a valid beat: the roster lists the beat and nothing else, and
// goes on listening.
func TestRosterIgnoresMalformedBeats(t *testing.T) {
	conn := testbroker.Dial(t)
	ctx := testbroker.Context(t, time.Minute)
	r := runRoster(t)
	if err := broker.DeclareFanout(ctx, conn, fleet.HeartbeatExchange); err != nil {
		t.Fatal(err)
	}
	id := "test-host/1/" + t.Name() + time.Now().Format("150405.000000000")
	hear(t, ctx, conn, r, id, "not json", `{"host":"no id"}`)
	for _, w := range r.Workers() {
		if w.Host == "no id" || w.ID == "" {
			t.Errorf("a malformed beat is listed: %+v", w)
		}
	}
}

// hear publishes junk and then a valid beat of id, again and again until
// the roster lists id (it may not listen yet), failing after 10s.
func hear(t *testing.T, ctx context.Context, conn *broker.Conn, r *fleet.Roster, id string, junk ...string) {
	t.Helper()
	pub := broker.NewBroadcaster(conn)
	defer pub.Close()
	send := func(body string) {
		t.Helper()
		if err := pub.Publish(ctx, fleet.HeartbeatExchange, "", amqp.Publishing{Body: []byte(body), Expiration: "10000"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, j := range junk {
			send(j)
		}
		send(`{"id":"` + id + `","host":"test-host","pid":1,"interval_ns":1000000000}`)
		if slices.ContainsFunc(r.Workers(), func(w fleet.Worker) bool { return w.ID == id }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the roster never heard %s", id)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestRosterListensAgainAfterAReconnect closes the roster's connection on
// the broker's side: once it is back, the roster hears beats again.
func TestRosterListensAgainAfterAReconnect(t *testing.T) {
	conn := testbroker.Dial(t)
	ctx := testbroker.Context(t, time.Minute)
	if err := broker.DeclareFanout(ctx, conn, fleet.HeartbeatExchange); err != nil {
		t.Fatal(err)
	}
	name := "test " + t.Name() + " " + time.Now().Format("150405.000000000")
	rconn := testbroker.DialNamed(t, broker.Config{Name: name, Logger: quiet})
	r := runRosterOn(t, rconn)
	prefix := "test-host/1/" + t.Name() + time.Now().Format("150405.000000000")
	hear(t, ctx, conn, r, prefix+"-before")
	if n := testbroker.CloseConnection(t, name); n != 1 {
		t.Fatalf("closed %d connections named %q, want 1", n, name)
	}
	hear(t, ctx, conn, r, prefix+"-after")
	if rconn.Reconnects() == 0 {
		t.Error("the roster's connection did not reconnect")
	}
}
