//go:build integration

package bench

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/internal/testbroker"
)

func TestRunAndBaselineEveryMode(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	for _, mode := range []string{ModeE2E, ModePublish, ModeConsume} {
		for _, bare := range []bool{false, true} {
			name := mode + "/warren"
			if bare {
				name = mode + "/bare"
			}
			t.Run(name, func(t *testing.T) {
				o := Options{URL: testbroker.URL(), Mode: mode, Jobs: 500, Producers: 8, Batch: 4, Concurrency: 4, Prefetch: 50}
				var calls int
				o.Progress = func(done, total int) {
					calls++
					if total != 500 || done < 0 || done > total {
						t.Errorf("progress %d/%d", done, total)
					}
				}
				ctx := testbroker.Context(t, time.Minute)
				run := Run
				if bare {
					run = RunBaseline
				}
				rep, err := run(ctx, o)
				if err != nil {
					t.Fatal(err)
				}
				// Consume mode reports the backlog's publish rate too.
				want := map[string]bool{"publish": true, "consume": mode != ModePublish, "latency": mode == ModeE2E}
				if (rep.PublishPerSec > 0) != want["publish"] || (rep.ConsumePerSec > 0) != want["consume"] || (rep.LatencyP99 > 0) != want["latency"] {
					t.Errorf("figures: %+v", rep)
				}
				if rep.LatencyP50 > rep.LatencyP95 || rep.LatencyP95 > rep.LatencyP99 || rep.LatencyP99 > rep.LatencyMax {
					t.Errorf("percentiles out of order: %+v", rep)
				}
				if rep.AllocsPerJob <= 0 || rep.CPUPerJob <= 0 || rep.Redelivered != 0 {
					t.Errorf("per job: %+v", rep)
				}
				if rep.PeakRSSBytes <= 0 {
					t.Errorf("peak RSS %d", rep.PeakRSSBytes)
				}
				if calls == 0 {
					t.Error("Progress never called")
				}
			})
		}
	}
}

func TestRunsDeleteTheirQueues(t *testing.T) {
	o := Options{URL: testbroker.URL(), Mode: ModeE2E, Jobs: 50, Producers: 2, Concurrency: 2}.withDefaults()
	ctx := testbroker.Context(t, time.Minute)
	bare, err := dialBare(o)
	if err != nil {
		t.Fatal(err)
	}
	defer bare.close()
	wc, err := dialWarren(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.close()
	conn, err := amqp.Dial(testbroker.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for name, c := range map[string]client{"bare": bare, "warren": wc} {
		// Run through the driver with a client that remembers the queue.
		spy := &queueSpy{client: c}
		if _, err := drive(ctx, o, spy, name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.HasPrefix(spy.queue, "bench-e2e-") {
			t.Fatalf("%s: queue %q", name, spy.queue)
		}
		for _, q := range []string{spy.queue, spy.queue + ".dlq"} {
			ch, err := conn.Channel()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err == nil {
				t.Errorf("%s: queue %s still exists", name, q)
				_ = ch.Close()
			}
		}
	}
}

type queueSpy struct {
	client
	queue string
}

func (s *queueSpy) declare(ctx context.Context, queue string) error {
	s.queue = queue
	return s.client.declare(ctx, queue)
}

func TestRetryModeMeasuresLateness(t *testing.T) {
	o := Options{URL: testbroker.URL(), Mode: ModeRetry, Jobs: 100, Rate: 200, RetryDelay: time.Second, Concurrency: 8}
	ctx := testbroker.Context(t, time.Minute)
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	// A retry cannot start before it is due (the failure's timestamp is
	// rounded down to the millisecond); the delay levels are accurate to
	// well under a second on an idle broker.
	if rep.LatencyP50 < -time.Millisecond || rep.LatencyMax > 5*time.Second || rep.Redelivered != 0 {
		t.Errorf("lateness: %+v", rep)
	}
}

func TestIdleModeReportsMemory(t *testing.T) {
	o := Options{URL: testbroker.URL(), Mode: ModeIdle, Concurrency: 64, IdleSettle: 200 * time.Millisecond}
	ctx := testbroker.Context(t, time.Minute)
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.IdleRSSBytes <= 0 || rep.PeakRSSBytes < rep.IdleRSSBytes {
		t.Errorf("memory: %+v", rep)
	}
}

func TestBaselineRefusesWarrenOnlyModes(t *testing.T) {
	for _, m := range []string{ModeRetry, ModeIdle} {
		if _, err := RunBaseline(context.Background(), Options{Mode: m}); err == nil {
			t.Errorf("%s: no error", m)
		}
	}
}

// TestNoGoroutineLeftPerJob runs a few thousand jobs through Warren and
// checks that the goroutines come back to where they were: a goroutine
// left behind per job (a confirm waiter, a timer) would show by thousands.
func TestNoGoroutineLeftPerJob(t *testing.T) {
	ctx := testbroker.Context(t, time.Minute)
	before := runtime.NumGoroutine()
	if _, err := Run(ctx, Options{URL: testbroker.URL(), Jobs: 3000, Producers: 64, Concurrency: 16, Prefetch: 100}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before+5 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before the run, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
