//go:build integration

package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/dashboard"
	"github.com/warrenq/warren/internal/testnode"
)

// TestTLS enqueues over amqps:// with the right CA (and a client
// certificate), and shows a wrong CA refused with a clear error.
func TestTLS(t *testing.T) {
	n, pki := privateNode(t)
	password := addUser(t, n, "tls-user", "/", ".*", ".*", ".*")
	url := n.TLSURL("tls-user", password, "/")
	q := "tls-" + randomHex(4)

	r := runOn(t, url, time.Minute, []string{"WARREN_TLS_CA=" + pki.CACert},
		"enqueue", "--queue", q, "--type", "t", "--payload", `{"over":"tls"}`)
	if r.code != 0 || !uuidRE.MatchString(strings.TrimSpace(r.stdout)) {
		t.Fatalf("amqps with the right CA: exit %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	r = runOn(t, url, time.Minute, nil, "--tls-ca", pki.CACert, "--tls-cert", pki.ClientCert, "--tls-key", pki.ClientKey,
		"enqueue", "--queue", q, "--type", "t")
	if r.code != 0 {
		t.Fatalf("amqps with a client certificate: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	conn := dialNode(t, n.URL())
	if st, err := broker.Inspect(context.Background(), conn, q); err != nil || st.Ready != 2 {
		t.Fatalf("queue %s: %+v, %v; want 2 tasks", q, st, err)
	}

	// A CA that did not sign the broker's certificate.
	other, err := testnode.GenerateCerts(t.TempDir(), "other-")
	if err != nil {
		t.Fatal(err)
	}
	r = runOn(t, url, time.Minute, nil, "--tls-ca", other.CACert, "enqueue", "--queue", q, "--type", "t")
	if r.code != 1 {
		t.Fatalf("wrong CA: exit %d, want 1; stderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "certificate") || !strings.Contains(r.stderr, "--tls-ca") {
		t.Errorf("wrong CA: unclear message:\n%s", r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, password) {
		t.Fatalf("wrong CA: the password is shown:\n%s", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("wrong CA: stdout %q", r.stdout)
	}
	t.Logf("wrong CA: %s", strings.TrimSpace(r.stderr))

	// No --tls-ca: the system's CAs do not know the test CA either.
	r = runOn(t, url, time.Minute, nil, "enqueue", "--queue", q, "--type", "t")
	if r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("system CAs: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	// amqp:// on the TLS port, and amqps:// on the plain one, fail clearly too.
	r = runOn(t, n.URLFor("tls-user", password, "/"), time.Minute, nil, "--tls-ca", pki.CACert, "enqueue", "--queue", q, "--type", "t")
	if r.code != 2 || !strings.Contains(r.stderr, "amqps://") {
		t.Errorf("TLS flags with amqp://: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	plainTLS := strings.Replace(n.URLFor("tls-user", password, "/"), "amqp://", "amqps://", 1)
	r = runOn(t, plainTLS, time.Minute, nil, "--tls-ca", pki.CACert, "--connect-timeout", "5s", "enqueue", "--queue", q, "--type", "t")
	if r.code != 1 || strings.Contains(r.stderr, password) {
		t.Errorf("amqps:// to the plain port: exit %d; stderr:\n%s", r.code, r.stderr)
	}
}

// The permissions of each role, as docs/operations.md gives them, for a
// vhost whose Warren queue is q.
func producerPerms() (configure, write, read string) {
	return "^$", `^(amq\.default|warren\.delay\.[0-9]+)$`, "^$"
}

func workerPerms(q string) (configure, write, read string) {
	return "^$", `^(amq\.default|warren\.delay\.[0-9]+)$`, "^" + regexpQuote(q) + "$"
}

func operatorPerms(q string) (configure, write, read string) {
	qq := regexpQuote(q)
	return `^(warren\..*|` + qq + `|` + qq + `\.dlq(\.replayed)?)$`, `^(warren\..*|amq\.default|` + qq + `)$`, `^(warren\..*|` + qq + `|` + qq + `\.dlq(\.replayed)?)$`
}

// workerBeatPerms are workerPerms with the heartbeat exchange
// (docs/operations.md, "worker with heartbeats").
func workerBeatPerms(q string) (configure, write, read string) {
	return `^warren\.heartbeats$`, `^(amq\.default|warren\.delay\.[0-9]+|warren\.heartbeats)$`, "^" + regexpQuote(q) + "$"
}

// dashboardPerms are operatorPerms with the dashboard's server-named
// heartbeat queue (docs/operations.md, "dashboard").
func dashboardPerms(q string) (configure, write, read string) {
	qq := regexpQuote(q)
	return `^(warren\..*|` + qq + `|` + qq + `\.dlq(\.replayed)?|amq\.gen-.*)$`, `^(warren\..*|amq\.default|` + qq + `|amq\.gen-.*)$`,
		`^(warren\..*|` + qq + `|` + qq + `\.dlq(\.replayed)?|amq\.gen-.*)$`
}

func regexpQuote(s string) string { return strings.ReplaceAll(s, ".", `\.`) }

// TestLeastPrivilege creates a vhost with an operator, a producer and a
// worker user holding the documented permissions. The operator declares
// the topology and manages dead letters; the worker consumes, retries and
// dead-letters; the producer enqueues (now and delayed, with --no-declare)
// and is refused, each time with "access refused", whatever else it tries.
func TestLeastPrivilege(t *testing.T) {
	n, _ := privateNode(t)
	vhost := "lp-" + randomHex(4)
	ctl(t, n, "add_vhost", vhost)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = n.Ctl(ctx, "delete_vhost", vhost)
	})
	q := "orders"
	c, w, r := operatorPerms(q)
	opURL := n.URLFor("lp-operator", addUser(t, n, "lp-operator", vhost, c, w, r), vhost)
	c, w, r = producerPerms()
	prodPW := addUser(t, n, "lp-producer", vhost, c, w, r)
	prodURL := n.URLFor("lp-producer", prodPW, vhost)
	c, w, r = workerPerms(q)
	workURL := n.URLFor("lp-worker", addUser(t, n, "lp-worker", vhost, c, w, r), vhost)

	run := func(url string, args ...string) cliResult {
		t.Helper()
		return runOn(t, url, time.Minute, nil, args...)
	}
	mustOK := func(what string, res cliResult) cliResult {
		t.Helper()
		if res.code != 0 {
			t.Fatalf("%s: exit %d; stderr:\n%s", what, res.code, res.stderr)
		}
		return res
	}
	refused := func(what string, res cliResult, permission string) {
		t.Helper()
		if res.code != 1 {
			t.Errorf("%s: exit %d, want 1; stderr:\n%s", what, res.code, res.stderr)
			return
		}
		if !strings.Contains(res.stderr, "access refused") || !strings.Contains(res.stderr, permission) {
			t.Errorf("%s: the message does not say access refused (%s):\n%s", what, permission, res.stderr)
		}
		if strings.Contains(res.stderr, prodPW) {
			t.Errorf("%s: password shown", what)
		}
		t.Logf("%s: %s", what, strings.TrimSpace(res.stderr))
	}

	// The operator declares the topology.
	mustOK("operator: topology declare", run(opURL, "topology", "declare", "--queue", q))

	// The producer enqueues, now and later, without declaring anything.
	id := strings.TrimSpace(mustOK("producer: enqueue --no-declare", run(prodURL, "enqueue", "--no-declare", "--queue", q, "--type", "fail", "--payload", `{"n":1}`)).stdout)
	mustOK("producer: delayed enqueue", run(prodURL, "enqueue", "--no-declare", "--queue", q, "--type", "ok", "--delay", "1s"))
	// ...and is refused everything else.
	refused("producer: enqueue that declares", run(prodURL, "enqueue", "--queue", q, "--type", "ok"), "configure permission")
	refused("producer: worker", run(prodURL, "worker", "--no-declare", "--queue", q, "--exec", "true"), "read permission on the queue")
	refused("producer: dlq replay", run(prodURL, "dlq", "replay", "--queue", q, "--all"), "configure permission")
	refused("producer: dlq purge", run(prodURL, "dlq", "purge", "--queue", q, "--all", "--yes"), "configure permission")
	refused("producer: dlq list", run(prodURL, "dlq", "list", "--queue", q), "configure permission")

	// The worker consumes, retries through the delay levels, and
	// dead-letters (--max-attempts 2: the "fail" task ends in orders.dlq).
	dir := t.TempDir()
	wk := startOn(t, workURL, nil, "worker", "--no-declare", "--queue", q, "--exec", handlerScript(t, dir),
		"--max-attempts", "2", "--retry-base", "1s", "--retry-cap", "1s")
	wk.waitLog(30*time.Second, `msg="job dead-lettered"`, "task_id="+id)
	wk.waitLog(30*time.Second, `msg="job succeeded"`)
	if wk.log.count(`msg="job retrying"`, "task_id="+id) != 1 {
		t.Errorf("the failing task was not retried once:\n%s", wk.log.String())
	}
	// The operator pauses the queue; the worker, which may declare
	// nothing, sees the pause and holds back a task enqueued meanwhile,
	// and takes it once the operator resumes. The producer may not pause.
	// The worker may not declare the heartbeat exchange: it says so once,
	// and runs on.
	refused("producer: queue pause", run(prodURL, "queue", "pause", q), "configure permission")
	mustOK("operator: queue pause", run(opURL, "queue", "pause", q))
	wk.waitLog(10*time.Second, "worker: queue paused", "queue="+q)
	held := strings.TrimSpace(mustOK("producer: enqueue while paused", run(prodURL, "enqueue", "--no-declare", "--queue", q, "--type", "ok")).stdout)
	select {
	case <-wk.done:
		t.Fatalf("the worker exited while the queue was paused:\n%s", wk.log.String())
	case <-time.After(1500 * time.Millisecond):
	}
	if wk.log.count("task_id="+held) != 0 {
		t.Fatalf("the worker took a task of the paused queue:\n%s", wk.log.String())
	}
	mustOK("operator: queue resume", run(opURL, "queue", "resume", q))
	wk.waitLog(30*time.Second, `msg="job succeeded"`, "task_id="+held)
	if n := wk.log.count("worker: heartbeats off"); n != 1 {
		t.Errorf("the worker said %d times that heartbeats are off, want once:\n%s", n, wk.log.String())
	}
	wk.signal(syscall.SIGTERM)
	if code := wk.wait(30 * time.Second); code != 0 {
		t.Fatalf("worker exit %d", code)
	}
	refused("worker: dlq purge", run(workURL, "dlq", "purge", "--queue", q, "--all", "--yes"), "configure permission")

	// The operator lists, replays and purges dead letters.
	list := mustOK("operator: dlq list", run(opURL, "dlq", "list", "--queue", q, "--output", "json"))
	if !strings.Contains(list.stdout, id) {
		t.Fatalf("operator: dlq list lacks %s:\n%s", id, list.stdout)
	}
	// Export and import, with the operator's permissions only: the
	// re-import finds its one dead letter already there.
	exported := filepath.Join(t.TempDir(), "dead.ndjson")
	mustOK("operator: dlq export", run(opURL, "dlq", "export", "--queue", q, "--file", exported))
	imp := mustOK("operator: dlq import", run(opURL, "dlq", "import", "--queue", q, "--file", exported, "--output", "json"))
	if !strings.Contains(strings.Join(strings.Fields(imp.stdout), ""), `"imported":0,"duplicates":1`) {
		t.Errorf("operator: dlq import of what is already there: %s", imp.stdout)
	}
	refused("producer: dlq export", run(prodURL, "dlq", "export", "--queue", q, "--file", filepath.Join(t.TempDir(), "p.ndjson")), "configure permission")
	refused("producer: dlq import", run(prodURL, "dlq", "import", "--queue", q, "--file", exported), "configure permission")
	mustOK("operator: dlq replay", run(opURL, "dlq", "replay", "--queue", q, "--id", id))
	conn := dialNode(t, opURL)
	eventually(t, 10*time.Second, func() bool {
		st, err := broker.Inspect(context.Background(), conn, q)
		return err == nil && st.Ready == 1
	}, "the replayed task is not back in %s", q)
	mustOK("operator: queues", run(opURL, "queues", "--queue", q))

	// A dashboard with the documented "dashboard" permissions hears a
	// worker that holds the "worker with heartbeats" ones, lists dead
	// letters, and pauses and resumes the queue.
	c, w, r = workerBeatPerms(q)
	beatURL := n.URLFor("lp-worker-beats", addUser(t, n, "lp-worker-beats", vhost, c, w, r), vhost)
	c, w, r = dashboardPerms(q)
	dashConn := dialNode(t, n.URLFor("lp-dashboard", addUser(t, n, "lp-dashboard", vhost, c, w, r), vhost))
	dctx, stopDash := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stopDash()
	dash, err := dashboard.New(dctx, dashConn, dashboard.Config{Queues: []string{q}, SampleInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("dashboard user: dashboard.New: %v", err)
	}
	defer dash.Close(context.Background())
	dashRan := make(chan error, 1)
	go func() { dashRan <- dash.Run(dctx) }()
	ts := httptest.NewServer(dash)
	defer ts.Close()
	api := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(dctx, method, ts.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("dashboard user: %s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	wb := startOn(t, beatURL, nil, "worker", "--no-declare", "--queue", q, "--exec", "true", "--heartbeat-interval", "200ms")
	eventually(t, 20*time.Second, func() bool {
		code, body := api("GET", "/api/v1/workers")
		return code == http.StatusOK && strings.Contains(body, `"queues":["`+q+`"]`) && strings.Contains(body, `"gone":false`)
	}, "the dashboard user does not list the worker with heartbeats")
	if n := wb.log.count("worker: heartbeats off"); n != 0 {
		t.Errorf("the worker with heartbeat permissions turned heartbeats off:\n%s", wb.log.String())
	}
	for _, call := range []string{"GET /api/v1/queues/" + q + "/dead-letters", "POST /api/v1/queues/" + q + "/pause", "POST /api/v1/queues/" + q + "/resume"} {
		method, path, _ := strings.Cut(call, " ")
		if code, body := api(method, path); code != http.StatusOK {
			t.Errorf("dashboard user: %s: %d %s", call, code, body)
		}
	}
	wb.signal(syscall.SIGTERM)
	if code := wb.wait(30 * time.Second); code != 0 {
		t.Fatalf("worker with heartbeats: exit %d", code)
	}
	stopDash()
	if err := <-dashRan; err != nil {
		t.Errorf("dashboard user: Run: %v", err)
	}

	// A user with no permissions on the vhost is refused at connect, and
	// told so (not told to check its password).
	nobodyPW := "pw-nobody-" + randomHex(4)
	ctl(t, n, "add_user", "lp-nobody", nobodyPW)
	t.Cleanup(func() { _, _ = n.Ctl(context.Background(), "delete_user", "lp-nobody") })
	res := run(n.URLFor("lp-nobody", nobodyPW, vhost), "enqueue", "--no-declare", "--queue", q, "--type", "t")
	if res.code != 1 || !strings.Contains(res.stderr, "access refused to the vhost") || strings.Contains(res.stderr, nobodyPW) {
		t.Errorf("no permissions on the vhost: exit %d; stderr:\n%s", res.code, res.stderr)
	}
	t.Logf("no permissions on the vhost: %s", strings.TrimSpace(res.stderr))
}
