package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// jobLine is one line of an NDJSON job file:
//
//	{"type":"send","payload":{...},"id":"...","delay":"5s","max_attempts":3,"queue":"other"}
//
// Every field but type is optional, and type may come from --type.
type jobLine struct {
	Type    string
	Payload []byte // raw JSON as written; nil when absent
	ID      string
	Queue   string // "" means the --queue of the command
	// Delay is set when HasDelay.
	Delay    time.Duration
	HasDelay bool
	// MaxAttempts is set when HasMaxAttempts.
	MaxAttempts    int
	HasMaxAttempts bool
}

type rawJobLine struct {
	Type        *string         `json:"type"`
	Payload     json.RawMessage `json:"payload"`
	ID          *string         `json:"id"`
	Delay       *string         `json:"delay"`
	MaxAttempts *int            `json:"max_attempts"`
	Queue       *string         `json:"queue"`
}

// errBlankLine is returned for a line of only white space, which callers skip.
var errBlankLine = errors.New("blank line")

// parseJobLine parses and checks one NDJSON line. It never panics.
func parseJobLine(line []byte) (jobLine, error) {
	var j jobLine
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return j, errBlankLine
	}
	if line[0] != '{' {
		return j, errors.New("want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var raw rawJobLine
	if err := dec.Decode(&raw); err != nil {
		return j, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return j, errors.New("invalid JSON: data after the object")
	}
	var errs []error
	if raw.Type != nil {
		j.Type = *raw.Type
		if j.Type == "" || len(j.Type) > 255 {
			errs = append(errs, fmt.Errorf("type: want 1 to 255 bytes (got %d)", len(j.Type)))
		}
	}
	if raw.Payload != nil {
		// Decode keeps "null" as the four bytes; a payload is any JSON value.
		j.Payload = []byte(raw.Payload)
	}
	if raw.ID != nil {
		j.ID = *raw.ID
		if j.ID == "" || len(j.ID) > 255 {
			errs = append(errs, fmt.Errorf("id: want 1 to 255 bytes (got %d)", len(j.ID)))
		}
	}
	if raw.Delay != nil {
		d, err := time.ParseDuration(*raw.Delay)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("delay: %w", err))
		case d < 0:
			errs = append(errs, fmt.Errorf("delay cannot be negative (got %s)", d))
		case d > broker.MaxDelay:
			errs = append(errs, fmt.Errorf("delay %s exceeds the maximum of %s", d, broker.MaxDelay))
		default:
			j.Delay, j.HasDelay = d, true
		}
	}
	if raw.MaxAttempts != nil {
		if n := *raw.MaxAttempts; n < 0 || n > math.MaxInt32 {
			errs = append(errs, fmt.Errorf("max_attempts: want 0 to %d (got %d)", math.MaxInt32, n))
		} else {
			j.MaxAttempts, j.HasMaxAttempts = *raw.MaxAttempts, true
		}
	}
	if raw.Queue != nil {
		if err := warren.ValidateQueueName(*raw.Queue); err != nil {
			errs = append(errs, fmt.Errorf("queue: %w", err))
		} else {
			j.Queue = *raw.Queue
		}
	}
	if len(errs) > 0 {
		return jobLine{}, joinErrors(errs)
	}
	return j, nil
}

// joinErrors joins errs on one line, for reports that name a line number.
func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}
