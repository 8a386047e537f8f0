package worker_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

type sendEmail struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

// A Mux routes tasks by type; HandleJSON decodes the payload into a Go
// type first. A Pool calls the Mux for each delivery; here it is called
// directly on hand-made tasks, with no broker.
func ExampleHandleJSON() {
	mux := worker.NewMux()
	worker.HandleJSON(mux, "email:send", func(ctx context.Context, args sendEmail) error {
		if args.To == "" {
			return retry.Permanent(errors.New("no recipient"))
		}
		fmt.Printf("sending %q to %s\n", args.Subject, args.To)
		return nil
	})

	ctx := context.Background()
	run := func(typ, payload string) {
		err := mux.ProcessTask(ctx, &warren.Task{ID: "t1", Type: typ, Payload: []byte(payload), Attempt: 1})
		switch {
		case err == nil:
			fmt.Println("=> done")
		case errors.Is(err, worker.ErrUnknownType):
			fmt.Println("=> unknown type: dead-lettered with reason", warren.ReasonUnknownType)
		case retry.IsPermanent(err):
			fmt.Println("=> permanent failure: dead-lettered with reason", warren.ReasonPermanent)
		default:
			fmt.Println("=> retry:", err)
		}
	}
	run("email:send", `{"to":"ada@example.com","subject":"Welcome"}`)
	run("email:send", `{"subject":"Welcome"}`) // no recipient: bad input
	run("email:send", `not json`)              // does not decode: bad input too
	run("sms:send", `{}`)
	// Output:
	// sending "Welcome" to ada@example.com
	// => done
	// => permanent failure: dead-lettered with reason permanent_error
	// => permanent failure: dead-lettered with reason permanent_error
	// => unknown type: dead-lettered with reason unknown_type
}

// Middleware wraps every handler of a Mux, unknown types included; the
// first one given is the outermost.
func ExampleMux_Use() {
	mux := worker.NewMux()
	mux.Use(func(next worker.Handler) worker.Handler {
		return worker.HandlerFunc(func(ctx context.Context, t *warren.Task) error {
			fmt.Printf("start %s attempt %d\n", t.Type, t.Attempt)
			err := next.ProcessTask(ctx, t)
			fmt.Printf("end %s: err=%v\n", t.Type, err)
			return err
		})
	})
	mux.HandleFunc("ping", func(ctx context.Context, t *warren.Task) error {
		fmt.Printf("pong %s\n", t.Payload)
		return nil
	})

	_ = mux.ProcessTask(context.Background(), &warren.Task{Type: "ping", Payload: []byte("hello"), Attempt: 2})
	_ = mux.ProcessTask(context.Background(), &warren.Task{Type: "nope", Attempt: 1})
	fmt.Println(mux.Types())
	// Output:
	// start ping attempt 2
	// pong hello
	// end ping: err=<nil>
	// start nope attempt 1
	// end nope: err=worker: no handler registered for task type: "nope"
	// [ping]
}

// Idempotent runs a task ID's handler once: a copy of a task that already
// completed is acked without running (the pool reports Outcome Skipped).
// MemoryStore serves one process; implement DoneStore on your database to
// share it between workers.
func ExampleIdempotent() {
	store := worker.NewMemoryStore(0, 0) // 100,000 keys, 24h
	h := worker.Idempotent(store, worker.IdempotentConfig{})(
		worker.HandlerFunc(func(ctx context.Context, t *warren.Task) error {
			fmt.Println("charging for order", t.ID)
			return nil
		}))
	// Pass it to a pool as worker.Config{Middleware: []worker.Middleware{...}},
	// or call it directly, as here, with two copies of one task:
	for range 2 {
		err := h.ProcessTask(context.Background(), &warren.Task{ID: "order-42", Type: "charge"})
		fmt.Println("err:", err, "skipped:", errors.Is(err, worker.ErrAlreadyDone))
	}
	// Output:
	// charging for order order-42
	// err: <nil> skipped: false
	// err: worker: task already done: key "order-42" skipped: true
}
