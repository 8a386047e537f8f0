//go:build integration

package browsertest_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenq/warren/internal/browsertest"
)

const csp = "default-src 'self'; script-src 'self'; style-src 'self'"

// site is a tiny app with the dashboard's CSP: a button that a script
// from /app.js wires up, a form that posts and redirects, a cookie, and
// pages that misbehave on purpose.
func site(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	page := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", csp)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, "<!doctype html><title>t</title>%s", body)
		}
	}
	mux.HandleFunc("GET /{$}", page(`<button id="go">Go</button> <p id="out">idle</p>
<form id="f" method="post" action="/submit"><input name="who"><textarea name="note"></textarea><button type="submit" id="send">Send</button></form>
<script src="/app.js"></script>`))
	mux.HandleFunc("GET /app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `document.getElementById("go").addEventListener("click", () => {
  setTimeout(() => { document.getElementById("out").textContent = "clicked"; }, 300);
});`)
	})
	mux.HandleFunc("POST /submit", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "who", Value: r.PostFormValue("who"), Path: "/"})
		http.Redirect(w, r, "/done?note="+r.PostFormValue("note"), http.StatusSeeOther)
	})
	mux.HandleFunc("GET /done", func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Cookie("who")
		who := ""
		if c != nil {
			who = c.Value
		}
		page(fmt.Sprintf(`<p id="who">%s</p><p id="note">%s</p>`, who, r.URL.Query().Get("note")))(w, r)
	})
	mux.HandleFunc("GET /api", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Token") != "yes" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"error":{"code":"csrf","message":"no"}}`)
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	})
	mux.HandleFunc("GET /throws", page(`<script src="/throws.js"></script>`))
	mux.HandleFunc("GET /throws.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `undefinedFunction();`)
	})
	mux.HandleFunc("GET /inline", page(`<p>inline</p><script>document.title = "ran";</script>`))
	mux.HandleFunc("GET /missing", page(`<p>missing</p><script src="/nope.js"></script>`))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

// TestHarness drives the tiny site in a real Chromium: a click that
// changes text later, a form that posts and redirects, fetch with and
// without a header, a screenshot, and pages that do not share cookies.
func TestHarness(t *testing.T) {
	ts := site(t)
	b := browsertest.Start(t)
	p := b.NewPage(ts.URL, "main")

	if status := p.Go("/"); status != http.StatusOK {
		t.Fatalf("GET / answered %d", status)
	}
	if got := p.Text("#out"); got != "idle" {
		t.Fatalf("#out = %q before the click, want idle", got)
	}
	p.Click("button#go")
	p.WaitText("#out", "clicked")

	p.Fill(`input[name=who]`, "ada")
	p.Fill(`textarea[name=note]`, "hello")
	p.Click("#send")
	p.WaitPath("/done")
	p.WaitText("#who", "ada")
	if got := p.Text("#note"); got != "hello" {
		t.Errorf("#note = %q, want hello", got)
	}
	if !p.Exists("#who") || p.Exists("#go") || p.Count("p") != 2 {
		t.Errorf("Exists/Count disagree with the page")
	}

	r := p.Fetch("GET", "/api", nil, "")
	if r.Status != http.StatusForbidden || r.ErrorCode() != "csrf" {
		t.Errorf("fetch without the header: %d %q, want 403 csrf", r.Status, r.ErrorCode())
	}
	r = p.Fetch("GET", "/api", map[string]string{"X-Token": "yes"}, "")
	var ok struct{ OK bool }
	r.JSON(t, &ok)
	if r.Status != http.StatusOK || !ok.OK {
		t.Errorf("fetch with the header: %d %s", r.Status, r.Body)
	}
	// The 403 is recorded, not a problem: a test may ask for one.
	if probs := p.Problems(); len(probs) != 0 {
		t.Errorf("problems after a refused fetch: %q", probs)
	}
	if !strings.Contains(strings.Join(p.Requests(), "\n"), "GET 403 Fetch "+ts.URL+"/api") {
		t.Errorf("the refused fetch is not in the requests:\n%s", strings.Join(p.Requests(), "\n"))
	}

	file := filepath.Join(t.TempDir(), "shot.png")
	p.Screenshot(file)
	png, err := os.ReadFile(file)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("screenshot: %v, %d bytes", err, len(png))
	}

	other := b.NewPage(ts.URL, "other")
	other.Go("/done")
	if got := Eval(other, `document.getElementById("who").textContent`); got != "" {
		t.Errorf("a new page sees the first page's cookie: who = %q", got)
	}
}

func Eval(p *browsertest.Page, js string) string { return browsertest.Eval[string](p, js) }

// TestHarnessSeesProblems: an uncaught exception, a CSP violation and a
// missing script are each reported; Allow excuses them.
func TestHarnessSeesProblems(t *testing.T) {
	ts := site(t)
	b := browsertest.Start(t)
	for _, c := range []struct{ path, want string }{
		{"/throws", "JS error: uncaught"},
		{"/inline", "CSP violation"},
		{"/missing", "broken asset: GET 404 Script"},
	} {
		p := b.NewPage(ts.URL, strings.TrimPrefix(c.path, "/"))
		p.Go(c.path)
		probs := p.Problems()
		if !strings.Contains(strings.Join(probs, "\n"), c.want) {
			t.Errorf("%s: problems %q, want one with %q", c.path, probs, c.want)
		}
		t.Logf("%s: %q", c.path, probs)
		for _, s := range probs {
			p.Allow(s)
		}
		if probs := p.Problems(); len(probs) != 0 {
			t.Errorf("%s: Allow left %q", c.path, probs)
		}
	}
}
