//go:build integration

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testnode"
)

// The tests in this file need a broker of their own: one they stop and
// start, with a TLS listener, whose users and vhosts they change. They
// share one private node (see internal/testnode), started on first use and
// stopped by TestMain. They never run in parallel with one another.

var (
	privateOnce sync.Once
	privatePKI  testnode.Certs
	privateDir  string
	privateErr  error
	private     = &testnode.Lazy{}
)

// privateNode returns the shared private node and its PKI.
func privateNode(t *testing.T) (*testnode.Node, testnode.Certs) {
	t.Helper()
	privateOnce.Do(func() {
		if privateDir, privateErr = os.MkdirTemp("", "warren-cli-pki-"); privateErr != nil {
			return
		}
		if privatePKI, privateErr = testnode.GenerateCerts(privateDir, ""); privateErr != nil {
			return
		}
		private.Options = testnode.Options{TLS: privatePKI.TLS()}
	})
	if privateErr != nil {
		t.Fatal(privateErr)
	}
	return private.Get(t), privatePKI
}

func closePrivateNode() {
	private.Close()
	if privateDir != "" {
		os.RemoveAll(privateDir)
	}
}

// ctl runs rabbitmqctl against the private node.
func ctl(t *testing.T, n *testnode.Node, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := n.Ctl(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// addUser creates a user with a password unique to the test, with the
// given permissions on vhost, and removes it when the test ends.
func addUser(t *testing.T, n *testnode.Node, name, vhost, configure, write, read string) (password string) {
	t.Helper()
	password = "pw-" + randomHex(8)
	ctl(t, n, "add_user", name, password)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = n.Ctl(ctx, "delete_user", name)
	})
	ctl(t, n, "set_permissions", "-p", vhost, name, configure, write, read)
	return password
}

// runOn runs the binary to its end against url (given in WARREN_URL, not on
// the command line), with extra environment.
func runOn(t *testing.T, url string, d time.Duration, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cliEnv(append([]string{"WARREN_URL=" + url}, env...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("warren %s: still running after %s; stderr:\n%s", strings.Join(args, " "), d, res.stderr)
	}
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("warren %s: %v", strings.Join(args, " "), err)
	}
	res.code = cmd.ProcessState.ExitCode()
	return res
}

// startOn starts the binary in the background against url (in WARREN_URL).
func startOn(t *testing.T, url string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = cliEnv(append([]string{"WARREN_URL=" + url}, env...)...)
	p := &proc{t: t, cmd: cmd, log: &logLines{}, done: make(chan struct{})}
	cmd.Stdout = io.Discard
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("log of warren %s:\n%s", strings.Join(args, " "), tail(p.log.String(), 8000))
		}
	})
	return p
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// dialNode connects to the private node for checks of the test's own.
func dialNode(t *testing.T, url string) *broker.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := broker.Dial(ctx, url, broker.Config{Name: "test " + t.Name(), Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// scrape fetches url and returns status and body.
func scrape(url string) (int, string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// metricValue reads one sample from a Prometheus text exposition:
// series is the name with its labels as printed ("warren_broker_connected",
// `warren_tasks_finished_total{outcome="succeeded",queue="q",type="ok"}`).
func metricValue(body, series string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// seriesName writes a series as the text exposition does: labels sorted.
func seriesName(name string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, labels[k]))
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// grepWarren keeps the warren_ samples of an exposition, for messages.
func grepWarren(body string) string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "warren_") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

var addrRE = regexp.MustCompile(`"addr":"([^"]+)"`)

// opsAddr waits for the worker's log line that gives the address of its
// metrics listener, and returns http://ADDR.
func opsAddr(t *testing.T, w *proc) string {
	t.Helper()
	var addr string
	eventually(t, 20*time.Second, func() bool {
		if m := addrRE.FindStringSubmatch(w.log.String()); m != nil {
			addr = m[1]
			return true
		}
		return w.exited()
	}, "no metrics address logged")
	if addr == "" {
		t.Fatalf("worker exited %d before serving metrics", w.code)
	}
	return "http://" + addr
}

// TestWorkerProbesMetricsAndLogsAcrossABrokerRestart runs a worker with
// --metrics-addr on the private node, then stops the node and starts it
// again. /readyz goes 503 with the reason while the broker is away and 200
// once the worker has reconnected by itself; /healthz stays 200; the
// metrics follow the outcomes and the connection. Its JSON log carries the
// fixed task keys, and its password appears nowhere.
func TestWorkerProbesMetricsAndLogsAcrossABrokerRestart(t *testing.T) {
	n, _ := privateNode(t)
	password := addUser(t, n, "ops-worker", "/", ".*", ".*", ".*")
	url := n.URLFor("ops-worker", password, "/")
	q := "ops-" + randomHex(4)
	dir := t.TempDir()
	h := handlerScript(t, dir)

	w := startOn(t, url, nil, "--log-format", "json", "--log-level", "debug",
		"worker", "--queue", q, "--exec", h, "--metrics-addr", "127.0.0.1:0",
		"--max-attempts", "2", "--retry-base", "1s", "--retry-cap", "1s")
	base := opsAddr(t, w)
	probe := func(path string) (int, string) {
		code, body, err := scrape(base + path)
		if err != nil {
			return 0, err.Error()
		}
		return code, body
	}
	eventually(t, 30*time.Second, func() bool { c, _ := probe("/readyz"); return c == 200 }, "/readyz never 200")

	enq := func(typ string) string {
		t.Helper()
		r := runOn(t, url, 30*time.Second, nil, "enqueue", "--queue", q, "--type", typ, "--payload", `{"x":1}`)
		if r.code != 0 {
			t.Fatalf("enqueue %s: exit %d\n%s", typ, r.code, r.stderr)
		}
		return strings.TrimSpace(r.stdout)
	}
	okID := enq("ok")
	enq("fail") // retried once, then dead-lettered (--max-attempts 2)
	enq("perm") // dead-lettered at once
	series := func(name, typ string, kv ...string) string {
		labels := map[string]string{"queue": q, "type": typ}
		for i := 0; i+1 < len(kv); i += 2 {
			labels[kv[i]] = kv[i+1]
		}
		return seriesName(name, labels)
	}
	want := map[string]float64{
		series("warren_tasks_finished_total", "ok", "outcome", "succeeded"):                1,
		series("warren_tasks_finished_total", "fail", "outcome", "retried"):                1,
		series("warren_tasks_finished_total", "fail", "outcome", "dead_lettered"):          1,
		series("warren_tasks_finished_total", "perm", "outcome", "dead_lettered"):          1,
		series("warren_tasks_dead_lettered_total", "perm", "reason", "permanent_error"):    1,
		series("warren_tasks_dead_lettered_total", "fail", "reason", "attempts_exhausted"): 1,
		series("warren_tasks_failed_total", "fail"):                                        2,
		series("warren_tasks_started_total", "fail"):                                       2,
		"warren_broker_connected": 1,
		"warren_reconnects_total": 0,
	}
	var body string
	eventually(t, 30*time.Second, func() bool {
		_, body = probe("/metrics")
		for s, v := range want {
			if got, ok := metricValue(body, s); !ok || got != v {
				return false
			}
		}
		return true
	}, "metrics never reached %v; last scrape:\n%s", want, grepWarren(body))

	// The broker goes away.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted { // leave the node running for the other tests
			_ = n.Start(context.Background())
		}
	}()
	var readyBody string
	eventually(t, 30*time.Second, func() bool {
		var c int
		c, readyBody = probe("/readyz")
		return c == http.StatusServiceUnavailable
	}, "/readyz not 503 while the broker is down")
	if !strings.Contains(readyBody, "not connected") && !strings.Contains(readyBody, "consuming") {
		t.Errorf("/readyz body %q does not say why", readyBody)
	}
	if c, _ := probe("/healthz"); c != 200 {
		t.Errorf("/healthz %d while the broker is down, want 200", c)
	}
	eventually(t, 10*time.Second, func() bool {
		_, body = probe("/metrics")
		v, ok := metricValue(body, "warren_broker_connected")
		return ok && v == 0
	}, "warren_broker_connected not 0 while the broker is down")

	// The broker comes back: the worker reconnects by itself.
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	restarted = true
	eventually(t, 60*time.Second, func() bool { c, _ := probe("/readyz"); return c == 200 }, "/readyz not 200 after the broker came back")
	_, body = probe("/metrics")
	if v, _ := metricValue(body, "warren_reconnects_total"); v < 1 {
		t.Errorf("warren_reconnects_total %v after a reconnect", v)
	}
	if v, _ := metricValue(body, "warren_broker_connected"); v != 1 {
		t.Errorf("warren_broker_connected %v after the reconnect", v)
	}
	again := enq("ok")
	w.waitLog(30*time.Second, `"msg":"job succeeded"`, again)

	w.signal(syscall.SIGTERM)
	if code := w.wait(30 * time.Second); code != 0 {
		t.Fatalf("worker exit %d after SIGTERM, want 0", code)
	}

	// The log: JSON lines, fixed keys on task lines, no password anywhere.
	log := w.log.String()
	if strings.Contains(log, password) {
		t.Fatalf("the password appears in the worker's log")
	}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := map[string]bool{}
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("not a JSON log line: %q", sc.Text())
			continue
		}
		msg, _ := rec["msg"].(string)
		switch msg {
		case "job succeeded", "job retrying", "job dead-lettered":
			for _, k := range []string{"task_id", "type", "queue", "attempt"} {
				if _, ok := rec[k]; !ok {
					t.Errorf("%q line without %s: %s", msg, k, sc.Text())
				}
			}
			if msg != "job succeeded" && rec["err"] == nil {
				t.Errorf("%q line without err: %s", msg, sc.Text())
			}
			seen[msg] = true
		}
		if rec["task_id"] == okID && msg == "job succeeded" && rec["queue"] != q {
			t.Errorf("queue %v in %s", rec["queue"], sc.Text())
		}
	}
	for _, msg := range []string{"job succeeded", "job retrying", "job dead-lettered", "broker: connection lost", "broker: reconnected"} {
		if !seen[msg] && !strings.Contains(log, `"msg":"`+msg+`"`) {
			t.Errorf("no %q line in the log", msg)
		}
	}
}

// TestWrongPasswordNeverShown: a worker given a wrong password exits 1 at
// once (no retry loop), says the access was refused, and never prints the
// password, even at debug level.
func TestWrongPasswordNeverShown(t *testing.T) {
	n, _ := privateNode(t)
	addUser(t, n, "ops-wrongpw", "/", ".*", ".*", ".*")
	secret := "wrong-" + randomHex(8)
	for _, format := range []string{"text", "json"} {
		r := runOn(t, n.URLFor("ops-wrongpw", secret, "/"), time.Minute, nil,
			"--log-level", "debug", "--log-format", format, "worker", "--queue", "q", "--exec", "true")
		if r.code != 1 {
			t.Fatalf("%s: exit %d, want 1; stderr:\n%s", format, r.code, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Fatalf("%s: the password is shown:\n%s", format, r.stderr)
		}
		if !strings.Contains(r.stderr, "access refused") || !strings.Contains(r.stderr, "check the user and password") {
			t.Errorf("%s: unclear message:\n%s", format, r.stderr)
		}
	}
}

// TestExecEnvironmentHasNoSecrets: the --exec command sees neither
// WARREN_URL nor the URL read from --url-file, nor any password.
func TestExecEnvironmentHasNoSecrets(t *testing.T) {
	n, _ := privateNode(t)
	password := addUser(t, n, "ops-exec", "/", ".*", ".*", ".*")
	url := n.URLFor("ops-exec", password, "/")
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "url")
	if err := os.WriteFile(urlFile, []byte(url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "env.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nenv > \"$(dirname \"$0\")/env-$WARREN_TASK_ID\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"WARREN_URL", "--url-file", "WARREN_URL_FILE"} {
		t.Run(mode, func(t *testing.T) {
			q := "exec-" + randomHex(4)
			args := []string{"--log-format", "json", "worker", "--queue", q, "--exec", script}
			var env []string
			runURL := url
			switch mode {
			case "--url-file":
				args = append([]string{"--url-file", urlFile}, args...)
				runURL = "" // cliEnv drops WARREN_*; set an empty one
			case "WARREN_URL_FILE":
				env = []string{"WARREN_URL_FILE=" + urlFile}
				runURL = ""
			}
			env = append(env, "WARREN_DB_PASSWORD=also-"+password, "WARREN_API_TOKEN=tok")
			w := startOn(t, runURL, env, args...)
			w.waitLog(30*time.Second, `"msg":"worker: started"`)
			r := runOn(t, url, 30*time.Second, nil, "enqueue", "--queue", q, "--type", "t")
			if r.code != 0 {
				t.Fatalf("enqueue: exit %d\n%s", r.code, r.stderr)
			}
			id := strings.TrimSpace(r.stdout)
			w.waitLog(30*time.Second, `"msg":"job succeeded"`, id)
			b, err := os.ReadFile(filepath.Join(dir, "env-"+id))
			if err != nil {
				t.Fatal(err)
			}
			envDump := string(b)
			if strings.Contains(envDump, password) || strings.Contains(envDump, "127.0.0.1:"+strconv.Itoa(n.Port)) {
				t.Fatalf("the command's environment holds the broker URL or password:\n%s", envDump)
			}
			for _, name := range []string{"WARREN_URL=", "WARREN_URL_FILE=", "WARREN_DB_PASSWORD=", "WARREN_API_TOKEN="} {
				if strings.Contains(envDump, "\n"+name) || strings.HasPrefix(envDump, name) {
					t.Errorf("%s reached the command", strings.TrimSuffix(name, "="))
				}
			}
			if !strings.Contains(envDump, "WARREN_TASK_ID="+id) {
				t.Errorf("the task's variables are missing:\n%s", envDump)
			}
			w.signal(syscall.SIGTERM)
			if code := w.wait(30 * time.Second); code != 0 {
				t.Fatalf("worker exit %d", code)
			}
		})
	}
}
