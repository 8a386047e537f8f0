//go:build integration

package dashboard

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/worker"
)

// TestPagesOnTheBroker renders every page against RabbitMQ: a queue with
// one dead letter (a task whose handler panicked, its payload holding a
// script) on the overview, the queue page, the dead-letter list, groups and
// detail pages.
func TestPagesOnTheBroker(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, 2*time.Minute)
	if err := broker.Declare(ctx, conn, broker.QueueOptions{}, q); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(ctx, conn, Config{Queues: []string{q}, Logger: quiet, Version: "v1.2.3", SampleInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- s.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		<-ran
	})

	// One dead letter: a handler that panics on the only attempt.
	const payload = `{"html":"<script>alert(1)</script>"}`
	id, err := s.producer.Enqueue(ctx, q, "page:test", []byte(payload), producer.WithMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := worker.New(conn, worker.HandlerFunc(func(ctx context.Context, task *warren.Task) error {
		panic("the page test's handler panics")
	}), worker.Config{Queues: []string{q}, Concurrency: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	poolCtx, stopPool := context.WithCancel(ctx)
	poolDone := make(chan error, 1)
	go func() { poolDone <- pool.Run(poolCtx) }()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := broker.Inspect(ctx, conn, warren.DeadLetterQueue(q))
		if err == nil && st.Ready == 1 {
			break
		}
		select {
		case <-deadline.C:
			t.Fatalf("no dead letter in %s (last: %+v, %v)", warren.DeadLetterQueue(q), st, err)
		case <-tick.C:
		}
	}
	stopPool()
	if err := <-poolDone; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("pool: %v", err)
	}

	page := func(path string, status int, wants ...string) string {
		t.Helper()
		r := httptest.NewRequest(http.MethodGet, path, nil).WithContext(ctx)
		r.Header.Set("Accept", "text/html")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		body := w.Body.String()
		if w.Code != status {
			t.Fatalf("GET %s: %d, want %d\n%s", path, w.Code, status, body)
		}
		for _, want := range wants {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s: no %s in\n%s", path, want, body)
			}
		}
		if strings.Contains(body, "<script>alert") {
			t.Errorf("GET %s: unescaped payload", path)
		}
		return body
	}
	// The overview shows the sampler's counts: wait for a sample that has
	// the dead letter.
	for {
		qs, _, _ := s.samples.snapshot()
		if len(qs) == 1 && qs[0].DeadLetters == 1 {
			break
		}
		select {
		case <-deadline.C:
			t.Fatalf("no sample with the dead letter: %+v", qs)
		case <-tick.C:
		}
	}
	qp := url.PathEscape(q)
	page("/", http.StatusOK, `<tr data-queue="`+q+`"`, `<td class="n dead"><a href="/queues/`+qp+`/dead">1</a></td>`,
		`id="rates-chart"`, `id="broker"`, "RabbitMQ", `<meta name="csrf-token" content="`, "Warren v1.2.3")
	page("/fragments/queues", http.StatusOK, `<table id="queues"`, `<tr data-queue="`+q+`"`)
	page("/queues/"+qp, http.StatusOK, `id="queue-state"`, `id="pause"`, `id="resume"`, `id="queue-counts"`, `id="queue-chart"`,
		`href="/queues/`+qp+`/dead"`)
	page("/queues/"+qp+"/dead?type=page:test", http.StatusOK, `<span id="dead-total">1</span>`, `<form id="dl-filter"`, `value="page:test"`,
		`<table id="dead-letters"`, `<a id="export"`, `<form id="import"`)
	page("/queues/"+qp+"/dead/groups", http.StatusOK, `<table id="groups"`, `<span id="dead-total">1</span>`)
	page("/queues/"+qp+"/dead/groups?by=type", http.StatusOK, `data-by="type"`)
	page("/queues/"+qp+"-missing/dead/groups", http.StatusNotFound)
	page("/queues/"+qp+"/dead/"+url.PathEscape(id), http.StatusOK, `<pre id="payload" class="payload json">`,
		`&lt;script&gt;alert(1)&lt;/script&gt;`, `<table id="history"`, `<pre id="stack">`, "the page test&#39;s handler panics", `id="replay-one"`)
	page("/queues/"+qp+"/dead/no-such-id", http.StatusNotFound)
	page("/queues/"+qp+"/dead/groups?by=nothing", http.StatusBadRequest)
	page("/queues/"+qp+"-missing", http.StatusNotFound, "does not exist")
	page("/queues/"+qp+"-missing/dead", http.StatusNotFound)
	page("/workers", http.StatusOK, `<table id="workers"`)
	page("/enqueue?queue="+url.QueryEscape(q), http.StatusOK, `<form id="enqueue-form"`, `value="`+q+`"`)

	// Read-only: the same pages without a mutating control.
	ro, err := New(ctx, conn, Config{Queues: []string{q}, Logger: quiet, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ro.Close(context.Background()) })
	for _, path := range []string{"/", "/queues/" + qp, "/queues/" + qp + "/dead", "/queues/" + qp + "/dead/" + url.PathEscape(id), "/enqueue"} {
		r := httptest.NewRequest(http.MethodGet, path, nil).WithContext(ctx)
		w := httptest.NewRecorder()
		ro.ServeHTTP(w, r)
		body := w.Body.String()
		if w.Code != http.StatusOK || !strings.Contains(body, `<body class="read-only"`) {
			t.Errorf("read-only GET %s: %d\n%s", path, w.Code, body)
		}
		for _, c := range mutating {
			if strings.Contains(body, c) {
				t.Errorf("read-only GET %s renders %s", path, c)
			}
		}
	}

	// The chart of the queue fills once the sampler has taken two samples
	// with the dead letter.
	for {
		if p := s.samples.points(q); len(p) >= 2 && p[len(p)-1].DeadLetters == 1 && p[len(p)-2].DeadLetters == 1 {
			break
		}
		select {
		case <-deadline.C:
			t.Fatal("no samples")
		case <-tick.C:
		}
	}
	chart := page("/fragments/chart?queue="+url.QueryEscape(q), http.StatusOK, `"label":"dead"`)
	if !regexp.MustCompile(`"label":"dead","scale":"n","values":\[[0-9,]*1,1\]`).MatchString(chart) {
		t.Errorf("the chart's dead series does not end with the two samples of 1 dead letter: %s", chart)
	}
}
