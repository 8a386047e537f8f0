package metrics

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func TestServe(t *testing.T) {
	var ready atomic.Bool
	s, err := Serve("127.0.0.1:0", ServerConfig{Ready: func() error {
		if !ready.Load() {
			return errors.New("draining")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + s.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	s.Metrics.Enqueued("q", "t", nil, 0)
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "warren_tasks_enqueued_total") ||
		!strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Errorf("/readyz not ready: %d %q", code, body)
	}
	ready.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz ready: %d", code)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if _, err := Serve(s.Addr().String(), ServerConfig{}); err == nil {
		t.Error("a taken port was accepted")
	}
	s.Shutdown()
	if _, err := http.Get("http://" + s.Addr().String() + "/healthz"); err == nil {
		t.Error("still serving after Shutdown")
	}
}
