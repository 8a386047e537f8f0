//go:build integration

package dashboard_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/dashboard"
)

// TestBrowserReplayOne: open a dead letter from the list, see its payload,
// replay it with a confirmation, and find the task back in its queue.
func TestBrowserReplayOne(t *testing.T) {
	auth, err := dashboard.NewToken(browserToken)
	if err != nil {
		t.Fatal(err)
	}
	e := startBrowserEnv(t, dashboard.Config{Auth: auth})
	ids := e.deadLetters(e.queue, "invoice:send", "template not found", `{"invoice":4711,"note":"replay me"}`)

	p := e.loggedIn("operator", "token", browserToken)
	p.Go("/queues/" + e.queue + "/dead")
	p.WaitText("#dead-total", "1")
	p.WaitVisible(`tr[data-id="` + ids[0] + `"]`)
	p.Click(`tr[data-id="` + ids[0] + `"] a.show`)
	p.WaitPath("/queues/" + e.queue + "/dead/" + ids[0])
	payload := p.WaitTextContains("pre#payload", "replay me")
	if !strings.Contains(payload, "4711") {
		t.Errorf("pre#payload = %q, want the invoice number too", payload)
	}
	p.WaitTextContains("body", "template not found")

	p.Click("button#replay-one")
	text := confirm(t, p, "1", true)
	if !regexp.MustCompile(`\b1\b`).MatchString(text) {
		t.Errorf("#confirm-text = %q, want the count 1", text)
	}
	p.WaitTextContains("#flash", "Replayed 1")

	e.waitBroker(e.queue, "the task back in the queue and an empty DLQ", func(in admin.QueueInfo) bool {
		return in.Ready == 1 && in.DeadLetters == 0
	})
}

// TestBrowserPurgeSelected: select two dead letters of four and purge them
// with a confirmation that names the count; a confirmation answered "no"
// purges nothing.
func TestBrowserPurgeSelected(t *testing.T) {
	auth, err := dashboard.NewToken(browserToken)
	if err != nil {
		t.Fatal(err)
	}
	e := startBrowserEnv(t, dashboard.Config{Auth: auth})
	ids := e.deadLetters(e.queue, "pdf:render", "font missing",
		`{"doc":1}`, `{"doc":2}`, `{"doc":3}`, `{"doc":4}`)

	p := e.loggedIn("operator", "token", browserToken)
	p.Go("/queues/" + e.queue + "/dead")
	p.WaitText("#dead-total", "4")
	for _, id := range ids {
		p.WaitVisible(`tr[data-id="` + id + `"]`)
	}
	pick := ids[1:3]
	for _, id := range pick {
		p.Check(`input.select[value="`+id+`"]`, true)
	}

	// No: nothing is purged, and nothing is even asked of the server.
	p.Click("button#purge-selected")
	text := confirm(t, p, "2", false)
	if !regexp.MustCompile(`\b2\b`).MatchString(text) {
		t.Errorf("#confirm-text = %q, want the count 2", text)
	}
	e.holdBroker(e.queue, "4 dead letters after no", time.Second, func(in admin.QueueInfo) bool { return in.DeadLetters == 4 })
	for _, r := range p.Requests() {
		if strings.Contains(r, "/dead-letters/purge") {
			t.Errorf("answering no still sent %s", r)
		}
	}

	// Yes.
	for _, id := range pick { // the selection may or may not survive "no"
		p.Check(`input.select[value="`+id+`"]`, true)
	}
	p.Click("button#purge-selected")
	text = confirm(t, p, "2", true)
	if !regexp.MustCompile(`\b2\b`).MatchString(text) {
		t.Errorf("#confirm-text = %q, want the count 2", text)
	}
	p.WaitTextContains("#flash", "Purged 2")
	e.waitBroker(e.queue, "2 dead letters", func(in admin.QueueInfo) bool { return in.DeadLetters == 2 })
	left, err := e.adm.List(e.ctx, e.queue, admin.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var leftIDs []string
	for _, dl := range left {
		leftIDs = append(leftIDs, dl.ID)
	}
	slices.Sort(leftIDs)
	want := []string{ids[0], ids[3]}
	slices.Sort(want)
	if !slices.Equal(leftIDs, want) {
		t.Errorf("dead letters left %v, want %v (the unselected ones)", leftIDs, want)
	}
}
