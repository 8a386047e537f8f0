package worker

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/retry"
)

func TestConfigValidateNamesEachFieldAtFault(t *testing.T) {
	if err := (Config{Queues: []string{"q"}}).Validate(); err != nil {
		t.Fatalf("zero fields are their defaults: %v", err)
	}
	err := Config{
		Queues:         []string{"a b", "q", "q"},
		Concurrency:    -1,
		Prefetch:       70000,
		HandlerTimeout: 2 * time.Hour,
		Retry:          retry.Policy{MaxAttempts: -2},
		RetryByType:    map[string]retry.Policy{"email": {Base: time.Hour, Cap: time.Second}},
		QueueOptions:   broker.QueueOptions{Type: "stream"},
	}.Validate()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	want := []string{"Queues", "Queues", "Concurrency", "Prefetch", "HandlerTimeout", "Retry", `RetryByType["email"]`, "QueueOptions"}
	if !slices.Equal(fields, want) {
		t.Errorf("fields at fault %q, want %q (%v)", fields, want, err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "Queues" {
		t.Errorf("errors.As on the joined error: %v", fe)
	}
}
