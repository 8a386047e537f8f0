// Package worker runs Warren tasks.
//
// A Pool consumes one or more queues with manual acks and a bounded number
// of concurrent handlers. It acks a delivery only once its outcome is safe
// on the broker:
//
//   - the handler returned nil: ack;
//   - it failed and may run again: the task is republished to the broker's
//     delay levels with its attempt count raised and its error recorded,
//     confirmed, and only then acked;
//   - it failed for good (attempts exhausted, retry.Permanent, unknown task
//     type, a message that is not a Warren task): the task is published to
//     the queue's dead-letter queue with the story of its failure, confirmed,
//     and only then acked;
//   - a panic is recovered and counts as a failure, with its stack.
//
// A worker killed at any point loses nothing: what it had not acked, the
// broker delivers again. A task that kills its worker every time is moved
// to the dead-letter queue by the broker after the queue's delivery limit.
//
// Handlers follow net/http's shape: Handler, HandlerFunc, a Mux by task
// type, and Middleware. JSON decodes a JSON payload into a Go type.
//
// # Duplicates
//
// Delivery is at-least-once: a task can run twice (a worker killed after
// the work and before the ack, a connection lost mid-run, a producer's
// resend after a lost confirm). Every copy carries the same task ID, and
// Task.Redelivered and Task.DeliveryCount tell a redelivery. The
// Idempotent middleware skips a task whose ID (or key) a DoneStore has
// seen complete: the pool acks it unrun, Outcome Skipped. Give it a store
// on your database for a fleet of workers; MemoryStore serves one process.
//
// # Pauses and heartbeats
//
// A queue paused with fleet.Pause (or `warren queue pause`) is held back:
// within Config.PauseCheckInterval the pool cancels its consumer, hands
// back the deliveries no handler started, and lets the running ones finish;
// it consumes the queue again once it is resumed. A pool started on a
// paused queue does not consume it. Ready counts a paused queue as consumed.
//
// Every Config.HeartbeatInterval the pool publishes a fleet.Beat (its
// queues, the tasks it runs, its counts) for a fleet.Roster, the
// dashboard's list of workers, to read. docs/protocol.md, section 9, gives
// both on the wire.
package worker
