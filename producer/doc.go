// Package producer enqueues Warren tasks.
//
// Enqueue returns only after RabbitMQ has confirmed the message: once it
// returns a nil error, the task is stored on the broker (on a majority of a
// quorum queue's replicas) and will be delivered to a worker. Every publish
// is mandatory, so enqueueing to a queue that does not exist is an error
// (ErrUnroutable), never a silent drop. A nacked or unconfirmed publish
// returns an error; Enqueue never reports a success it did not get.
//
// EnqueueBatch publishes many tasks at once, pipelined; EnqueueStream
// enqueues one task per line of an NDJSON reader (what `warren enqueue
// --from-file` reads), batching the lines and keeping several batches in
// flight.
//
// A Producer is safe for concurrent use. Publishes from many goroutines are
// pipelined on one channel: each waits only for its own confirm.
package producer
