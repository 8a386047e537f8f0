package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/fleet"
)

// Pause a queue, as `warren queue pause emails` does: every worker pool
// consuming it stops taking its tasks within a second; producers go on
// enqueueing. Resume lets the pools take them again. (It needs a running
// RabbitMQ, so it is compiled but not run.)
func ExamplePause() {
	ctx := context.Background()
	conn, err := broker.Dial(ctx, broker.DefaultURL, broker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	if err := fleet.Pause(ctx, conn, "emails"); err != nil {
		log.Fatal(err)
	}
	paused, _ := fleet.Paused(ctx, conn, "emails")
	fmt.Println("paused:", paused)
	if err := fleet.Resume(ctx, conn, "emails"); err != nil {
		log.Fatal(err)
	}
}

// List the worker pools a Roster hears, as the dashboard's Workers page
// does. (It needs a running RabbitMQ, so it is compiled but not run.)
func ExampleRoster() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, broker.DefaultURL, broker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	r := fleet.NewRoster(conn, fleet.RosterConfig{})
	go func() { _ = r.Run(ctx) }()
	time.Sleep(3 * time.Second) // a beat comes every 2 s by default
	for _, w := range r.Workers() {
		fmt.Printf("%s pid %d: %v, %d running, gone %v\n", w.Host, w.PID, w.Queues, len(w.Running), w.Gone)
	}
}

// A heartbeat on the wire: what a pool publishes to HeartbeatExchange.
func ExampleBeat() {
	start := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	b := fleet.Beat{
		ID: "web-1/4242/1", Host: "web-1", PID: 4242, Version: "v1.4.0",
		Queues: []string{"emails"}, Concurrency: 8,
		Started: start, Sent: start.Add(time.Minute), Interval: 2 * time.Second,
		Running:      []fleet.Running{{Queue: "emails", Type: "email:send", ID: "order-42", Started: start.Add(59 * time.Second)}},
		RunningTotal: 1,
		Counts:       map[string]fleet.QueueCounts{"emails": {Succeeded: 120, Retried: 3, Unacked: 9}},
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(b)
	// Output:
	// {
	//   "id": "web-1/4242/1",
	//   "host": "web-1",
	//   "pid": 4242,
	//   "version": "v1.4.0",
	//   "queues": [
	//     "emails"
	//   ],
	//   "concurrency": 8,
	//   "started": "2026-12-03T07:00:00Z",
	//   "sent": "2026-12-03T07:01:00Z",
	//   "interval_ns": 2000000000,
	//   "running": [
	//     {
	//       "queue": "emails",
	//       "type": "email:send",
	//       "id": "order-42",
	//       "started": "2026-12-03T07:00:59Z"
	//     }
	//   ],
	//   "running_total": 1,
	//   "counts": {
	//     "emails": {
	//       "succeeded": 120,
	//       "retried": 3,
	//       "dead_lettered": 0,
	//       "unacked": 9
	//     }
	//   }
	// }
}
