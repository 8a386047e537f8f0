// Package broker is Warren's only contact with RabbitMQ: it dials, declares
// the topology, encodes and decodes tasks, publishes with confirms,
// consumes with batched acks, and reads queues for admin's passes. No
// other package of Warren calls a method of amqp091-go's Channel or
// Connection, nor acknowledges a Delivery (internal/boundary's test checks
// it); they use amqp091-go's data types at most.
//
// # Topology
//
// For every Warren queue Q, Declare creates:
//
//   - Q, a durable quorum queue (classic by option) whose dead-letter
//     exchange routes to Q.dlq, with an x-delivery-limit so that a task
//     that keeps killing its worker ends in Q.dlq instead of looping;
//   - Q.dlq, a durable quorum queue that keeps dead tasks with their
//     failure metadata;
//   - a binding of Q to the shared delivery exchange, so delayed tasks
//     reach it.
//
// Delays are done by the broker and shared by all queues: DelayLevels
// quorum queues warren.delay.<k>, each with a fixed TTL of 2^k seconds and
// at-least-once dead-lettering to the next lower level. A delayed message's
// routing key spells its delay in binary, one word per level, followed by
// the destination queue; each level's exchange sends it either into the
// level's queue (bit 1) or straight on to the next level (bit 0). See
// docs/protocol.md.
//
// # Publishing
//
// A Publisher owns a channel in confirm mode. Publish returns a Pending whose
// Wait reports the broker's confirm; many goroutines may publish at once and
// their confirms are pipelined. Every publish is mandatory: a message the
// broker cannot route is reported as ErrUnroutable, never dropped.
//
// A Sender publishes the same way on a channel it replaces by itself after
// a channel error, a connection loss or a nack: producer and worker publish
// through one.
//
// EncodeRetry and EncodeDeadLetter derive, from a delivery and a Failed
// run, the message of a task's next attempt and its dead letter, trimmed
// to the connection's frame size; Decode reads either back.
//
// # Consuming
//
// Consume opens a channel with a prefetch window and consumes a queue. The
// consumer's Deliveries are settled by tag: Ack, Reject (the broker
// dead-letters the message) or Requeue. Acks of contiguous tags go out as
// one multiple-ack; a delivery may stay unsettled while later ones are
// acked (they are then acked one by one), so a caller can hold a task back
// and settle it later while its channel lives. Done and Err report the
// channel's loss; the broker then delivers again whatever was unsettled.
//
// # Errors
//
// A failed operation is an *OpError whose Op names what was being done
// (declare, consume, publish, lock…) and whose Err matches the sentinels
// (ErrQueueNotFound, ErrAccessRefused, …) with errors.Is.
package broker
