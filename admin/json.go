package admin

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
)

// DeadLetterJSON is the JSON form of a DeadLetter: what `warren dlq list
// --output json` prints, and what an HTTP API or a web page built on this
// package serves, so that all of them show a dead letter the same way.
// Field names are stable; empty fields are left out.
type DeadLetterJSON struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Queue         string          `json:"queue"`
	Reason        string          `json:"reason,omitempty"`
	Error         string          `json:"error,omitempty"`
	Unreadable    bool            `json:"unreadable,omitempty"`
	Attempts      int             `json:"attempts"`
	MaxAttempts   int             `json:"max_attempts,omitempty"`
	EnqueuedAt    *time.Time      `json:"enqueued_at,omitempty"`
	FailedAt      *time.Time      `json:"failed_at,omitempty"`
	WorkerHost    string          `json:"worker_host,omitempty"`
	DurationMS    int64           `json:"duration_ms,omitempty"`
	ReplayCount   int             `json:"replay_count,omitempty"`
	DeliveryCount int             `json:"delivery_count,omitempty"`
	ContentType   string          `json:"content_type,omitempty"`
	Payload       json.RawMessage `json:"payload,omitempty"`        // when it is JSON
	PayloadText   *string         `json:"payload_text,omitempty"`   // when it is other UTF-8 text
	PayloadBase64 string          `json:"payload_base64,omitempty"` // otherwise
	History       []FailureJSON   `json:"history,omitempty"`
	Stack         string          `json:"stack,omitempty"`
	// Headers are the task's own headers (not Warren's, not the broker's
	// x- ones), with byte strings as text (or "base64:…") and times in
	// RFC 3339.
	Headers map[string]any `json:"headers,omitempty"`
}

// FailureJSON is the JSON form of one failed attempt of a dead letter's
// history.
type FailureJSON struct {
	Attempt    int       `json:"attempt"`
	Error      string    `json:"error"`
	FailedAt   time.Time `json:"failed_at"`
	Worker     string    `json:"worker,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}

// JSON returns dl's JSON form.
func (dl DeadLetter) JSON() DeadLetterJSON {
	j := DeadLetterJSON{
		ID: dl.ID, Type: dl.Type, Queue: dl.Queue, Reason: string(dl.Reason), Error: dl.Error,
		Attempts: dl.Attempts, MaxAttempts: dl.MaxAttempts, WorkerHost: dl.WorkerHost,
		DurationMS: dl.Duration.Milliseconds(), ReplayCount: dl.ReplayCount, DeliveryCount: dl.DeliveryCount,
		ContentType: dl.ContentType, Stack: dl.Stack, Unreadable: dl.Unreadable,
	}
	if !dl.EnqueuedAt.IsZero() {
		t := dl.EnqueuedAt.UTC()
		j.EnqueuedAt = &t
	}
	if !dl.FailedAt.IsZero() {
		t := dl.FailedAt.UTC()
		j.FailedAt = &t
	}
	switch {
	case len(dl.Payload) > 0 && json.Valid(dl.Payload):
		j.Payload = json.RawMessage(dl.Payload)
	case utf8.Valid(dl.Payload):
		s := string(dl.Payload)
		j.PayloadText = &s
	default:
		j.PayloadBase64 = base64.StdEncoding.EncodeToString(dl.Payload)
	}
	for _, h := range dl.History {
		j.History = append(j.History, FailureJSON{Attempt: h.Attempt, Error: h.Error, FailedAt: h.FailedAt.UTC(), Worker: h.Worker, DurationMS: h.Duration.Milliseconds()})
	}
	for k, v := range dl.Headers {
		if strings.HasPrefix(k, "x-") || strings.HasPrefix(k, warren.HeaderPrefix) {
			continue
		}
		if j.Headers == nil {
			j.Headers = make(map[string]any)
		}
		j.Headers[k] = jsonable(v)
	}
	return j
}

// MarshalJSON writes dl as its DeadLetterJSON.
func (dl DeadLetter) MarshalJSON() ([]byte, error) { return json.Marshal(dl.JSON()) }

// Printable returns b as text when it is valid UTF-8, else "base64:" and
// its base64.
func Printable(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return "base64:" + base64.StdEncoding.EncodeToString(b)
}

// jsonable turns an AMQP header value into something encoding/json writes.
func jsonable(v any) any {
	switch x := v.(type) {
	case []byte:
		return Printable(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case amqp.Table:
		return jsonable(map[string]any(x))
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = jsonable(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = jsonable(e)
		}
		return s
	case string, bool, nil, int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, float32, float64:
		return x
	}
	return fmt.Sprint(v)
}

// MarshalJSON writes g as `warren dlq list --group-by` prints it: the
// example error's first line only, and the failure times left out when
// unknown.
func (g Group) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Key        string     `json:"key"`
		Count      int        `json:"count"`
		ExampleID  string     `json:"example_id"`
		Example    string     `json:"example,omitempty"`
		OldestFail *time.Time `json:"first_failed_at,omitempty"`
		NewestFail *time.Time `json:"last_failed_at,omitempty"`
	}{g.Key, g.Count, g.ExampleID, firstLine(g.Example, 200), timeOrNull(g.OldestFailure), timeOrNull(g.NewestFailure)})
}

// MarshalJSON writes q with the counts that are unknown (-1) as null.
func (q QueueInfo) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name        string `json:"name"`
		Exists      bool   `json:"exists"`
		Ready       int    `json:"ready"`
		Unacked     *int   `json:"unacked"`
		Consumers   int    `json:"consumers"`
		DeadLetters int    `json:"dead_letters"`
		Delayed     int    `json:"delayed"`
		DelayedHeld *int   `json:"delayed_held"`
		Paused      bool   `json:"paused"`
	}{q.Name, q.Exists, q.Ready, countOrNull(q.Unacked), q.Consumers, q.DeadLetters, q.Delayed, countOrNull(q.DelayedHeld), q.Paused})
}

// timeOrNull is nil for the zero time.
func timeOrNull(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// countOrNull is nil for a count that is -1 (unknown).
func countOrNull(n int) *int {
	if n < 0 {
		return nil
	}
	return &n
}
