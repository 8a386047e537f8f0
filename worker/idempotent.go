package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/warrenq/warren"
)

// ErrAlreadyDone tells the pool that a task's work was done before: the
// pool acks the delivery without running anything more and reports
// Outcome Skipped. Idempotent returns it for a task its store has seen
// complete; a handler may return it (wrapped or not) too, for a duplicate
// it detects itself.
var ErrAlreadyDone = errors.New("worker: task already done")

// DoneStore remembers which tasks have completed, for Idempotent.
// Implement it on the database your handlers write to (a table with a
// unique key column), or on Redis with an expiry; MemoryStore keeps one
// process's memory. Its methods are called from the pool's goroutines
// and must be safe for concurrent use.
type DoneStore interface {
	// Done reports whether the task with this key has completed.
	Done(ctx context.Context, key string) (bool, error)
	// MarkDone records that the task with this key has completed. The
	// pool acks the delivery after it returns.
	MarkDone(ctx context.Context, key string) error
}

// IdempotentConfig tunes Idempotent. The zero value keys tasks by ID.
type IdempotentConfig struct {
	// Key is a task's idempotency key. nil means its ID, which stays the
	// same across redeliveries, retries, replays, and a producer's
	// re-publish after a lost confirm (set your own business key as the
	// ID with producer.WithID).
	Key func(t *warren.Task) string
	// OnMarkError is called when MarkDone fails after the handler
	// succeeded. The task is acked anyway (its work is done); a copy of it
	// delivered later runs again. nil means the error is dropped.
	OnMarkError func(ctx context.Context, t *warren.Task, err error)
}

// Idempotent returns a middleware that runs each task's handler at most
// once per key, as far as store knows: a task whose key store has marked
// done is acked without running (Outcome Skipped, ErrAlreadyDone); a task
// whose handler returns nil is marked done before it is acked. A failed
// run is not marked, so its retry runs. If store cannot tell (Done fails),
// the task fails with that error and is retried later: nothing is skipped
// on a guess.
//
// It makes at-least-once delivery effectively once for the duplicates that
// arrive after a copy completed (a redelivery after a lost ack, a producer's
// resend, a replay of a task that had in fact completed). Two copies running
// at the same moment can both run; where that matters, record the key in
// the same transaction as the work, with a unique constraint, instead.
func Idempotent(store DoneStore, cfg IdempotentConfig) Middleware {
	key := cfg.Key
	if key == nil {
		key = func(t *warren.Task) string { return t.ID }
	}
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, t *warren.Task) error {
			k := key(t)
			if k == "" {
				return next.ProcessTask(ctx, t)
			}
			done, err := store.Done(ctx, k)
			if err != nil {
				return fmt.Errorf("worker: idempotency store: is %q done: %w", k, err)
			}
			if done {
				return fmt.Errorf("%w: key %q", ErrAlreadyDone, k)
			}
			if err := next.ProcessTask(ctx, t); err != nil {
				return err
			}
			if err := store.MarkDone(context.WithoutCancel(ctx), k); err != nil && cfg.OnMarkError != nil {
				cfg.OnMarkError(ctx, t, err)
			}
			return nil
		})
	}
}

// MemoryStore is a DoneStore in the process's memory: it remembers up to
// Max keys, each for TTL, and forgets the oldest first. It only sees the
// tasks of its own process, and forgets them when the process exits: a
// duplicate that another worker process receives runs again. Use it for
// one worker process, or as a cache in front of a shared store.
type MemoryStore struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	at    map[string]time.Time // key → when it was marked done
	order []string             // keys in the order they were marked, oldest first
}

// NewMemoryStore returns a MemoryStore of at most max keys (0 means
// 100,000), each kept for ttl (0 means 24h).
func NewMemoryStore(max int, ttl time.Duration) *MemoryStore {
	if max <= 0 {
		max = 100_000
	}
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	return &MemoryStore{max: max, ttl: ttl, now: time.Now, at: make(map[string]time.Time)}
}

// Done reports whether key was marked done within the TTL.
func (s *MemoryStore) Done(_ context.Context, key string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.at[key]
	return ok && s.now().Sub(at) < s.ttl, nil
}

// MarkDone records key, forgetting the oldest keys past Max or the TTL.
func (s *MemoryStore) MarkDone(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if _, ok := s.at[key]; !ok {
		s.order = append(s.order, key)
	}
	s.at[key] = now
	drop := 0
	for drop < len(s.order) {
		k := s.order[drop]
		at, ok := s.at[k]
		switch {
		case !ok:
		case len(s.at) > s.max || now.Sub(at) >= s.ttl:
			delete(s.at, k)
		default:
			s.order = s.order[drop:]
			s.compact()
			return nil
		}
		drop++
	}
	s.order = s.order[:0]
	return nil
}

// compact reallocates order once most of its backing array is dead space.
func (s *MemoryStore) compact() {
	if cap(s.order) > 1024 && len(s.order) < cap(s.order)/4 {
		s.order = append([]string(nil), s.order...)
	}
}

// Len returns how many keys the store holds.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.at)
}
