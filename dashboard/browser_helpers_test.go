//go:build integration

package dashboard_test

// The browser tests' fixtures: a dashboard served in-process on a real
// broker, a headless Chromium (internal/browsertest) and the broker-side
// helpers that make dead letters, run workers and check counts. Names here
// start with "browser" or "b" so that they do not clash with the other
// dashboard tests of package dashboard_test.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/dashboard"
	"github.com/warrenq/warren/fleet"
	"github.com/warrenq/warren/internal/browsertest"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

// browserToken is the token of the dashboards that use Token auth.
const browserToken = "browser-test-token-0123456789abcdef"

// browserEnv is one test's world: a queue Q on the broker, a dashboard on
// it behind an httptest server, and a Chromium.
type browserEnv struct {
	t     *testing.T
	ctx   context.Context
	conn  *broker.Conn // the test's own connection (producer, workers, checks)
	adm   *admin.Inspector
	prod  *producer.Producer
	cfg   dashboard.Config
	ts    *httptest.Server
	b     *browsertest.Browser
	queue string
	// named holds the extra queues of startBrowserEnv by their prefix.
	named map[string]string
}

// startBrowserEnv declares a fresh queue, serves a dashboard with cfg (its
// Queues get the queue; SampleInterval defaults to 200ms) and starts a
// Chromium. With named prefixes, the queues are called prefix-<random>
// instead (nicer names for the screenshots; e.named maps the prefixes to
// them) and the first is the test's queue. Everything is torn down when t
// ends: the browser first, then the server, then the queues.
func startBrowserEnv(t *testing.T, cfg dashboard.Config, named ...string) *browserEnv {
	t.Helper()
	ctx := testbroker.Context(t, 4*time.Minute)
	conn := testbroker.Dial(t)
	e := &browserEnv{t: t, ctx: ctx, conn: conn, adm: admin.New(conn, admin.Config{Logger: browserLogger(t)}),
		named: map[string]string{}}
	for _, prefix := range named {
		var b [3]byte
		_, _ = rand.Read(b[:])
		name := prefix + "-" + hex.EncodeToString(b[:])
		t.Cleanup(func() { testbroker.DeleteQueue(t, conn, name) })
		e.named[prefix] = name
		cfg.Queues = append(cfg.Queues, name)
	}
	if len(named) == 0 {
		e.queue = testbroker.Queue(t, conn)
		cfg.Queues = append(cfg.Queues, e.queue)
	} else {
		e.queue = e.named[named[0]]
	}
	for _, q := range cfg.Queues {
		e.declare(q)
	}

	p, err := producer.New(ctx, conn, producer.Config{Logger: browserLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	e.prod = p

	// The dashboard has a connection of its own, as in production.
	dconn := testbroker.DialNamed(t, broker.Config{Name: "dashboard " + t.Name()})
	if cfg.SampleInterval == 0 {
		cfg.SampleInterval = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = browserLogger(t)
	}
	e.cfg = cfg
	srv, err := dashboard.New(ctx, dconn, cfg)
	if err != nil {
		t.Fatalf("dashboard.New: %v", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(runCtx) }()
	e.ts = httptest.NewServer(srv)
	t.Cleanup(func() {
		e.ts.Close()
		stop()
		if err := <-ran; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("dashboard Run: %v", err)
		}
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(cctx)
	})
	// Registered last, so stopped first: no page polls a closed server.
	e.b = browsertest.Start(t)
	return e
}

// declare declares queue (and its dead-letter queue) and deletes the pause
// marker a failed test may leave behind.
func (e *browserEnv) declare(queue string) {
	e.t.Helper()
	if err := broker.Declare(e.ctx, e.conn, broker.QueueOptions{}, queue); err != nil {
		e.t.Fatalf("declare %s: %v", queue, err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = broker.DeleteQueue(ctx, e.conn, fleet.PausePrefix+queue, broker.DeleteOptions{})
	})
}

// page opens a page in a fresh browser context (no cookies). With auth on,
// it is not logged in: see loggedIn.
func (e *browserEnv) page(name string) *browsertest.Page {
	e.t.Helper()
	return e.b.NewPage(e.ts.URL, name)
}

// loggedIn opens a page and, when the dashboard has authentication, logs
// in through the login form with user and password (for a Token: "token"
// and browserToken). It ends on the overview.
func (e *browserEnv) loggedIn(name, user, password string) *browsertest.Page {
	e.t.Helper()
	p := e.page(name)
	if e.cfg.Auth == nil {
		p.Go("/")
		p.WaitVisible("table#queues")
		return p
	}
	p.Go("/")
	p.WaitPath("/login")
	p.Fill("input[name=user]", user)
	p.Fill("input[name=password]", password)
	p.Click("button[type=submit]")
	p.WaitPath("/")
	p.WaitVisible("table#queues")
	return p
}

// csrf returns the page's CSRF token (its <meta name="csrf-token">).
func csrf(p *browsertest.Page) string {
	return browsertest.Eval[string](p, `document.querySelector('meta[name="csrf-token"]')?.content ?? ""`)
}

// confirm waits for the confirmation dialog, checks that its text matches
// want, and answers it.
func confirm(t *testing.T, p *browsertest.Page, want string, yes bool) string {
	t.Helper()
	p.WaitFor("the confirmation dialog to open", `document.querySelector("dialog#confirm")?.open`)
	text := p.WaitTextContains("#confirm-text", want)
	if yes {
		p.Click("button#confirm-yes")
	} else {
		p.Click("button#confirm-no")
	}
	p.WaitFor("the confirmation dialog to close", `!document.querySelector("dialog#confirm")?.open`)
	return text
}

// clickMaybeConfirm clicks sel and, if the page asks for a confirmation
// before done holds (a JavaScript expression), answers yes. Pause and
// resume may or may not ask: the contract does not say.
func clickMaybeConfirm(p *browsertest.Page, sel, done string) {
	p.Click(sel)
	p.WaitFor(sel+" to take effect or ask", `document.querySelector("dialog#confirm")?.open || (`+done+`)`)
	if browsertest.Eval[bool](p, `!!document.querySelector("dialog#confirm")?.open`) {
		p.Click("button#confirm-yes")
	}
	p.WaitFor(sel+" to take effect", done)
}

// info returns the broker's counts of queue.
func (e *browserEnv) info(queue string) admin.QueueInfo {
	e.t.Helper()
	infos, err := e.adm.Queues(e.ctx, []string{queue})
	if err != nil || len(infos) != 1 {
		e.t.Fatalf("queue counts of %s: %v", queue, err)
	}
	return infos[0]
}

// waitBroker polls the broker's counts of queue until ok holds, for up to
// 15s.
func (e *browserEnv) waitBroker(queue, what string, ok func(admin.QueueInfo) bool) admin.QueueInfo {
	e.t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		in := e.info(queue)
		if ok(in) {
			return in
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			e.t.Fatalf("broker: %s of %s not within 15s; counts now: ready %d, dead %d, consumers %d",
				what, queue, in.Ready, in.DeadLetters, in.Consumers)
		case <-e.ctx.Done():
			e.t.Fatalf("broker: %s of %s: %v", what, queue, e.ctx.Err())
		}
	}
}

// holdBroker checks that the counts of queue keep satisfying ok for d.
func (e *browserEnv) holdBroker(queue, what string, d time.Duration, ok func(admin.QueueInfo) bool) {
	e.t.Helper()
	end := time.NewTimer(d)
	defer end.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if in := e.info(queue); !ok(in) {
			e.t.Fatalf("broker: %s of %s no longer holds: ready %d, dead %d", what, queue, in.Ready, in.DeadLetters)
		}
		select {
		case <-tick.C:
		case <-end.C:
			return
		}
	}
}

// enqueue enqueues a task and returns its ID.
func (e *browserEnv) enqueue(queue, typ, payload string) string {
	e.t.Helper()
	id, err := e.prod.Enqueue(e.ctx, queue, typ, []byte(payload))
	if err != nil {
		e.t.Fatalf("enqueue to %s: %v", queue, err)
	}
	return id
}

// browserPool is a running worker pool; stop ends it and waits.
type browserPool struct {
	stop func()
}

// startPool runs a worker pool on queues with h and a 200ms heartbeat
// until stop or the end of the test.
func (e *browserEnv) startPool(h worker.Handler, queues ...string) *browserPool {
	e.t.Helper()
	pool, err := worker.New(e.conn, h, worker.Config{
		Queues:            queues,
		Concurrency:       2,
		HeartbeatInterval: 200 * time.Millisecond,
		Hostname:          "browser-test",
		Logger:            browserLogger(e.t),
	})
	if err != nil {
		e.t.Fatalf("worker.New: %v", err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	var once sync.Once
	p := &browserPool{stop: func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				e.t.Errorf("worker pool: %v", err)
			}
		})
	}}
	e.t.Cleanup(p.stop)
	return p
}

// deadLetters enqueues one task of type typ per payload to queue, has a
// worker fail each for good (retry.Permanent with reason), waits until the
// dead-letter queue holds them all, stops the worker, and returns the
// tasks' IDs in order.
func (e *browserEnv) deadLetters(queue, typ, reason string, payloads ...string) []string {
	e.t.Helper()
	before := e.info(queue).DeadLetters
	ids := make([]string, len(payloads))
	for i, pl := range payloads {
		ids[i] = e.enqueue(queue, typ, pl)
	}
	pool := e.startPool(worker.HandlerFunc(func(context.Context, *warren.Task) error {
		return retry.Permanent(errors.New(reason))
	}), queue)
	e.waitBroker(queue, fmt.Sprintf("%d dead letters", before+len(payloads)), func(in admin.QueueInfo) bool {
		return in.DeadLetters == before+len(payloads)
	})
	pool.stop()
	return ids
}

// browserLogger logs the dashboard's and the workers' warnings (and the
// audit lines) into the test's output.
func browserLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// screenshots reports whether the tests write the documentation's images
// (WARREN_SCREENSHOTS=1); CI leaves them alone so the tree stays clean.
func screenshots() bool { return os.Getenv("WARREN_SCREENSHOTS") == "1" }

// screenshot writes docs/images/dashboard-<name>.png when screenshots()
// is on.
func screenshot(t *testing.T, p *browsertest.Page, name string) {
	t.Helper()
	if !screenshots() {
		return
	}
	file := filepath.Join("..", "docs", "images", "dashboard-"+name+".png")
	p.Screenshot(file)
	t.Logf("wrote %s", file)
}

// paused asks the broker whether the test's queue is paused.
func (e *browserEnv) paused() bool {
	e.t.Helper()
	paused, err := fleet.Paused(e.ctx, e.conn, e.queue)
	if err != nil {
		e.t.Fatalf("fleet.Paused(%s): %v", e.queue, err)
	}
	return paused
}

func browserEvalBool(p *browsertest.Page, js string) bool { return browsertest.Eval[bool](p, js) }

func browserEvalString(p *browsertest.Page, js string) string { return browsertest.Eval[string](p, js) }
