// Package health answers Kubernetes-style liveness and readiness probes
// over HTTP.
//
// GET /healthz answers 200 "ok" while the process serves HTTP at all: a
// liveness probe that fails only when the process is wedged. GET /readyz
// answers 200 "ok" while the readiness check (worker.Pool.Ready, for one)
// returns nil, and 503 with the check's error as plain text otherwise: a
// readiness probe that takes a worker out of service while it is
// disconnected from the broker or draining. Both answer HEAD too, and are
// never cached.
package health

import (
	"fmt"
	"net/http"
)

// Check reports nil when ready, or why not.
type Check func() error

// Handler returns an http.Handler that serves /healthz (Live) and /readyz
// (Ready(check)); other paths get 404. A nil check is always ready.
func Handler(check Check) http.Handler {
	mux := http.NewServeMux()
	Register(mux, check)
	return mux
}

// Register adds /healthz and /readyz to mux.
func Register(mux *http.ServeMux, check Check) {
	mux.Handle("/healthz", Live())
	mux.Handle("/readyz", Ready(check))
}

// Live returns a handler that always answers 200 "ok".
func Live() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r) {
			return
		}
		reply(w, r, http.StatusOK, "ok")
	})
}

// Ready returns a handler that answers 200 "ok" when check returns nil,
// and 503 Service Unavailable with the error's text otherwise. A nil check
// is always ready.
func Ready(check Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r) {
			return
		}
		if check != nil {
			if err := check(); err != nil {
				reply(w, r, http.StatusServiceUnavailable, "not ready: "+err.Error())
				return
			}
		}
		reply(w, r, http.StatusOK, "ok")
	})
}

func allowed(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

func reply(w http.ResponseWriter, r *http.Request, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		fmt.Fprintln(w, body)
	}
}
