package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/worker"
)

// Deduper remembers the caller task IDs the API has enqueued, per queue,
// so that a client retrying an enqueue with the same ID (after a timeout,
// say) gets its first answer instead of a second task. The memory one
// (NewMemoryDeduper) sees only its own instance's enqueues: behind a load
// balancer, route a client's retries to the same instance (sticky
// sessions) or give every instance one shared Deduper (a database table
// with a unique key, Redis with an expiry).
type Deduper interface {
	// Seen reports whether id was enqueued to queue and confirmed.
	Seen(ctx context.Context, queue, id string) (bool, error)
	// Record remembers that id was enqueued to queue, once the broker
	// confirmed it.
	Record(ctx context.Context, queue, id string) error
}

// Defaults of NewMemoryDeduper.
const (
	DefaultDedupKeys = 100_000
	DefaultDedupTTL  = 24 * time.Hour
)

// NewMemoryDeduper returns a Deduper in this process's memory: it keeps at
// most max IDs (0 means 100,000), each for ttl (0 means 24h), and forgets
// the oldest first. It is worker.MemoryStore keyed by queue and ID.
func NewMemoryDeduper(max int, ttl time.Duration) Deduper {
	if max <= 0 {
		max = DefaultDedupKeys
	}
	if ttl <= 0 {
		ttl = DefaultDedupTTL
	}
	return memoryDeduper{worker.NewMemoryStore(max, ttl)}
}

type memoryDeduper struct{ store *worker.MemoryStore }

func dedupKey(queue, id string) string { return queue + "\x00" + id }

func (d memoryDeduper) Seen(ctx context.Context, queue, id string) (bool, error) {
	return d.store.Done(ctx, dedupKey(queue, id))
}

func (d memoryDeduper) Record(ctx context.Context, queue, id string) error {
	return d.store.MarkDone(ctx, dedupKey(queue, id))
}

// claims serialises the enqueues of one caller task ID: the second of two
// concurrent requests with the same ID waits for the first, then finds it
// recorded (or, if it failed, publishes itself).
type claims struct {
	mu   sync.Mutex
	held map[string]chan struct{}
}

func newClaims() *claims { return &claims{held: map[string]chan struct{}{}} }

// claim waits until key is free and takes it; release frees it.
func (c *claims) claim(ctx context.Context, key string) (release func(), err error) {
	for {
		c.mu.Lock()
		ch, busy := c.held[key]
		if !busy {
			ch = make(chan struct{})
			c.held[key] = ch
			c.mu.Unlock()
			return func() {
				c.mu.Lock()
				delete(c.held, key)
				c.mu.Unlock()
				close(ch)
			}, nil
		}
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// taskRequest is one task to enqueue, as the API reads it.
type taskRequest struct {
	Type        string          `json:"type"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	Delay       string          `json:"delay,omitempty"`
	ID          string          `json:"id,omitempty"`
	MaxAttempts *int            `json:"max_attempts,omitempty"`
}

// batchRequest is the body of a batch enqueue.
type batchRequest struct {
	Tasks []taskRequest `json:"tasks"`
}

// taskResponse answers one enqueued task.
type taskResponse struct {
	ID        string `json:"id"`
	Queue     string `json:"queue,omitempty"`
	Duplicate bool   `json:"duplicate"`
	// Error is set, in a batch that failed in part, for the tasks that
	// were not enqueued.
	Error *ErrorDetail `json:"error,omitempty"`
}

// job checks t and turns it into a producer job for queue; maxPayload
// bounds its payload (413 beyond).
func (t taskRequest) job(queue string, maxPayload int) (producer.Job, error) {
	if t.Type == "" || len(t.Type) > 255 {
		return producer.Job{}, badRequest("type: want 1 to 255 bytes (got %d)", len(t.Type))
	}
	if len(t.ID) > 255 {
		return producer.Job{}, badRequest("id: want at most 255 bytes (got %d)", len(t.ID))
	}
	payload := []byte(t.Payload)
	if payload == nil {
		payload = []byte("{}")
	}
	if len(payload) > maxPayload {
		return producer.Job{}, tooLarge("payload: %d bytes, over the limit of %d", len(payload), maxPayload)
	}
	j := producer.Job{Queue: queue, Type: t.Type, Payload: payload}
	if t.ID != "" {
		j.Options = append(j.Options, producer.WithID(t.ID))
	}
	if t.Delay != "" {
		d, err := time.ParseDuration(t.Delay)
		switch {
		case err != nil:
			return producer.Job{}, badRequest("delay: %v (want a Go duration such as 10s or 1h30m)", err)
		case d < 0:
			return producer.Job{}, badRequest("delay: cannot be negative (got %s)", d)
		case d > broker.MaxDelay:
			return producer.Job{}, badRequest("delay: %s exceeds the maximum of %s", d, broker.MaxDelay)
		}
		j.Options = append(j.Options, producer.WithDelay(d))
	}
	if t.MaxAttempts != nil {
		n := *t.MaxAttempts
		if n < 1 || n > math.MaxInt32 {
			return producer.Job{}, badRequest("max_attempts: want 1 to %d (got %d)", math.MaxInt32, n)
		}
		j.Options = append(j.Options, producer.WithMaxAttempts(n))
	}
	return j, nil
}

// decodeTask reads the body of a single enqueue.
func decodeTask(data []byte, queue string, maxPayload int) (taskRequest, producer.Job, error) {
	var t taskRequest
	if err := decodeJSON(bytes.NewReader(data), &t); err != nil {
		return t, producer.Job{}, err
	}
	j, err := t.job(queue, maxPayload)
	return t, j, err
}

// decodeBatch reads the body of a batch enqueue: at least one task, at
// most maxBatch (413 beyond).
func decodeBatch(data []byte, queue string, maxPayload, maxBatch int) ([]taskRequest, []producer.Job, error) {
	var b batchRequest
	if err := decodeJSON(bytes.NewReader(data), &b); err != nil {
		return nil, nil, err
	}
	if len(b.Tasks) == 0 {
		return nil, nil, badRequest(`tasks: empty batch (want {"tasks": [...]} with at least one task)`)
	}
	if len(b.Tasks) > maxBatch {
		return nil, nil, tooLarge("tasks: %d tasks, over the limit of %d a batch", len(b.Tasks), maxBatch)
	}
	jobs := make([]producer.Job, len(b.Tasks))
	for i, t := range b.Tasks {
		j, err := t.job(queue, maxPayload)
		if err != nil {
			if re, ok := err.(*requestError); ok {
				re.msg = fmt.Sprintf("tasks[%d]: %s", i, re.msg)
			}
			return nil, nil, err
		}
		jobs[i] = j
	}
	return b.Tasks, jobs, nil
}

// readBody reads r's JSON body, at most MaxBody bytes.
func (a *api) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if !isJSONType(r.Header.Get("Content-Type")) {
		return nil, unsupported("the body must be JSON (Content-Type: application/json), not %q", r.Header.Get("Content-Type"))
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.s.cfg.MaxBody))
	if err != nil {
		return nil, tooLargeOr(err)
	}
	return data, nil
}

// queueAndBody reads an enqueue's queue and body, or answers the error and
// returns ok false.
func (a *api) queueAndBody(w http.ResponseWriter, r *http.Request) (queue string, data []byte, ok bool) {
	queue, err := queueParam(r)
	if err == nil {
		data, err = a.readBody(w, r)
	}
	if err != nil {
		a.fail(w, r, err)
		return "", nil, false
	}
	return queue, data, true
}

// enqueue serves POST /api/v1/queues/{queue}/tasks.
func (a *api) enqueue(w http.ResponseWriter, r *http.Request) {
	queue, data, ok := a.queueAndBody(w, r)
	if !ok {
		return
	}
	t, job, err := decodeTask(data, queue, a.s.cfg.MaxPayload)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ctx := r.Context()
	if t.ID != "" {
		release, err := a.inflight.claim(ctx, dedupKey(queue, t.ID))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		defer release()
		seen, err := a.dedup.Seen(ctx, queue, t.ID)
		if err != nil {
			a.fail(w, r, fmt.Errorf("dedup: %w", err))
			return
		}
		if seen {
			writeJSON(w, http.StatusCreated, taskResponse{ID: t.ID, Queue: queue, Duplicate: true})
			return
		}
	}
	id, err := a.s.producer.Enqueue(ctx, queue, job.Type, job.Payload, job.Options...)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if t.ID != "" {
		if err := a.dedup.Record(ctx, queue, t.ID); err != nil {
			a.s.log.Warn("dashboard: recording an enqueued task ID failed", "queue", queue, "id", t.ID, "err", err)
		}
	}
	a.s.audit(r, "enqueue", queue, 1, "id", id, "type", job.Type)
	writeJSON(w, http.StatusCreated, taskResponse{ID: id, Queue: queue})
}

// batchResponse answers a batch enqueue.
type batchResponse struct {
	Error *ErrorDetail   `json:"error,omitempty"`
	Tasks []taskResponse `json:"tasks"`
}

// enqueueBatch serves POST /api/v1/queues/{queue}/tasks/batch: it
// publishes every task, pipelined (producer.EnqueueBatch), then waits for
// their confirms. Tasks whose caller ID was enqueued before, or earlier in
// the batch, are answered as duplicates and not published.
func (a *api) enqueueBatch(w http.ResponseWriter, r *http.Request) {
	queue, data, ok := a.queueAndBody(w, r)
	if !ok {
		return
	}
	tasks, jobs, err := decodeBatch(data, queue, a.s.cfg.MaxPayload, a.s.cfg.MaxBatch)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ctx := r.Context()
	out := make([]taskResponse, len(tasks))
	// Claim the caller IDs in sorted order, so that two batches naming the
	// same IDs in other orders cannot wait for each other.
	var ids []string
	first := map[string]int{} // caller ID → its first task
	for i, t := range tasks {
		out[i].ID = t.ID
		if t.ID == "" {
			continue
		}
		if _, dup := first[t.ID]; dup {
			out[i].Duplicate = true
			continue
		}
		first[t.ID] = i
		ids = append(ids, t.ID)
	}
	slices.Sort(ids)
	for _, id := range ids {
		release, err := a.inflight.claim(ctx, dedupKey(queue, id))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		defer release()
		seen, err := a.dedup.Seen(ctx, queue, id)
		if err != nil {
			a.fail(w, r, fmt.Errorf("dedup: %w", err))
			return
		}
		if seen {
			out[first[id]].Duplicate = true
		}
	}
	send := make([]producer.Job, 0, len(jobs))
	sendIdx := make([]int, 0, len(jobs))
	for i := range tasks {
		if out[i].Duplicate {
			continue
		}
		send, sendIdx = append(send, jobs[i]), append(sendIdx, i)
	}
	var firstErr error
	enqueued := 0
	if len(send) > 0 {
		results, err := a.s.producer.EnqueueBatch(ctx, send)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		for k, res := range results {
			i := sendIdx[k]
			out[i].ID = res.ID
			if res.Err != nil {
				if firstErr == nil {
					firstErr = res.Err
				}
				_, code := classify(res.Err)
				out[i].Error = &ErrorDetail{Code: code, Message: redact(res.Err.Error())}
				continue
			}
			enqueued++
			if tasks[i].ID != "" {
				if err := a.dedup.Record(ctx, queue, tasks[i].ID); err != nil {
					a.s.log.Warn("dashboard: recording an enqueued task ID failed", "queue", queue, "id", tasks[i].ID, "err", err)
				}
			}
		}
	}
	if enqueued > 0 {
		a.s.audit(r, "enqueue", queue, enqueued, "batch", len(tasks))
	}
	if firstErr != nil {
		status, code := classify(firstErr)
		writeJSON(w, status, batchResponse{
			Error: &ErrorDetail{Code: code, Message: fmt.Sprintf("%d of %d tasks were not enqueued (the others were; retry with the same IDs): %s",
				len(send)-enqueued, len(tasks), redact(firstErr.Error()))},
			Tasks: out,
		})
		return
	}
	writeJSON(w, http.StatusCreated, batchResponse{Tasks: out})
}

// tooLargeOr turns a body over its limit into a 413, and any other read
// error into a 400.
func tooLargeOr(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge("the body is larger than %d bytes", mbe.Limit)
	}
	return badRequest("reading the body: %v", err)
}
