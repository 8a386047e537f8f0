package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/producer"
)

// TestOpenAPICoversRoutes checks that openapi.json describes every route
// of apiTable, and nothing else.
func TestOpenAPICoversRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	var documented, routed []string
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "post", "put", "patch", "delete", "head", "options":
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	for _, rt := range apiTable {
		routed = append(routed, rt.pattern)
	}
	slices.Sort(documented)
	slices.Sort(routed)
	for _, r := range routed {
		if !slices.Contains(documented, r) {
			t.Errorf("route %q is not in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routed, d) {
			t.Errorf("openapi.json describes %q, which apiRoutes does not register", d)
		}
	}
}

// TestOpenAPIErrorCodes checks that the Error schema's code enum is the
// Code constants.
func TestOpenAPIErrorCodes(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Error struct {
							Properties struct {
								Code struct {
									Enum []string `json:"enum"`
								} `json:"code"`
							} `json:"properties"`
						} `json:"error"`
					} `json:"properties"`
				} `json:"Error"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		t.Fatal(err)
	}
	got := doc.Components.Schemas.Error.Properties.Error.Properties.Code.Enum
	want := []string{CodeBadRequest, CodeUnauthorized, CodeCSRF, CodeReadOnly, CodeNotFound, CodeQueueNotFound,
		CodeMethodNotAllowed, CodeBusy, CodeConflict, CodeTooLarge, CodeUnsupportedMedia, CodeBrokerRefused,
		CodeBrokerUnavailable, CodeInternal}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("error code enum = %v, want %v", got, want)
	}
}

func TestDecodeTask(t *testing.T) {
	for _, tc := range []struct {
		body   string
		status int    // 0: valid
		msg    string // in the error
	}{
		{`{"type":"send"}`, 0, ""},
		{`{"type":"send","payload":{"to":"ada"},"delay":"10s","id":"a-1","max_attempts":3}`, 0, ""},
		{`{"type":"send","payload":null}`, 0, ""},
		{`{"type":""}`, 400, "type"},
		{`{}`, 400, "type"},
		{`{"type":"send","bogus":1}`, 400, "bogus"},
		{`{"type":"send","delay":"soon"}`, 400, "delay"},
		{`{"type":"send","delay":"-1s"}`, 400, "delay"},
		{`{"type":"send","delay":"100000000h"}`, 400, "delay"},
		{`{"type":"send","max_attempts":0}`, 400, "max_attempts"},
		{`{"type":"send","max_attempts":"3"}`, 400, "max_attempts"},
		{`{"type":"send","id":"` + strings.Repeat("x", 256) + `"}`, 400, "id"},
		{`{"type":"send","payload":"` + strings.Repeat("x", 100) + `"}`, 413, "payload"},
		{`{"type":"send"} {}`, 400, "after"},
		{`[1]`, 400, ""},
		{``, 400, "empty"},
		{`{"type":`, 400, ""},
	} {
		_, _, err := decodeTask([]byte(tc.body), "q", 64)
		if tc.status == 0 {
			if err != nil {
				t.Errorf("decodeTask(%s): %v", tc.body, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("decodeTask(%s) = nil, want %d", tc.body, tc.status)
			continue
		}
		if st, _ := classify(err); st != tc.status {
			t.Errorf("decodeTask(%s): status %d (%v), want %d", tc.body, st, err, tc.status)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("decodeTask(%s) = %q, want it to name %q", tc.body, err, tc.msg)
		}
	}
}

func TestDecodeBatch(t *testing.T) {
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"tasks":[{"type":"a"},{"type":"b","id":"x"}]}`, 0},
		{`{"tasks":[]}`, 400},
		{`{}`, 400},
		{`{"tasks":[{"type":"a"},{"type":"a"},{"type":"a"},{"type":"a"}]}`, 413},
		{`{"tasks":[{"type":"a"},{"type":""}]}`, 400},
		{`{"tasks":[{"type":"a","x":1}]}`, 400},
	} {
		_, jobs, err := decodeBatch([]byte(tc.body), "q", 64, 3)
		st := 0
		if err != nil {
			st, _ = classify(err)
		}
		if st != tc.status {
			t.Errorf("decodeBatch(%s): status %d (%v), want %d", tc.body, st, err, tc.status)
		}
		if err == nil && len(jobs) != 2 {
			t.Errorf("decodeBatch(%s): %d jobs", tc.body, len(jobs))
		}
	}
	_, _, err := decodeBatch([]byte(`{"tasks":[{"type":"a"},{"type":"a","delay":"x"}]}`), "q", 64, 3)
	if err == nil || !strings.Contains(err.Error(), "tasks[1]: delay") {
		t.Errorf("a bad second task: %v, want it named tasks[1]", err)
	}
}

func TestDecodeSelection(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		body string
		want admin.Filter
		msg  string // error text, when it fails
	}{
		{body: `{"all":true}`, want: admin.Filter{All: true}},
		{body: `{"ids":["a","b"],"expect":2}`, want: admin.Filter{IDs: []string{"a", "b"}}},
		{body: `{"filter":{"type":"x,y","since":"1h"}}`, want: admin.Filter{Types: []string{"x", "y"}, Since: now.Add(-time.Hour)}},
		{body: `{"filter":{"until":"2026-01-01T00:00:00Z"}}`, want: admin.Filter{Until: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{body: `{}`, msg: "exactly one"},
		{body: `{"all":true,"ids":["a"]}`, msg: "exactly one"},
		{body: `{"all":false}`, msg: "exactly one"},
		{body: `{"ids":[]}`, msg: "exactly one"},
		{body: `{"ids":[""]}`, msg: "ids[0]"},
		{body: `{"filter":{}}`, msg: "all"},
		{body: `{"filter":{"error":"("}}`, msg: "filter.error"},
		{body: `{"filter":{"since":"yesterday"}}`, msg: "filter.since"},
		{body: `{"filter":{"until":"x"}}`, msg: "filter.until"},
		{body: `{"filter":{"since":"1h","until":"2h"}}`, msg: "before"},
		{body: `{"filter":{"kind":"x"}}`, msg: "kind"},
		{body: `{"all":true,"expect":-1}`, msg: "expect"},
	} {
		_, f, err := decodeSelection(strings.NewReader(tc.body), now)
		if tc.msg != "" {
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("decodeSelection(%s) = %v, want an error naming %q", tc.body, err, tc.msg)
			} else if st, code := classify(err); st != 400 || code != CodeBadRequest {
				t.Errorf("decodeSelection(%s): %d %s, want 400 bad_request", tc.body, st, code)
			}
			continue
		}
		if err != nil {
			t.Errorf("decodeSelection(%s): %v", tc.body, err)
			continue
		}
		if f.All != tc.want.All || !slices.Equal(f.IDs, tc.want.IDs) || !slices.Equal(f.Types, tc.want.Types) ||
			!f.Since.Equal(tc.want.Since) || !f.Until.Equal(tc.want.Until) {
			t.Errorf("decodeSelection(%s) = %+v, want %+v", tc.body, f, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{admin.ErrBusy, 409, CodeBusy},
		{broker.ErrQueueNotFound, 404, CodeQueueNotFound},
		{producer.ErrUnroutable, 404, CodeQueueNotFound},
		{admin.ErrNotFound, 404, CodeNotFound},
		{broker.ErrNotConnected, 503, CodeBrokerUnavailable},
		{producer.ErrConfirmLost, 503, CodeBrokerUnavailable},
		{&broker.AccessError{Err: errors.New("ACCESS_REFUSED")}, 502, CodeBrokerRefused},
		{producer.ErrNacked, 502, CodeBrokerRefused},
		{producer.ErrPayloadTooLarge, 413, CodeTooLarge},
		{&http.MaxBytesError{Limit: 10}, 413, CodeTooLarge},
		{&admin.RecordError{Line: 3, Err: errors.New("bad")}, 400, CodeBadRequest},
		{errors.New("boom"), 500, CodeInternal},
	} {
		st, code := classify(tc.err)
		if st != tc.status || code != tc.code {
			t.Errorf("classify(%v) = %d %s, want %d %s", tc.err, st, code, tc.status, tc.code)
		}
	}
}

func TestRedact(t *testing.T) {
	got := redact(`dial amqp://admin:s3cret@rabbit:5672/: refused; also amqps://u:p%40ss@h/v`)
	if strings.Contains(got, "s3cret") || strings.Contains(got, "p%40ss") || !strings.Contains(got, "amqp://xxxxx@rabbit") {
		t.Errorf("redact = %q", got)
	}
}

func TestMemoryDeduper(t *testing.T) {
	ctx := context.Background()
	d := NewMemoryDeduper(2, time.Hour)
	if seen, _ := d.Seen(ctx, "q", "a"); seen {
		t.Fatal("a seen before it was recorded")
	}
	_ = d.Record(ctx, "q", "a")
	if seen, _ := d.Seen(ctx, "q", "a"); !seen {
		t.Error("a not seen after Record")
	}
	if seen, _ := d.Seen(ctx, "other", "a"); seen {
		t.Error("a seen on another queue")
	}
	_ = d.Record(ctx, "q", "b")
	_ = d.Record(ctx, "q", "c")
	if seen, _ := d.Seen(ctx, "q", "a"); seen {
		t.Error("the oldest ID kept past max")
	}
}

// TestClaims checks that concurrent claims of one key run one at a time.
func TestClaims(t *testing.T) {
	c := newClaims()
	var mu sync.Mutex
	in, peak := 0, 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := c.claim(context.Background(), "k")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			in++
			peak = max(peak, in)
			mu.Unlock()
			mu.Lock()
			in--
			mu.Unlock()
			release()
		}()
	}
	wg.Wait()
	if peak != 1 {
		t.Errorf("%d claims of one key held at once", peak)
	}
	release, _ := c.claim(context.Background(), "k")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.claim(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("claim of a held key with a cancelled context: %v", err)
	}
	release()
}

// unitServer is a Server with no broker, for the checks a request fails
// before any broker call.
func unitServer(cfg Config) (*Server, *api) {
	s := &Server{cfg: cfg.withDefaults(), mux: http.NewServeMux()}
	s.log = s.cfg.Logger
	a := &api{s: s, dedup: NewMemoryDeduper(0, 0), inflight: newClaims()}
	return s, a
}

// TestAPIValidationWithoutBroker checks the answers of requests that fail
// their validation, before the broker is asked anything: queue names,
// content types, bodies, limits and unknown routes.
func TestAPIValidationWithoutBroker(t *testing.T) {
	_, a := unitServer(Config{MaxPayload: 16, MaxBatch: 2, MaxBody: 256})
	mux := http.NewServeMux()
	for _, rt := range apiTable {
		mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { rt.handle(a, w, r) })
	}
	long := strings.Repeat("q", 201)
	for _, tc := range []struct {
		method, path, ctype, body string
		status                    int
		code                      string
	}{
		{"POST", "/api/v1/queues/" + long + "/pause", "", "", 400, CodeBadRequest},
		{"POST", "/api/v1/queues/" + long + "/resume", "", "", 400, CodeBadRequest},
		{"GET", "/api/v1/queues/" + long, "", "", 400, CodeBadRequest},
		{"GET", "/api/v1/queues/" + long + "/dead-letters", "", "", 400, CodeBadRequest},
		{"POST", "/api/v1/queues/q/tasks", "text/plain", `{"type":"a"}`, 415, CodeUnsupportedMedia},
		{"POST", "/api/v1/queues/q/tasks", "application/json", `{"type":"a","x":1}`, 400, CodeBadRequest},
		{"POST", "/api/v1/queues/q/tasks", "application/json", `{"type":"a","payload":"` + strings.Repeat("x", 20) + `"}`, 413, CodeTooLarge},
		{"POST", "/api/v1/queues/q/tasks", "application/json", `{"type":"a","payload":"` + strings.Repeat("x", 300) + `"}`, 413, CodeTooLarge},
		{"POST", "/api/v1/queues/q/tasks/batch", "application/json", `{"tasks":[]}`, 400, CodeBadRequest},
		{"POST", "/api/v1/queues/q/tasks/batch", "application/json", `{"tasks":[{"type":"a"},{"type":"a"},{"type":"a"}]}`, 413, CodeTooLarge},
		{"POST", "/api/v1/queues/q/tasks/batch", "application/x-www-form-urlencoded", `tasks=1`, 415, CodeUnsupportedMedia},
		{"POST", "/api/v1/queues/q/dead-letters/replay", "application/json", `{}`, 400, CodeBadRequest},
		{"POST", "/api/v1/queues/q/dead-letters/purge", "text/plain", `{"all":true}`, 415, CodeUnsupportedMedia},
		{"POST", "/api/v1/queues/q/dead-letters/count", "application/json", `{"filter":{"error":"("}}`, 400, CodeBadRequest},
		{"GET", "/api/v1/queues/q/dead-letters?error=(", "", "", 400, CodeBadRequest},
		{"GET", "/api/v1/queues/q/dead-letters?since=tomorrow", "", "", 400, CodeBadRequest},
		{"GET", "/api/v1/queues/q/dead-letters?limit=-1", "", "", 400, CodeBadRequest},
		{"GET", "/api/v1/queues/q/dead-letter-groups?by=host", "", "", 400, CodeBadRequest},
		{"GET", "/api/v1/queues/q/dead-letters/export?until=x", "", "", 400, CodeBadRequest},
		{"POST", "/api/v1/queues/q/dead-letters/import", "image/png", `x`, 415, CodeUnsupportedMedia},
	} {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		var body ErrorBody
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != tc.status || body.Error.Code != tc.code {
			t.Errorf("%s %s: %d %s (%s), want %d %s", tc.method, tc.path, rec.Code, body.Error.Code, body.Error.Message, tc.status, tc.code)
		}
	}
}
