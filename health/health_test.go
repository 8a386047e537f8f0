package health_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/warrenq/warren/health"
)

func get(t *testing.T, h http.Handler, method, path string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

func TestProbes(t *testing.T) {
	var down atomic.Pointer[error]
	h := health.Handler(func() error {
		if e := down.Load(); e != nil {
			return *e
		}
		return nil
	})
	if code, body, hdr := get(t, h, http.MethodGet, "/healthz"); code != 200 || body != "ok\n" || hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("/healthz: %d %q %v", code, body, hdr)
	}
	if code, body, _ := get(t, h, http.MethodGet, "/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("/readyz ready: %d %q", code, body)
	}
	err := errors.New("worker: not ready: not connected to the broker")
	down.Store(&err)
	code, body, hdr := get(t, h, http.MethodGet, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not connected to the broker") {
		t.Errorf("/readyz not ready: %d %q", code, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("content type %q", ct)
	}
	// Liveness does not depend on readiness.
	if code, _, _ := get(t, h, http.MethodGet, "/healthz"); code != 200 {
		t.Errorf("/healthz while not ready: %d", code)
	}
	if code, body, _ := get(t, h, http.MethodHead, "/readyz"); code != http.StatusServiceUnavailable || body != "" {
		t.Errorf("HEAD /readyz: %d %q", code, body)
	}
	if code, _, hdr := get(t, h, http.MethodPost, "/healthz"); code != http.StatusMethodNotAllowed || hdr.Get("Allow") == "" {
		t.Errorf("POST: %d", code)
	}
	if code, _, _ := get(t, h, http.MethodGet, "/other"); code != http.StatusNotFound {
		t.Errorf("/other: %d", code)
	}
}

func TestNilCheckIsReady(t *testing.T) {
	if code, _, _ := get(t, health.Ready(nil), http.MethodGet, "/readyz"); code != 200 {
		t.Errorf("nil check: %d", code)
	}
}
