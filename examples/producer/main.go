// Command producer enqueues a few Warren tasks and prints their IDs.
//
// Run it against a local RabbitMQ (WARREN_URL overrides the default
// amqp://guest:guest@127.0.0.1:5672/), then start the example worker on the
// same queue to run the tasks:
//
//	go run ./examples/producer -queue examples
//	go run ./examples/worker -queue examples
//
// It declares the queue, its dead-letter queue and the shared delay levels,
// then enqueues:
//   - an email:send task;
//   - an email:send task with no recipient, which the worker rejects as a
//     permanent failure (it ends in the dead-letter queue);
//   - a report:build task delayed by 3 s, which the worker fails on purpose
//     on attempts 1 and 2;
//   - an email:send task with a chosen ID, for idempotency;
//   - a batch of 100 thumbnail:make tasks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/examples/tasks"
	"github.com/warrenq/warren/producer"
)

func main() {
	queue := flag.String("queue", "examples", "the Warren queue to enqueue to")
	flag.Parse()
	if err := run(*queue); err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		os.Exit(1)
	}
}

func run(queue string) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	conn, err := broker.Dial(ctx, tasks.URL(), broker.Config{Logger: log})
	if err != nil {
		return err
	}
	defer conn.Close()

	p, err := producer.New(ctx, conn, producer.Config{Queues: []string{queue}, Logger: log})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, p.Close(ctx)) }()

	// Each enqueue returns once the broker has confirmed the task.
	id, err := producer.EnqueueJSON(ctx, p, queue, tasks.TypeEmailSend,
		tasks.EmailSend{To: "ada@example.com", Subject: "Welcome"})
	if err != nil {
		return err
	}
	fmt.Println("email:send          ", id)

	id, err = producer.EnqueueJSON(ctx, p, queue, tasks.TypeEmailSend,
		tasks.EmailSend{Subject: "No recipient: a permanent failure"})
	if err != nil {
		return err
	}
	fmt.Println("email:send (bad)    ", id)

	id, err = producer.EnqueueJSON(ctx, p, queue, tasks.TypeReportBuild,
		tasks.ReportBuild{Month: "2026-11"}, producer.WithDelay(3*time.Second))
	if err != nil {
		return err
	}
	fmt.Println("report:build (in 3s)", id)

	// A chosen ID stays the same across retries and replays, and if this
	// program runs twice: the handler can use it to skip work already done.
	// (RabbitMQ itself does not deduplicate: both copies are delivered.)
	id, err = producer.EnqueueJSON(ctx, p, queue, tasks.TypeEmailSend,
		tasks.EmailSend{To: "grace@example.com", Subject: "Your invoice"},
		producer.WithID("invoice-email-2026-11-grace"))
	if err != nil {
		return err
	}
	fmt.Println("email:send (own ID) ", id)

	// A batch is pipelined: 100 publishes, then 100 confirms.
	jobs := make([]producer.Job, 100)
	for i := range jobs {
		jobs[i] = producer.Job{
			Queue:   queue,
			Type:    tasks.TypeThumbnailMake,
			Payload: fmt.Appendf(nil, `{"image":%d,"width":256}`, i),
		}
	}
	results, err := p.EnqueueBatch(ctx, jobs)
	if err != nil {
		return err
	}
	var failed []error
	for i, r := range results {
		if r.Err != nil {
			failed = append(failed, fmt.Errorf("job %d (%s): %w", i, r.ID, r.Err))
		}
	}
	fmt.Printf("thumbnail:make x%d  %s ... %s\n", len(results), results[0].ID, results[len(results)-1].ID)
	return errors.Join(failed...)
}
