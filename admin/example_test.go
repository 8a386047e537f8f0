package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/broker"
)

// These examples need a running RabbitMQ, so they are compiled but not
// run; example_integration_test.go runs one end to end.

// List the dead letters of a queue, then replay the ones of one task type
// after the bug is fixed: what `warren dlq list` and `warren dlq replay
// --type` do.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := broker.Dial(ctx, broker.DefaultURL, broker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	adm := admin.New(conn, admin.Config{})

	dead, err := adm.List(ctx, "emails", admin.Filter{})
	if err != nil {
		log.Fatal(err)
	}
	for _, dl := range dead {
		fmt.Printf("%s %s %s after %d attempts: %s\n", dl.ID, dl.Type, dl.Reason, dl.Attempts, dl.Error)
	}

	res, err := adm.Replay(ctx, "emails", admin.Filter{Types: []string{"email:send"}}, admin.ReplayOptions{})
	switch {
	case errors.Is(err, admin.ErrBusy):
		log.Fatal("someone else is working on emails.dlq; try again later")
	case err != nil:
		// res still counts what was done; the failed dead letters stay.
		log.Printf("replayed %d, failed %d: %v", res.Replayed, res.Failed, err)
	default:
		fmt.Printf("replayed %d, left %d other dead letters alone\n", res.Replayed, res.Skipped)
	}
}

// A dry run says what a replay would do and changes nothing. Bulk
// operations must say what they select: an empty Filter needs All.
func ExampleAdmin_Replay() {
	ctx := context.Background()
	conn, err := broker.Dial(ctx, broker.DefaultURL, broker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	adm := admin.New(conn, admin.Config{})

	if _, err := adm.Replay(ctx, "emails", admin.Filter{}, admin.ReplayOptions{}); errors.Is(err, admin.ErrNoSelector) {
		fmt.Println("say which dead letters, or All")
	}
	res, err := adm.Replay(ctx, "emails", admin.Filter{All: true}, admin.ReplayOptions{DryRun: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("would replay %d tasks: %v\n", res.Replayed, res.IDs)
}

// Show one dead letter in full, as `warren dlq show` does.
func ExampleAdmin_Get() {
	ctx := context.Background()
	conn, err := broker.Dial(ctx, broker.DefaultURL, broker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	adm := admin.New(conn, admin.Config{})

	dl, err := adm.Get(ctx, "emails", "0190f3c6-6d0e-7c7a-9b1e-2f6c1d9a7e42")
	if errors.Is(err, admin.ErrNotFound) {
		fmt.Println("no such dead letter")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (%s) failed at %s on %s: %s\n", dl.ID, dl.Reason, dl.FailedAt.Format(time.RFC3339), dl.WorkerHost, dl.Error)
	for _, f := range dl.History {
		fmt.Printf("  attempt %d: %s\n", f.Attempt, f.Error)
	}
	fmt.Printf("payload: %s\n", dl.Payload)
}

// Queues reports depths, as `warren queues` does.
func ExampleAdmin_Queues() {
	ctx := context.Background()
	conn, err := broker.Dial(ctx, broker.DefaultURL, broker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	adm := admin.New(conn, admin.Config{})

	infos, err := adm.Queues(ctx, []string{"emails", "reports"})
	if err != nil {
		log.Fatal(err)
	}
	for _, q := range infos {
		if !q.Exists {
			fmt.Printf("%s: no such queue\n", q.Name)
			continue
		}
		unacked := "?"
		if q.Unacked >= 0 {
			unacked = fmt.Sprint(q.Unacked)
		}
		fmt.Printf("%s: %d ready, %s unacked, %d consumers, %d dead, %d delayed (all queues)\n",
			q.Name, q.Ready, unacked, q.Consumers, q.DeadLetters, q.Delayed)
	}
}

// A dead letter's JSON form is the same wherever it is printed: the CLI's
// --output json, an HTTP API, a web page.
func ExampleDeadLetter_MarshalJSON() {
	dl := admin.DeadLetter{
		ID: "0190a1b2", Type: "email:send", Queue: "emails",
		Reason: warren.ReasonExhausted, Error: "smtp: 421 try later", Attempts: 3,
		FailedAt: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC),
		Payload:  []byte(`{"to":"a@example.com"}`),
		Headers:  map[string]any{"tenant": "acme", warren.HeaderAttempt: int32(3), "x-death": nil},
	}
	b, _ := json.Marshal(dl)
	fmt.Println(string(b))
	// Output:
	// {"id":"0190a1b2","type":"email:send","queue":"emails","reason":"attempts_exhausted","error":"smtp: 421 try later","attempts":3,"failed_at":"2026-12-02T10:00:00Z","payload":{"to":"a@example.com"},"headers":{"tenant":"acme"}}
}
