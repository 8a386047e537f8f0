//go:build integration

package admin_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

// A worker dead-letters tasks it cannot run; an operator looks at them,
// fixes the bug and replays them. This example runs against the test
// broker (go test -tags integration).
func Example_replay() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := broker.Dial(ctx, testbroker.URL(), broker.Config{Name: "admin example"})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	queue := "example-admin-" + hex.EncodeToString(suffix[:])
	defer deleteQueues(conn, queue, warren.DeadLetterQueue(queue))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	// Three tasks, and a worker with a bug for one type.
	p, err := producer.New(ctx, conn, producer.Config{Queues: []string{queue}, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)
	for _, typ := range []string{"invoice:send", "invoice:send", "report:build"} {
		if _, err := p.Enqueue(ctx, queue, typ, []byte(`{}`)); err != nil {
			log.Fatal(err)
		}
	}
	fixed := make(chan struct{})
	done := make(chan string, 3)
	mux := worker.NewMux()
	for _, typ := range []string{"invoice:send", "report:build"} {
		mux.HandleFunc(typ, func(_ context.Context, t *warren.Task) error {
			select {
			case <-fixed:
				done <- t.Type
				return nil
			default:
				return retry.Permanent(errors.New("template not found"))
			}
		})
	}
	pool, err := worker.New(conn, mux, worker.Config{Queues: []string{queue}, Concurrency: 1, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	stopped := make(chan error)
	go func() { stopped <- pool.Run(wctx) }()
	defer func() { stop(); <-stopped }()

	adm := admin.New(conn, admin.Config{Logger: quiet})
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for { // poll until the worker has given up on all three
		infos, err := adm.Queues(ctx, []string{queue})
		if err != nil {
			log.Fatal(err)
		}
		if infos[0].DeadLetters == 3 {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			log.Fatal(ctx.Err())
		}
	}

	dead, err := adm.List(ctx, queue, admin.Filter{})
	if err != nil {
		log.Fatal(err)
	}
	for _, dl := range dead {
		fmt.Printf("%s: %s after %d attempt: %s\n", dl.Type, dl.Reason, dl.Attempts, dl.Error)
	}

	close(fixed) // the fix is deployed: replay the invoices
	res, err := adm.Replay(ctx, queue, admin.Filter{Types: []string{"invoice:send"}}, admin.ReplayOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("replayed %d, left %d\n", res.Replayed, res.Skipped)
	fmt.Println("ran", <-done)
	fmt.Println("ran", <-done)

	// Output:
	// invoice:send: permanent_error after 1 attempt: template not found
	// invoice:send: permanent_error after 1 attempt: template not found
	// report:build: permanent_error after 1 attempt: template not found
	// replayed 2, left 1
	// ran invoice:send
	// ran invoice:send
}

func deleteQueues(conn *broker.Conn, queues ...string) {
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	for _, q := range queues {
		_, _ = ch.QueueDelete(q, false, false, false)
	}
}
