//go:build integration

package dashboard_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenq/warren/dashboard"
)

// TestBrowserLogin: with basic-auth users from a file, visiting / sends a
// person to /login; a wrong password shows an error and opens no session;
// the right one lands on the overview, with the queue listed.
func TestBrowserLogin(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(file, []byte("# operators\nada:correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := dashboard.LoadBasic(file)
	if err != nil {
		t.Fatal(err)
	}
	e := startBrowserEnv(t, dashboard.Config{Auth: auth})
	p := e.page("login")

	p.Go("/")
	p.WaitPath("/login")
	if p.Exists("table#queues") {
		t.Fatal("the login page shows the queues")
	}

	p.Fill("input[name=user]", "ada")
	p.Fill("input[name=password]", "wrong horse")
	p.Click("button[type=submit]")
	p.WaitPath("/login")
	p.WaitTextContains("body", "Wrong user or password")
	// No session: the overview still sends us back. (Not a fetch of the
	// API: its 401 says WWW-Authenticate: Basic, and Chromium would wait
	// for credentials.)
	p.Go("/")
	p.WaitPath("/login")

	p.Fill("input[name=user]", "ada")
	p.Fill("input[name=password]", "correct horse battery staple")
	p.Click("button[type=submit]")
	p.WaitPath("/")
	p.WaitVisible("table#queues")
	p.WaitVisible(`tr[data-queue="` + e.queue + `"]`)
	if got := p.Fetch("GET", "/api/v1/queues", nil, ""); got.Status != http.StatusOK || !strings.Contains(got.Body, e.queue) {
		t.Errorf("logged in, GET /api/v1/queues answers %d: %s", got.Status, got.Body)
	}
}

// TestBrowserRefusesWithoutCredentials: a browser with no session gets 401
// unauthorized from the API and the login page for a page (with the page
// to come back to); a logged-in page's POST without the CSRF token gets
// 403 csrf, with a wrong one too, and with the page's token 200.
func TestBrowserRefusesWithoutCredentials(t *testing.T) {
	auth, err := dashboard.NewToken(browserToken)
	if err != nil {
		t.Fatal(err)
	}
	e := startBrowserEnv(t, dashboard.Config{Auth: auth})

	anon := e.page("anonymous")
	anon.Go("/login") // a page of the dashboard's origin to fetch from
	for _, path := range []string{"/api/v1/queues", "/api/v1/overview", "/api/v1/queues/" + e.queue} {
		r := anon.Fetch("GET", path, nil, "")
		if r.Status != http.StatusUnauthorized || r.ErrorCode() != dashboard.CodeUnauthorized {
			t.Errorf("GET %s without credentials: %d %s, want 401 %s", path, r.Status, r.Body, dashboard.CodeUnauthorized)
		}
		if !strings.HasPrefix(r.ContentType, "application/json") {
			t.Errorf("GET %s without credentials: Content-Type %q, want JSON", path, r.ContentType)
		}
	}
	r := anon.Fetch("POST", "/api/v1/queues/"+e.queue+"/pause", map[string]string{"Content-Type": "application/json"}, "{}")
	if r.Status != http.StatusUnauthorized || r.ErrorCode() != dashboard.CodeUnauthorized {
		t.Errorf("POST pause without credentials: %d %s, want 401 %s", r.Status, r.Body, dashboard.CodeUnauthorized)
	}
	anon.Go("/queues/" + e.queue)
	anon.WaitPath("/login")
	if next := anon.Location().Query().Get("next"); next != "/queues/"+e.queue {
		t.Errorf("the login page's next is %q, want /queues/%s", next, e.queue)
	}

	p := e.loggedIn("operator", "token", browserToken)
	token := csrf(p)
	if token == "" {
		t.Fatal(`the overview has no <meta name="csrf-token">`)
	}
	count := "/api/v1/queues/" + e.queue + "/dead-letters/count"
	body := `{"all":true}`
	for _, c := range []struct {
		name   string
		header map[string]string
		status int
		code   string
	}{
		{"without the token", map[string]string{"Content-Type": "application/json"}, http.StatusForbidden, dashboard.CodeCSRF},
		{"with a wrong token", map[string]string{"Content-Type": "application/json", dashboard.CSRFHeader: strings.Repeat("0", len(token))}, http.StatusForbidden, dashboard.CodeCSRF},
		{"with the page's token", map[string]string{"Content-Type": "application/json", dashboard.CSRFHeader: token}, http.StatusOK, ""},
	} {
		r := p.Fetch("POST", count, c.header, body)
		if r.Status != c.status || r.ErrorCode() != c.code {
			t.Errorf("POST %s %s: %d %s, want %d %q", count, c.name, r.Status, r.Body, c.status, c.code)
		}
	}
}

// TestBrowserReadOnly: in read-only mode the pages render no mutating
// control, and a POST forged from the page with its CSRF token is refused
// with 403 read_only (and pauses nothing).
func TestBrowserReadOnly(t *testing.T) {
	e := startBrowserEnv(t, dashboard.Config{ReadOnly: true})
	ids := e.deadLetters(e.queue, "report:build", "disk full", `{"report":1}`)

	p := e.page("read-only")
	p.Go("/")
	p.WaitVisible("table#queues")
	p.WaitVisible(`tr[data-queue="` + e.queue + `"]`)
	if !browserEvalBool(p, `document.body.classList.contains("read-only")`) {
		t.Error(`the overview's <body> has no class "read-only"`)
	}
	absent := map[string][]string{
		"/queues/" + e.queue:                     {"button#pause", "button#resume"},
		"/queues/" + e.queue + "/dead":           {"button#replay-selected", "button#purge-selected", "button#replay-filtered", "button#purge-filtered", "form#import", "input.select"},
		"/queues/" + e.queue + "/dead/" + ids[0]: {"button#replay-one", "button#purge-one"},
		"/enqueue":                               {"form#enqueue-form", "button#enqueue-submit"},
	}
	for path, sels := range absent {
		p.Go(path)
		p.WaitFor("the page "+path+" to load", `document.readyState === "complete"`)
		if path == "/queues/"+e.queue+"/dead" {
			p.WaitVisible(`tr[data-id="` + ids[0] + `"]`) // the page shows the dead letter, only not its controls
		}
		for _, sel := range sels {
			if p.Exists(sel) {
				t.Errorf("read-only %s renders %s", path, sel)
			}
		}
	}

	p.Go("/queues/" + e.queue)
	token := csrf(p)
	r := p.Fetch("POST", "/api/v1/queues/"+e.queue+"/pause",
		map[string]string{"Content-Type": "application/json", dashboard.CSRFHeader: token}, "{}")
	if r.Status != http.StatusForbidden || r.ErrorCode() != dashboard.CodeReadOnly {
		t.Errorf("forged POST pause in read-only mode: %d %s, want 403 %s", r.Status, r.Body, dashboard.CodeReadOnly)
	}
	if paused := e.paused(); paused {
		t.Error("the forged POST paused the queue")
	}
}
