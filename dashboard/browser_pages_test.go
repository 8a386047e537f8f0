//go:build integration

package dashboard_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/dashboard"
	"github.com/warrenq/warren/worker"
)

// TestBrowserPages visits every page of a dashboard with some life in it:
// queues with ready tasks and dead letters, a worker running a task, rates
// to chart. Every page must render its main parts with no JavaScript error
// and no CSP violation (the harness fails the test for those). With
// WARREN_SCREENSHOTS=1 it writes docs/images/dashboard-<page>.png at
// 1280×800 for the documentation: run it alone, on a broker nothing else
// uses, or other tests' workers show up on the pages.
func TestBrowserPages(t *testing.T) {
	auth, err := dashboard.NewToken(browserToken)
	if err != nil {
		t.Fatal(err)
	}
	// KeepGone: the pools that make the dead letters leave the workers
	// page before its screenshot.
	e := startBrowserEnv(t, dashboard.Config{Auth: auth, KeepGone: 2 * time.Second}, "reports", "emails", "invoices")
	emails, invoices, reports := e.named["emails"], e.named["invoices"], e.named["reports"]

	// emails: a backlog. invoices: dead letters of two kinds.
	for i := range 42 {
		e.enqueue(emails, "email:send", fmt.Sprintf(`{"to":"user%d@example.com","template":"welcome"}`, i))
	}
	e.deadLetters(invoices, "invoice:send", "smtp: 550 mailbox unavailable",
		`{"invoice":4711,"customer":"ACME Corp","amount":"129.00 EUR"}`,
		`{"invoice":4712,"customer":"Globex","amount":"88.50 EUR"}`,
		`{"invoice":4713,"customer":"Initech","amount":"12.00 EUR"}`)
	dead := e.deadLetters(invoices, "invoice:render", "template \"invoice-v2\" not found",
		`{"invoice":4714,"customer":"Umbrella","lines":[{"sku":"A-1","qty":3},{"sku":"B-7","qty":1}]}`,
		`{"invoice":4715,"customer":"Hooli","lines":[{"sku":"C-2","qty":10}]}`)

	// reports: a worker that finishes most tasks at once and runs one long
	// one, so that the rates move and the workers page shows a task.
	long := make(chan struct{})
	running := make(chan string, 1)
	e.startPool(worker.HandlerFunc(func(ctx context.Context, task *warren.Task) error {
		if task.Type == "report:quarterly" {
			running <- task.ID
			select {
			case <-long:
			case <-ctx.Done():
			}
		}
		return nil
	}), reports)
	defer close(long)
	longID := e.enqueue(reports, "report:quarterly", `{"quarter":"2026-Q3"}`)
	waitRuns(t, running, []string{longID}, 15*time.Second)
	for i := range 60 {
		e.enqueue(reports, "report:daily", fmt.Sprintf(`{"day":%d}`, i))
	}
	e.waitBroker(reports, "the daily reports done", func(in admin.QueueInfo) bool { return in.Ready == 0 })

	p := e.loggedIn("pages", "token", browserToken)

	// Overview.
	p.Go("/")
	p.WaitText(`tr[data-queue="`+emails+`"] td.ready`, "42")
	p.WaitText(`tr[data-queue="`+invoices+`"] td.dead`, "5")
	p.WaitText(`tr[data-queue="`+reports+`"] td.consumers`, "1")
	p.WaitVisible("#broker")
	p.WaitFor("the rates chart to draw", `document.querySelector("#rates-chart canvas")`)
	screenshot(t, p, "overview")

	// Queue.
	p.Go("/queues/" + emails)
	p.WaitText("#queue-state", "running")
	p.WaitTextContains("#queue-counts", "42")
	p.WaitVisible("button#pause")
	p.WaitFor("the queue chart to draw", `document.querySelector("#queue-chart canvas")`)
	if !p.Exists(`a[href="/queues/` + emails + `/dead"]`) {
		t.Errorf("the queue page has no link to /queues/%s/dead", emails)
	}
	screenshot(t, p, "queue")

	// Dead letters, their groups, one dead letter.
	p.Go("/queues/" + invoices + "/dead")
	p.WaitText("#dead-total", "5")
	p.WaitTextContains("#dead-matched", "5")
	p.WaitFor("5 rows", `document.querySelectorAll("table#dead-letters tr[data-id]").length === 5`)
	for _, sel := range []string{"form#dl-filter", "button#replay-selected", "button#purge-selected",
		"button#replay-filtered", "button#purge-filtered", "a#export", "form#import input[type=file][name=file]"} {
		if !p.Exists(sel) {
			t.Errorf("the dead letters page has no %s", sel)
		}
	}
	screenshot(t, p, "dead-letters")

	p.Go("/queues/" + invoices + "/dead?type=invoice:render")
	p.WaitText("#dead-total", "5")
	p.WaitTextContains("#dead-matched", "2")
	p.WaitFor("2 rows", `document.querySelectorAll("table#dead-letters tr[data-id]").length === 2`)

	p.Go("/queues/" + invoices + "/dead/groups")
	p.WaitVisible("table#groups")
	p.WaitTextContains("table#groups", "mailbox unavailable")

	p.Go("/queues/" + invoices + "/dead/" + dead[0])
	p.WaitTextContains("pre#payload", "Umbrella")
	p.WaitVisible("table#history")
	p.WaitVisible("button#replay-one")
	p.WaitVisible("button#purge-one")
	if !p.Exists("pre#stack") {
		t.Log("the dead letter page has no pre#stack (the handler returned an error, no panic: may be fine)")
	}
	screenshot(t, p, "dead-letter")

	// Workers.
	p.Go("/workers")
	p.WaitVisible("table#workers tr.live")
	p.WaitTextContains("table#workers tr.live td.running", "report:quarterly")
	screenshot(t, p, "workers")

	// Enqueue.
	p.Go("/enqueue")
	p.WaitVisible("form#enqueue-form")
	p.Fill(`form#enqueue-form [name=queue]`, emails)
	p.Fill(`form#enqueue-form [name=type]`, "email:send")
	p.Fill(`form#enqueue-form [name=payload]`, "{\n  \"to\": \"ada@example.com\",\n  \"template\": \"welcome\"\n}")
	screenshot(t, p, "enqueue")
	p.Click("button#enqueue-submit")
	p.WaitTextContains("#flash", "Enqueued")
	e.waitBroker(emails, "43 ready", func(in admin.QueueInfo) bool { return in.Ready == 43 })

	// The login page, in a browser context with no session.
	anon := e.page("login")
	anon.Go("/login")
	anon.WaitVisible("input[name=password]")
}
