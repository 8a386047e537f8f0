package dashboard

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/fleet"
)

// pageSize is the dead letters one page of the list shows.
const pageSize = 50

// stateTimeout bounds asking the broker whether the shown queue is paused.
const stateTimeout = 2 * time.Second

// pageRoutes registers the pages, their fragments and the static assets.
func (s *Server) pageRoutes() {
	s.mux.HandleFunc("GET /static/{hash}/{name...}", serveStatic)
	s.mux.HandleFunc("GET /{$}", s.overviewPage)
	s.mux.HandleFunc("GET /fragments/queues", s.queuesFragment)
	s.mux.HandleFunc("GET /fragments/workers", s.workersFragment)
	s.mux.HandleFunc("GET /fragments/chart", s.chartFragment)
	s.mux.HandleFunc("GET /queues/{q}", s.queuePage)
	s.mux.HandleFunc("GET /queues/{q}/dead", s.deadPage)
	s.mux.HandleFunc("GET /queues/{q}/dead/groups", s.groupsPage)
	s.mux.HandleFunc("GET /queues/{q}/dead/{id}", s.deadLetterPage)
	s.mux.HandleFunc("GET /workers", s.workersPage)
	s.mux.HandleFunc("GET /enqueue", s.enqueuePage)
}

// page holds what the layout of every page shows.
type page struct {
	Title    string
	Nav      string // the header's link to mark current
	Page     string // names the page for app.js (body's data-page)
	CSRF     string
	User     string
	LoggedIn bool // shows the logout button
	ReadOnly bool
	Bare     bool // no navigation (the login page)
	Version  string
}

func (s *Server) page(w http.ResponseWriter, r *http.Request, name, title, nav string) page {
	_, err := r.Cookie(sessionCookie)
	return page{
		Title:    title,
		Nav:      nav,
		Page:     name,
		CSRF:     s.csrfToken(w, r),
		User:     userOf(r),
		LoggedIn: s.cfg.Auth != nil && err == nil,
		ReadOnly: s.cfg.ReadOnly,
		Version:  s.cfg.Version,
	}
}

// Every page is its template under templates/ with the layout.
var pageNames = []string{"overview", "queue", "dead", "groups", "deadletter", "workers", "enqueue", "login", "error"}

var templates = mustParseTemplates()

func mustParseTemplates() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		out[name] = template.Must(template.New(name).Funcs(templateFuncs).
			ParseFS(embedded, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}

// render writes the page name with data: the layout (or one of its
// templates, for a fragment) into a buffer first, so that a template error
// answers 500 rather than half a page. A status of 0 leaves the status to
// whoever wrote it already (renderLogin after a refused login).
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, tmpl string, data any) {
	var buf bytes.Buffer
	if err := templates[name].ExecuteTemplate(&buf, tmpl, data); err != nil {
		s.log.Error("dashboard: rendering a page failed", "page", name, "template", tmpl, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if status != 0 {
		w.WriteHeader(status)
	}
	_, _ = w.Write(buf.Bytes())
}

type errorView struct {
	page
	Heading, Message, Back string
}

// renderError answers a page that says what went wrong.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, heading, msg, back string) {
	s.render(w, r, status, "error", "layout", errorView{s.page(w, r, "error", heading, ""), heading, msg, back})
}

// renderFailure answers the page of an operation that failed with err.
func (s *Server) renderFailure(w http.ResponseWriter, r *http.Request, err error, back string) {
	switch {
	case errors.Is(err, admin.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound, "Not found", err.Error(), back)
	case errors.Is(err, admin.ErrBusy):
		s.renderError(w, r, http.StatusConflict, "Busy", "Another operation (a replay, purge, export or listing) holds this dead-letter queue; try again when it ends. ("+err.Error()+")", back)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		s.renderError(w, r, http.StatusGatewayTimeout, "Timed out", err.Error(), back)
	case !s.conn.Connected():
		s.renderError(w, r, http.StatusServiceUnavailable, "Broker unavailable", err.Error(), back)
	default:
		s.renderError(w, r, http.StatusBadGateway, "The broker refused", err.Error(), back)
	}
}

// loginView is the login page's data.
type loginView struct {
	page
	Next, Error string
}

// renderLogin writes the login page, with errMsg when a login was refused.
func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, next, errMsg string) {
	p := s.page(w, r, "login", "Log in", "")
	p.Bare, p.LoggedIn = true, false
	s.render(w, r, 0, "login", "layout", loginView{p, next, errMsg})
}

// ---- overview ----

// queueRow is one queue of the overview: its sample and whether it is
// paused ("paused", "running", or "?" when the broker did not say).
type queueRow struct {
	Queue
	State, StateErr string
}

// queuesView is the overview's table, also served alone as a fragment.
type queuesView struct {
	Rows   []queueRow
	At     time.Time
	Err    string
	Window string
}

type brokerView struct {
	Connected                           bool
	Blocked, Product, Version, Platform string
	URL                                 string
}

type workerCounts struct{ Live, Gone int }

type overviewView struct {
	page
	Queues  queuesView
	Chart   string
	Broker  brokerView
	Workers workerCounts
}

// queues returns the last sample of the queues, or, before the sampler's
// first one, their counts asked of the broker now.
func (s *Server) queues(ctx context.Context) ([]Queue, time.Time, error) {
	qs, at, err := s.samples.snapshot()
	if !at.IsZero() {
		return qs, at, err
	}
	now := time.Now()
	workers := s.roster.Workers()
	infos, err := s.adm.Queues(ctx, s.samples.names(workers, now))
	if err != nil {
		return nil, time.Time{}, err
	}
	qs = make([]Queue, len(infos))
	for i, info := range infos {
		qs[i] = unsampled(info, workers)
	}
	return qs, now, nil
}

// queueState says whether queue is paused, as the overview and the queue
// page show it.
func (s *Server) queueState(ctx context.Context, queue string) (state, errText string) {
	paused, err := fleet.Paused(ctx, s.conn, queue)
	switch {
	case err != nil:
		return "?", "cannot tell whether the queue is paused: " + err.Error()
	case paused:
		return "paused", ""
	default:
		return "running", ""
	}
}

func (s *Server) queuesTable(ctx context.Context) queuesView {
	v := queuesView{Window: window(s.cfg.History)}
	qs, at, err := s.queues(ctx)
	v.At = at
	if err != nil {
		v.Err = err.Error()
	}
	for _, q := range qs {
		// The sample's pause state: a pause or resume from this instance
		// updates it at once (sampler.setPaused), others' within a sample.
		row := queueRow{Queue: q, State: q.State()}
		if !q.Exists {
			row.State = "missing"
		}
		v.Rows = append(v.Rows, row)
	}
	return v
}

func (s *Server) overviewPage(w http.ResponseWriter, r *http.Request) {
	v := overviewView{page: s.page(w, r, "overview", "Overview", "overview")}
	v.Queues = s.queuesTable(r.Context())
	v.Chart = mustJSON(s.ratesChart())
	v.Broker = brokerView{Connected: s.conn.Connected(), Blocked: s.conn.Blocked(), URL: s.conn.URL()}
	if info, err := s.conn.Server(); err == nil {
		v.Broker.Product, v.Broker.Version, v.Broker.Platform = info.Product, info.Version, info.Platform
	}
	for _, wk := range s.roster.Workers() {
		if wk.Gone {
			v.Workers.Gone++
		} else {
			v.Workers.Live++
		}
	}
	s.render(w, r, http.StatusOK, "overview", "layout", v)
}

// queuesFragment serves the overview's table alone, which it polls.
func (s *Server) queuesFragment(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "overview", "queues-table", s.queuesTable(r.Context()))
}

// ---- charts ----

// chart is what app.js draws with uPlot: one x axis of Unix seconds and
// series of values (null where unknown), each on a scale ("n" for counts,
// "r" for rates per second).
type chart struct {
	T      []int64       `json:"t"`
	Series []chartSeries `json:"series"`
}

type chartSeries struct {
	Label  string     `json:"label"`
	Scale  string     `json:"scale"`
	Values []*float64 `json:"values"`
}

func knownValue(v float64) *float64 {
	if v < 0 {
		return nil
	}
	return &v
}

// ratesChart sums the enqueue and complete rates of every sampled queue.
// The sampler samples every queue at the same instant, so their points
// share their times.
func (s *Server) ratesChart() chart {
	qs, _, _ := s.samples.snapshot()
	type sum struct {
		in, done   float64
		hasIn, has bool
	}
	sums := map[int64]*sum{}
	for _, q := range qs {
		for _, p := range s.samples.points(q.Name) {
			t := p.At.Unix()
			x := sums[t]
			if x == nil {
				x = &sum{}
				sums[t] = x
			}
			if p.EnqueueRate >= 0 {
				x.in += p.EnqueueRate
				x.hasIn = true
			}
			if p.CompleteRate >= 0 {
				x.done += p.CompleteRate
				x.has = true
			}
		}
	}
	c := chart{T: slices.Sorted(maps.Keys(sums)), Series: []chartSeries{
		{Label: "enqueued/s", Scale: "r"}, {Label: "completed/s", Scale: "r"}}}
	for _, t := range c.T {
		x := sums[t]
		in, done := -1.0, -1.0
		if x.hasIn {
			in = x.in
		}
		if x.has {
			done = x.done
		}
		c.Series[0].Values = append(c.Series[0].Values, knownValue(in))
		c.Series[1].Values = append(c.Series[1].Values, knownValue(done))
	}
	return c
}

// queueChart is one queue's history: its counts and its rates.
func (s *Server) queueChart(queue string) chart {
	c := chart{T: []int64{}, Series: []chartSeries{
		{Label: "ready", Scale: "n"}, {Label: "unacked", Scale: "n"}, {Label: "dead", Scale: "n"},
		{Label: "enqueued/s", Scale: "r"}, {Label: "completed/s", Scale: "r"}}}
	for _, p := range s.samples.points(queue) {
		c.T = append(c.T, p.At.Unix())
		for i, v := range []float64{float64(p.Ready), float64(p.Unacked), float64(p.DeadLetters), p.EnqueueRate, p.CompleteRate} {
			c.Series[i].Values = append(c.Series[i].Values, knownValue(v))
		}
	}
	return c
}

// chartFragment serves a chart's data as JSON, for app.js to redraw it:
// a queue's (?queue=Q) or the overview's.
func (s *Server) chartFragment(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if q := r.URL.Query().Get("queue"); q != "" {
		writeJSON(w, http.StatusOK, s.queueChart(q))
		return
	}
	writeJSON(w, http.StatusOK, s.ratesChart())
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// ---- queue ----

type queueView struct {
	page
	Queue           Queue
	State, StateErr string
	Chart           string
	Window          string
}

// queueInfo returns queue's last sample, or its counts asked of the broker
// when the sampler has none yet. It says whether the queue exists.
func (s *Server) queueInfo(ctx context.Context, queue string) (Queue, error) {
	qs, _, _ := s.samples.snapshot()
	for _, q := range qs {
		if q.Name == queue && q.Exists {
			return q, nil
		}
	}
	infos, err := s.adm.Queues(ctx, []string{queue})
	if err != nil {
		return Queue{}, err
	}
	return unsampled(infos[0], s.roster.Workers()), nil
}

func (s *Server) queuePage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("q")
	q, err := s.queueInfo(r.Context(), name)
	if err != nil {
		s.renderFailure(w, r, err, "/")
		return
	}
	if !q.Exists {
		s.renderError(w, r, http.StatusNotFound, "No such queue", fmt.Sprintf("The queue %q does not exist.", name), "/")
		return
	}
	s.samples.ask(name)
	v := queueView{page: s.page(w, r, "queue", name, "overview"), Queue: q, Window: window(s.cfg.History)}
	ctx, cancel := context.WithTimeout(r.Context(), stateTimeout)
	v.State, v.StateErr = s.queueState(ctx, name)
	cancel()
	v.Chart = mustJSON(s.queueChart(name))
	s.render(w, r, http.StatusOK, "queue", "layout", v)
}

// ---- dead letters ----

// filterForm is the dead-letter filter as the page's form and URL carry it.
type filterForm struct{ Type, Error, Since, Until string }

func filterOf(v url.Values) filterForm {
	return filterForm{Type: strings.TrimSpace(v.Get("type")), Error: v.Get("error"),
		Since: strings.TrimSpace(v.Get("since")), Until: strings.TrimSpace(v.Get("until"))}
}

// Empty reports whether the form selects everything.
func (f filterForm) Empty() bool { return f == filterForm{} }

// Query is the filter as URL parameters, for the API calls and the export.
func (f filterForm) Query() string {
	v := url.Values{}
	for k, x := range map[string]string{"type": f.Type, "error": f.Error, "since": f.Since, "until": f.Until} {
		if x != "" {
			v.Set(k, x)
		}
	}
	return v.Encode()
}

type deadListView struct {
	page
	Queue, DLQ    string
	Total         int
	Filter        filterForm
	Limit, Offset int
}

// ExportURL is the API's export of the dead letters the filter selects.
func (v deadListView) ExportURL() string {
	u := "/api/v1/queues/" + url.PathEscape(v.Queue) + "/dead-letters/export"
	if q := v.Filter.Query(); q != "" {
		u += "?" + q
	}
	return u
}

// deadCount returns the dead letters queue's dead-letter queue holds now,
// as the broker counts them (two passive declares, no pass over the
// queue), or an error wrapping broker.ErrQueueNotFound if queue does not
// exist.
func (s *Server) deadCount(ctx context.Context, queue string) (int, error) {
	if _, err := broker.Inspect(ctx, s.conn, queue); err != nil {
		return 0, err
	}
	st, err := broker.Inspect(ctx, s.conn, warren.DeadLetterQueue(queue))
	if errors.Is(err, broker.ErrQueueNotFound) {
		return 0, nil
	}
	return st.Ready, err
}

// deadPage serves the dead-letter list's shell: the broker's count, the
// filter and the actions. app.js loads the rows from the API.
func (s *Server) deadPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("q")
	total, err := s.deadCount(r.Context(), name)
	if errors.Is(err, broker.ErrQueueNotFound) {
		s.renderError(w, r, http.StatusNotFound, "No such queue", fmt.Sprintf("The queue %q does not exist.", name), "/")
		return
	}
	if err != nil {
		s.renderFailure(w, r, err, "/")
		return
	}
	offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
	v := deadListView{page: s.page(w, r, "dead", "Dead letters of "+name, "overview"),
		Queue: name, DLQ: warren.DeadLetterQueue(name), Total: total,
		Filter: filterOf(r.URL.Query()), Limit: pageSize, Offset: max(offset, 0)}
	s.render(w, r, http.StatusOK, "dead", "layout", v)
}

type groupsView struct {
	page
	Queue, DLQ, By string
	Total          int
	Filter         filterForm
}

// groupsPage serves the shell of the dead letters' groups: app.js loads
// them from the API, whose index counts a large queue without a pass.
func (s *Server) groupsPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("q")
	back := "/queues/" + url.PathEscape(name) + "/dead"
	by := admin.GroupBy(cmp.Or(r.URL.Query().Get("by"), string(admin.ByError)))
	if by != admin.ByError && by != admin.ByType {
		s.renderError(w, r, http.StatusBadRequest, "Bad request", `Group by "error" or "type".`, back)
		return
	}
	total, err := s.deadCount(r.Context(), name)
	if errors.Is(err, broker.ErrQueueNotFound) {
		s.renderError(w, r, http.StatusNotFound, "No such queue", fmt.Sprintf("The queue %q does not exist.", name), "/")
		return
	}
	if err != nil {
		s.renderFailure(w, r, err, back)
		return
	}
	v := groupsView{page: s.page(w, r, "groups", "Dead letters of "+name+" by "+string(by), "overview"),
		Queue: name, DLQ: warren.DeadLetterQueue(name), By: string(by), Total: total, Filter: filterOf(r.URL.Query())}
	s.render(w, r, http.StatusOK, "groups", "layout", v)
}

type headerRow struct{ Key, Value string }

type deadLetterView struct {
	page
	Queue       string
	DL          admin.DeadLetter
	PayloadKind string // "json", "text", "bytes" or "empty"
	PayloadText string
	Headers     []headerRow
}

// newDeadLetterView lays out dl for its page: the payload pretty-printed
// when it is JSON, as text when it is UTF-8, as a hex dump otherwise, and
// the task's own headers. (The template escapes all of it.)
func newDeadLetterView(p page, queue string, dl admin.DeadLetter) deadLetterView {
	v := deadLetterView{page: p, Queue: queue, DL: dl}
	j := dl.JSON()
	switch {
	case len(dl.Payload) == 0:
		v.PayloadKind, v.PayloadText = "empty", "(empty)"
	case j.Payload != nil:
		var buf bytes.Buffer
		if err := json.Indent(&buf, j.Payload, "", "  "); err == nil {
			v.PayloadKind, v.PayloadText = "json", buf.String()
		} else {
			v.PayloadKind, v.PayloadText = "text", string(dl.Payload)
		}
	case j.PayloadText != nil:
		v.PayloadKind, v.PayloadText = "text", *j.PayloadText
	default:
		v.PayloadKind, v.PayloadText = "bytes", hex.Dump(dl.Payload)
	}
	for _, k := range slices.Sorted(maps.Keys(j.Headers)) {
		val, ok := j.Headers[k].(string)
		if !ok {
			b, _ := json.Marshal(j.Headers[k])
			val = string(b)
		}
		v.Headers = append(v.Headers, headerRow{k, val})
	}
	return v
}

func (s *Server) deadLetterPage(w http.ResponseWriter, r *http.Request) {
	name, id := r.PathValue("q"), r.PathValue("id")
	back := "/queues/" + url.PathEscape(name) + "/dead"
	dl, err := s.adm.Get(admin.WithLockWait(r.Context(), nil), name, id)
	if err != nil {
		s.renderFailure(w, r, err, back)
		return
	}
	p := s.page(w, r, "deadletter", "Dead letter "+id, "overview")
	s.render(w, r, http.StatusOK, "deadletter", "layout", newDeadLetterView(p, name, dl))
}

// ---- workers ----

type workersTable struct {
	Rows       []fleet.Worker
	Live, Gone int
	At         time.Time
}

type workersView struct {
	page
	Workers workersTable
}

func (s *Server) workersTable() workersTable {
	t := workersTable{Rows: s.roster.Workers(), At: time.Now()}
	for _, wk := range t.Rows {
		if wk.Gone {
			t.Gone++
		} else {
			t.Live++
		}
	}
	return t
}

func (s *Server) workersPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "workers", "layout",
		workersView{page: s.page(w, r, "workers", "Workers", "workers"), Workers: s.workersTable()})
}

// workersFragment serves the workers' table alone, which the page polls.
func (s *Server) workersFragment(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "workers", "workers-table", s.workersTable())
}

// ---- enqueue ----

type enqueueView struct {
	page
	Queue  string
	Queues []string
}

func (s *Server) enqueuePage(w http.ResponseWriter, r *http.Request) {
	v := enqueueView{page: s.page(w, r, "enqueue", "Enqueue", "enqueue"), Queue: r.URL.Query().Get("queue")}
	set := map[string]bool{}
	for _, q := range s.cfg.Queues {
		set[q] = true
	}
	qs, _, _ := s.samples.snapshot()
	for _, q := range qs {
		if q.Exists {
			set[q.Name] = true
		}
	}
	v.Queues = slices.Sorted(maps.Keys(set))
	if v.Queue == "" && len(v.Queues) == 1 {
		v.Queue = v.Queues[0]
	}
	s.render(w, r, http.StatusOK, "enqueue", "layout", v)
}
