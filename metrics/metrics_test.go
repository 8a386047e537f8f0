package metrics_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/metrics"
	"github.com/warrenq/warren/worker"
)

func newMetrics(t *testing.T, cfg metrics.Config) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	m, err := metrics.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// value returns the value of the one series of name with the given labels
// (a histogram's sample count).
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := lookup(t, reg, name, labels)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

func lookup(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			if len(got) != len(labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func run(m *metrics.Metrics, task *warren.Task, e worker.Event) {
	m.TaskStarted(task)
	e.Task = task
	m.TaskFinished(e)
}

func TestWorkerOutcomes(t *testing.T) {
	m, reg := newMetrics(t, metrics.Config{})
	task := func(typ string) *warren.Task { return &warren.Task{ID: "1", Type: typ, Queue: "emails", Attempt: 1} }
	run(m, task("send"), worker.Event{Outcome: worker.Succeeded, Duration: 20 * time.Millisecond})
	run(m, task("send"), worker.Event{Outcome: worker.Retried, Err: errors.New("boom"), Duration: time.Millisecond, Redelivered: true})
	run(m, task("send"), worker.Event{Outcome: worker.DeadLettered, Reason: warren.ReasonPermanent, Err: errors.New("no")})
	// A message that does not decode is never started.
	m.TaskFinished(worker.Event{Task: &warren.Task{Queue: "emails"}, Outcome: worker.DeadLettered, Reason: warren.ReasonMalformed, Err: errors.New("malformed")})

	q := map[string]string{"queue": "emails", "type": "send"}
	with := func(k, v string) map[string]string {
		out := map[string]string{k: v}
		for k, v := range q {
			out[k] = v
		}
		return out
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"warren_tasks_started_total", q, 3},
		{"warren_tasks_finished_total", with("outcome", "succeeded"), 1},
		{"warren_tasks_finished_total", with("outcome", "retried"), 1},
		{"warren_tasks_finished_total", with("outcome", "dead_lettered"), 1},
		{"warren_tasks_finished_total", with("outcome", "requeued"), 0},
		{"warren_tasks_finished_total", with("outcome", "voided"), 0},
		{"warren_tasks_failed_total", q, 2},
		{"warren_tasks_dead_lettered_total", with("reason", "permanent_error"), 1},
		{"warren_handler_duration_seconds", q, 3},
		{"warren_tasks_in_flight", map[string]string{"queue": "emails"}, 0},
		{"warren_redeliveries_total", map[string]string{"queue": "emails"}, 1},
		{"warren_tasks_finished_total", map[string]string{"queue": "emails", "type": "", "outcome": "dead_lettered"}, 1},
		{"warren_tasks_dead_lettered_total", map[string]string{"queue": "emails", "type": "", "reason": "malformed"}, 1},
		{"warren_tasks_failed_total", map[string]string{"queue": "emails", "type": ""}, 0},
	}
	for _, c := range checks {
		if got := value(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestInFlight(t *testing.T) {
	m, reg := newMetrics(t, metrics.Config{})
	a := &warren.Task{ID: "a", Type: "t", Queue: "q"}
	b := &warren.Task{ID: "b", Type: "t", Queue: "q"}
	m.TaskStarted(a)
	m.TaskStarted(b)
	if got := value(t, reg, "warren_tasks_in_flight", map[string]string{"queue": "q"}); got != 2 {
		t.Fatalf("in flight %v, want 2", got)
	}
	m.TaskFinished(worker.Event{Task: a, Outcome: worker.Succeeded})
	m.TaskFinished(worker.Event{Task: a, Outcome: worker.Succeeded}) // a second report changes nothing
	if got := value(t, reg, "warren_tasks_in_flight", map[string]string{"queue": "q"}); got != 1 {
		t.Fatalf("in flight %v, want 1", got)
	}
}

func TestEnqueued(t *testing.T) {
	m, reg := newMetrics(t, metrics.Config{})
	m.Enqueued("q", "t", nil, 3*time.Millisecond)
	m.Enqueued("q", "t", nil, 4*time.Millisecond)
	m.Enqueued("q", "t", errors.New("nacked"), time.Second)
	if got := value(t, reg, "warren_tasks_enqueued_total", map[string]string{"queue": "q", "type": "t", "result": "ok"}); got != 2 {
		t.Errorf("ok %v", got)
	}
	if got := value(t, reg, "warren_tasks_enqueued_total", map[string]string{"queue": "q", "type": "t", "result": "error"}); got != 1 {
		t.Errorf("error %v", got)
	}
	if got := value(t, reg, "warren_enqueue_duration_seconds", map[string]string{"queue": "q"}); got != 3 {
		t.Errorf("histogram count %v", got)
	}
}

func TestLabelCardinalityIsCapped(t *testing.T) {
	m, reg := newMetrics(t, metrics.Config{MaxTaskTypes: 3, MaxQueues: 2})
	for i := range 10 {
		m.Enqueued("q", fmt.Sprintf("type-%d", i), nil, time.Millisecond)
	}
	for i := range 5 {
		m.Enqueued(fmt.Sprintf("queue-%d", i), "type-0", nil, time.Millisecond)
	}
	if got := value(t, reg, "warren_tasks_enqueued_total", map[string]string{"queue": "q", "type": metrics.Other, "result": "ok"}); got != 7 {
		t.Errorf("other types: %v, want 7", got)
	}
	if got := value(t, reg, "warren_tasks_enqueued_total", map[string]string{"queue": metrics.Other, "type": "type-0", "result": "ok"}); got != 4 {
		t.Errorf("other queues: %v, want 4", got)
	}
	// q × (3 types + other), queue-0 (the second queue) and other queues.
	if n := testutil.CollectAndCount(reg, "warren_tasks_enqueued_total"); n != 4+1+1 {
		t.Errorf("%d series, want 6", n)
	}
}

func TestInvalidUTF8LabelsDoNotPanic(t *testing.T) {
	m, reg := newMetrics(t, metrics.Config{})
	bad := "caf\xe9"
	run(m, &warren.Task{Type: bad, Queue: "q"}, worker.Event{Outcome: worker.Succeeded})
	m.Enqueued("q", bad+strings.Repeat("x", 400), nil, 0)
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	if got := value(t, reg, "warren_tasks_started_total", map[string]string{"queue": "q", "type": "caf\uFFFD"}); got != 1 {
		t.Errorf("started %v", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	m, reg := newMetrics(t, metrics.Config{MaxTaskTypes: 5})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				task := &warren.Task{Type: fmt.Sprintf("t%d", (g+i)%9), Queue: "q"}
				run(m, task, worker.Event{Outcome: worker.Succeeded})
				m.Enqueued("q", task.Type, nil, time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if got := testutil.ToFloat64(sum(t, reg, "warren_tasks_started_total")); got != 1600 {
		t.Errorf("started %v, want 1600", got)
	}
	if got := value(t, reg, "warren_tasks_in_flight", map[string]string{"queue": "q"}); got != 0 {
		t.Errorf("in flight %v", got)
	}
}

// sum adds up every series of a counter, as a gauge for testutil.
func sum(t *testing.T, reg *prometheus.Registry, name string) prometheus.Gauge {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sum"})
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				g.Add(m.GetCounter().GetValue())
			}
		}
	}
	return g
}

func TestRegisteringTwiceFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(metrics.Config{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(metrics.Config{Registerer: reg}); err == nil {
		t.Fatal("second New on the same registry succeeded")
	}
	if _, err := metrics.New(metrics.Config{Registerer: prometheus.NewRegistry(), MaxTaskTypes: -1}); err == nil || !strings.Contains(err.Error(), "MaxTaskTypes") {
		t.Fatalf("negative cap: %v", err)
	}
}

func TestBreakerValue(t *testing.T) {
	for state, want := range map[string]float64{"closed": 0, "half-open": 1, "open": 2} {
		if got := metrics.BreakerValue(state); got != want {
			t.Errorf("%s: %v, want %v", state, got, want)
		}
	}
}

func TestNoConnNoStateSeries(t *testing.T) {
	_, reg := newMetrics(t, metrics.Config{})
	if n := testutil.CollectAndCount(reg, "warren_broker_connected", "warren_publish_breaker_state"); n != 0 {
		t.Errorf("%d state series without a connection or producer", n)
	}
}
