package dashboard

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Error codes: the stable "code" of every JSON error the API answers.
// Clients branch on them; the message is for people and may change.
const (
	CodeBadRequest        = "bad_request"        // 400: malformed JSON, a bad field or parameter
	CodeUnauthorized      = "unauthorized"       // 401: no or wrong credentials
	CodeCSRF              = "csrf"               // 403: a mutating request without a valid CSRF token, or cross-origin
	CodeReadOnly          = "read_only"          // 403: the dashboard runs --read-only
	CodeNotFound          = "not_found"          // 404: no such route, or no such dead letter
	CodeQueueNotFound     = "queue_not_found"    // 404: the queue does not exist
	CodeMethodNotAllowed  = "method_not_allowed" // 405
	CodeBusy              = "busy"               // 409: another operation holds the dead-letter queue
	CodeConflict          = "conflict"           // 409: the selection changed since it was counted
	CodeTooLarge          = "too_large"          // 413: a payload, a batch or a body over its limit
	CodeUnsupportedMedia  = "unsupported_media"  // 415: a body that is not JSON (or NDJSON for import)
	CodeBrokerRefused     = "broker_refused"     // 502: the broker refused the operation (access, a nack)
	CodeBrokerUnavailable = "broker_unavailable" // 503: not connected to the broker
	CodeInternal          = "internal"           // 500
)

// ErrorBody is the JSON of every error answer: {"error": {...}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is an error's stable code and its message.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError answers an error: JSON for the API (and for any client that
// asks for JSON), plain text for pages.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	if wantsHTML(r) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(msg + "\n"))
		return
	}
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg}})
}

// wantsHTML reports whether r is a page request (not the API, and not a
// fetch that asks for JSON).
func wantsHTML(r *http.Request) bool {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}
