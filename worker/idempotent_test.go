package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/warrenq/warren"
)

// flakyStore is a DoneStore whose Done and MarkDone can be made to fail.
type flakyStore struct {
	mu        sync.Mutex
	done      map[string]bool
	doneErr   error
	markErr   error
	doneCalls int
}

func (s *flakyStore) Done(_ context.Context, key string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doneCalls++
	if s.doneErr != nil {
		return false, s.doneErr
	}
	return s.done[key], nil
}

func (s *flakyStore) MarkDone(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.markErr != nil {
		return s.markErr
	}
	s.done[key] = true
	return nil
}

func TestIdempotentRunsEachKeyOnceAndNeverMarksAFailure(t *testing.T) {
	store := &flakyStore{done: map[string]bool{}}
	runs := map[string]int{}
	fail := errors.New("handler failed")
	h := Idempotent(store, IdempotentConfig{})(HandlerFunc(func(_ context.Context, task *warren.Task) error {
		runs[task.ID]++
		if task.Type == "fails" && runs[task.ID] == 1 {
			return fail
		}
		return nil
	}))
	ctx := context.Background()
	ok := &warren.Task{ID: "a", Type: "ok"}
	if err := h.ProcessTask(ctx, ok); err != nil {
		t.Fatalf("first run: %v", err)
	}
	if err := h.ProcessTask(ctx, ok); !errors.Is(err, ErrAlreadyDone) {
		t.Fatalf("second copy: err %v, want ErrAlreadyDone", err)
	}
	if runs["a"] != 1 {
		t.Fatalf("task a ran %d times, want 1", runs["a"])
	}
	flaky := &warren.Task{ID: "b", Type: "fails"}
	if err := h.ProcessTask(ctx, flaky); !errors.Is(err, fail) {
		t.Fatalf("failing run: err %v, want the handler's", err)
	}
	if store.done["b"] {
		t.Fatal("a failed run was marked done")
	}
	if err := h.ProcessTask(ctx, flaky); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	if runs["b"] != 2 || !store.done["b"] {
		t.Fatalf("task b: %d runs, marked %v; want 2 runs and marked", runs["b"], store.done["b"])
	}
}

func TestIdempotentFailsTheTaskWhenTheStoreCannotTell(t *testing.T) {
	down := errors.New("store unreachable")
	store := &flakyStore{done: map[string]bool{}, doneErr: down}
	ran := false
	h := Idempotent(store, IdempotentConfig{})(HandlerFunc(func(context.Context, *warren.Task) error {
		ran = true
		return nil
	}))
	err := h.ProcessTask(context.Background(), &warren.Task{ID: "x"})
	if !errors.Is(err, down) || errors.Is(err, ErrAlreadyDone) {
		t.Fatalf("err %v, want the store's error (a failure to retry), not a skip", err)
	}
	if ran {
		t.Fatal("the handler ran although the store could not say whether the task was done")
	}
}

func TestIdempotentReportsAMarkErrorAndStillSucceeds(t *testing.T) {
	broken := errors.New("write failed")
	store := &flakyStore{done: map[string]bool{}, markErr: broken}
	var reported error
	h := Idempotent(store, IdempotentConfig{
		Key:         func(t *warren.Task) string { return t.Type + "/" + t.ID },
		OnMarkError: func(_ context.Context, _ *warren.Task, err error) { reported = err },
	})(HandlerFunc(func(context.Context, *warren.Task) error { return nil }))
	if err := h.ProcessTask(context.Background(), &warren.Task{ID: "1", Type: "email"}); err != nil {
		t.Fatalf("err %v: the work is done, the task must be acked", err)
	}
	if !errors.Is(reported, broken) {
		t.Fatalf("OnMarkError got %v, want the store's error", reported)
	}
}

func TestIdempotentUsesTheKeyFunction(t *testing.T) {
	store := &flakyStore{done: map[string]bool{"order-7": true}}
	h := Idempotent(store, IdempotentConfig{Key: func(t *warren.Task) string { return "order-" + string(t.Payload) }})(
		HandlerFunc(func(context.Context, *warren.Task) error { return errors.New("must not run") }))
	if err := h.ProcessTask(context.Background(), &warren.Task{ID: "random-id", Payload: []byte("7")}); !errors.Is(err, ErrAlreadyDone) {
		t.Fatalf("err %v, want ErrAlreadyDone for the business key", err)
	}
}

func TestMemoryStoreForgetsPastTTLAndMax(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	s := NewMemoryStore(3, time.Minute)
	s.now = func() time.Time { return now }
	for i := range 3 {
		if err := s.MarkDone(ctx, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if done, _ := s.Done(ctx, fmt.Sprint(i)); !done {
			t.Fatalf("key %d forgotten too early", i)
		}
	}
	_ = s.MarkDone(ctx, "3") // past Max: the oldest goes
	if done, _ := s.Done(ctx, "0"); done || s.Len() != 3 {
		t.Fatalf("after a 4th key: key 0 done=%v, len %d; want forgotten, 3", done, s.Len())
	}
	now = now.Add(time.Minute)
	if done, _ := s.Done(ctx, "3"); done {
		t.Fatal("a key past its TTL still counts as done")
	}
	_ = s.MarkDone(ctx, "4") // expired keys go at the next mark
	if s.Len() != 1 {
		t.Fatalf("len %d after the TTL, want 1", s.Len())
	}
}

func TestMemoryStoreIsSafeForConcurrentUse(t *testing.T) {
	s := NewMemoryStore(1000, time.Hour)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				k := fmt.Sprintf("%d-%d", g, i)
				_ = s.MarkDone(ctx, k)
				if done, _ := s.Done(ctx, k); !done && s.Len() < 1000 {
					t.Errorf("key %s not done right after MarkDone", k)
				}
			}
		}()
	}
	wg.Wait()
	if s.Len() != 1000 {
		t.Fatalf("len %d, want the max of 1000", s.Len())
	}
}
