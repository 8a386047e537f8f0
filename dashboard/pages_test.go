package dashboard

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/fleet"
)

// newPageServer returns a Server with no broker: enough for the pages that
// show only the sampler's and the roster's state (workers, enqueue, login),
// the fragments of those, and the static files.
func newPageServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &Server{cfg: cfg.withDefaults(), mux: http.NewServeMux(), roster: fleet.NewRoster(nil, fleet.RosterConfig{}),
		started: time.Now(), signKey: newRandomKey(), stats: newServerMetrics()}
	s.log = s.cfg.Logger
	if cfg.Auth != nil {
		s.signKey = cfg.Auth.Key()
	}
	s.samples = newSampler(s)
	s.ownRoutes() // no API: it needs a broker
	s.pageRoutes()
	s.handler = s.stats.instrument(s.mux, s.secure(s.mux))
	return s
}

func get(t *testing.T, s *Server, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.Header.Set("Accept", "text/html")
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

var testPage = page{Title: "t", CSRF: "csrf-token-for-the-test", User: "anonymous", Version: "v9.9.9"}

// sampleViews returns a view of every page, for p.
func sampleViews(p page) map[string]any {
	now := time.Now()
	q := Queue{QueueInfo: admin.QueueInfo{Name: "emails", Ready: 1234567, Unacked: -1, Consumers: 2, DeadLetters: 3, Delayed: 4, DelayedHeld: -1, Exists: true},
		EnqueueRate: 12.5, CompleteRate: -1}
	dl := admin.DeadLetter{ID: "task-1", Type: "email:send", Queue: "emails", Payload: []byte(`{"to":"a@example.com"}`),
		ContentType: "application/json", Reason: "failed", Error: "boom", Attempts: 3, MaxAttempts: 3,
		EnqueuedAt: now.Add(-time.Hour), FailedAt: now.Add(-time.Minute), WorkerHost: "h1", Duration: 1500 * time.Millisecond,
		Stack: "goroutine 1 [running]:", History: []warren.Failure{{Attempt: 1, Error: "first", FailedAt: now.Add(-30 * time.Minute), Worker: "h1", Duration: time.Second}}}
	workers := workersTable{At: now, Live: 1, Gone: 1, Rows: []fleet.Worker{
		{Beat: fleet.Beat{ID: "h1/10/1", Host: "h1", PID: 10, Version: "v1", Queues: []string{"emails"}, Concurrency: 8, Started: now.Add(-time.Hour),
			Running: []fleet.Running{{Queue: "emails", Type: "email:send", ID: "task-9", Started: now.Add(-3 * time.Second)}}}, LastSeen: now},
		{Beat: fleet.Beat{ID: "h2/11/1", Host: "h2", PID: 11, Version: "v1", Queues: []string{"emails"}, Concurrency: 4, Started: now.Add(-2 * time.Hour)}, Gone: true, LastSeen: now.Add(-time.Minute)},
	}}
	queues := queuesView{At: now, Window: "1h", Rows: []queueRow{{Queue: q, State: "running"}, {Queue: Queue{QueueInfo: admin.QueueInfo{Name: "bills", Exists: true}, EnqueueRate: -1, CompleteRate: -1}, State: "paused"}}}
	return map[string]any{
		"overview": overviewView{page: p, Queues: queues, Chart: mustJSON(chart{T: []int64{1, 2}}),
			Broker: brokerView{Connected: true, Product: "RabbitMQ", Version: "3.10.8", URL: "amqp://guest:xxxxx@localhost:5672/"}, Workers: workerCounts{1, 1}},
		"queue":      queueView{page: p, Queue: q, State: "running", Chart: mustJSON(chart{}), Window: "1h"},
		"dead":       deadListView{page: p, Queue: "emails", DLQ: "emails.dlq", Total: 3, Filter: filterForm{Type: "email:send"}, Limit: pageSize},
		"groups":     groupsView{page: p, Queue: "emails", DLQ: "emails.dlq", By: "error", Total: 3},
		"deadletter": newDeadLetterView(p, "emails", dl),
		"workers":    workersView{page: p, Workers: workers},
		"enqueue":    enqueueView{page: p, Queue: "emails", Queues: []string{"bills", "emails"}},
		"login":      loginView{page: bare(p), Next: "/", Error: "Wrong user or password."},
		"error":      errorView{page: p, Heading: "Not found", Message: "no", Back: "/"},
	}
}

func bare(p page) page {
	p.Bare = true
	return p
}

func renderPage(t *testing.T, name string, data any) string {
	t.Helper()
	var buf bytes.Buffer
	if err := templates[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		t.Fatalf("render %s: %v", name, err)
	}
	return buf.String()
}

func TestTemplatesParseAndRender(t *testing.T) {
	views := sampleViews(testPage)
	for _, name := range pageNames {
		if templates[name] == nil {
			t.Fatalf("template %s not parsed", name)
		}
		if _, ok := views[name]; !ok {
			t.Fatalf("no sample view of %s", name)
		}
		html := renderPage(t, name, views[name])
		if !strings.HasPrefix(html, "<!doctype html>") || !strings.Contains(html, "</html>") {
			t.Errorf("%s: not a whole page:\n%s", name, html)
		}
		if name != "login" && !strings.Contains(html, "Warren v9.9.9") {
			t.Errorf("%s: footer without the version", name)
		}
	}
}

var (
	inlineScript  = regexp.MustCompile(`<script(\s[^>]*)?>`)
	inlineHandler = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	csrfMeta      = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)
)

// TestPagesObeyTheCSP: the policy allows scripts from 'self' only, so no
// page may carry an inline script or an inline event handler.
func TestPagesObeyTheCSP(t *testing.T) {
	for name, v := range sampleViews(testPage) {
		html := renderPage(t, name, v)
		for _, m := range inlineScript.FindAllString(html, -1) {
			if !strings.Contains(m, ` src="/static/`) {
				t.Errorf("%s: inline script %s", name, m)
			}
		}
		if m := inlineHandler.FindString(html); m != "" {
			t.Errorf("%s: inline event handler %q", name, m)
		}
		if strings.Contains(html, "javascript:") || strings.Contains(html, "hx-on") {
			t.Errorf("%s: script in an attribute", name)
		}
	}
}

func TestEveryPageHasTheCSRFMeta(t *testing.T) {
	for name, v := range sampleViews(testPage) {
		m := csrfMeta.FindStringSubmatch(renderPage(t, name, v))
		if m == nil || m[1] != testPage.CSRF {
			t.Errorf("%s: csrf meta = %v, want %q", name, m, testPage.CSRF)
		}
	}
	// Through the handlers, the token is the one secure() checks.
	s := newPageServer(t, Config{})
	for _, path := range []string{"/workers", "/enqueue", "/login"} {
		w := get(t, s, path)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		m := csrfMeta.FindStringSubmatch(w.Body.String())
		if m == nil {
			t.Fatalf("GET %s: no csrf meta", path)
		}
		var cookie *http.Cookie
		for _, c := range w.Result().Cookies() {
			if c.Name == csrfCookie {
				cookie = c
			}
		}
		if cookie == nil {
			t.Fatalf("GET %s: no CSRF cookie set", path)
		}
		r := httptest.NewRequest(http.MethodPost, "/api/v1/queues/q/pause", nil)
		r.AddCookie(cookie)
		r.Header.Set(CSRFHeader, m[1])
		if !s.validCSRF(r) {
			t.Errorf("GET %s: the page's token %q does not pass validCSRF", path, m[1])
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET %s: Cache-Control %q, want no-store", path, cc)
		}
	}
}

// mutating are the controls a read-only dashboard must not render.
var mutating = []string{`id="pause"`, `id="resume"`, `id="replay-selected"`, `id="purge-selected"`,
	`id="replay-filtered"`, `id="purge-filtered"`, `id="import"`, `id="enqueue-form"`, `id="enqueue-submit"`,
	`id="replay-one"`, `id="purge-one"`, `id="confirm"`, `class="select"`, `type="file"`}

func TestReadOnlyHidesMutatingControls(t *testing.T) {
	ro := testPage
	ro.ReadOnly = true
	rendered := map[string]bool{}
	for name, v := range sampleViews(testPage) {
		for _, c := range mutating {
			if strings.Contains(renderPage(t, name, v), c) {
				rendered[c] = true
			}
		}
	}
	for _, c := range mutating {
		if c != `class="select"` && !rendered[c] { // the checkboxes come from app.js
			t.Errorf("%s is on no page even when writable", c)
		}
	}
	for name, v := range sampleViews(ro) {
		html := renderPage(t, name, v)
		if !strings.Contains(html, `<body class="read-only"`) {
			t.Errorf("%s: body is not class read-only", name)
		}
		for _, c := range mutating {
			if strings.Contains(html, c) {
				t.Errorf("%s: read-only page renders %s", name, c)
			}
		}
	}
	html := renderPage(t, "enqueue", sampleViews(ro)["enqueue"])
	if !strings.Contains(html, `id="read-only-note"`) {
		t.Error("read-only enqueue page has no note")
	}
	// Exporting changes nothing: it stays.
	if html := renderPage(t, "dead", sampleViews(ro)["dead"]); !strings.Contains(html, `id="export"`) {
		t.Error("read-only dead-letter page lost its export link")
	}
	// Through the handler too.
	s := newPageServer(t, Config{ReadOnly: true})
	if body := get(t, s, "/enqueue").Body.String(); strings.Contains(body, "enqueue-form") || !strings.Contains(body, `class="read-only"`) {
		t.Errorf("read-only /enqueue:\n%s", body)
	}
}

func TestDeadLetterIsEscaped(t *testing.T) {
	const evil = `<script>alert(1)</script>`
	const escaped = `&lt;script&gt;alert(1)&lt;/script&gt;`
	now := time.Now()
	for _, tc := range []struct {
		name, payload, kind string
	}{
		{"json", `{"html":"` + evil + `"}`, "json"},
		{"text", evil, "text"},
		{"bytes", "\xff\xfe" + evil, "bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dl := admin.DeadLetter{ID: evil, Type: evil, Queue: "q", Payload: []byte(tc.payload), Error: evil, Stack: evil,
				WorkerHost: evil, Attempts: 1, FailedAt: now, History: []warren.Failure{{Attempt: 1, Error: evil, Worker: evil, FailedAt: now}},
				Headers: map[string]any{"x-tenant": evil}}
			v := newDeadLetterView(testPage, "q", dl)
			if v.PayloadKind != tc.kind {
				t.Errorf("payload kind %q, want %q", v.PayloadKind, tc.kind)
			}
			html := renderPage(t, "deadletter", v)
			if strings.Contains(html, "<script>alert") || strings.Contains(html, "alert(1)</script>") {
				t.Fatalf("unescaped payload in:\n%s", html)
			}
			if tc.kind != "bytes" && !strings.Contains(html, escaped) {
				t.Errorf("escaped payload missing:\n%s", html)
			}
			for _, id := range []string{`<pre id="payload"`, `<table id="history"`, `<pre id="stack"`, `id="replay-one"`, `id="purge-one"`} {
				if !strings.Contains(html, id) {
					t.Errorf("no %s", id)
				}
			}
		})
	}
}

func TestDeadLetterPayloadForms(t *testing.T) {
	v := newDeadLetterView(testPage, "q", admin.DeadLetter{Payload: []byte(`{"a":[1,2]}`)})
	if want := "{\n  \"a\": [\n    1,\n    2\n  ]\n}"; v.PayloadText != want {
		t.Errorf("json payload %q, want %q", v.PayloadText, want)
	}
	v = newDeadLetterView(testPage, "q", admin.DeadLetter{Payload: []byte{0, 1, 0xff}})
	if v.PayloadKind != "bytes" || !strings.HasPrefix(v.PayloadText, "00000000  00 01 ff") {
		t.Errorf("bytes payload %s %q", v.PayloadKind, v.PayloadText)
	}
	v = newDeadLetterView(testPage, "q", admin.DeadLetter{})
	if v.PayloadKind != "empty" {
		t.Errorf("empty payload is %s", v.PayloadKind)
	}
}

// TestContractSelectors checks the ids and classes the browser tests and
// app.js rely on (docs: the pages' contract).
func TestContractSelectors(t *testing.T) {
	views := sampleViews(testPage)
	want := map[string][]string{
		"overview": {`<table id="queues"`, `hx-get="/fragments/queues"`, `hx-trigger="every 2s"`, `hx-swap="outerHTML"`,
			`<tr data-queue="emails"`, `<a href="/queues/emails">`, `class="n ready">1,234,567<`, `class="n unacked">`, `class="n consumers">2<`,
			`class="n delayed">4<`, `class="n held">`, `class="n dead">`, `<td class="state running">running</td>`, `<td class="state paused">paused</td>`,
			`id="rates-chart"`, `id="broker"`, `/workers`, `/enqueue`},
		"queue": {`<span id="queue-state" class="state running">running</span>`, `<button type="button" id="pause"`, `<button type="button" id="resume"`,
			`id="queue-counts"`, `id="queue-chart"`, `href="/queues/emails/dead"`},
		"dead": {`<form id="dl-filter"`, `name="type" value="email:send"`, `name="error"`, `name="since"`, `name="until"`,
			`<span id="dead-total">3</span>`, `id="dead-matched"`, `<table id="dead-letters"`, `id="replay-selected"`, `id="purge-selected"`,
			`id="replay-filtered"`, `id="purge-filtered"`, `<a id="export"`, `href="/api/v1/queues/emails/dead-letters/export?type=email%3Asend"`,
			`<form id="import"`, `<input type="file" name="file"`, `loading…`, `<dialog id="confirm">`, `id="confirm-text"`, `id="confirm-yes"`, `id="confirm-no"`, `id="flash"`},
		"groups":     {`<table id="groups"`, `data-by="error"`, `<span id="dead-total">3</span>`, `loading…`},
		"deadletter": {`<pre id="payload"`, `<table id="history"`, `<pre id="stack"`, `id="replay-one"`, `id="purge-one"`, "&#34;to&#34;: &#34;a@example.com&#34;"},
		"workers": {`<table id="workers"`, `hx-get="/fragments/workers"`, `hx-trigger="every 2s"`, `<tr data-worker="h1/10/1" class="live">`,
			`<tr data-worker="h2/11/1" class="gone">`, `class="host">h1<`, `class="n pid">10<`, `class="version">v1<`, `class="queues">`,
			`class="n concurrency">8<`, `class="running">`, `task-9`, `email:send`},
		"enqueue": {`<form id="enqueue-form"`, `name="queue"`, `name="type"`, `<textarea name="payload"`, `name="delay"`, `name="id"`, `id="enqueue-submit"`},
		"login":   {`<input name="user"`, `<input name="password" type="password"`, `<button type="submit">`, `action="/login"`, `name="next" value="/"`},
	}
	for name, subs := range want {
		html := renderPage(t, name, views[name])
		for _, sub := range subs {
			if !strings.Contains(html, sub) {
				t.Errorf("%s: no %s", name, sub)
			}
		}
	}
	if html := renderPage(t, "login", views["login"]); strings.Contains(html, "<nav>") || strings.Contains(html, "v9.9.9") {
		t.Error("the login page shows the navigation or the version")
	}
}

func TestLogoutButtonOnlyWithASession(t *testing.T) {
	p := testPage
	if strings.Contains(renderPage(t, "workers", workersView{page: p}), `action="/logout"`) {
		t.Error("logout button without a session")
	}
	p.LoggedIn = true
	html := renderPage(t, "workers", workersView{page: p})
	if !strings.Contains(html, `action="/logout"`) || !strings.Contains(html, `name="csrf_token" value="csrf-token-for-the-test"`) {
		t.Errorf("no logout form with the token:\n%s", html)
	}

	s := newPageServer(t, Config{Auth: testToken(t)})
	cookie := &http.Cookie{Name: sessionCookie, Value: s.newSession("ann", time.Now())}
	r := httptest.NewRequest(http.MethodGet, "/workers", nil)
	r.AddCookie(cookie)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if body := w.Body.String(); w.Code != 200 || !strings.Contains(body, `action="/logout"`) || !strings.Contains(body, "ann") {
		t.Errorf("GET /workers with a session: %d\n%s", w.Code, body)
	}
}

func TestLoginPage(t *testing.T) {
	s := newPageServer(t, Config{Auth: testToken(t)})
	w := get(t, s, "/login?next=/workers")
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, `name="next" value="/workers"`) || !strings.Contains(body, `name="user"`) {
		t.Fatalf("GET /login: %d\n%s", w.Code, body)
	}
	// A refused login: 401, the page again with the message, escaped.
	r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader("user=a&password=b&next=/%3Cx%3E"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w = httptest.NewRecorder()
	s.ServeHTTP(w, r)
	body = w.Body.String()
	if w.Code != http.StatusUnauthorized || !strings.Contains(body, "Wrong user or password.") || strings.Contains(body, "<x>") {
		t.Errorf("refused login: %d\n%s", w.Code, body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("refused login: Content-Type %q", ct)
	}
}

func TestWorkersFragment(t *testing.T) {
	s := newPageServer(t, Config{})
	w := get(t, s, "/fragments/workers")
	body := strings.TrimSpace(w.Body.String())
	if w.Code != 200 || !strings.HasPrefix(body, `<table id="workers"`) || strings.Contains(body, "<html") {
		t.Errorf("GET /fragments/workers: %d\n%s", w.Code, body)
	}
	if !strings.Contains(body, `hx-trigger="every 2s"`) {
		t.Error("the fragment does not keep polling")
	}
}

func TestQueuesFragmentTemplate(t *testing.T) {
	var buf bytes.Buffer
	v := sampleViews(testPage)["overview"].(overviewView).Queues
	if err := templates["overview"].ExecuteTemplate(&buf, "queues-table", v); err != nil {
		t.Fatal(err)
	}
	body := strings.TrimSpace(buf.String())
	if !strings.HasPrefix(body, `<table id="queues"`) || !strings.HasSuffix(body, "</table>") || strings.Contains(body, "<html") {
		t.Errorf("queues fragment:\n%s", body)
	}
}

func TestChartFragment(t *testing.T) {
	s := newPageServer(t, Config{})
	now := time.Now()
	s.samples.history["a"] = []Point{{At: now, Ready: 1, Unacked: -1, EnqueueRate: 2, CompleteRate: -1}}
	s.samples.history["b"] = []Point{{At: now, Ready: 5, EnqueueRate: 3, CompleteRate: 1}}
	s.samples.latest = []Queue{{QueueInfo: admin.QueueInfo{Name: "a"}}, {QueueInfo: admin.QueueInfo{Name: "b"}}}
	w := get(t, s, "/fragments/chart")
	want := `{"t":[` + itoa(now.Unix()) + `],"series":[{"label":"enqueued/s","scale":"r","values":[5]},{"label":"completed/s","scale":"r","values":[1]}]}`
	if got := strings.TrimSpace(w.Body.String()); got != want {
		t.Errorf("overview chart\n got %s\nwant %s", got, want)
	}
	w = get(t, s, "/fragments/chart?queue=a")
	if got := w.Body.String(); !strings.Contains(got, `{"label":"unacked","scale":"n","values":[null]}`) || !strings.Contains(got, `{"label":"ready","scale":"n","values":[1]}`) {
		t.Errorf("queue chart %s", got)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {1234567, "1,234,567"}, {-1234, "-1,234"}, {int64(10000000000), "10,000,000,000"}, {uint64(12345), "12,345"}} {
		if got := num(tc.in); got != tc.want {
			t.Errorf("num(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   float64
		want string
	}{{-1, "–"}, {0, "0/s"}, {0.5, "0.50/s"}, {12.34, "12.3/s"}, {12345.6, "12,346/s"}} {
		if got := rate(tc.in); got != tc.want {
			t.Errorf("rate(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{0, "just now"}, {12 * time.Second, "12s ago"}, {3*time.Minute + 59*time.Second, "3m ago"}, {5 * time.Hour, "5h ago"}, {72 * time.Hour, "3d ago"}, {-2 * time.Minute, "in 2m"}} {
		if got := ago(now.Add(-tc.d), now); got != tc.want {
			t.Errorf("ago(-%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := abstime(now); got != "2026-01-02 03:04:05 UTC" {
		t.Errorf("abstime = %q", got)
	}
	if got := compact(3*time.Minute + 12*time.Second); got != "3m 12s" {
		t.Errorf("compact = %q", got)
	}
}

func TestTimesAreRelativeWithAbsoluteTitles(t *testing.T) {
	html := renderPage(t, "deadletter", sampleViews(testPage)["deadletter"])
	if !regexp.MustCompile(`<time datetime="[0-9T:Z-]+" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">1m ago</time>`).MatchString(html) {
		t.Errorf("no relative time with an absolute title:\n%s", html)
	}
}

func TestFilterForm(t *testing.T) {
	f := filterOf(map[string][]string{"type": {" a "}, "error": {"x|y"}, "since": {"2h"}})
	if f.Empty() || f.Query() != "error=x%7Cy&since=2h&type=a" {
		t.Errorf("filter %+v query %q", f, f.Query())
	}
	if !(filterForm{}).Empty() || (filterForm{}).Query() != "" {
		t.Error("empty filter")
	}
}

func testToken(t *testing.T) Authenticator {
	t.Helper()
	tok, err := NewToken("a-secret-of-sixteen-bytes")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
