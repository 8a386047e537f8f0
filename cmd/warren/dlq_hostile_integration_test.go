//go:build integration

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/internal/testbroker"
)

// TestEveryDLQCommandWorksOnUnreadableDeadLetters fills a dead-letter
// queue, with pika, with dead letters amqp091-go cannot read (headers 40
// deep, 9,000 entries, and one that grows past frame_max once the broker
// adds x-delivery-count to it) among readable ones. Before the guard every
// dlq command exited 1 on it with "invalid field or value inside of a
// frame", and the only way out was rabbitmqctl purge_queue. Now each
// exits 0, lists what it can read, reports what it cannot, and purges the
// unreadable ones only when asked.
func TestEveryDLQCommandWorksOnUnreadableDeadLetters(t *testing.T) {
	conn := testbroker.Dial(t)
	q := dlqQueue(t, conn)
	dlq := warren.DeadLetterQueue(q)
	fillDLQ(t, conn, q, 3, oneType)
	testbroker.PublishForeign(t, dlq,
		testbroker.Foreign{ID: "deep", Type: "job", Body: "{}", Deep: 40},
		testbroker.Foreign{ID: "wide", Type: "job", Body: "{}", Wide: 9000},
		testbroker.Foreign{ID: "huge", Type: "job", Body: "{}", Big: 131_000},
	)
	eventually(t, 30*time.Second, func() bool { return ready(t, conn, dlq) == 6 }, "dead letters not stored")
	ok := func(args ...string) cliResult {
		t.Helper()
		r := warrenRun(t, 60*time.Second, nil, args...)
		if r.code != 0 {
			t.Fatalf("warren %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r
	}

	r := ok("dlq", "list", "--queue", q)
	for _, id := range []string{"dl-00000", "dl-00002", "deep", "wide", "huge"} {
		if !strings.Contains(r.stdout, id) {
			t.Errorf("dlq list does not show %s:\n%s", id, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "3 dead letters listed with reason unreadable") {
		t.Errorf("dlq list does not report the unreadable ones: %s", r.stderr)
	}
	r = ok("dlq", "list", "--queue", q, "--unreadable", "--output", "json")
	var listed []admin.DeadLetterJSON
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil {
		t.Fatalf("dlq list --output json: %v\n%s", err, r.stdout)
	}
	reasons := map[string]string{}
	for _, dl := range listed {
		if !dl.Unreadable || dl.Reason != string(warren.ReasonUnreadable) {
			t.Errorf("%s: unreadable %v reason %q", dl.ID, dl.Unreadable, dl.Reason)
		}
		reasons[dl.ID] = dl.Error
	}
	for id, want := range map[string]string{"deep": "nested more than 32 deep", "wide": "more than 8192 entries", "huge": "frame_max"} {
		if !strings.Contains(reasons[id], want) {
			t.Errorf("%s: error %q, want it to say %q", id, reasons[id], want)
		}
	}
	ok("dlq", "show", "--queue", q, "--id", "deep")
	ok("dlq", "show", "--queue", q, "--id", "dl-00001")
	r = ok("dlq", "list", "--queue", q, "--group-by", "error")
	if !strings.Contains(r.stdout, "the headers are nested more than <n> deep") {
		t.Errorf("group-by error does not show the unreadable group:\n%s", r.stdout)
	}

	file := filepath.Join(t.TempDir(), "dlq.ndjson")
	r = ok("dlq", "export", "--queue", q, "--all", "--file", file)
	if !strings.Contains(r.stderr, "exported 3 dead letters") || !strings.Contains(r.stderr, "3 dead letters whose headers Warren cannot read not exported") {
		t.Errorf("dlq export summary: %s", r.stderr)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 3 {
		t.Errorf("export wrote %d records, want the 3 readable ones", n)
	}

	r = ok("dlq", "replay", "--queue", q, "--all", "--output", "json")
	var rep replayJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("replay json: %v\n%s", err, r.stdout)
	}
	if rep.Replayed != 3 || rep.Unreadable != 3 || rep.Failed != 0 {
		t.Errorf("replay: %+v, want 3 replayed and 3 unreadable left", rep)
	}
	eventually(t, 30*time.Second, func() bool { return ready(t, conn, dlq) == 3 && ready(t, conn, q) == 3 }, "replay moved other than the readable dead letters")

	r = ok("dlq", "purge", "--queue", q, "--unreadable", "--yes", "--output", "json")
	var pur purgeJSON
	if err := json.Unmarshal([]byte(r.stdout), &pur); err != nil {
		t.Fatalf("purge json: %v\n%s", err, r.stdout)
	}
	if pur.Purged != 3 {
		t.Errorf("purge --unreadable purged %d, want 3", pur.Purged)
	}
	eventually(t, 30*time.Second, func() bool { return ready(t, conn, dlq) == 0 }, "unreadable dead letters left after purge")

	r = ok("dlq", "import", "--queue", q, "--file", file)
	eventually(t, 30*time.Second, func() bool { return ready(t, conn, dlq) == 3 }, "import did not restore the 3 exported dead letters")
}
