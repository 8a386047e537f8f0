package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/retry"
)

// Handler runs one task. A nil error means done. Any other error is a
// failure: the task is retried after a backoff unless attempts are
// exhausted or the error is retry.Permanent. A handler must return when
// ctx ends (its timeout, or the pool's shutdown).
type Handler interface {
	ProcessTask(ctx context.Context, t *warren.Task) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, t *warren.Task) error

// ProcessTask calls f(ctx, t).
func (f HandlerFunc) ProcessTask(ctx context.Context, t *warren.Task) error { return f(ctx, t) }

// Middleware wraps a Handler.
type Middleware func(Handler) Handler

// ErrUnknownType is returned (wrapped) by a Mux for a task type with no
// handler. The pool dead-letters such tasks at once with reason
// unknown_type.
var ErrUnknownType = errors.New("worker: no handler registered for task type")

// Mux routes tasks to handlers by type. Register every handler before the
// pool starts; a Mux is then safe for concurrent use.
type Mux struct {
	mu       sync.RWMutex
	handlers map[string]Handler
	mws      []Middleware
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{handlers: make(map[string]Handler)} }

// Handle registers h for taskType. It panics if taskType is empty or
// already registered, or h is nil, as http.ServeMux.Handle does.
func (m *Mux) Handle(taskType string, h Handler) {
	if taskType == "" {
		panic("worker: Mux.Handle: empty task type")
	}
	if h == nil {
		panic("worker: Mux.Handle: nil handler for " + taskType)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.handlers[taskType]; dup {
		panic("worker: Mux.Handle: task type " + taskType + " registered twice")
	}
	m.handlers[taskType] = h
}

// HandleFunc registers f for taskType.
func (m *Mux) HandleFunc(taskType string, f func(ctx context.Context, t *warren.Task) error) {
	m.Handle(taskType, HandlerFunc(f))
}

// Use appends middleware, applied to every task in the order given (the
// first is outermost), unknown types included.
func (m *Mux) Use(mw ...Middleware) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mws = append(m.mws, mw...)
}

// Types returns the registered task types, sorted.
func (m *Mux) Types() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.handlers))
	for t := range m.handlers {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// ProcessTask runs the handler registered for t.Type, through the middleware.
func (m *Mux) ProcessTask(ctx context.Context, t *warren.Task) error {
	m.mu.RLock()
	h, ok := m.handlers[t.Type]
	mws := m.mws
	m.mu.RUnlock()
	if !ok {
		h = HandlerFunc(func(context.Context, *warren.Task) error {
			return fmt.Errorf("%w: %q", ErrUnknownType, t.Type)
		})
	}
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h.ProcessTask(ctx, t)
}

// JSON returns a Handler that decodes the payload as JSON into a T and
// calls fn. A payload that does not decode is a permanent failure: no
// retry can fix it. The task itself is available from TaskFromContext.
func JSON[T any](fn func(ctx context.Context, args T) error) Handler {
	return HandlerFunc(func(ctx context.Context, t *warren.Task) error {
		var args T
		if err := json.Unmarshal(t.Payload, &args); err != nil {
			return retry.Permanent(fmt.Errorf("worker: decode %s payload as %T: %w", t.Type, args, err))
		}
		return fn(ctx, args)
	})
}

// HandleJSON registers JSON(fn) on m for taskType.
func HandleJSON[T any](m *Mux, taskType string, fn func(ctx context.Context, args T) error) {
	m.Handle(taskType, JSON(fn))
}

type taskKey struct{}

// TaskFromContext returns the task a handler's context belongs to.
func TaskFromContext(ctx context.Context) (*warren.Task, bool) {
	t, ok := ctx.Value(taskKey{}).(*warren.Task)
	return t, ok
}

// PanicError is the failure recorded when a handler panics.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }
