package dashboard

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeRequests feeds the API's JSON request decoders (enqueue,
// batch, selection) arbitrary bodies: they never panic, an accepted body
// gives a valid job or filter, and a refused one gives a clean client
// error (400 or 413, one line of text).
func FuzzDecodeRequests(f *testing.F) {
	for _, s := range []string{
		`{"type":"send","payload":{"to":"ada"},"delay":"10s","id":"a-1","max_attempts":3}`,
		`{"tasks":[{"type":"a"},{"type":"b","id":"x","payload":[1,2]}]}`,
		`{"all":true,"expect":3}`,
		`{"ids":["a","b"]}`,
		`{"filter":{"type":"a,b","error":"time(out)?","since":"2h","until":"2026-01-01T00:00:00Z"}}`,
		`{"type":"a","delay":"9999999999h"}`,
		`{"type":"a","max_attempts":-1}`,
		`{"filter":{"error":"(?P<x"}}`,
		`{"tasks":null}`,
		`{"type":"\u0000"}`,
		``, `null`, `[]`, `{`, `{"type":"a"}{}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(what string, err error) {
			if err == nil {
				return
			}
			var re *requestError
			if !errors.As(err, &re) {
				t.Fatalf("%s: %T %v, want a requestError", what, err, err)
			}
			if st, _ := classify(err); st != http.StatusBadRequest && st != http.StatusRequestEntityTooLarge {
				t.Fatalf("%s: status %d for %v", what, st, err)
			}
			if msg := err.Error(); msg == "" || strings.Contains(msg, "\n") {
				t.Fatalf("%s: message %q, want one line", what, msg)
			}
		}
		_, job, err := decodeTask(body, "q", 1<<10)
		check("task", err)
		if err == nil && (job.Type == "" || job.Queue != "q" || len(job.Payload) > 1<<10) {
			t.Fatalf("task accepted as %+v", job)
		}
		tasks, jobs, err := decodeBatch(body, "q", 1<<10, 10)
		check("batch", err)
		if err == nil && (len(tasks) == 0 || len(tasks) > 10 || len(jobs) != len(tasks)) {
			t.Fatalf("batch accepted with %d tasks, %d jobs", len(tasks), len(jobs))
		}
		sel, flt, err := decodeSelection(bytes.NewReader(body), now)
		check("selection", err)
		if err == nil {
			n := 0
			if flt.All {
				n++
			}
			if len(flt.IDs) > 0 {
				n++
			}
			if sel.Filter != nil {
				n++
			}
			if n != 1 {
				t.Fatalf("selection accepted as %+v", flt)
			}
		}
	})
}
