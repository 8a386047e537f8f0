//go:build integration

package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/worker"
)

// TestHostileMessagesAffectThemselvesAlone is the tester's scenario of
// issue 10: another AMQP client (pika) fills a Warren queue's prefetch
// window with ordinary jobs around messages amqp091-go cannot read (headers
// nested 40 deep, 9,000 entries) and jobs whose headers sit so close to
// the frame size that a retry's metadata cannot fit. Every ordinary job
// runs exactly once, within seconds; each hostile message ends in the
// dead-letter queue with a reason; the worker never loses its connection.
// Before the guard the connection died about 20 times in 8 s and the
// broker dead-lettered most of the window with delivery_limit.
func TestHostileMessagesAffectThemselvesAlone(t *testing.T) {
	e := setup(t)
	var msgs []testbroker.Foreign
	bystanders := map[string]bool{}
	add := func(m testbroker.Foreign) {
		m.Type = "job"
		m.Body = `{"n":1}`
		msgs = append(msgs, m)
	}
	for i := range 24 {
		id := fmt.Sprintf("ok-%02d", i)
		bystanders[id] = true
		add(testbroker.Foreign{ID: id})
		switch i {
		case 3:
			add(testbroker.Foreign{ID: "deep", Deep: 40})
		case 9:
			add(testbroker.Foreign{ID: "wide", Wide: 9000})
		case 14:
			// Fits as published; a retry's metadata and the delay
			// levels' room do not: dead-lettered as oversized.
			add(testbroker.Foreign{ID: "big-retry", Big: 125_000})
		case 19:
			// Leaves no room even for a dead letter's story: the
			// broker dead-letters the original (rejected).
			add(testbroker.Foreign{ID: "big-dead", Big: 130_600})
		}
	}
	testbroker.PublishForeign(t, e.queue, msgs...)

	var mu sync.Mutex
	runs := map[string]int{}
	allRan := make(chan struct{})
	h := worker.HandlerFunc(func(ctx context.Context, task *warren.Task) error {
		mu.Lock()
		runs[task.ID]++
		done := 0
		for id := range bystanders {
			if runs[id] > 0 {
				done++
			}
		}
		if done == len(bystanders) && runs["all"] == 0 {
			runs["all"] = 1
			close(allRan)
		}
		mu.Unlock()
		if strings.HasPrefix(task.ID, "big") {
			return errors.New("fails, so that the worker must publish a retry")
		}
		return nil
	})
	pool, err := worker.New(e.conn, h, worker.Config{Queues: []string{e.queue}, Concurrency: 4, Logger: quiet, Retry: fastRetry(3)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	select {
	case <-allRan:
	case <-time.After(15 * time.Second):
		t.Fatalf("not every ordinary job ran within 15s: %v (stats %+v)", runs, pool.Stats())
	}
	dead := e.deadLetters(t, 4, 15*time.Second)
	reasons := map[string]string{}
	for _, d := range dead {
		r := broker.HeaderString(d.Headers, warren.HeaderDeadReason)
		if note := broker.HeaderString(d.Headers, warren.HeaderUnreadable); note != "" {
			r = "unreadable: " + note
		}
		if r == "" {
			r = "rejected"
		}
		reasons[d.MessageId] = r
	}
	want := map[string]string{
		"deep":      "unreadable: the headers are nested more than 32 deep",
		"wide":      "unreadable: a header table holds more than 8192 entries",
		"big-retry": string(warren.ReasonOversized),
		"big-dead":  "",
	}
	for id, w := range want {
		got, ok := reasons[id]
		if !ok {
			t.Errorf("%s: not in the dead-letter queue (got %v)", id, reasons)
			continue
		}
		if w != "" && got != w {
			t.Errorf("%s: dead-lettered as %q, want %q", id, got, w)
		}
	}
	if r := reasons["big-dead"]; r != "rejected" && !strings.Contains(r, "frame_max") {
		t.Errorf("big-dead: dead-lettered as %q, want the broker's reject (or unreadable for its size)", r)
	}

	mu.Lock()
	for id := range bystanders {
		if runs[id] != 1 {
			t.Errorf("%s ran %d times, want exactly once", id, runs[id])
		}
	}
	for _, id := range []string{"deep", "wide"} {
		if runs[id] != 0 {
			t.Errorf("unreadable %s ran %d times, want never", id, runs[id])
		}
	}
	mu.Unlock()
	st := pool.Stats()
	if st.Reconnects != 0 || e.conn.Reconnects() != 0 {
		t.Errorf("the worker lost its connection %d times", st.Reconnects)
	}
	if st.Unreadable != 2 || st.DeadLettered != 4 || st.Oversized < 2 {
		t.Errorf("stats %+v: want Unreadable 2, DeadLettered 4, Oversized >= 2", st)
	}
	if n := e.ready(t, e.queue); n != 0 {
		t.Errorf("%d messages left in the queue", n)
	}
}

// TestUnreadableOnAQueueWithoutDeadLetterTargetIsHeld: a worker that did
// not declare its queue (NoDeclare) cannot know that a reject would reach a
// dead-letter queue; it must not drop the message, nor loop on it. It holds
// the delivery unacked (outcome Held), runs the others, and after it stops
// the message is back in the queue, whole.
func TestUnreadableOnAQueueWithoutDeadLetterTargetIsHeld(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil { // no dead-letter target
		t.Fatal(err)
	}
	_ = ch.Close()
	testbroker.PublishForeign(t, q,
		testbroker.Foreign{ID: "a", Type: "job", Body: "{}"},
		testbroker.Foreign{ID: "deep", Type: "job", Body: "{}", Deep: 40},
		testbroker.Foreign{ID: "b", Type: "job", Body: "{}"},
	)
	ran := make(chan string, 3)
	h := worker.HandlerFunc(func(ctx context.Context, task *warren.Task) error { ran <- task.ID; return nil })
	pool, err := worker.New(conn, h, worker.Config{Queues: []string{q}, NoDeclare: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case id := <-ran:
			got[id] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("ran %v within 10s", got)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for pool.Stats().Held != 1 && time.Now().Before(deadline) {
		select {
		case id := <-ran:
			t.Fatalf("the unreadable task %s ran", id)
		case <-time.After(20 * time.Millisecond):
		}
	}
	st := pool.Stats()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st.Held != 1 || st.Unreadable != 1 || st.DeadLettered != 0 || conn.Reconnects() != 0 {
		t.Fatalf("stats %+v, reconnects %d: want 1 held, nothing dead-lettered", st, conn.Reconnects())
	}
	ch, err = conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var d amqp.Delivery
	ok := false
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(10 * time.Second); !ok && time.Now().Before(end); <-tick.C {
		if d, ok, err = ch.Get(q, true); err != nil {
			t.Fatal(err)
		}
	}
	if !ok || d.MessageId != "deep" || broker.HeaderString(d.Headers, warren.HeaderUnreadable) == "" {
		t.Fatalf("the held message is not back in its queue: ok %v id %q", ok, d.MessageId)
	}
}
