// Package browsertest drives a real headless Chromium for the dashboard's
// browser tests, through chromedp (the Chrome DevTools Protocol).
//
// Start gives a test its own browser (a fresh profile in a temporary
// directory); Browser.NewPage opens a tab in a fresh browser context (its
// own cookies) on a base URL. A Page's helpers take no context and return
// no error: each step has its own timeout (Options.StepTimeout) and fails
// the test, with the page's state (URL, a screenshot, its HTML, its console
// and its recent requests), when it cannot finish.
//
// Every page watches its console and its network from its first request.
// A JavaScript error (console.error, an uncaught exception or rejection, a
// JavaScript dialog), a Content-Security-Policy violation, a script,
// stylesheet, image or font that fails to load, and any 5xx answer fail
// the test when it ends (or at Page.Check). Other failed requests, such as
// an API call a test expects to be refused, are only recorded and shown
// with a failure. Page.Allow excuses a problem a test causes on purpose.
//
// The Chromium is /usr/bin/chromium, or $WARREN_CHROMIUM. When it is
// missing the test fails under CI=true and is skipped otherwise, as with
// the broker (scripts/ensure-test-deps.sh installs it).
package browsertest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// DefaultExecPath is the Chromium the tests run unless $WARREN_CHROMIUM
// names another: Debian's chromium package.
const DefaultExecPath = "/usr/bin/chromium"

// Defaults of Options.
const (
	DefaultStepTimeout = 15 * time.Second
	DefaultTestTimeout = 3 * time.Minute
	DefaultWidth       = 1280
	DefaultHeight      = 800
)

// Options tune a Browser. The zero value has every default.
type Options struct {
	// StepTimeout bounds one step of a page: a navigation, a click, a wait.
	// 0 means 15s, or $WARREN_BROWSER_STEP_TIMEOUT (a Go duration).
	StepTimeout time.Duration
	// TestTimeout bounds the browser's whole life: once it passes, the
	// browser stops and every later step fails. 0 means 3m.
	TestTimeout time.Duration
	// Width and Height are the viewport of every page, in CSS pixels.
	// 0 means 1280×800.
	Width, Height int
}

// ExecPath returns the Chromium to run: $WARREN_CHROMIUM, or
// DefaultExecPath.
func ExecPath() string { return cmp.Or(os.Getenv("WARREN_CHROMIUM"), DefaultExecPath) }

// Browser is one headless Chromium, owned by one test.
type Browser struct {
	t    testing.TB
	opts Options
	ctx  context.Context // the browser's first tab; its children are pages
	out  *tailBuffer     // the browser's stdout and stderr, for failures
}

// Start starts a headless Chromium for t with a fresh temporary profile,
// and stops it when t ends. Without a Chromium it fails t under CI=true and
// skips it otherwise.
func Start(t testing.TB, opts ...Options) *Browser {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.StepTimeout == 0 {
		o.StepTimeout = DefaultStepTimeout
		if d, err := time.ParseDuration(os.Getenv("WARREN_BROWSER_STEP_TIMEOUT")); err == nil && d > 0 {
			o.StepTimeout = d
		}
	}
	o.TestTimeout = cmp.Or(o.TestTimeout, DefaultTestTimeout)
	o.Width = cmp.Or(o.Width, DefaultWidth)
	o.Height = cmp.Or(o.Height, DefaultHeight)

	path := ExecPath()
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browsertest: no Chromium at %s under CI=true (run scripts/ensure-test-deps.sh, or set WARREN_CHROMIUM): %v", path, err)
		}
		t.Skipf("browsertest: no Chromium at %s (apt-get install chromium, or set WARREN_CHROMIUM; CI=true fails instead): %v", path, err)
	}
	dir, err := os.MkdirTemp("", "warren-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	out := &tailBuffer{max: 64 << 10}
	root, stopRoot := context.WithTimeout(context.Background(), o.TestTimeout)
	allocCtx, stopAlloc := chromedp.NewExecAllocator(root,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.WindowSize(o.Width, o.Height),
		chromedp.UserDataDir(dir),
		chromedp.CombinedOutput(out),
	)
	ctx, stopBrowser := chromedp.NewContext(allocCtx)
	b := &Browser{t: t, opts: o, ctx: ctx, out: out}
	t.Cleanup(func() {
		stopBrowser()
		stopAlloc() // waits for the process to exit
		stopRoot()
		_ = os.RemoveAll(dir)
	})

	// The first Do starts the browser and binds it to ctx, so it must not
	// carry a timeout of its own: watch it from here instead.
	limit := max(o.StepTimeout, 30*time.Second)
	if err := firstDo(ctx, limit); err != nil {
		stopBrowser()
		t.Fatalf("browsertest: start %s: %v\n%s", path, err, out.tail(40))
	}
	return b
}

// Page is one tab in its own browser context (its own cookies and
// storage), on a base URL that the paths of its helpers are relative to.
// It is not safe for concurrent use.
type Page struct {
	t       testing.TB
	b       *Browser
	ctx     context.Context
	cancel  context.CancelFunc
	base    *url.URL
	name    string
	rec     *recorder
	dumped  bool
	dialogs chan string
}

// NewPage opens a tab on base (a URL such as httptest.Server.URL) in a new
// browser context, so that it shares no cookies with the other pages. Its
// name labels its failures and artifacts. When t ends, the page fails t
// for the problems it saw (see the package doc) and, if t failed, saves
// its screenshot and HTML.
func (b *Browser) NewPage(base, name string) *Page {
	b.t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		b.t.Fatalf("browsertest: base URL %q: %v", base, err)
	}
	rec := &recorder{methods: map[network.RequestID]string{}}
	p := &Page{t: b.t, b: b, base: u, name: cmp.Or(name, "page"), rec: rec, dialogs: make(chan string, 8)}
	rec.dialogs = p.dialogs
	p.ctx, p.cancel = chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(rec.listen))
	b.t.Cleanup(p.close)

	// The first Do opens the tab and binds it to the context it gets: that
	// must be p.ctx, not a step's, or the tab closes with the step.
	err = firstDo(p.ctx, b.opts.StepTimeout, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: cspReporter,
		})
		return err
	}), chromedp.EmulateViewport(int64(b.opts.Width), int64(b.opts.Height)))
	if err != nil {
		p.cancel()
		b.t.Fatalf("browsertest: %s: open a tab: %v\n%s", p.name, err, b.out.tail(40))
	}
	// A JavaScript dialog blocks the page, and with it every later step:
	// dismiss it (the recorder has already counted it as a problem).
	go func() {
		for {
			select {
			case <-p.ctx.Done():
				return
			case <-p.dialogs:
				ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
				cancel()
			}
		}
	}()
	return p
}

// firstDo runs the first actions of a chromedp context, which bind the
// browser or the tab to ctx itself, and gives up after limit.
func firstDo(ctx context.Context, limit time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx, actions...) }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		return fmt.Errorf("no answer within %v", limit)
	}
}

// cspReporter runs in every document before the page's own scripts (the
// CSP does not apply to it) and turns each CSP violation into a console
// error, so that one is never missed even where Chromium logs none.
const cspReporter = `window.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
    " in " + e.sourceFile + ":" + e.lineNumber);
}, true);`

// step runs actions with the step timeout.
func (p *Page) step(what string, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(p.ctx, p.b.opts.StepTimeout)
	defer cancel()
	err := chromedp.Do(ctx, actions...)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil && p.ctx.Err() == nil {
		err = fmt.Errorf("%s: no result within the step timeout %v: %w", what, p.b.opts.StepTimeout, err)
	} else if err != nil && p.ctx.Err() != nil {
		err = fmt.Errorf("%s: the browser is gone (test timeout %v?): %w", what, p.b.opts.TestTimeout, err)
	}
	return err
}

// URL returns the absolute URL of path (which may carry a query).
func (p *Page) URL(path string) string {
	ref, err := url.Parse(path)
	if err != nil {
		p.fatalf("bad path %q: %v", path, err)
	}
	return p.base.ResolveReference(ref).String()
}

// Go loads path and waits for its load event. It returns the HTTP status
// of the document it ends on, after redirects.
func (p *Page) Go(path string) int {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.b.opts.StepTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(p.URL(path)))
	if err != nil {
		p.fatalf("go to %s: %v", path, err)
	}
	if resp == nil {
		return 0
	}
	return int(resp.Status)
}

// Location returns the page's current URL.
func (p *Page) Location() *url.URL {
	p.t.Helper()
	s := Eval[string](p, `location.href`)
	u, err := url.Parse(s)
	if err != nil {
		p.fatalf("location %q: %v", s, err)
	}
	return u
}

// Click waits until the first element matching the CSS selector sel is
// visible and clicks it with the mouse.
func (p *Page) Click(sel string) {
	p.t.Helper()
	if err := p.step("click "+sel, chromedp.Click(chromedp.CSS(sel))); err != nil {
		p.fatalf("%v (%s)", err, p.describe(sel))
	}
}

// Fill waits for the form field sel, sets its value to v and fires its
// input and change events, as typing would.
func (p *Page) Fill(sel, v string) {
	p.t.Helper()
	p.WaitFor("the field "+sel, fmt.Sprintf(`document.querySelector(%s) !== null`, jsString(sel)))
	ok := Eval[bool](p, fmt.Sprintf(`(() => {
  const el = document.querySelector(%s);
  if (!el) return false;
  el.focus();
  el.value = %s;
  el.dispatchEvent(new Event("input", {bubbles: true}));
  el.dispatchEvent(new Event("change", {bubbles: true}));
  return true;
})()`, jsString(sel), jsString(v)))
	if !ok {
		p.fatalf("fill %s: the field went away", sel)
	}
}

// Check ticks (or, with on false, clears) the checkbox sel by clicking it
// when its state differs.
func (p *Page) Check(sel string, on bool) {
	p.t.Helper()
	p.WaitFor("the checkbox "+sel, fmt.Sprintf(`document.querySelector(%s) !== null`, jsString(sel)))
	if Eval[bool](p, fmt.Sprintf(`document.querySelector(%s).checked`, jsString(sel))) != on {
		p.Click(sel)
	}
	p.WaitFor(fmt.Sprintf("the checkbox %s to be %v", sel, on),
		fmt.Sprintf(`document.querySelector(%s)?.checked === %v`, jsString(sel), on))
}

// Exists reports whether an element matches sel now. It does not wait.
func (p *Page) Exists(sel string) bool {
	p.t.Helper()
	return Eval[bool](p, fmt.Sprintf(`document.querySelector(%s) !== null`, jsString(sel)))
}

// Count returns how many elements match sel now. It does not wait.
func (p *Page) Count(sel string) int {
	p.t.Helper()
	return Eval[int](p, fmt.Sprintf(`document.querySelectorAll(%s).length`, jsString(sel)))
}

// Text waits for an element matching sel and returns its text as shown
// (innerText), trimmed.
func (p *Page) Text(sel string) string {
	p.t.Helper()
	return p.WaitTextFunc(sel, "any text", func(string) bool { return true })
}

// WaitVisible waits until an element matching sel is shown (it has a box
// and is not visibility:hidden).
func (p *Page) WaitVisible(sel string) {
	p.t.Helper()
	p.WaitFor(sel+" to be visible", fmt.Sprintf(`(() => {
  const el = document.querySelector(%s);
  return !!el && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
})()`, jsString(sel)))
}

// WaitGone waits until no element matches sel.
func (p *Page) WaitGone(sel string) {
	p.t.Helper()
	p.WaitFor(sel+" to be gone", fmt.Sprintf(`document.querySelector(%s) === null`, jsString(sel)))
}

// WaitPath waits until the page's path is path.
func (p *Page) WaitPath(path string) {
	p.t.Helper()
	p.WaitFor("the path "+path, fmt.Sprintf(`location.pathname === %s && document.readyState !== "loading"`, jsString(path)))
}

// WaitText waits until the text of the first element matching sel,
// trimmed, is want, and returns it.
func (p *Page) WaitText(sel, want string) string {
	p.t.Helper()
	return p.WaitTextFunc(sel, fmt.Sprintf("text %q", want), func(s string) bool { return s == want })
}

// WaitTextContains waits until the text of the first element matching sel
// contains sub, and returns the text.
func (p *Page) WaitTextContains(sel, sub string) string {
	p.t.Helper()
	return p.WaitTextFunc(sel, fmt.Sprintf("text containing %q", sub), func(s string) bool { return strings.Contains(s, sub) })
}

// WaitTextMatches waits until the text of the first element matching sel
// matches re, and returns the text.
func (p *Page) WaitTextMatches(sel string, re *regexp.Regexp) string {
	p.t.Helper()
	return p.WaitTextFunc(sel, fmt.Sprintf("text matching %s", re), re.MatchString)
}

// WaitTextFunc waits until an element matches sel and ok accepts its text
// (innerText, trimmed), and returns the text. want describes what ok
// accepts, for the failure. It looks the element up afresh each time, so
// it follows an element that the page replaces (an htmx swap).
func (p *Page) WaitTextFunc(sel, want string, ok func(string) bool) string {
	p.t.Helper()
	expr := fmt.Sprintf(`(() => { const el = document.querySelector(%s); return el ? [true, el.innerText.trim()] : [false, ""]; })()`, jsString(sel))
	var last string
	var found bool
	err := p.poll(func(ctx context.Context) (bool, error) {
		r, err := chromedp.Run(ctx, chromedp.Evaluate[[]any](expr))
		if err != nil {
			return false, err
		}
		found, _ = r[0].(bool)
		last, _ = r[1].(string)
		return found && ok(last), nil
	})
	if err != nil {
		if !found {
			p.fatalf("wait for %s with %s: no element matches (%v)", sel, want, err)
		}
		p.fatalf("wait for %s with %s: it says %q (%v)", sel, want, last, err)
	}
	return last
}

// WaitFor waits until the JavaScript expression js is truthy. what
// describes it, for the failure.
func (p *Page) WaitFor(what, js string) {
	p.t.Helper()
	err := p.poll(func(ctx context.Context) (bool, error) {
		return chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+js+`)`))
	})
	if err != nil {
		p.fatalf("wait for %s: %v", what, err)
	}
}

// poll calls try every 50ms until it reports true, or the step timeout
// passes. Errors of try (a navigation destroying the document, say) only
// make it try again; the last one is returned with the timeout.
func (p *Page) poll(try func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(p.ctx, p.b.opts.StepTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		ok, err := try(ctx)
		if err == nil && ok {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if p.ctx.Err() != nil {
				return fmt.Errorf("the browser is gone (test timeout %v?): %w", p.b.opts.TestTimeout, errors.Join(p.ctx.Err(), lastErr))
			}
			if lastErr != nil {
				return fmt.Errorf("not within %v; last error: %w", p.b.opts.StepTimeout, lastErr)
			}
			return fmt.Errorf("not within %v", p.b.opts.StepTimeout)
		}
	}
}

// Eval evaluates the JavaScript expression js in p (awaiting a promise)
// and decodes its value into a T. It fails the test on an error or an
// exception.
func Eval[T any](p *Page, js string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.b.opts.StepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.fatalf("evaluate %s: %v", abbrev(js, 200), err)
	}
	return v
}

// Response is what Fetch got.
type Response struct {
	Status int
	Body   string
	// ContentType is the Content-Type header.
	ContentType string
}

// JSON decodes the body into v and fails the test if it is not JSON.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.Body), v); err != nil {
		t.Fatalf("response %d is not JSON (%v): %s", r.Status, err, abbrev(r.Body, 500))
	}
}

// ErrorCode returns the code of an API error body
// ({"error":{"code":...}}), or "".
func (r Response) ErrorCode() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal([]byte(r.Body), &e)
	return e.Error.Code
}

type fetchResult struct {
	Status      int    `json:"status"`
	Body        string `json:"body"`
	ContentType string `json:"contentType"`
}

// Fetch calls fetch() from the page (with its cookies; same origin) and
// returns the answer, after redirects. A fetch with no answer fails the
// test. headers may be nil; body "" sends none.
func (p *Page) Fetch(method, path string, headers map[string]string, body string) Response {
	p.t.Helper()
	if headers == nil {
		headers = map[string]string{}
	}
	h, _ := json.Marshal(headers)
	var b = "undefined"
	if body != "" {
		b = jsString(body)
	}
	// A fetch can wait for ever: Chromium waits for credentials on a 401
	// with "WWW-Authenticate: Basic". Abort it before the step's timeout,
	// so that the failure says what happened.
	wait := max(p.b.opts.StepTimeout-2*time.Second, p.b.opts.StepTimeout/2)
	r := Eval[fetchResult](p, fmt.Sprintf(`(async () => {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), %d);
  try {
    const r = await fetch(%s, {method: %s, headers: %s, body: %s, credentials: "same-origin", signal: ctl.signal});
    return {status: r.status, body: await r.text(), contentType: r.headers.get("Content-Type") || ""};
  } catch (e) {
    return {status: 0, body: String(e), contentType: ""};
  } finally {
    clearTimeout(timer);
  }
})()`, wait.Milliseconds(), jsString(path), jsString(method), h, b))
	if r.Status == 0 {
		p.fatalf("fetch %s %s: no answer within %v (%s); a 401 with WWW-Authenticate: Basic makes Chromium wait for credentials", method, path, wait, r.Body)
	}
	return Response{Status: r.Status, Body: r.Body, ContentType: r.ContentType}
}

// Screenshot writes a PNG of the page's viewport to file, creating its
// directory.
func (p *Page) Screenshot(file string) {
	p.t.Helper()
	png, err := p.screenshot()
	if err != nil {
		p.fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *Page) screenshot() ([]byte, error) {
	ctx, cancel := context.WithTimeout(p.ctx, p.b.opts.StepTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.CaptureScreenshot())
}

// Allow excuses the problems whose description contains sub (a console
// error a test causes on purpose, say) from failing the test.
func (p *Page) Allow(sub string) { p.rec.allow(sub) }

// Problems returns the problems seen so far that would fail the test:
// JavaScript errors, CSP violations, broken assets, 5xx answers.
func (p *Page) Problems() []string {
	p.flush()
	return p.rec.problems()
}

// Requests returns the requests seen so far, one line each: "GET 200
// Document http://...". Failed ones say why instead of a status.
func (p *Page) Requests() []string { return p.rec.requestLog() }

// CheckProblems fails the test now if the page has seen problems (see
// Problems); the page's end checks again.
func (p *Page) CheckProblems() {
	p.t.Helper()
	if probs := p.Problems(); len(probs) > 0 {
		p.fatalf("the page has problems:\n  %s", strings.Join(probs, "\n  "))
	}
}

// flush makes sure every event the page sent before now is recorded: the
// tab's listener sees events in order, before the reply that follows them.
func (p *Page) flush() {
	if p.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`0`))
}

// describe says how many elements match sel now and whether the first is
// shown, for a failure.
func (p *Page) describe(sel string) string {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(() => {
  const all = document.querySelectorAll(%s);
  if (all.length === 0) return "no element matches at " + location.pathname;
  const el = all[0], r = el.getBoundingClientRect();
  return all.length + " match at " + location.pathname + "; the first is " + el.outerHTML.slice(0, 200) +
    (el.getClientRects().length ? " at " + Math.round(r.x) + "," + Math.round(r.y) + " " + Math.round(r.width) + "x" + Math.round(r.height) : " (not rendered)") +
    (el.disabled ? " (disabled)" : "");
})()`, jsString(sel))))
	if err != nil {
		return "cannot tell: " + err.Error()
	}
	return s
}

// fatalf fails the test with the page's state.
func (p *Page) fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("browsertest: %s: %s\n%s", p.name, fmt.Sprintf(format, args...), p.diagnose())
}

// diagnose saves a screenshot and the HTML of the page to the artifacts
// directory and returns the page's state: where it is, what it logged and
// requested, and where the files are.
func (p *Page) diagnose() string {
	p.dumped = true
	var b strings.Builder
	p.flush()
	if p.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		if loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " (" + document.title + ")"`)); err == nil {
			fmt.Fprintf(&b, "  at: %s\n", loc)
		}
		cancel()
		dir := ArtifactDir(p.t)
		base := filepath.Join(dir, sanitize(p.name))
		if png, err := p.screenshot(); err == nil {
			if os.MkdirAll(dir, 0o755) == nil && os.WriteFile(base+".png", png, 0o644) == nil {
				fmt.Fprintf(&b, "  screenshot: %s.png\n", base)
			}
		}
		ctx, cancel = context.WithTimeout(p.ctx, 5*time.Second)
		if html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`)); err == nil {
			if os.MkdirAll(dir, 0o755) == nil && os.WriteFile(base+".html", []byte(html), 0o644) == nil {
				fmt.Fprintf(&b, "  html: %s.html\n", base)
			}
		}
		cancel()
	} else {
		fmt.Fprintf(&b, "  the browser is gone: %v\n%s\n", p.ctx.Err(), p.b.out.tail(40))
	}
	if probs := p.rec.problems(); len(probs) > 0 {
		fmt.Fprintf(&b, "  problems:\n    %s\n", strings.Join(probs, "\n    "))
	}
	if lines := p.rec.consoleLog(); len(lines) > 0 {
		fmt.Fprintf(&b, "  console (last %d):\n    %s\n", len(lines), strings.Join(lines, "\n    "))
	}
	if lines := p.rec.requestLog(); len(lines) > 0 {
		fmt.Fprintf(&b, "  requests (last %d):\n    %s\n", len(lines), strings.Join(lines, "\n    "))
	}
	return b.String()
}

// close fails the test for the page's problems, saves its state if the
// test failed, and closes the tab.
func (p *Page) close() {
	defer p.cancel()
	if p.ctx.Err() != nil {
		return
	}
	if probs := p.Problems(); len(probs) > 0 {
		p.t.Errorf("browsertest: %s: the page had problems:\n  %s", p.name, strings.Join(probs, "\n  "))
	}
	if p.t.Failed() && !p.dumped {
		p.t.Logf("browsertest: %s at the end of the failed test:\n%s", p.name, p.diagnose())
	}
}

// ArtifactDir is where a failing page saves its screenshot and HTML:
// $WARREN_BROWSER_ARTIFACTS/<test>, t.ArtifactDir() under go test
// -artifacts, else <tmp>/warren-browser/<test> (kept for a look after the
// run).
func ArtifactDir(t testing.TB) string {
	if d := os.Getenv("WARREN_BROWSER_ARTIFACTS"); d != "" {
		return filepath.Join(d, sanitize(t.Name()))
	}
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		if a, ok := t.(interface{ ArtifactDir() string }); ok {
			return a.ArtifactDir()
		}
	}
	return filepath.Join(os.TempDir(), "warren-browser", sanitize(t.Name()))
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func sanitize(s string) string { return strings.Trim(unsafeChars.ReplaceAllString(s, "_"), "_") }

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func abbrev(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// recorder keeps what a page logs and requests. Its listen runs on the
// tab's event loop: it must return fast and send no command.
type recorder struct {
	mu       sync.Mutex
	probs    []string
	allowed  []string
	console  []string
	requests []string
	methods  map[network.RequestID]string
	dialogs  chan<- string
}

const keepLines = 60

func (r *recorder) listen(ev any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		text := argsText(ev.Args)
		r.addConsole(fmt.Sprintf("console.%s: %s%s", ev.Type, text, stackPlace(ev.StackTrace)))
		switch ev.Type {
		case runtime.ConsoleAPICalledTypeError, runtime.ConsoleAPICalledTypeAssert:
			kind := "JS error"
			if strings.HasPrefix(text, "CSP violation") {
				kind = "CSP violation"
			}
			r.problem(fmt.Sprintf("%s: console.%s: %s%s", kind, ev.Type, text, stackPlace(ev.StackTrace)))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		where := fmt.Sprintf(" (%s:%d:%d)", d.URL, d.LineNumber+1, d.ColumnNumber+1)
		r.addConsole("exception: " + text + where)
		r.problem("JS error: uncaught " + text + where)
	case *log.EventEntryAdded:
		e := ev.Entry
		line := fmt.Sprintf("log %s/%s: %s", e.Source, e.Level, e.Text)
		if e.URL != "" {
			line += fmt.Sprintf(" (%s:%d)", e.URL, e.LineNumber+1)
		}
		r.addConsole(line)
		switch {
		case strings.Contains(e.Text, "Content Security Policy"):
			r.problem("CSP violation: " + line)
		case e.Level != log.EntryLevelError:
		case e.Source == log.EntrySourceNetwork:
			// A refused request also shows in the requests; whether it
			// is a problem depends on what was requested (see below).
		default:
			r.problem("JS error: " + line)
		}
	case *page.EventJavascriptDialogOpening:
		r.problem(fmt.Sprintf("JS error: the page opened a %s dialog (dismissed): %q", ev.Type, ev.Message))
		select {
		case r.dialogs <- ev.Message:
		default:
		}
	case *network.EventRequestWillBeSent:
		r.methods[ev.RequestID] = ev.Request.Method
	case *network.EventResponseReceived:
		resp := ev.Response
		method := cmp.Or(r.methods[ev.RequestID], "?")
		delete(r.methods, ev.RequestID)
		line := fmt.Sprintf("%s %d %s %s", method, resp.Status, ev.Type, resp.URL)
		r.addRequest(line)
		switch {
		case strings.HasSuffix(resp.URL, "/favicon.ico"):
		case resp.Status >= 500:
			r.problem("server error: " + line)
		case resp.Status >= 400 && asset(ev.Type):
			r.problem("broken asset: " + line)
		}
	case *network.EventLoadingFailed:
		method := cmp.Or(r.methods[ev.RequestID], "?")
		delete(r.methods, ev.RequestID)
		line := fmt.Sprintf("%s failed %s (%s", method, ev.Type, ev.ErrorText)
		if ev.BlockedReason != "" {
			line += ", blocked: " + string(ev.BlockedReason)
		}
		line += fmt.Sprintf(") request %s", ev.RequestID)
		r.addRequest(line)
		switch {
		case ev.BlockedReason == network.BlockedReasonCsp:
			r.problem("CSP violation: " + line)
		case ev.Canceled || strings.Contains(ev.ErrorText, "ERR_ABORTED"):
		case asset(ev.Type):
			r.problem("broken asset: " + line)
		}
	}
}

func asset(t network.ResourceType) bool {
	switch t {
	case network.ResourceTypeScript, network.ResourceTypeStylesheet, network.ResourceTypeImage, network.ResourceTypeFont:
		return true
	}
	return false
}

func (r *recorder) problem(s string) {
	r.probs = append(r.probs, s)
}

func (r *recorder) addConsole(s string) {
	r.console = append(r.console, abbrev(s, 500))
	if len(r.console) > keepLines {
		r.console = r.console[len(r.console)-keepLines:]
	}
}

func (r *recorder) addRequest(s string) {
	r.requests = append(r.requests, abbrev(s, 300))
	if len(r.requests) > keepLines {
		r.requests = r.requests[len(r.requests)-keepLines:]
	}
}

func (r *recorder) allow(sub string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.allowed = append(r.allowed, sub)
}

func (r *recorder) problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
next:
	for _, p := range r.probs {
		for _, a := range r.allowed {
			if strings.Contains(p, a) {
				continue next
			}
		}
		out = append(out, p)
	}
	return out
}

func (r *recorder) consoleLog() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.console...)
}

func (r *recorder) requestLog() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// argsText is roughly what the DevTools console shows for a console call.
func argsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a == nil:
		case len(a.Value) > 0:
			var s string
			if json.Unmarshal(a.Value, &s) == nil {
				parts = append(parts, s)
			} else {
				parts = append(parts, string(a.Value))
			}
		case a.Description != "":
			parts = append(parts, a.Description)
		case a.UnserializableValue != "":
			parts = append(parts, string(a.UnserializableValue))
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

func stackPlace(st *runtime.StackTrace) string {
	if st == nil || len(st.CallFrames) == 0 {
		return ""
	}
	f := st.CallFrames[0]
	return fmt.Sprintf(" (%s:%d:%d)", f.URL, f.LineNumber+1, f.ColumnNumber+1)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = b.buf[len(b.buf)-b.max:]
	}
	return len(p), nil
}

// tail returns the last n lines written, indented, for a failure.
func (b *tailBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := bytes.Split(bytes.TrimRight(b.buf, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && len(lines[0]) == 0 {
		return "  (the browser wrote nothing)"
	}
	return "  chromium output (last lines):\n    " + string(bytes.Join(lines, []byte("\n    ")))
}
