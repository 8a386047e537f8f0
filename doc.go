// Package warren holds the types that every part of Warren shares: the task
// envelope that travels between producers and workers, the names of the AMQP
// headers that carry its metadata, and the naming rules for queues.
//
// Warren is a fault-tolerant task queue on RabbitMQ. Producers (package
// producer) publish durable tasks and return only after the broker has
// confirmed them; workers (package worker) consume with manual acks and ack
// only once the outcome of a task (done, retried later, or dead-lettered) is
// itself safely on the broker. Retries wait in broker-side delay queues, not
// in worker memory. The wire format is documented in docs/protocol.md so that
// any AMQP client can produce or consume Warren tasks.
//
// This package imports nothing but the standard library.
package warren
