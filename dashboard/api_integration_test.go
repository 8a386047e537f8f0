//go:build integration

package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/dashboard"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

// env is a dashboard on the test broker, served by an httptest.Server.
type env struct {
	t    testing.TB
	ctx  context.Context
	conn *broker.Conn
	srv  *dashboard.Server
	ts   *httptest.Server
	// auth is set on every request (an Authorization header value).
	auth string
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newEnv starts a dashboard with cfg (its Logger quiet unless set) and
// runs it until the test ends.
func newEnv(t testing.TB, cfg dashboard.Config) *env {
	t.Helper()
	conn := testbroker.Dial(t)
	ctx := testbroker.Context(t, 5*time.Minute)
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	srv, err := dashboard.New(ctx, conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = srv.Run(runCtx); close(done) }()
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ts.Close()
		stop()
		<-done
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(cctx)
	})
	return &env{t: t, ctx: ctx, conn: conn, srv: srv, ts: ts}
}

// queue declares a Warren queue for the test (deleted when it ends).
func (e *env) queue() string {
	e.t.Helper()
	q := testbroker.Queue(e.t, e.conn)
	if err := broker.Declare(e.ctx, e.conn, broker.QueueOptions{}, q); err != nil {
		e.t.Fatal(err)
	}
	return q
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) errCode() string {
	var b dashboard.ErrorBody
	_ = json.Unmarshal(r.body, &b)
	return b.Error.Code
}

func (r reply) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends a request; body may be a string (sent as JSON), []byte or nil.
func (e *env) do(method, path string, body any, hdr ...string) reply {
	e.t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case string:
		rd, ctype = strings.NewReader(b), "application/json"
	case []byte:
		rd, ctype = bytes.NewReader(b), "application/json"
	case nil:
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd, ctype = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequestWithContext(e.ctx, method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if e.auth != "" {
		req.Header.Set("Authorization", e.auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading: %v", method, path, err)
	}
	return reply{resp.StatusCode, resp.Header, data}
}

// want fails the test unless r has status (and, if given, error code).
func want(t testing.TB, what string, r reply, status int, code ...string) {
	t.Helper()
	if r.status != status || (len(code) > 0 && r.errCode() != code[0]) {
		t.Fatalf("%s: %d %s, want %d %v", what, r.status, bytes.TrimSpace(r.body), status, code)
	}
}

func (e *env) ready(queue string) int {
	e.t.Helper()
	st, err := broker.Inspect(e.ctx, e.conn, queue)
	if err != nil {
		e.t.Fatalf("inspect %s: %v", queue, err)
	}
	return st.Ready
}

// eventually polls cond every 50ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		<-tick.C
	}
}

// deadLetters makes n dead letters in queue through a real worker pool
// whose handler fails them with retry.Permanent; payload(i) is task i's
// payload and typ(i) its type. It returns their IDs in order.
func (e *env) deadLetters(queue string, n int, typ func(int) string, payload func(int) string) []string {
	e.t.Helper()
	mux := worker.NewMux()
	fail := func(_ context.Context, t *warren.Task) error {
		return retry.Permanent(fmt.Errorf("card declined for %s: code %d", t.ID, len(t.Payload)))
	}
	seen := map[string]bool{}
	ids := make([]string, n)
	for i := range n {
		if tp := typ(i); !seen[tp] {
			seen[tp] = true
			mux.HandleFunc(tp, fail)
		}
		ids[i] = fmt.Sprintf("dl-%04d", i)
		r := e.do("POST", "/api/v1/queues/"+queue+"/tasks", map[string]any{"type": typ(i), "id": ids[i], "payload": json.RawMessage(payload(i))})
		want(e.t, "enqueue a task to dead-letter", r, 201)
	}
	pool, err := worker.New(e.conn, mux, worker.Config{Queues: []string{queue}, Concurrency: 1, Hostname: "test-host", Logger: quiet()})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	eventually(e.t, 60*time.Second, fmt.Sprintf("%d dead letters", n), func() bool { return e.ready(warren.DeadLetterQueue(queue)) == n })
	cancel()
	if err := <-done; err != nil {
		e.t.Fatalf("worker: %v", err)
	}
	return ids
}

func typeAB(i int) string {
	if i%2 == 0 {
		return "type:a"
	}
	return "type:b"
}

func TestAPIOverviewAndQueues(t *testing.T) {
	e := newEnv(t, dashboard.Config{SampleInterval: 200 * time.Millisecond})
	q := e.queue()
	// The queue page asks the sampler for the queue, and answers at once.
	r := e.do("GET", "/api/v1/queues/"+q, nil)
	want(t, "GET queue", r, 200)
	var qr struct {
		Queue   map[string]any   `json:"queue"`
		History []map[string]any `json:"history"`
	}
	r.decode(t, &qr)
	if qr.Queue["name"] != q || qr.Queue["exists"] != true || qr.History == nil {
		t.Fatalf("GET queue = %s", r.body)
	}
	var ov struct {
		Version   string           `json:"version"`
		SampledAt *time.Time       `json:"sampled_at"`
		Queues    []map[string]any `json:"queues"`
		Broker    map[string]any   `json:"broker"`
		Workers   map[string]int   `json:"workers"`
	}
	eventually(t, 20*time.Second, "the overview to show the queue", func() bool {
		r := e.do("GET", "/api/v1/overview", nil)
		want(t, "overview", r, 200)
		r.decode(t, &ov)
		for _, x := range ov.Queues {
			if x["name"] == q {
				return true
			}
		}
		return false
	})
	if ov.SampledAt == nil || ov.Version != "dev" || ov.Broker["product"] != "RabbitMQ" || ov.Broker["connected"] != true {
		t.Errorf("overview: %+v", ov)
	}
	if u, _ := ov.Broker["url"].(string); u == "" || strings.Contains(u, ":guest@") {
		t.Errorf("overview broker url %q: want it with the password redacted", u)
	}
	r = e.do("GET", "/api/v1/queues", nil)
	want(t, "GET queues", r, 200)
	if !bytes.Contains(r.body, []byte(`"name":"`+q+`"`)) {
		t.Errorf("GET queues lacks %s: %s", q, r.body)
	}
	eventually(t, 20*time.Second, "a history point", func() bool {
		r := e.do("GET", "/api/v1/queues/"+q, nil)
		r.decode(t, &qr)
		return len(qr.History) > 0
	})

	want(t, "GET missing queue", e.do("GET", "/api/v1/queues/no-such-queue-"+q, nil), 404, dashboard.CodeQueueNotFound)
	want(t, "GET bad queue name", e.do("GET", "/api/v1/queues/"+strings.Repeat("x", 201), nil), 400, dashboard.CodeBadRequest)
	r = e.do("GET", "/api/v1/workers", nil)
	want(t, "GET workers", r, 200)
	if !bytes.HasPrefix(r.body, []byte(`{"workers":[`)) {
		t.Errorf("GET workers = %s", r.body)
	}
	r = e.do("GET", "/api/v1/openapi.json", nil)
	want(t, "GET openapi.json", r, 200)
	var doc map[string]any
	r.decode(t, &doc)
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi.json: %v", doc["openapi"])
	}
	want(t, "unknown API route", e.do("GET", "/api/v1/nothing", nil), 404, dashboard.CodeNotFound)
	want(t, "wrong method", e.do("GET", "/api/v1/queues/"+q+"/pause", nil), 405, dashboard.CodeMethodNotAllowed)
}

func TestAPIPauseResume(t *testing.T) {
	e := newEnv(t, dashboard.Config{})
	q := e.queue()
	want(t, "pause a missing queue", e.do("POST", "/api/v1/queues/no-such-"+q+"/pause", nil), 404, dashboard.CodeQueueNotFound)
	want(t, "pause a bad name", e.do("POST", "/api/v1/queues/"+strings.Repeat("x", 201)+"/pause", nil), 400, dashboard.CodeBadRequest)
	r := e.do("POST", "/api/v1/queues/"+q+"/pause", nil)
	want(t, "pause", r, 200)
	var st struct {
		Queue  string `json:"queue"`
		Paused bool   `json:"paused"`
	}
	r.decode(t, &st)
	if st.Queue != q || !st.Paused {
		t.Errorf("pause = %s", r.body)
	}
	r = e.do("GET", "/api/v1/queues/"+q, nil)
	if !bytes.Contains(r.body, []byte(`"paused":true`)) {
		t.Errorf("GET queue after pause: %s", r.body)
	}
	r = e.do("POST", "/api/v1/queues/"+q+"/resume", nil)
	want(t, "resume", r, 200)
	r.decode(t, &st)
	if st.Paused {
		t.Errorf("resume = %s", r.body)
	}
}

func TestAPIEnqueue(t *testing.T) {
	e := newEnv(t, dashboard.Config{MaxPayload: 1024, MaxBody: 4096})
	q := e.queue()
	path := "/api/v1/queues/" + q + "/tasks"

	r := e.do("POST", path, `{"type":"email:send","payload":{"to":"ada"}}`)
	want(t, "enqueue", r, 201)
	var tr struct {
		ID        string `json:"id"`
		Queue     string `json:"queue"`
		Duplicate bool   `json:"duplicate"`
	}
	r.decode(t, &tr)
	if tr.ID == "" || tr.Queue != q || tr.Duplicate {
		t.Errorf("enqueue = %s", r.body)
	}
	// 201 comes after the broker's confirm: the task is on the queue now.
	if n := e.ready(q); n != 1 {
		t.Fatalf("%d tasks on the queue after a 201, want 1", n)
	}

	// A caller ID, retried: enqueued once.
	for i := range 3 {
		r = e.do("POST", path, `{"type":"email:send","id":"order-42","max_attempts":3}`)
		want(t, "enqueue with an ID", r, 201)
		r.decode(t, &tr)
		if tr.ID != "order-42" || tr.Duplicate != (i > 0) {
			t.Errorf("try %d: %s", i, r.body)
		}
	}
	if n := e.ready(q); n != 2 {
		t.Fatalf("%d tasks after 3 tries of one ID, want 2", n)
	}
	// Concurrent retries of one ID: one enqueue.
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.do("POST", path, `{"type":"email:send","id":"order-43"}`)
			var tr struct{ Duplicate bool }
			_ = json.Unmarshal(r.body, &tr)
			mu.Lock()
			defer mu.Unlock()
			if r.status == 201 && !tr.Duplicate {
				fresh++
			}
		}()
	}
	wg.Wait()
	if n := e.ready(q); fresh != 1 || n != 3 {
		t.Fatalf("8 concurrent tries of one ID: %d enqueued, %d on the queue; want 1 and 3", fresh, n)
	}
	// The same ID on another queue is another task.
	q2 := e.queue()
	want(t, "same ID, other queue", e.do("POST", "/api/v1/queues/"+q2+"/tasks", `{"type":"a","id":"order-42"}`), 201)
	if n := e.ready(q2); n != 1 {
		t.Errorf("other queue holds %d, want 1", n)
	}
	// A delayed task waits on the broker, not on the queue.
	want(t, "delayed", e.do("POST", path, `{"type":"a","delay":"1h"}`), 201)
	if n := e.ready(q); n != 3 {
		t.Errorf("a 1h delayed task reached the queue: %d", n)
	}

	want(t, "missing queue", e.do("POST", "/api/v1/queues/no-such-"+q+"/tasks", `{"type":"a"}`), 404, dashboard.CodeQueueNotFound)
	want(t, "bad queue name", e.do("POST", "/api/v1/queues/"+strings.Repeat("x", 201)+"/tasks", `{"type":"a"}`), 400, dashboard.CodeBadRequest)
	want(t, "unknown field", e.do("POST", path, `{"type":"a","priority":1}`), 400, dashboard.CodeBadRequest)
	want(t, "bad delay", e.do("POST", path, `{"type":"a","delay":"soon"}`), 400, dashboard.CodeBadRequest)
	want(t, "no type", e.do("POST", path, `{"payload":1}`), 400, dashboard.CodeBadRequest)
	want(t, "payload over MaxPayload", e.do("POST", path, `{"type":"a","payload":"`+strings.Repeat("x", 1100)+`"}`), 413, dashboard.CodeTooLarge)
	want(t, "body over MaxBody", e.do("POST", path, `{"type":"a","payload":"`+strings.Repeat("x", 5000)+`"}`), 413, dashboard.CodeTooLarge)
	want(t, "not JSON", e.do("POST", path, `type=a`, "Content-Type", "application/x-www-form-urlencoded"), 415, dashboard.CodeUnsupportedMedia)
	if n := e.ready(q); n != 3 {
		t.Errorf("refused requests enqueued: %d tasks", n)
	}
}

func TestAPIEnqueueBatch(t *testing.T) {
	e := newEnv(t, dashboard.Config{MaxBatch: 50})
	q := e.queue()
	path := "/api/v1/queues/" + q + "/tasks/batch"
	var tasks []map[string]any
	for i := range 40 {
		t := map[string]any{"type": "a", "payload": map[string]int{"n": i}}
		if i%2 == 0 {
			t["id"] = fmt.Sprintf("b-%d", i)
		}
		tasks = append(tasks, t)
	}
	tasks = append(tasks, map[string]any{"type": "a", "id": "b-0"}) // a repeat within the batch
	r := e.do("POST", path, map[string]any{"tasks": tasks})
	want(t, "batch", r, 201)
	var br struct {
		Tasks []struct {
			ID        string `json:"id"`
			Duplicate bool   `json:"duplicate"`
		} `json:"tasks"`
	}
	r.decode(t, &br)
	if len(br.Tasks) != 41 || br.Tasks[0].ID != "b-0" || br.Tasks[1].ID == "" || br.Tasks[40].ID != "b-0" || !br.Tasks[40].Duplicate || br.Tasks[0].Duplicate {
		t.Fatalf("batch = %s", r.body)
	}
	if n := e.ready(q); n != 40 {
		t.Fatalf("%d tasks after a batch of 40 (and a repeat), want 40", n)
	}
	// The same batch again: the tasks with IDs are duplicates.
	r = e.do("POST", path, map[string]any{"tasks": tasks})
	want(t, "batch again", r, 201)
	r.decode(t, &br)
	dups := 0
	for _, x := range br.Tasks {
		if x.Duplicate {
			dups++
		}
	}
	if dups != 21 {
		t.Errorf("%d duplicates in the retried batch, want 21", dups)
	}
	if n := e.ready(q); n != 60 {
		t.Fatalf("%d tasks after the retry, want 60 (20 new without IDs)", n)
	}
	want(t, "empty batch", e.do("POST", path, `{"tasks":[]}`), 400, dashboard.CodeBadRequest)
	big := make([]map[string]any, 51)
	for i := range big {
		big[i] = map[string]any{"type": "a"}
	}
	want(t, "batch over MaxBatch", e.do("POST", path, map[string]any{"tasks": big}), 413, dashboard.CodeTooLarge)
	want(t, "batch to a missing queue", e.do("POST", "/api/v1/queues/no-such-"+q+"/tasks/batch", `{"tasks":[{"type":"a"}]}`), 404, dashboard.CodeQueueNotFound)
	want(t, "batch with a bad task", e.do("POST", path, `{"tasks":[{"type":"a"},{"type":"a","delay":"x"}]}`), 400, dashboard.CodeBadRequest)
	if n := e.ready(q); n != 60 {
		t.Errorf("refused batches enqueued: %d", n)
	}
}

func TestAPIAuthReadOnlyCSRF(t *testing.T) {
	token, err := dashboard.NewToken("a-token-of-at-least-16")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, dashboard.Config{Auth: token})
	q := e.queue()
	want(t, "no credentials", e.do("GET", "/api/v1/overview", nil), 401, dashboard.CodeUnauthorized)
	want(t, "wrong token", e.do("GET", "/api/v1/overview", nil, "Authorization", "Bearer wrong-token-wrong-token"), 401, dashboard.CodeUnauthorized)
	e.auth = "Bearer a-token-of-at-least-16"
	want(t, "token", e.do("GET", "/api/v1/overview", nil), 200)
	want(t, "enqueue with the token, no CSRF token needed", e.do("POST", "/api/v1/queues/"+q+"/tasks", `{"type":"a"}`), 201)

	// A browser session: log in, then a mutating request with the cookie
	// but without the page's CSRF token is refused.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(e.ts.URL+"/login", url.Values{"user": {"token"}, "password": {"a-token-of-at-least-16"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", e.ts.URL+"/api/v1/queues/"+q+"/tasks", strings.NewReader(`{"type":"a"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if code := (reply{body: body}).errCode(); resp.StatusCode != 403 || code != dashboard.CodeCSRF {
		t.Errorf("cookie session without CSRF token: %d %s, want 403 csrf", resp.StatusCode, body)
	}
	if n := e.ready(q); n != 1 {
		t.Errorf("%d tasks, want 1: the refused request enqueued", n)
	}

	ro := newEnv(t, dashboard.Config{ReadOnly: true})
	q2 := ro.queue()
	want(t, "read-only overview", ro.do("GET", "/api/v1/overview", nil), 200)
	for _, p := range []string{"/tasks", "/tasks/batch", "/pause", "/resume", "/dead-letters/replay", "/dead-letters/purge", "/dead-letters/import"} {
		want(t, "read-only POST "+p, ro.do("POST", "/api/v1/queues/"+q2+p, `{}`), 403, dashboard.CodeReadOnly)
	}
}

// TestAPIDeadLetters goes through every dead-letter endpoint on dead
// letters a real worker made: list, filters, show, groups, count, replay
// (with expect), purge, export and import.
func TestAPIDeadLetters(t *testing.T) {
	e := newEnv(t, dashboard.Config{})
	q := e.queue()
	dlq := warren.DeadLetterQueue(q)
	ids := e.deadLetters(q, 10, typeAB, func(i int) string {
		if i == 3 {
			return `{"html":"<script>alert(1)</script>"}`
		}
		return fmt.Sprintf(`{"n":%d}`, i)
	})
	base := "/api/v1/queues/" + q + "/dead-letters"

	type list struct {
		Total     int       `json:"total"`
		Matched   int       `json:"matched"`
		IndexedAt time.Time `json:"indexed_at"`
		Stale     bool      `json:"stale"`
		Indexing  bool      `json:"indexing"`
		Items     []struct {
			ID, Type, Error, Fingerprint string
			Attempts                     int
			PayloadPreview               string `json:"payload_preview"`
			Payload                      any    `json:"payload"`
			Stack                        any    `json:"stack"`
		} `json:"items"`
	}
	getList := func(query string) list {
		t.Helper()
		var l list
		// A first pass that takes longer than the list waits answers
		// "indexing": ask again.
		eventually(t, time.Minute, "the first index pass", func() bool {
			r := e.do("GET", base+query, nil)
			want(t, "list "+query, r, 200)
			l = list{}
			r.decode(t, &l)
			return !l.Indexing
		})
		return l
	}
	l := getList("")
	if l.Total != 10 || l.Matched != 10 || len(l.Items) != 10 || l.Stale || l.IndexedAt.IsZero() {
		t.Fatalf("list: %+v", l)
	}
	if it := l.Items[0]; it.ID != ids[0] || it.Type != "type:a" || !strings.HasPrefix(it.Error, "card declined for dl-0000") ||
		it.Fingerprint == "" || it.PayloadPreview != `{"n":0}` || it.Payload != nil || it.Stack != nil {
		t.Errorf("first item: %+v", it)
	}
	if l := getList("?type=type:b&limit=2&offset=1"); l.Matched != 5 || len(l.Items) != 2 || l.Items[0].ID != ids[3] {
		t.Errorf("type filter, paged: %+v", l)
	}
	if l := getList("?error=dl-000[12]"); l.Matched != 2 {
		t.Errorf("error filter: %+v", l)
	}
	if l := getList("?since=1h"); l.Matched != 10 {
		t.Errorf("since 1h: %+v", l)
	}
	if l := getList("?until=1h"); l.Matched != 0 {
		t.Errorf("until 1h ago: %+v", l)
	}
	r := e.do("GET", base+"?error=(", nil)
	want(t, "bad regexp", r, 400, dashboard.CodeBadRequest)
	if !strings.Contains(string(r.body), "error") {
		t.Errorf("bad regexp message does not name the field: %s", r.body)
	}
	want(t, "bad since", e.do("GET", base+"?since=someday", nil), 400, dashboard.CodeBadRequest)

	// Show: in full, with the payload's HTML escaped in the JSON.
	r = e.do("GET", base+"/"+ids[3], nil)
	want(t, "show", r, 200)
	if bytes.Contains(r.body, []byte("<script>")) || !bytes.Contains(r.body, []byte(`\u003cscript\u003e`)) {
		t.Errorf("show: <script> not escaped: %s", r.body)
	}
	var dl admin.DeadLetterJSON
	r.decode(t, &dl)
	if dl.ID != ids[3] || dl.Type != "type:b" || len(dl.History) != 1 || dl.WorkerHost != "test-host" || !strings.Contains(string(dl.Payload), "script") {
		t.Errorf("show: %+v", dl)
	}
	want(t, "show unknown", e.do("GET", base+"/nope", nil), 404, dashboard.CodeNotFound)

	// Groups, as admin.Group counts them.
	adm := admin.New(e.conn, admin.Config{Logger: quiet()})
	for _, by := range []admin.GroupBy{admin.ByError, admin.ByType} {
		r = e.do("GET", "/api/v1/queues/"+q+"/dead-letter-groups?by="+string(by), nil)
		want(t, "groups by "+string(by), r, 200)
		gs, err := adm.Group(e.ctx, q, admin.Filter{}, by)
		if err != nil {
			t.Fatal(err)
		}
		wantJSON, _ := json.Marshal(gs)
		if got := bytes.TrimSpace(r.body); !bytes.Equal(got, wantJSON) {
			t.Errorf("groups by %s:\n got %s\nwant %s", by, got, wantJSON)
		}
	}
	want(t, "groups by host", e.do("GET", "/api/v1/queues/"+q+"/dead-letter-groups?by=host", nil), 400, dashboard.CodeBadRequest)

	count := func(sel string) int {
		t.Helper()
		r := e.do("POST", base+"/count", sel)
		want(t, "count "+sel, r, 200)
		var c struct{ Count int }
		r.decode(t, &c)
		return c.Count
	}
	if n := count(`{"all":true}`); n != 10 {
		t.Errorf("count all = %d", n)
	}
	if n := count(`{"filter":{"type":"type:a"}}`); n != 5 {
		t.Errorf("count type:a = %d", n)
	}
	if n := count(fmt.Sprintf(`{"ids":[%q,%q,"nope"]}`, ids[0], ids[1])); n != 2 {
		t.Errorf("count ids = %d", n)
	}
	want(t, "count nothing", e.do("POST", base+"/count", `{}`), 400, dashboard.CodeBadRequest)
	want(t, "count, not JSON", e.do("POST", base+"/count", `{"all":true}`, "Content-Type", "text/plain"), 415, dashboard.CodeUnsupportedMedia)

	// Replay two by ID, first with a stale expectation.
	sel := fmt.Sprintf(`{"ids":[%q,%q],"expect":3}`, ids[0], ids[1])
	want(t, "replay, expect mismatch", e.do("POST", base+"/replay", sel), 409, dashboard.CodeConflict)
	r = e.do("POST", base+"/replay", strings.Replace(sel, `"expect":3`, `"expect":2`, 1))
	want(t, "replay", r, 200)
	var rep struct {
		Queue    string   `json:"queue"`
		Replayed int      `json:"replayed"`
		IDs      []string `json:"ids"`
	}
	r.decode(t, &rep)
	if rep.Replayed != 2 || len(rep.IDs) != 2 || rep.Queue != q {
		t.Errorf("replay: %s", r.body)
	}
	if n := e.ready(q); n != 2 {
		t.Errorf("%d tasks back on the queue, want 2", n)
	}
	// The list follows at once: the index dropped what was replayed.
	if l := getList(""); l.Total != 8 || l.Matched != 8 || l.Stale {
		t.Errorf("list after replay: total %d matched %d stale %v", l.Total, l.Matched, l.Stale)
	}

	// Purge the type:b ones by filter.
	r = e.do("POST", base+"/purge", `{"filter":{"type":"type:b"},"expect":4}`)
	want(t, "purge", r, 200)
	var pr struct {
		Purged int      `json:"purged"`
		IDs    []string `json:"ids"`
	}
	r.decode(t, &pr)
	if pr.Purged != 4 {
		t.Errorf("purge: %s", r.body)
	}
	if n := e.ready(dlq); n != 4 {
		t.Errorf("%d dead letters after the purge, want 4", n)
	}

	// Export the rest, purge them all, import them back.
	r = e.do("GET", base+"/export?type=type:a", nil)
	want(t, "export", r, 200)
	if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename="`+q+`.dlq.ndjson"` {
		t.Errorf("export Content-Disposition %q", cd)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("export Content-Type %q", ct)
	}
	export := r.body
	if n := bytes.Count(export, []byte("\n")); n != 4 {
		t.Fatalf("export: %d lines, want 4", n)
	}
	want(t, "purge all, expect mismatch", e.do("POST", base+"/purge", `{"all":true,"expect":5}`), 409, dashboard.CodeConflict)
	r = e.do("POST", base+"/purge", `{"all":true,"expect":4}`)
	want(t, "purge all", r, 200)
	if n := e.ready(dlq); n != 0 {
		t.Fatalf("%d dead letters after purging all", n)
	}
	r = e.do("POST", base+"/import", export, "Content-Type", "application/x-ndjson")
	want(t, "import", r, 200)
	var ir struct{ Imported, Duplicates, Records int }
	r.decode(t, &ir)
	if ir.Imported != 4 || ir.Records != 4 {
		t.Errorf("import: %s", r.body)
	}
	// Again as a multipart upload: every record is already there.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", q+".dlq.ndjson")
	_, _ = fw.Write(export)
	_ = mw.Close()
	r = e.do("POST", base+"/import", mp.Bytes(), "Content-Type", mw.FormDataContentType())
	want(t, "import multipart", r, 200)
	r.decode(t, &ir)
	if ir.Imported != 0 || ir.Duplicates != 4 {
		t.Errorf("import again: %s", r.body)
	}
	want(t, "import malformed", e.do("POST", base+"/import", []byte("{\"v\":1}\nnot json\n"), "Content-Type", "application/x-ndjson"), 400, dashboard.CodeBadRequest)
	want(t, "import, not NDJSON", e.do("POST", base+"/import", []byte("x"), "Content-Type", "image/png"), 415, dashboard.CodeUnsupportedMedia)
	if n := e.ready(dlq); n != 4 {
		t.Fatalf("%d dead letters after the import, want 4", n)
	}
	// The index catches up with the import: stale first, then fresh.
	eventually(t, 20*time.Second, "the list to show the imported dead letters", func() bool {
		l := getList("")
		return l.Total == 4 && l.Matched == 4 && !l.Stale
	})
	r = e.do("GET", base+"/"+ids[2], nil)
	want(t, "show an imported dead letter", r, 200)
}

// TestAPIDeadLettersErrors checks the answers for a missing queue and a
// busy dead-letter queue.
func TestAPIDeadLettersErrors(t *testing.T) {
	e := newEnv(t, dashboard.Config{})
	q := e.queue()
	missing := "/api/v1/queues/no-such-" + q
	want(t, "list, missing queue", e.do("GET", missing+"/dead-letters", nil), 404, dashboard.CodeQueueNotFound)
	want(t, "show, missing queue", e.do("GET", missing+"/dead-letters/x", nil), 404, dashboard.CodeQueueNotFound)
	want(t, "groups, missing queue", e.do("GET", missing+"/dead-letter-groups", nil), 404, dashboard.CodeQueueNotFound)
	want(t, "replay, missing queue", e.do("POST", missing+"/dead-letters/replay", `{"all":true}`), 404, dashboard.CodeQueueNotFound)
	want(t, "export, missing queue", e.do("GET", missing+"/dead-letters/export", nil), 404, dashboard.CodeQueueNotFound)

	// Another process holds the dead-letter queue's lock.
	other := testbroker.DialNamed(t, broker.Config{Name: "lock holder " + t.Name()})
	lock, err := broker.TryLock(e.ctx, other, "warren.lock."+warren.DeadLetterQueue(q))
	if err != nil {
		t.Fatal(err)
	}
	base := "/api/v1/queues/" + q + "/dead-letters"
	want(t, "list, busy", e.do("GET", base, nil), 409, dashboard.CodeBusy)
	want(t, "replay, busy", e.do("POST", base+"/replay", `{"all":true}`), 409, dashboard.CodeBusy)
	want(t, "purge, busy", e.do("POST", base+"/purge", `{"filter":{"type":"x"}}`), 409, dashboard.CodeBusy)
	want(t, "show, busy", e.do("GET", base+"/x", nil), 409, dashboard.CodeBusy)
	want(t, "export, busy", e.do("GET", base+"/export", nil), 409, dashboard.CodeBusy)
	if err := lock.Release(e.ctx); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", base, nil)
	want(t, "list once free", r, 200)
	if !bytes.Contains(r.body, []byte(`"total":0`)) {
		t.Errorf("list of an empty dead-letter queue: %s", r.body)
	}
}

// TestAPIBodyLimits checks that every body is bounded by MaxBody: 413
// too_large, and nothing done.
func TestAPIBodyLimits(t *testing.T) {
	e := newEnv(t, dashboard.Config{MaxBody: 1024})
	q := e.queue()
	base := "/api/v1/queues/" + q
	big := strings.Repeat(" ", 2048)
	want(t, "selection over MaxBody", e.do("POST", base+"/dead-letters/purge", `{"all":true}`+big), 413, dashboard.CodeTooLarge)
	want(t, "batch over MaxBody", e.do("POST", base+"/tasks/batch", `{"tasks":[{"type":"a"}]}`+big), 413, dashboard.CodeTooLarge)
	line := `{"v":1,"id":"x"}` + "\n"
	want(t, "import over MaxBody", e.do("POST", base+"/dead-letters/import", []byte(strings.Repeat(line, 200)), "Content-Type", "application/x-ndjson"), 413, dashboard.CodeTooLarge)
	if n := e.ready(q); n != 0 {
		t.Errorf("%d tasks after refused bodies", n)
	}
}

// TestAPIBrokerGone checks the answers once the broker connection is
// gone: 503 broker_unavailable, with no password in the message.
func TestAPIBrokerGone(t *testing.T) {
	e := newEnv(t, dashboard.Config{})
	q := e.queue()
	if err := e.conn.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []reply{
		e.do("POST", "/api/v1/queues/"+q+"/tasks", `{"type":"a"}`),
		e.do("GET", "/api/v1/queues/"+q+"/dead-letters", nil),
		e.do("POST", "/api/v1/queues/"+q+"/dead-letters/count", `{"all":true}`),
	} {
		want(t, "request without a broker", r, 503, dashboard.CodeBrokerUnavailable)
		if strings.Contains(string(r.body), ":guest@") {
			t.Errorf("a password in %s", r.body)
		}
	}
	r := e.do("GET", "/api/v1/overview", nil)
	want(t, "overview without a broker", r, 200)
	if !strings.Contains(string(r.body), `"connected":false`) {
		t.Errorf("overview: %s", r.body)
	}
}
