package producer_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/producer"
)

type sendEmail struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

// This example needs a running RabbitMQ, so it is compiled but not run.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	conn, err := broker.Dial(ctx, broker.DefaultURL, broker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	// New declares the queue "emails", its dead-letter queue and the
	// shared delay levels.
	p, err := producer.New(ctx, conn, producer.Config{Queues: []string{"emails"}})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)

	// EnqueueJSON returns once the broker has confirmed the task.
	id, err := producer.EnqueueJSON(ctx, p, "emails", "email:send",
		sendEmail{To: "ada@example.com", Subject: "Welcome"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("enqueued", id)

	// Delayed, with a caller-chosen ID and a cap on attempts.
	_, err = producer.EnqueueJSON(ctx, p, "emails", "email:send",
		sendEmail{To: "ada@example.com", Subject: "How is it going?"},
		producer.WithDelay(24*time.Hour),
		producer.WithID("followup-ada-1"),
		producer.WithMaxAttempts(3))
	if err != nil {
		log.Fatal(err)
	}
}

// EnqueueBatch pipelines many publishes and waits for all their confirms;
// each job succeeds or fails on its own.
func ExampleProducer_EnqueueBatch() {
	ctx := context.Background()
	conn, err := broker.Dial(ctx, broker.DefaultURL, broker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	p, err := producer.New(ctx, conn, producer.Config{Queues: []string{"thumbnails"}})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)

	jobs := make([]producer.Job, 100)
	for i := range jobs {
		jobs[i] = producer.Job{Queue: "thumbnails", Type: "thumbnail:make", Payload: fmt.Appendf(nil, `{"image":%d}`, i)}
	}
	results, err := p.EnqueueBatch(ctx, jobs)
	if err != nil {
		log.Fatal(err)
	}
	for i, r := range results {
		if r.Err != nil {
			log.Printf("job %d (%s): %v", i, r.ID, r.Err)
		}
	}
}
