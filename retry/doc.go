// Package retry decides when a failed task runs again.
//
// A Policy computes exponential backoff with full jitter and a cap, and
// bounds the number of attempts. Handlers steer their own retries with
// errors: Permanent(err) sends a task straight to its dead-letter queue, and
// After(d, err) asks for a specific delay. Both are matched with errors.As,
// so they survive wrapping with %w.
//
// The waiting itself never happens in a worker: the worker republishes the
// task to the broker's delay levels and acks the original.
//
// The package also wraps go-resiliency's retrier and circuit breaker for
// infrastructure work (dialling, declaring, publishing); those are never
// used to retry a task's handler.
package retry
