package dashboard

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/producer"
)

// apiRoute is one route of the JSON API: its pattern (method and path, as
// http.ServeMux reads it) and its handler.
type apiRoute struct {
	pattern string
	handle  func(a *api, w http.ResponseWriter, r *http.Request)
}

// apiTable lists every route of the JSON API. openapi.json describes each
// one (TestOpenAPICoversRoutes checks both ways).
var apiTable = []apiRoute{
	{"GET /api/v1/openapi.json", (*api).openAPI},
	{"GET /api/v1/overview", (*api).overview},
	{"GET /api/v1/queues", (*api).queues},
	{"GET /api/v1/queues/{queue}", (*api).queue},
	{"POST /api/v1/queues/{queue}/pause", (*api).pause},
	{"POST /api/v1/queues/{queue}/resume", (*api).resume},
	{"GET /api/v1/workers", (*api).workers},
	{"POST /api/v1/queues/{queue}/tasks", (*api).enqueue},
	{"POST /api/v1/queues/{queue}/tasks/batch", (*api).enqueueBatch},
	{"GET /api/v1/queues/{queue}/dead-letters", (*api).deadList},
	{"GET /api/v1/queues/{queue}/dead-letters/{id}", (*api).deadShow},
	{"GET /api/v1/queues/{queue}/dead-letter-groups", (*api).deadGroups},
	{"POST /api/v1/queues/{queue}/dead-letters/count", (*api).deadCount},
	{"POST /api/v1/queues/{queue}/dead-letters/replay", (*api).deadReplay},
	{"POST /api/v1/queues/{queue}/dead-letters/purge", (*api).deadPurge},
	{"GET /api/v1/queues/{queue}/dead-letters/export", (*api).deadExport},
	{"POST /api/v1/queues/{queue}/dead-letters/import", (*api).deadImport},
}

// api is the state the JSON API keeps besides the Server's: the enqueue
// deduplication and the dead-letter index.
type api struct {
	s     *Server
	dedup Deduper
	// inflight holds the caller task IDs being enqueued now, so that two
	// concurrent tries with one ID publish once.
	inflight *claims
	dead     *deadIndex
	// cache holds the JSON of the sampler's last sample.
	cache struct {
		sync.Mutex
		at   time.Time
		n    int
		body json.RawMessage
	}
}

func newAPI(s *Server) *api {
	return &api{
		s:        s,
		dedup:    cmp.Or[Deduper](s.cfg.Deduper, NewMemoryDeduper(0, 0)),
		inflight: newClaims(),
		dead:     newDeadIndex(s.adm, s.conn, deadIndexConfig{Logger: s.log}),
	}
}

// apiRoutes registers the JSON API under /api/v1 (see openapi.json).
func (s *Server) apiRoutes() {
	a := newAPI(s)
	s.api = a
	for _, rt := range apiTable {
		s.mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { rt.handle(a, w, r) })
	}
	// Anything else under /api/ answers a JSON 405 or 404, not a page.
	allowed := map[string][]string{} // path pattern → methods
	probe := http.NewServeMux()
	for _, rt := range apiTable {
		method, path, _ := strings.Cut(rt.pattern, " ")
		if _, ok := allowed[path]; !ok {
			probe.HandleFunc(path, func(http.ResponseWriter, *http.Request) {})
		}
		allowed[path] = append(allowed[path], method)
	}
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if _, path := probe.Handler(r); path != "" {
			w.Header().Set("Allow", strings.Join(allowed[path], ", "))
			writeError(w, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
			return
		}
		writeError(w, r, http.StatusNotFound, CodeNotFound, "no such API route: "+r.Method+" "+r.URL.Path)
	})
}

// requestError is a client's mistake: a bad parameter or body. It answers
// with status and code.
type requestError struct {
	status int
	code   string
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{http.StatusBadRequest, CodeBadRequest, fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) error {
	return &requestError{http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf(format, args...)}
}

func unsupported(format string, args ...any) error {
	return &requestError{http.StatusUnsupportedMediaType, CodeUnsupportedMedia, fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) error {
	return &requestError{http.StatusConflict, CodeConflict, fmt.Sprintf(format, args...)}
}

// classify maps an error to the status and code it answers with.
func classify(err error) (int, string) {
	var re *requestError
	var mbe *http.MaxBytesError
	var rec *admin.RecordError
	switch {
	case errors.As(err, &re):
		return re.status, re.code
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, CodeTooLarge
	case errors.Is(err, admin.ErrBusy):
		return http.StatusConflict, CodeBusy
	case errors.Is(err, broker.ErrQueueNotFound), errors.Is(err, producer.ErrUnroutable):
		return http.StatusNotFound, CodeQueueNotFound
	case errors.Is(err, admin.ErrNotFound):
		return http.StatusNotFound, CodeNotFound
	case errors.Is(err, producer.ErrPayloadTooLarge):
		return http.StatusRequestEntityTooLarge, CodeTooLarge
	case errors.As(err, &rec), errors.Is(err, producer.ErrInvalid), errors.Is(err, admin.ErrNoSelector),
		errors.Is(err, admin.ErrInvalidTarget), errors.Is(err, warren.ErrInvalidQueueName):
		return http.StatusBadRequest, CodeBadRequest
	case broker.AccessOf(err) != nil, errors.Is(err, producer.ErrNacked), errors.Is(err, broker.ErrQueueMismatch):
		return http.StatusBadGateway, CodeBrokerRefused
	case errors.Is(err, broker.ErrNotConnected), errors.Is(err, broker.ErrClosed), errors.Is(err, producer.ErrBreakerOpen),
		errors.Is(err, broker.ErrBlocked), errors.Is(err, producer.ErrConfirmLost), errors.Is(err, producer.ErrClosed),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, CodeBrokerUnavailable
	}
	return http.StatusInternalServerError, CodeInternal
}

// urlUserinfo finds the user information of a URL in an error text.
var urlUserinfo = regexp.MustCompile(`(?i)\b(amqps?|https?)://[^\s/@]*@`)

// redact removes any password from an error message. The broker package
// redacts the URLs it dials; this catches any other URL with credentials.
func redact(msg string) string {
	return urlUserinfo.ReplaceAllStringFunc(msg, func(m string) string {
		scheme, _, _ := strings.Cut(m, "://")
		return scheme + "://xxxxx@"
	})
}

// fail answers err as a JSON error, logging what the server got wrong.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := classify(err)
	msg := redact(err.Error())
	if status >= 500 {
		a.s.log.Warn("dashboard: API request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", msg)
	}
	if status == http.StatusServiceUnavailable && !a.s.conn.Connected() {
		msg = "not connected to the broker: " + msg
	}
	writeError(w, r, status, code, msg)
}

// queueParam returns the {queue} of r's path, validated.
func queueParam(r *http.Request) (string, error) {
	q := r.PathValue("queue")
	if err := warren.ValidateQueueName(q); err != nil {
		return "", badRequest("queue: %v", err)
	}
	return q, nil
}

// isJSONType reports whether a Content-Type is JSON.
func isJSONType(ct string) bool { return producer.IsJSON(ct) }

// decodeJSON decodes exactly one JSON object from rd into v, refusing
// unknown fields and trailing data. Its errors are *requestError (or wrap
// *http.MaxBytesError).
func decodeJSON(rd io.Reader, v any) error {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return tooLarge("the body is larger than %d bytes", mbe.Limit)
		case errors.Is(err, io.EOF):
			return badRequest("empty body: want a JSON object")
		}
		return badRequest("invalid JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge("the body is larger than %d bytes", mbe.Limit)
		}
		return badRequest("invalid JSON body: data after the object")
	}
	return nil
}

// mediaType returns the media type of a Content-Type header, lower case.
func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

// openAPI serves openapi.json.
func (a *api) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "openapi.json", a.s.started, bytes.NewReader(openapiJSON))
}
