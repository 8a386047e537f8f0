// Package admin inspects and repairs Warren queues over AMQP: it lists,
// shows, groups, replays, purges, exports and imports dead letters, and
// reports queue depths. The CLI's `warren dlq` and `warren queues` commands
// are thin layers over it.
//
// An Inspector works on one broker.Conn and is safe for concurrent use:
//
//	adm := admin.New(conn, admin.Config{})
//	dead, err := adm.List(ctx, "emails", admin.Filter{Types: []string{"email:send"}})
//	causes, err := adm.Group(ctx, "emails", admin.Filter{}, admin.ByError)
//	res, err := adm.Replay(ctx, "emails", admin.Filter{IDs: ids}, admin.ReplayOptions{})
//
// Every operation names the Warren queue Q; its dead letters live in
// Q.dlq (warren.DeadLetterQueue).
//
// # Nothing is lost
//
// RabbitMQ cannot browse a queue, so every operation on dead letters is a
// pass: it reads the dead letters the queue held when it began, once each,
// in order, without acking (through a consumer with a small prefetch
// window, the last few with basic.get), and then either hands each
// one back (a nack with requeue) or removes it (an ack). Until then the
// dead letter stays on the broker, unacked: if the process, the connection
// or the operation ends, the broker requeues it. List, Get, Each and
// Export (without Remove) only hand back. Purge acks what it selects;
// Export with Remove acks what it selects once the records are written and
// flushed (and synced, for a file) to its output. Replay publishes a copy of each
// selected dead letter with a publisher confirm, and acks the dead letter
// only after the broker confirmed the copy. The same publish stores the
// copy in the queue's replay journal, Q.dlq.replayed (RabbitMQ's BCC
// header, checked on 3.10.8 by TestBCCOnThisBroker), so that a replay
// killed between the confirm and the ack is finished by the next one
// without replaying anything twice (see Replay).
//
// # One operation at a time
//
// A pass holds the dead letters it reads, so two passes over one queue
// would each see only part of it. Each pass therefore takes the queue's
// lock first: it declares an exclusive, auto-delete queue named
// "warren.lock.Q.dlq" on the admin's connection. A second declaration from
// another connection fails with RESOURCE_LOCKED, which the Inspector reports
// as ErrBusy; two operations on one connection exclude each other in the
// process. The broker deletes an exclusive queue when its connection
// closes, so a killed CLI frees the lock. The user needs the configure
// permission on warren.lock.* (and on Q.dlq, which a pass redeclares, as
// it was declared, to check that it is a standard quorum dead-letter
// queue).
//
// # Order, and what RabbitMQ 3.10 changes
//
// These hold on RabbitMQ 3.10, where the integration tests check them
// (docs/operations.md has the measurements):
//
//   - A quorum queue puts a returned message (nack with requeue, or a
//     channel closing with messages unacked) at the back of the queue, not
//     back in its place. So a pass hands back every dead letter it read,
//     in order, and reads all the queue held even when a Limit or Get is
//     satisfied early: the queue turns once, all the way round, and is in
//     its order again. An interrupted pass leaves it turned part of the
//     way: the same dead letters, in the same cyclic order. Dead letters
//     that arrive during a pass end up among the ones handed back so far,
//     in their own order.
//   - Returning many messages at once (closing the channel, a multiple
//     nack, or more than 32 nacks in flight) scrambles their order, and
//     acks beyond 32 in flight are stashed in the broker's channel process
//     and lost if the channel closes first. A multiple-ack does not help (basic.get deliveries are settled one
//     command each). A pass therefore sends at most 16 acks or nacks
//     between barriers (a basic.get, or a returned message showing in the
//     queue's ready count), and leaves itself room to settle everything
//     before it closes its channel. Reading through a consumer, it holds
//     at most 16 dead letters unsettled (the prefetch window), which
//     bounds the same way what the broker has not applied; it stops the
//     consumer only once the window is spent (broker.Cursor), since a
//     delivery still in flight when the consumer is cancelled is held by
//     the broker until the channel closes, and then requeued out of its
//     place.
//   - basic.get slows down sharply as the messages one channel holds
//     unacked grow, so a pass hands back as it goes instead of holding the
//     queue.
//   - Every return counts as a delivery: each pass raises the
//     x-delivery-count of every dead letter it hands back
//     (DeadLetter.DeliveryCount). Warren's dead-letter queues have no
//     delivery limit, so nothing follows from it. Never apply a policy with
//     a delivery-limit to them: with no dead-letter exchange, RabbitMQ 3.10
//     drops a message past its limit.
//   - While a pass runs, it counts as a consumer of the dead-letter queue.
//
// A dead-letter queue that is not the standard quorum one (classic, which
// requeues in place, or declared with other arguments) is read holding
// what it keeps until the end of the pass: exact, but slow for large
// queues.
//
// # Scale
//
// A pass reads through a consumer with a prefetch window of 16, a few
// thousand dead letters a second: docs/operations.md has the figures for 100,000 dead
// letters of every operation, with nothing lost and the order kept. List
// holds its result in memory (about 2.8 KiB per dead letter in that test, most
// of it the header tables); Each and Export stream. The broker's
// consumer_timeout (30 minutes by default) applies only to the few dead
// letters a pass holds at once.
//
// # Export and import
//
// Export writes dead letters as NDJSON records, one a line, and Import
// publishes such records into a dead-letter queue, in order, with
// publisher confirms: for a cold backup, or to move dead letters to
// another queue or broker. A record (version RecordVersion) holds every
// AMQP property, every header with its AMQP type and the body in base64,
// so that an export, a purge and an import give back the same messages:
// the same bytes, and the same amqp.Table with the same Go types (int32
// stays int32; timestamps, byte arrays, decimals, the nested tables and
// arrays of x-death). The integration tests check it on RabbitMQ 3.10.8,
// which keeps every AMQP 0-9-1 field type but cannot store a NaN or an
// infinite float (it closes the connection): Import refuses those.
// x-delivery-count is exported but not imported; the target queue keeps
// its own count.
//
// Import checks its whole input before it publishes anything: one
// malformed line (a *RecordError names it) and nothing is imported. It
// skips the records whose dead letter the target already holds, the same
// in every property, header and body byte, so that importing a file twice
// imports it once. docs/operations.md describes the record format.
//
// # Progress
//
// WithProgress attaches a function to a context; the operations run with
// it report how far they have got (Progress). The CLI draws its progress
// bars with it.
//
// # Queue depths
//
// Queues reports ready messages and consumers by passive declares, the
// dead letters of each queue, and the tasks waiting in the shared delay
// levels. AMQP does not tell how many messages are delivered and unacked;
// Queues asks `rabbitmqctl list_queues` for that when the broker is the
// local node, and reports -1 otherwise.
//
// # Showing results
//
// A DeadLetter, a Group and a QueueInfo marshal to the JSON that `warren
// dlq list` and `warren queues` print, and ReplayReport, PurgeReport,
// ExportReport and ImportReport give a pass's outcome as JSON and as a
// one-line Summary, so that a CLI, an HTTP API and a web page show the
// same thing. WriteTable, DeadLetter.WriteText, WriteGroups and
// WriteQueues write the text forms, escaped for a terminal.
package admin
