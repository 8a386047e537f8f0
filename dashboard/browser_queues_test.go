//go:build integration

package dashboard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/dashboard"
	"github.com/warrenq/warren/worker"
)

// TestBrowserOverviewCounts: the overview's queue table follows the
// broker while it stays open, without a reload.
func TestBrowserOverviewCounts(t *testing.T) {
	e := startBrowserEnv(t, dashboard.Config{})
	p := e.page("overview")
	p.Go("/")
	row := `tr[data-queue="` + e.queue + `"]`
	p.WaitText(row+" td.ready", "0")
	p.WaitText(row+" td.state", "running")
	p.WaitText(row+" td.dead", "0")
	browserEvalBool(p, `(window.browserTestMarker = true)`) // gone if the page reloads

	for range 3 {
		e.enqueue(e.queue, "email:send", `{"to":"ada@example.com"}`)
	}
	p.WaitText(row+" td.ready", "3")
	for range 2 {
		e.enqueue(e.queue, "email:send", `{"to":"bob@example.com"}`)
	}
	p.WaitText(row+" td.ready", "5")
	if !browserEvalBool(p, `window.browserTestMarker === true`) {
		t.Error("the overview reloaded to show the new counts; it should refresh its table in place")
	}
	if !p.Exists(`a[href="/queues/` + e.queue + `"]`) {
		t.Errorf("the overview has no link to /queues/%s", e.queue)
	}
	for _, sel := range []string{"#rates-chart", "#broker"} {
		if !p.Exists(sel) {
			t.Errorf("the overview has no %s", sel)
		}
	}
}

// TestBrowserPauseResume: pausing a queue on its page stops a running
// worker from taking its tasks, which wait in the queue; resuming lets
// the worker run them.
func TestBrowserPauseResume(t *testing.T) {
	e := startBrowserEnv(t, dashboard.Config{})
	var mu sync.Mutex
	ran := map[string]bool{}
	runs := make(chan string, 100)
	e.startPool(worker.HandlerFunc(func(_ context.Context, task *warren.Task) error {
		mu.Lock()
		ran[task.ID] = true
		mu.Unlock()
		runs <- task.ID
		return nil
	}), e.queue)

	// The worker works before the pause.
	warm := e.enqueue(e.queue, "warm:up", `{}`)
	waitRuns(t, runs, []string{warm}, 15*time.Second)

	p := e.page("queue")
	p.Go("/queues/" + e.queue)
	p.WaitText("#queue-state", "running")
	clickMaybeConfirm(p, "button#pause", `document.querySelector("#queue-state")?.innerText.trim() === "paused"`)
	p.WaitTextContains("#flash", "Paused")
	if !e.paused() {
		t.Fatal("the page says paused, the broker does not")
	}
	// Workers take up to a heartbeat to notice; they say so in it.
	e.waitWorkerPaused(e.queue)

	ids := []string{
		e.enqueue(e.queue, "report:build", `{"n":1}`),
		e.enqueue(e.queue, "report:build", `{"n":2}`),
		e.enqueue(e.queue, "report:build", `{"n":3}`),
	}
	e.waitBroker(e.queue, "3 ready tasks", func(in admin.QueueInfo) bool { return in.Ready == 3 })
	quiet := time.NewTimer(2 * time.Second)
	select {
	case id := <-runs:
		t.Fatalf("the worker ran task %s of the paused queue", id)
	case <-quiet.C:
	}
	if in := e.info(e.queue); in.Ready != 3 {
		t.Fatalf("paused queue: %d ready, want 3", in.Ready)
	}
	over := e.page("overview")
	over.Go("/")
	over.WaitText(`tr[data-queue="`+e.queue+`"] td.ready`, "3")
	over.WaitText(`tr[data-queue="`+e.queue+`"] td.state`, "paused")

	clickMaybeConfirm(p, "button#resume", `document.querySelector("#queue-state")?.innerText.trim() === "running"`)
	waitRuns(t, runs, ids, 15*time.Second)
	if e.paused() {
		t.Error("the page says running, the broker still has the queue paused")
	}
	e.waitBroker(e.queue, "no ready task", func(in admin.QueueInfo) bool { return in.Ready == 0 })
	over.WaitText(`tr[data-queue="`+e.queue+`"] td.state`, "running")
}

// waitRuns waits until the handler ran every task of ids.
func waitRuns(t *testing.T, runs <-chan string, ids []string, d time.Duration) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for len(want) > 0 {
		select {
		case id := <-runs:
			delete(want, id)
		case <-deadline.C:
			t.Fatalf("the worker did not run %d of the tasks within %v", len(want), d)
		}
	}
}

// apiWorker is what the tests read of GET /api/v1/workers.
type apiWorker struct {
	ID          string   `json:"id"`
	PID         int      `json:"pid"`
	Queues      []string `json:"queues"`
	Paused      []string `json:"paused"`
	Concurrency int      `json:"concurrency"`
	Gone        bool     `json:"gone"`
}

// workers asks the dashboard's API for the workers (a dashboard without
// authentication).
func (e *browserEnv) workers() []apiWorker {
	e.t.Helper()
	resp, err := http.Get(e.ts.URL + "/api/v1/workers")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Workers []apiWorker `json:"workers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /api/v1/workers: %d %v", resp.StatusCode, err)
	}
	return body.Workers
}

// waitWorkerPaused waits until a live worker of queue says in its
// heartbeat that it holds queue back (fleet.Beat.Paused).
func (e *browserEnv) waitWorkerPaused(queue string) {
	e.t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ws := e.workers()
		for _, w := range ws {
			if !w.Gone && slices.Contains(w.Queues, queue) && slices.Contains(w.Paused, queue) {
				return
			}
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			e.t.Fatalf("no live worker of %s reported it paused (fleet.Beat.Paused) within 15s; workers: %+v", queue, ws)
		}
	}
}

// TestBrowserWorkers: a worker pool shows up live on /workers with its
// queue, its pid and the task it runs, and turns gone when it stops.
func TestBrowserWorkers(t *testing.T) {
	e := startBrowserEnv(t, dashboard.Config{})
	started := make(chan string, 1)
	release := make(chan struct{})
	pool := e.startPool(worker.HandlerFunc(func(ctx context.Context, task *warren.Task) error {
		started <- task.ID
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}), e.queue)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	p := e.page("workers")
	p.Go("/workers")
	p.WaitVisible("table#workers")
	// The row of our pool: the one whose td.queues names our queue (other
	// tests' pools may beat on the same broker).
	rowOf := `(() => {
  for (const tr of document.querySelectorAll("table#workers tr[data-worker]")) {
    const q = tr.querySelector("td.queues");
    if (q && q.innerText.split(/[\s,]+/).includes(` + strconv.Quote(e.queue) + `)) return tr;
  }
  return null;
})()`
	p.WaitFor("a live row of "+e.queue, rowOf+`?.classList.contains("live")`)
	id := browserEvalString(p, rowOf+`.dataset.worker`)
	row := `tr[data-worker="` + id + `"]`
	if got := p.Text(row + " td.pid"); got != strconv.Itoa(os.Getpid()) {
		t.Errorf("td.pid = %q, want %d (the pool runs in the test)", got, os.Getpid())
	}
	if got := p.Text(row + " td.concurrency"); got != "2" {
		t.Errorf("td.concurrency = %q, want 2", got)
	}
	if p.Text(row+" td.host") == "" || p.Text(row+" td.version") == "" {
		t.Error("td.host or td.version is empty")
	}

	task := e.enqueue(e.queue, "video:encode", `{"video":7}`)
	waitRuns(t, started, []string{task}, 15*time.Second)
	p.WaitTextContains(row+" td.running", "video:encode")
	close(release)
	p.WaitFor("the running task to end", `!document.querySelector(`+strconv.Quote(row+" td.running")+`)?.innerText.includes("video:encode")`)

	pool.stop()
	p.WaitFor("the row of "+id+" to turn gone", `document.querySelector(`+strconv.Quote(row)+`)?.classList.contains("gone")`)
	if browserEvalBool(p, `document.querySelector(`+strconv.Quote(row)+`).classList.contains("live")`) {
		t.Error("the row is both live and gone")
	}
}

// TestBrowserEnqueueForm: the enqueue form puts a task on the broker, with
// the type and payload typed, and says so.
func TestBrowserEnqueueForm(t *testing.T) {
	e := startBrowserEnv(t, dashboard.Config{})
	p := e.page("enqueue")
	p.Go("/enqueue")
	p.WaitVisible("form#enqueue-form")
	payload := `{"to": "ada@example.com", "n": 7, "tags": ["a", "b"]}`
	p.Fill(`form#enqueue-form [name=queue]`, e.queue)
	p.Fill(`form#enqueue-form [name=type]`, "email:send")
	p.Fill(`form#enqueue-form [name=payload]`, payload)
	p.Click("button#enqueue-submit")
	flash := p.WaitTextContains("#flash", "Enqueued")
	e.waitBroker(e.queue, "1 ready task", func(in admin.QueueInfo) bool { return in.Ready == 1 })

	got := make(chan *warren.Task, 1)
	e.startPool(worker.HandlerFunc(func(_ context.Context, task *warren.Task) error {
		got <- task
		return nil
	}), e.queue)
	var task *warren.Task
	select {
	case task = <-got:
	case <-time.After(15 * time.Second):
		t.Fatal("the enqueued task did not reach a worker within 15s")
	}
	if task.Type != "email:send" {
		t.Errorf("type %q, want email:send", task.Type)
	}
	var want, have any
	_ = json.Unmarshal([]byte(payload), &want)
	if err := json.Unmarshal(task.Payload, &have); err != nil || !reflect.DeepEqual(have, want) {
		t.Errorf("payload %s, want %s (%v)", task.Payload, payload, err)
	}
	if m := regexp.MustCompile(`Enqueued\s+(\S+?)\.?$`).FindStringSubmatch(flash); m != nil && m[1] != task.ID {
		t.Errorf("#flash says %q, the task's ID is %s", flash, task.ID)
	}
}
