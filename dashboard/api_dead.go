package dashboard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
)

// Limits of the dead-letter list.
const (
	defaultDeadLimit = 50
	maxDeadLimit     = 1000
)

// deadItem is one dead letter of the list: admin.DeadLetterJSON's fields
// without payload, headers, stack or history, with the error cut short,
// its fingerprint and a payload preview.
type deadItem struct {
	ID             string     `json:"id"`
	Type           string     `json:"type"`
	Queue          string     `json:"queue"`
	Reason         string     `json:"reason,omitempty"`
	Error          string     `json:"error,omitempty"`
	ErrorTruncated bool       `json:"error_truncated,omitempty"`
	Fingerprint    string     `json:"fingerprint,omitempty"`
	Unreadable     bool       `json:"unreadable,omitempty"`
	Attempts       int        `json:"attempts"`
	MaxAttempts    int        `json:"max_attempts,omitempty"`
	EnqueuedAt     *time.Time `json:"enqueued_at,omitempty"`
	FailedAt       *time.Time `json:"failed_at,omitempty"`
	ReplayCount    int        `json:"replay_count,omitempty"`
	PayloadPreview string     `json:"payload_preview"`
	PreviewCut     bool       `json:"payload_preview_truncated,omitempty"`
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func itemOf(e *deadSummary) deadItem {
	return deadItem{
		ID: e.ID, Type: e.Type, Queue: e.Queue, Reason: e.Reason, Error: e.Error, ErrorTruncated: e.ErrorTruncated,
		Fingerprint: e.Fingerprint, Unreadable: e.Unreadable, Attempts: int(e.Attempts), MaxAttempts: int(e.MaxAttempts),
		EnqueuedAt: timeOrNil(e.EnqueuedAt), FailedAt: timeOrNil(e.FailedAt), ReplayCount: int(e.ReplayCount),
		PayloadPreview: e.Preview, PreviewCut: e.PreviewCut,
	}
}

// deadListResponse is GET /api/v1/queues/{queue}/dead-letters.
type deadListResponse struct {
	// Total is the broker's count of the queue's dead letters now.
	Total int `json:"total"`
	// Matched counts the index's dead letters that match the filter.
	Matched int `json:"matched"`
	// Indexed is how many dead letters the index was built from.
	Indexed   int       `json:"indexed"`
	IndexedAt time.Time `json:"indexed_at"`
	Stale     bool      `json:"stale"`
	Partial   bool      `json:"partial,omitempty"`
	// Indexing is set while the first pass over the queue runs: matched
	// and items cover the dead letters read so far; ask again.
	Indexing bool       `json:"indexing,omitempty"`
	Offset   int        `json:"offset"`
	Limit    int        `json:"limit"`
	Items    []deadItem `json:"items"`
}

// filterParams are the filter of a dead-letter selection, as text: the
// query parameters of the list and the export, or a Selection's "filter".
type filterParams struct {
	Type  string `json:"type,omitempty"`
	Error string `json:"error,omitempty"`
	Since string `json:"since,omitempty"`
	Until string `json:"until,omitempty"`
}

func (p filterParams) empty() bool { return p == filterParams{} }

// filterFromQuery reads the filter parameters of a URL query.
func filterFromQuery(v url.Values) filterParams {
	return filterParams{Type: v.Get("type"), Error: v.Get("error"), Since: v.Get("since"), Until: v.Get("until")}
}

// types reads a type parameter: one type, or several separated by commas.
func splitTypes(s string) []string {
	var out []string
	for t := range strings.SplitSeq(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// filter compiles p into admin's Filter; prefix names the fields in errors.
func (p filterParams) filter(prefix string, now time.Time) (admin.Filter, error) {
	var f admin.Filter
	f.Types = splitTypes(p.Type)
	if p.Error != "" {
		re, err := regexp.Compile(p.Error)
		if err != nil {
			return f, badRequest("%serror: invalid regular expression: %v", prefix, err)
		}
		f.ErrorRegexp = re
	}
	var err error
	if f.Since, err = admin.ParseTime(p.Since, now); err != nil {
		return f, badRequest("%ssince: %v", prefix, err)
	}
	if f.Until, err = admin.ParseTime(p.Until, now); err != nil {
		return f, badRequest("%suntil: %v", prefix, err)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return f, badRequest("%ssince (%s) must be before %suntil (%s)", prefix, f.Since.Format(time.RFC3339), prefix, f.Until.Format(time.RFC3339))
	}
	return f, nil
}

// queryOf turns an admin Filter into the index's query.
func queryOf(f admin.Filter) deadQuery {
	q := deadQuery{Error: f.ErrorRegexp, Since: f.Since, Until: f.Until}
	if len(f.IDs) > 0 {
		q.IDs = map[string]bool{}
		for _, id := range f.IDs {
			q.IDs[id] = true
		}
	}
	if len(f.Types) > 0 {
		q.Types = map[string]bool{}
		for _, t := range f.Types {
			q.Types[t] = true
		}
	}
	return q
}

// intParam reads a non-negative integer query parameter.
func intParam(v url.Values, name string, def, maxV int) (int, error) {
	s := v.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, badRequest("%s: want a whole number ≥ 0, not %q", name, s)
	}
	if maxV > 0 && n > maxV {
		return 0, badRequest("%s: at most %d (got %d)", name, maxV, n)
	}
	return n, nil
}

// deadList serves GET /api/v1/queues/{queue}/dead-letters from the index.
func (a *api) deadList(w http.ResponseWriter, r *http.Request) {
	queue, err := queueParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	v := r.URL.Query()
	f, err := filterFromQuery(v).filter("", time.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	limit, err := intParam(v, "limit", defaultDeadLimit, maxDeadLimit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	offset, err := intParam(v, "offset", 0, 0)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	view, err := a.dead.get(r.Context(), queue, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	matched, _ := queryOf(f).filter(view.Entries)
	out := deadListResponse{Total: view.Live, Matched: len(matched), Indexed: view.Count, IndexedAt: view.IndexedAt.UTC(),
		Stale: view.Stale, Partial: view.Partial, Indexing: view.Indexing, Offset: offset, Limit: limit, Items: []deadItem{}}
	if offset < len(matched) {
		for _, e := range matched[offset:min(offset+limit, len(matched))] {
			out.Items = append(out.Items, itemOf(e))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// deadShow serves GET /api/v1/queues/{queue}/dead-letters/{id}: one dead
// letter in full (admin.Get, a pass over the queue).
func (a *api) deadShow(w http.ResponseWriter, r *http.Request) {
	queue, err := queueParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	if id == "" || len(id) > 255 {
		a.fail(w, r, badRequest("id: want 1 to 255 bytes"))
		return
	}
	release, err := a.dead.hold(r.Context(), queue, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	dl, err := a.s.adm.Get(r.Context(), queue, id)
	release(nil, false)
	if err != nil {
		if errors.Is(err, admin.ErrNotFound) {
			writeError(w, r, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no dead letter %s in %s", id, warren.DeadLetterQueue(queue)))
			return
		}
		a.fail(w, r, notFoundQueue(queue, err))
		return
	}
	writeJSON(w, http.StatusOK, dl)
}

// notFoundQueue turns a missing dead-letter queue into queue_not_found
// with a clear message.
func notFoundQueue(queue string, err error) error {
	if isNotFound(err) {
		return badQueue(queue)
	}
	return err
}

// deadGroups serves GET /api/v1/queues/{queue}/dead-letter-groups?by=error|type
// (and the list's filter parameters) from an index that matches the
// broker's count, or from admin.Group when the index holds only part of
// the queue.
func (a *api) deadGroups(w http.ResponseWriter, r *http.Request) {
	queue, err := queueParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	v := r.URL.Query()
	by := admin.GroupBy(v.Get("by"))
	if by == "" {
		by = admin.ByError
	}
	if by != admin.ByError && by != admin.ByType {
		a.fail(w, r, badRequest("by: want %q or %q, not %q", admin.ByError, admin.ByType, by))
		return
	}
	f, err := filterFromQuery(v).filter("", time.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	view, err := a.dead.get(r.Context(), queue, true)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	matched, exact := queryOf(f).filter(view.Entries)
	if view.Partial || !exact {
		release, err := a.dead.hold(r.Context(), queue, false)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		gs, err := a.s.adm.Group(r.Context(), queue, f, by)
		release(nil, false)
		if err != nil {
			a.fail(w, r, notFoundQueue(queue, err))
			return
		}
		writeJSON(w, http.StatusOK, gs)
		return
	}
	w.Header().Set("X-Warren-Indexed-At", view.IndexedAt.UTC().Format(time.RFC3339Nano))
	writeJSON(w, http.StatusOK, groups(matched, by))
}

// Selection chooses dead letters for count, replay and purge: exactly one
// of IDs, Filter or All.
type Selection struct {
	IDs    []string      `json:"ids,omitempty"`
	Filter *filterParams `json:"filter,omitempty"`
	All    bool          `json:"all,omitempty"`
	// Expect, if set, is the count the client showed its user: the action
	// fails with 409 conflict if the selection counts otherwise now.
	Expect *int `json:"expect,omitempty"`
}

// filter checks s and turns it into admin's Filter.
func (s Selection) filter(now time.Time) (admin.Filter, error) {
	n := 0
	if len(s.IDs) > 0 {
		n++
	}
	if s.Filter != nil {
		n++
	}
	if s.All {
		n++
	}
	if n != 1 {
		return admin.Filter{}, badRequest(`selection: give exactly one of "ids", "filter" or "all": true`)
	}
	if s.Expect != nil && *s.Expect < 0 {
		return admin.Filter{}, badRequest("expect: cannot be negative")
	}
	switch {
	case s.All:
		return admin.Filter{All: true}, nil
	case len(s.IDs) > 0:
		for i, id := range s.IDs {
			if id == "" || len(id) > 255 {
				return admin.Filter{}, badRequest("ids[%d]: want 1 to 255 bytes", i)
			}
		}
		return admin.Filter{IDs: s.IDs}, nil
	}
	if s.Filter.empty() {
		return admin.Filter{}, badRequest(`filter: empty (to select every dead letter, send "all": true)`)
	}
	return s.Filter.filter("filter.", now)
}

// decodeSelection reads a Selection body.
func decodeSelection(rd io.Reader, now time.Time) (Selection, admin.Filter, error) {
	var s Selection
	if err := decodeJSON(rd, &s); err != nil {
		return s, admin.Filter{}, err
	}
	f, err := s.filter(now)
	return s, f, err
}

// readSelection reads the Selection of a count, replay or purge request.
func (a *api) readSelection(w http.ResponseWriter, r *http.Request) (string, Selection, admin.Filter, error) {
	queue, err := queueParam(r)
	if err != nil {
		return "", Selection{}, admin.Filter{}, err
	}
	if !isJSONType(r.Header.Get("Content-Type")) {
		return "", Selection{}, admin.Filter{}, unsupported("the body must be JSON (Content-Type: application/json), not %q", r.Header.Get("Content-Type"))
	}
	sel, f, err := decodeSelection(http.MaxBytesReader(w, r.Body, a.s.cfg.MaxBody), time.Now())
	return queue, sel, f, err
}

// count counts the dead letters f selects: the broker's count for All,
// else from the index when it matches the broker's count and can answer
// exactly, else by a pass. The caller holds the queue (dead.hold).
func (a *api) count(ctx context.Context, queue string, f admin.Filter) (int, error) {
	if f.All {
		return a.dead.liveCount(ctx, queue)
	}
	a.dead.mu.Lock()
	qi := a.dead.queue(queue)
	entries, built, dirty, partial, n := qi.entries, qi.built, qi.dirty, qi.partial, qi.count
	fresh := built && !dirty && !partial && time.Since(qi.indexedAt) <= a.dead.cfg.MaxAge
	a.dead.mu.Unlock()
	if fresh {
		live, err := a.dead.liveCount(ctx, queue)
		if err != nil {
			return 0, err
		}
		if live == n {
			matched, exact := queryOf(f).filter(entries)
			if exact {
				return len(matched), nil
			}
		}
	}
	c := 0
	err := a.s.adm.Each(ctx, queue, f, func(admin.DeadLetter) error { c++; return nil })
	return c, notFoundQueue(queue, err)
}

// countResponse is POST .../dead-letters/count.
type countResponse struct {
	Count int `json:"count"`
}

// deadCount serves POST /api/v1/queues/{queue}/dead-letters/count.
func (a *api) deadCount(w http.ResponseWriter, r *http.Request) {
	queue, _, f, err := a.readSelection(w, r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !f.All {
		// Bring the index up to date (one pass at most), then count from it.
		if _, err := a.dead.get(r.Context(), queue, true); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	release, err := a.dead.hold(r.Context(), queue, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	n, err := a.count(r.Context(), queue, f)
	release(nil, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, countResponse{Count: n})
}

// checkExpect fails with 409 conflict when sel.Expect is set and the
// selection counts otherwise now.
func (a *api) checkExpect(ctx context.Context, queue string, sel Selection, f admin.Filter) error {
	if sel.Expect == nil {
		return nil
	}
	n, err := a.count(ctx, queue, f)
	if err != nil {
		return err
	}
	if n != *sel.Expect {
		return conflict("the selection counts %d dead letters now, not the %d expected: count again and confirm", n, *sel.Expect)
	}
	return nil
}

// beginAction reads an action's selection, holds the queue's index (ending
// a pass under way) and checks the selection's expected count. It answers
// the request itself when it returns ok false; otherwise the caller must
// call release with what the action removed.
func (a *api) beginAction(w http.ResponseWriter, r *http.Request) (queue string, f admin.Filter, release func([]string, bool), ok bool) {
	queue, sel, f, err := a.readSelection(w, r)
	if err != nil {
		a.fail(w, r, err)
		return "", f, nil, false
	}
	release, err = a.dead.hold(r.Context(), queue, true)
	if err != nil {
		a.fail(w, r, err)
		return "", f, nil, false
	}
	if err := a.checkExpect(r.Context(), queue, sel, f); err != nil {
		release(nil, false)
		a.fail(w, r, err)
		return "", f, nil, false
	}
	return queue, f, release, true
}

// deadReplay serves POST /api/v1/queues/{queue}/dead-letters/replay.
func (a *api) deadReplay(w http.ResponseWriter, r *http.Request) {
	queue, f, release, ok := a.beginAction(w, r)
	if !ok {
		return
	}
	res, err := a.s.adm.Replay(r.Context(), queue, f, admin.ReplayOptions{})
	release(res.IDs, res.Resumed > 0 || res.Failed > 0 || res.Unconfirmed > 0)
	if res.Replayed > 0 || res.Resumed > 0 {
		a.s.audit(r, "replay", queue, res.Replayed, "resumed", res.Resumed, "failed", res.Failed)
	}
	if err != nil {
		a.fail(w, r, notFoundQueue(queue, err))
		return
	}
	writeJSON(w, http.StatusOK, admin.ReplayReport{Queue: queue, ReplayResult: res})
}

// deadPurge serves POST /api/v1/queues/{queue}/dead-letters/purge.
func (a *api) deadPurge(w http.ResponseWriter, r *http.Request) {
	queue, f, release, ok := a.beginAction(w, r)
	if !ok {
		return
	}
	res, err := a.s.adm.Purge(r.Context(), queue, f)
	release(res.IDs, false)
	if res.Purged > 0 {
		a.s.audit(r, "purge", queue, res.Purged)
	}
	if err != nil {
		a.fail(w, r, notFoundQueue(queue, err))
		return
	}
	writeJSON(w, http.StatusOK, admin.PurgeReport{Queue: queue, PurgeResult: res})
}

// lazyWriter sets the headers of a download on its first write, so that
// an export that fails before writing anything can still answer an error.
type lazyWriter struct {
	w       http.ResponseWriter
	header  func(h http.Header)
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.header(l.w.Header())
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}

// Flush sends what was written to the client (Export calls it after each
// batch of records).
func (l *lazyWriter) Flush() error {
	if !l.started {
		return nil
	}
	return http.NewResponseController(l.w).Flush()
}

// deadExport serves GET /api/v1/queues/{queue}/dead-letters/export with
// the list's filter parameters: admin.Export's NDJSON records, streamed,
// as an attachment. The dead letters stay in the queue.
func (a *api) deadExport(w http.ResponseWriter, r *http.Request) {
	queue, err := queueParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	v := r.URL.Query()
	p := filterFromQuery(v)
	f, err := p.filter("", time.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if ids := v["id"]; len(ids) > 0 {
		f.IDs = ids
	}
	release, err := a.dead.hold(r.Context(), queue, true)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer release(nil, false)
	lw := &lazyWriter{w: w, header: func(h http.Header) {
		h.Set("Content-Type", "application/x-ndjson")
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.dlq.ndjson"`, queue))
		h.Set("X-Content-Type-Options", "nosniff")
	}}
	_, err = a.s.adm.Export(r.Context(), queue, f, lw, admin.ExportOptions{})
	if err != nil {
		if !lw.started {
			a.fail(w, r, notFoundQueue(queue, err))
			return
		}
		// The records are out: cut the response short, so that the
		// client sees a failed download rather than a complete file.
		a.s.log.Warn("dashboard: export failed midway", "queue", queue, "err", redact(err.Error()))
		panic(http.ErrAbortHandler)
	}
	if !lw.started {
		// Nothing selected: an empty file.
		_, _ = lw.Write(nil)
	}
}

// importSource returns the NDJSON of an import request: the body itself,
// or the part named "file" of a multipart form, and a name for it.
func (a *api) importSource(w http.ResponseWriter, r *http.Request) (io.Reader, string, error) {
	body := http.MaxBytesReader(w, r.Body, a.s.cfg.MaxBody)
	switch mt := mediaType(r.Header.Get("Content-Type")); mt {
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/json", "text/plain", "application/octet-stream":
		return body, "upload", nil
	case "multipart/form-data":
		mr, err := r.MultipartReader()
		if err != nil {
			return nil, "", badRequest("multipart body: %v", err)
		}
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil, "", badRequest(`multipart body: no part named "file"`)
			}
			if err != nil {
				return nil, "", tooLargeOr(err)
			}
			if part.FormName() == "file" {
				name := part.FileName()
				if name == "" {
					name = "upload"
				}
				return part, name, nil
			}
			_ = drainPart(part)
		}
	default:
		return nil, "", unsupported(`import: send NDJSON (Content-Type: application/x-ndjson) or a multipart form with a "file" field, not %q`, r.Header.Get("Content-Type"))
	}
}

func drainPart(p *multipart.Part) error {
	_, err := io.Copy(io.Discard, p)
	return err
}

// bodyErr remembers the first read error of the request body (a body
// over its limit), which Import wraps in its own.
type bodyErr struct {
	r   io.Reader
	err error
}

func (b *bodyErr) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && b.err == nil {
		b.err = err
	}
	return n, err
}

// deadImport serves POST /api/v1/queues/{queue}/dead-letters/import:
// admin.Import of the NDJSON body (or multipart field "file") into the
// queue's dead-letter queue.
func (a *api) deadImport(w http.ResponseWriter, r *http.Request) {
	queue, err := queueParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	src, name, err := a.importSource(w, r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	release, err := a.dead.hold(r.Context(), queue, true)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	be := &bodyErr{r: bufio.NewReaderSize(src, 64<<10)}
	res, err := a.s.adm.Import(r.Context(), queue, be, admin.ImportOptions{})
	release(nil, res.Imported > 0)
	if res.Imported > 0 {
		a.s.audit(r, "import", queue, res.Imported, "from", name)
	}
	if err != nil {
		if be.err != nil {
			err = tooLargeOr(be.err)
		}
		a.fail(w, r, notFoundQueue(queue, err))
		return
	}
	writeJSON(w, http.StatusOK, admin.ImportReport{From: name, Into: warren.DeadLetterQueue(queue), ImportResult: res})
}
