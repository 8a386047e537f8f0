package worker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/retry"
)

func TestConfigRefusesHandlerTimeoutNearConsumerTimeout(t *testing.T) {
	cfg := Config{Queues: []string{"q"}, HandlerTimeout: 30 * time.Minute}.withDefaults()
	err := cfg.validate()
	if err == nil || !strings.Contains(err.Error(), "consumer_timeout") {
		t.Fatalf("30m handler timeout with a 30m consumer_timeout: %v", err)
	}
	cfg = Config{Queues: []string{"q"}, HandlerTimeout: 29 * time.Minute}.withDefaults()
	if err := cfg.validate(); err != nil {
		t.Errorf("29m should fit under 30m: %v", err)
	}
	cfg = Config{Queues: []string{"q"}, HandlerTimeout: 2 * time.Hour, ConsumerTimeout: 3 * time.Hour}.withDefaults()
	if err := cfg.validate(); err != nil {
		t.Errorf("a raised consumer_timeout should allow 2h: %v", err)
	}
}

func TestConfigDefaultsAndJoinedErrors(t *testing.T) {
	cfg := Config{Queues: []string{"q"}}.withDefaults()
	if cfg.Concurrency != DefaultConcurrency || cfg.Prefetch != 100 || cfg.HandlerTimeout != DefaultHandlerTimeout ||
		cfg.ShutdownTimeout != DefaultShutdownTimeout || cfg.ConsumerTimeout != DefaultConsumerTimeout || cfg.Logger == nil {
		t.Errorf("defaults: %+v", cfg)
	}
	err := Config{Queues: []string{"a b", "q", "q"}, Concurrency: -1, Prefetch: 70000, Retry: retry.Policy{MaxAttempts: -2}}.withDefaults().validate()
	for _, want := range []string{"invalid queue name", "listed twice", "Concurrency", "Prefetch", "MaxAttempts"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate error lacks %q: %v", want, err)
		}
	}
	if err := (Config{}).withDefaults().validate(); err == nil || !strings.Contains(err.Error(), "at least one queue") {
		t.Errorf("no queues: %v", err)
	}
}

func TestMuxRoutesAppliesMiddlewareAndRejectsUnknown(t *testing.T) {
	m := NewMux()
	var order []string
	m.Use(func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, t *warren.Task) error {
			order = append(order, "outer")
			return next.ProcessTask(ctx, t)
		})
	}, func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, t *warren.Task) error {
			order = append(order, "inner")
			return next.ProcessTask(ctx, t)
		})
	})
	m.HandleFunc("a", func(context.Context, *warren.Task) error { order = append(order, "a"); return nil })
	if err := m.ProcessTask(context.Background(), &warren.Task{Type: "a"}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "outer,inner,a" {
		t.Errorf("order %v", order)
	}
	err := m.ProcessTask(context.Background(), &warren.Task{Type: "zzz"})
	if !errors.Is(err, ErrUnknownType) || !strings.Contains(err.Error(), "zzz") {
		t.Errorf("unknown type: %v", err)
	}
	if got := m.Types(); len(got) != 1 || got[0] != "a" {
		t.Errorf("Types = %v", got)
	}
}

func TestMuxPanicsOnDuplicateRegistration(t *testing.T) {
	m := NewMux()
	m.HandleFunc("a", func(context.Context, *warren.Task) error { return nil })
	defer func() {
		if recover() == nil {
			t.Error("registering a type twice did not panic")
		}
	}()
	m.HandleFunc("a", func(context.Context, *warren.Task) error { return nil })
}

func TestJSONHandlerBadPayloadIsPermanent(t *testing.T) {
	h := JSON(func(context.Context, struct{ N int }) error { return nil })
	err := h.ProcessTask(context.Background(), &warren.Task{Type: "t", Payload: []byte(`not json`)})
	if !retry.IsPermanent(err) {
		t.Errorf("bad JSON: %v is not permanent", err)
	}
	if err := h.ProcessTask(context.Background(), &warren.Task{Type: "t", Payload: []byte(`{"N":1}`)}); err != nil {
		t.Errorf("good JSON: %v", err)
	}
}
