//go:build integration

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// bin is the warren binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "warren-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "warren")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	closePrivateNode()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cliEnv is the environment of the binary: the test's, without any
// WARREN_* variable that would change its flags, plus extra.
func cliEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WARREN_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

type cliResult struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

// warrenRun runs the binary to its end (bounded by d) with --url of the
// test broker unless args set one.
func warrenRun(t *testing.T, d time.Duration, stdin io.Reader, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if !hasURL(args) {
		args = append([]string{"--url", testbroker.URL()}, args...)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cliEnv()
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
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

func hasURL(args []string) bool {
	for _, a := range args {
		if a == "--url" || strings.HasPrefix(a, "--url=") {
			return true
		}
	}
	return false
}

// proc is a warren process running in the background (a worker).
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  *logLines
	done chan struct{}
	code int
}

// startWarren starts the binary in the background; the test's cleanup
// kills it if it is still running.
func startWarren(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	args = append([]string{"--url", testbroker.URL()}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = cliEnv(env...)
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
			t.Logf("log of warren %s:\n%s", strings.Join(args[2:], " "), tail(p.log.String(), 8000))
		}
	})
	return p
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *proc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(d):
		p.t.Fatalf("warren still running after %s", d)
		return -1
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !p.exited() {
		p.t.Fatal(err)
	}
}

// waitLog waits until the process has logged a line matching every part.
func (p *proc) waitLog(d time.Duration, parts ...string) {
	p.t.Helper()
	eventually(p.t, d, func() bool { return p.log.count(parts...) > 0 }, "no log line with %q", parts)
}

// logLines collects a process's stderr.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// count returns how many lines contain every part.
func (l *logLines) count(parts ...string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok {
			n++
		}
	}
	return n
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// eventually polls cond every 25ms until it holds, failing after d.
func eventually(t *testing.T, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: "+format, append([]any{d}, args...)...)
		}
		<-tick.C
	}
}

// getOne takes one message from queue with a bare basic.get, waiting up to d.
func getOne(t *testing.T, conn *broker.Conn, queue string, d time.Duration) amqp.Delivery {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var msg amqp.Delivery
	eventually(t, d, func() bool {
		m, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("basic.get %s: %v", queue, err)
		}
		msg = m
		return ok
	}, "no message in %s", queue)
	return msg
}

// getAll takes every message now ready in queue.
func getAll(t *testing.T, conn *broker.Conn, queue string) []amqp.Delivery {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var out []amqp.Delivery
	for {
		m, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("basic.get %s: %v", queue, err)
		}
		if !ok {
			return out
		}
		out = append(out, m)
	}
}

func ready(t *testing.T, conn *broker.Conn, queue string) int {
	t.Helper()
	st, err := broker.Inspect(context.Background(), conn, queue)
	if err != nil {
		t.Fatalf("inspect %s: %v", queue, err)
	}
	return st.Ready
}

// lines returns the non-empty lines of a file, or nil if it does not exist.
func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func contains(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestEnqueuePrintsIDAndQueuesTask(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	r := warrenRun(t, 30*time.Second, nil, "enqueue", "--queue", q, "--type", "email:send",
		"--payload", `{"to": "a@example.com"}`, "--header", "tenant=acme", "--max-attempts", "4")
	if r.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	if !uuidRE.MatchString(id) {
		t.Fatalf("stdout %q is not a UUIDv7 task ID", r.stdout)
	}
	m := getOne(t, conn, q, 5*time.Second)
	if m.MessageId != id || m.Type != "email:send" || string(m.Body) != `{"to": "a@example.com"}` || m.ContentType != "application/json" {
		t.Fatalf("queued message: id=%q type=%q body=%q ct=%q", m.MessageId, m.Type, m.Body, m.ContentType)
	}
	if m.Headers["tenant"] != "acme" {
		t.Errorf("header tenant = %v", m.Headers["tenant"])
	}
	if n, _ := broker.HeaderInt(m.Headers, warren.HeaderMaxAttempts); n != 4 {
		t.Errorf("max attempts header = %v", m.Headers[warren.HeaderMaxAttempts])
	}

	// --id, a payload from stdin, and a delay.
	r = warrenRun(t, 30*time.Second, strings.NewReader(`[1,2,3]`), "enqueue", "--queue", q, "--type", "t",
		"--payload-file", "-", "--id", "my-id-1", "--delay", "1s")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "my-id-1" {
		t.Fatalf("exit %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	m = getOne(t, conn, q, 10*time.Second)
	if m.MessageId != "my-id-1" || string(m.Body) != `[1,2,3]` {
		t.Fatalf("delayed message: id=%q body=%q", m.MessageId, m.Body)
	}
}

func TestEnqueueBadInputExitsTwo(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"invalid JSON", []string{"enqueue", "--queue", q, "--type", "t", "--payload", "{nope"}, "invalid JSON payload"},
		{"unknown flag", []string{"enqueue", "--queue", q, "--type", "t", "--frobnicate"}, "unknown flag"},
		{"bad duration", []string{"enqueue", "--queue", q, "--type", "t", "--delay", "10 minutes"}, "--delay"},
		{"invalid queue name", []string{"enqueue", "--queue", "amq.nope", "--type", "t"}, "invalid queue name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := warrenRun(t, 30*time.Second, nil, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, "warren: ") || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, want 2 with %q; stderr:\n%s", r.code, tt.want, r.stderr)
			}
		})
	}
	// Nothing was declared, let alone enqueued.
	if st, err := broker.Inspect(context.Background(), conn, q); !errors.Is(err, broker.ErrQueueNotFound) {
		t.Fatalf("bad commands touched the broker: queue %s: %+v, %v", q, st, err)
	}
}

func TestWrongURLExitsOneWithoutPassword(t *testing.T) {
	r := warrenRun(t, 30*time.Second, nil, "--url", "amqp://guest:s3cr3tpw@127.0.0.1:1/",
		"enqueue", "--queue", "q", "--type", "t")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr+r.stdout, "s3cr3tpw") {
		t.Fatalf("the password is shown:\n%s", r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "warren: ") || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("unclear message:\n%s", r.stderr)
	}
	if r.elapsed > 10*time.Second {
		t.Errorf("took %s to give up", r.elapsed)
	}
	t.Logf("gave up after %s: %s", r.elapsed.Round(time.Millisecond), strings.TrimSpace(r.stderr))

	// A wrong password: refused, not retried, not shown.
	r = warrenRun(t, 30*time.Second, nil, "--url", "amqp://guest:s3cr3tpw@"+hostOf(testbroker.URL())+"/",
		"enqueue", "--queue", "q", "--type", "t")
	if r.code != 1 || strings.Contains(r.stderr, "s3cr3tpw") {
		t.Fatalf("wrong password: exit %d; stderr:\n%s", r.code, r.stderr)
	}
}

func hostOf(rawURL string) string {
	s := rawURL[strings.Index(rawURL, "://")+3:]
	if i := strings.LastIndex(s, "@"); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSuffix(s, "/")
}

func TestEnqueueNoDeclareMissingQueue(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn) // never declared
	r := warrenRun(t, 30*time.Second, nil, "enqueue", "--queue", q, "--type", "t", "--no-declare")
	if r.code != 1 || !strings.Contains(r.stderr, "queue "+q+" does not exist") {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout %q: no ID must be printed for a task not enqueued", r.stdout)
	}
}

// writeJobs writes n NDJSON jobs of type typ to a new file.
func writeJobs(t testing.TB, n int, typ string) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"type":%q,"payload":{"n":%d,"pad":"%s"}}`+"\n", typ, i, strings.Repeat("x", 200))
	}
	path := filepath.Join(t.TempDir(), "jobs.ndjson")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var summaryRE = regexp.MustCompile(`enqueued (\d+), failed (\d+) in [0-9.]+s \((\d+)/s\)`)

func TestEnqueueFromFile(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	path := writeJobs(t, 1000, "bulk")
	r := warrenRun(t, 60*time.Second, nil, "enqueue", "--queue", q, "--from-file", path, "--print-ids")
	if r.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	sum := summaryRE.FindStringSubmatch(r.stderr)
	if sum == nil || sum[1] != "1000" || sum[2] != "0" {
		t.Fatalf("summary: %q", r.stderr)
	}
	t.Logf("1,000 jobs: %s (wall %s with process start, dial and declare)", strings.TrimSpace(sum[0]), r.elapsed.Round(time.Millisecond))
	ids := strings.Fields(r.stdout)
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	if len(ids) != 1000 || len(seen) != 1000 {
		t.Fatalf("--print-ids printed %d IDs (%d distinct), want 1000", len(ids), len(seen))
	}
	eventually(t, 10*time.Second, func() bool { return ready(t, conn, q) == 1000 }, "queue holds %d, want 1000", ready(t, conn, q))
	// In input order.
	msgs := getAll(t, conn, q)
	for i, m := range msgs[:10] {
		if m.MessageId != ids[i] || !strings.Contains(string(m.Body), fmt.Sprintf(`"n":%d,`, i)) {
			t.Fatalf("message %d: id %s body %.20s, want id %s", i, m.MessageId, m.Body, ids[i])
		}
	}
}

func TestEnqueueFromStdinWithBadLines(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	other := testbroker.Queue(t, conn)
	// A line's queue must exist: only --queue is declared.
	if r := warrenRun(t, 30*time.Second, nil, "topology", "declare", "--queue", other); r.code != 0 {
		t.Fatalf("topology declare: exit %d\n%s", r.code, r.stderr)
	}
	input := strings.Join([]string{
		`{"type":"a","payload":{"i":1}}`,
		``,
		`{"type":"b","payload":"text","id":"fixed-id","max_attempts":2}`,
		`{"type":"c","payload":{}`, // line 4: malformed
		`{"payload":{}}`,           // line 5: no type
		`{"type":"d","queue":"` + other + `"}`,
		`{"type":"e","delay":"forever"}`, // line 7
		`   `,
		`{"type":"f"}`,
	}, "\n")
	r := warrenRun(t, 60*time.Second, strings.NewReader(input), "enqueue", "--queue", q, "--from-file", "-")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (some lines failed); stderr:\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"line 4:", "line 5:", "line 7:", "enqueued 4, failed 3"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if r.stdout != "" {
		t.Errorf("IDs printed without --print-ids: %q", r.stdout)
	}
	eventually(t, 10*time.Second, func() bool { return ready(t, conn, q) == 3 && ready(t, conn, other) == 1 },
		"queues hold %d and %d, want 3 and 1", ready(t, conn, q), ready(t, conn, other))
	var types []string
	for _, m := range getAll(t, conn, q) {
		types = append(types, m.Type)
		if m.Type == "b" && (m.MessageId != "fixed-id" || string(m.Body) != `"text"`) {
			t.Errorf("line 3: id %q body %q", m.MessageId, m.Body)
		}
	}
	// Batches are published concurrently (pipelined): the input's order
	// holds within a batch, not across batches, and the slow check of
	// line 6's queue can split these lines into two.
	sort.Strings(types)
	if strings.Join(types, ",") != "a,b,f" {
		t.Errorf("types %v, want a, b and f", types)
	}
}

// handlerScript writes a shell handler into dir and returns its path. It
// appends its task ID to dir/started, then by type:
//
//	ok    appends the ID to dir/done, exit 0
//	perm  exit 65
//	fail  exit 1
//	block waits until dir/release exists, appends the ID to dir/done, exit 0
func handlerScript(t *testing.T, dir string) string {
	t.Helper()
	script := `#!/bin/sh
dir="$(dirname "$0")"
payload=$(cat)
echo "$WARREN_TASK_ID" >> "$dir/started"
case "$WARREN_TASK_TYPE" in
ok) echo "$WARREN_TASK_ID" >> "$dir/done"; echo "did $payload" ;;
perm) echo "cannot parse $payload" >&2; exit 65 ;;
fail) echo "downstream down (attempt $WARREN_TASK_ATTEMPT)" >&2; exit 1 ;;
block)
	while [ ! -e "$dir/release" ]; do sleep 0.02; done
	echo "$WARREN_TASK_ID" >> "$dir/done" ;;
*) exit 65 ;;
esac
`
	path := filepath.Join(dir, "handler.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func enqueue(t *testing.T, q, typ string, extra ...string) string {
	t.Helper()
	r := warrenRun(t, 30*time.Second, nil, append([]string{"enqueue", "--queue", q, "--type", typ, "--payload", `{"x":1}`}, extra...)...)
	if r.code != 0 {
		t.Fatalf("enqueue: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	return strings.TrimSpace(r.stdout)
}

func TestWorkerExecOutcomes(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	dir := t.TempDir()
	h := handlerScript(t, dir)
	okID := enqueue(t, q, "ok")
	permID := enqueue(t, q, "perm")
	failID := enqueue(t, q, "fail")

	w := startWarren(t, nil, "worker", "--queue", q, "--exec", h, "--retry-base", "1s", "--retry-cap", "1s", "--max-attempts", "2")
	w.waitLog(20*time.Second, `msg="job succeeded"`, "task_id="+okID, "queue="+q, "attempt=1")
	w.waitLog(20*time.Second, `msg="job dead-lettered"`, "task_id="+permID, "reason=permanent_error", "attempt=1")
	w.waitLog(20*time.Second, `msg="job retrying"`, "task_id="+failID, "attempt=1")
	w.waitLog(20*time.Second, `msg="job dead-lettered"`, "task_id="+failID, "reason=attempts_exhausted", "attempt=2")
	if got := contains(lines(t, filepath.Join(dir, "done")), okID); got != 1 {
		t.Errorf("ok task done %d times", got)
	}
	if n := w.log.count("task_id="+permID, "job retrying"); n != 0 {
		t.Errorf("exit 65 was retried")
	}

	dead := map[string]amqp.Delivery{}
	eventually(t, 10*time.Second, func() bool {
		for _, m := range getAll(t, conn, warren.DeadLetterQueue(q)) {
			dead[m.MessageId] = m
		}
		return len(dead) == 2
	}, "dead-letter queue holds %d, want 2", len(dead))
	if r := broker.HeaderString(dead[permID].Headers, warren.HeaderDeadReason); r != string(warren.ReasonPermanent) {
		t.Errorf("perm: reason %q", r)
	}
	if e := broker.HeaderString(dead[permID].Headers, warren.HeaderError); !strings.Contains(e, "exited with status 65") || !strings.Contains(e, "cannot parse") {
		t.Errorf("perm: error %q lacks the status and stderr", e)
	}
	if r := broker.HeaderString(dead[failID].Headers, warren.HeaderDeadReason); r != string(warren.ReasonExhausted) {
		t.Errorf("fail: reason %q", r)
	}
	if e := broker.HeaderString(dead[failID].Headers, warren.HeaderError); !strings.Contains(e, "downstream down (attempt 2)") {
		t.Errorf("fail: error %q lacks stderr of attempt 2", e)
	}

	w.signal(syscall.SIGTERM)
	if code := w.wait(40 * time.Second); code != 0 {
		t.Fatalf("worker exit %d after SIGTERM, want 0", code)
	}
}

func TestWorkerDrainsInFlightOnSIGTERM(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	dir := t.TempDir()
	h := handlerScript(t, dir)
	id := enqueue(t, q, "block")

	w := startWarren(t, nil, "worker", "--queue", q, "--exec", h)
	eventually(t, 20*time.Second, func() bool { return contains(lines(t, filepath.Join(dir, "started")), id) == 1 }, "the job did not start")
	w.signal(syscall.SIGTERM)
	w.waitLog(10*time.Second, "worker: shutting down")
	if w.exited() {
		t.Fatal("the worker exited with a job in flight")
	}
	// Let the in-flight job finish; the worker exits after it.
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := w.wait(30 * time.Second); code != 0 {
		t.Fatalf("worker exit %d, want 0", code)
	}
	if n := contains(lines(t, filepath.Join(dir, "done")), id); n != 1 {
		t.Fatalf("the in-flight job completed %d times, want 1", n)
	}
	if w.log.count(`msg="job succeeded"`, "task_id="+id) != 1 {
		t.Error("no job succeeded line for the drained job")
	}
	if n := ready(t, conn, q); n != 0 {
		t.Errorf("%d messages left in the queue: the drained job was not acked", n)
	}
}

func TestWorkerKilledMidJobLosesNothing(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	dir := t.TempDir()
	h := handlerScript(t, dir)
	release := filepath.Join(dir, "release")
	// Should the first worker's handler outlive it, let it end.
	t.Cleanup(func() { _ = os.WriteFile(release, nil, 0o600) })
	id := enqueue(t, q, "block")

	w1 := startWarren(t, nil, "worker", "--queue", q, "--exec", h)
	eventually(t, 20*time.Second, func() bool { return contains(lines(t, filepath.Join(dir, "started")), id) == 1 }, "the job did not start")
	w1.signal(syscall.SIGKILL)
	w1.wait(10 * time.Second)

	w2 := startWarren(t, nil, "worker", "--queue", q, "--exec", h)
	eventually(t, 30*time.Second, func() bool { return contains(lines(t, filepath.Join(dir, "started")), id) == 2 },
		"the job was not delivered again after the worker died")
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w2.waitLog(20*time.Second, `msg="job succeeded"`, "task_id="+id)
	// The first worker's handler died with it (the kernel kills an --exec
	// command whose worker dies), so the job completed once, not twice.
	if n := contains(lines(t, filepath.Join(dir, "done")), id); n != 1 {
		t.Fatalf("the job completed %d times, want exactly 1", n)
	}
	if n := ready(t, conn, q); n != 0 {
		t.Errorf("%d messages left in the queue", n)
	}
	if n := ready(t, conn, warren.DeadLetterQueue(q)); n != 0 {
		t.Errorf("%d messages in the dead-letter queue", n)
	}
	w2.signal(syscall.SIGTERM)
	if code := w2.wait(30 * time.Second); code != 0 {
		t.Fatalf("worker 2 exit %d, want 0", code)
	}
}

func TestCrashLoopingJobIsDeadLetteredByDeliveryLimit(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	dir := t.TempDir()
	doneFile := filepath.Join(dir, "done")

	r := warrenRun(t, 30*time.Second, nil, "topology", "declare", "--queue", q, "--delivery-limit", "2")
	if r.code != 0 || !strings.Contains(r.stdout, "declared queue "+q) {
		t.Fatalf("topology declare: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	poison := enqueue(t, q, "poison", "--no-declare")
	var good []string
	for range 5 {
		good = append(good, enqueue(t, q, "good", "--no-declare"))
	}

	// The handler kills its worker ($PPID) for a poison task. It runs in
	// a process group of its own, so it outlives the worker: it exits.
	execCmd := `sh -c 'if [ "$WARREN_TASK_TYPE" = poison ]; then kill -9 $PPID; exit 1; fi; cat >/dev/null; echo "$WARREN_TASK_ID" >> "$DONE_FILE"'`
	allGood := func() bool {
		done := lines(t, doneFile)
		for _, id := range good {
			if contains(done, id) == 0 {
				return false
			}
		}
		return true
	}
	var (
		deadline = time.Now().Add(90 * time.Second)
		starts   int
		w        *proc
		dead     *amqp.Delivery
	)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	for dead == nil || !allGood() {
		if time.Now().After(deadline) {
			t.Fatalf("after %d worker starts: poison dead-lettered: %v, good jobs done: %v", starts, dead != nil, lines(t, doneFile))
		}
		if w == nil || w.exited() {
			if w != nil && w.code == 0 {
				t.Fatalf("worker exited 0 on its own")
			}
			if starts++; starts > 10 {
				t.Fatalf("the worker was started %d times", starts-1)
			}
			// One task at a time, so the tasks that share a worker with the
			// poison are not charged its deaths.
			w = startWarren(t, []string{"DONE_FILE=" + doneFile}, "worker", "--queue", q, "--exec", execCmd,
				"--concurrency", "1", "--prefetch", "1", "--delivery-limit", "2")
		}
		if dead == nil {
			m, ok, err := ch.Get(warren.DeadLetterQueue(q), true)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				dead = &m
			}
		}
		select {
		case <-w.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Logf("poison dead-lettered after %d worker starts", starts)
	if dead.MessageId != poison {
		t.Fatalf("dead-letter queue holds %s (%s), want the poison %s", dead.MessageId, dead.Type, poison)
	}
	deaths, _ := dead.Headers["x-death"].([]any)
	if len(deaths) == 0 {
		t.Fatalf("no x-death header: %v", dead.Headers)
	}
	first, _ := deaths[0].(amqp.Table)
	if first["reason"] != "delivery_limit" || first["queue"] != q {
		t.Fatalf("x-death = %v, want reason delivery_limit from %s", first, q)
	}
	if starts < 3 {
		t.Errorf("the poison killed %d workers; with --delivery-limit 2 it is delivered 3 times", starts)
	}
	done := lines(t, doneFile)
	if contains(done, poison) != 0 {
		t.Error("the poison task completed")
	}
	for _, id := range good {
		if contains(done, id) == 0 {
			t.Errorf("good task %s not done", id)
		}
	}
	if n := ready(t, conn, warren.DeadLetterQueue(q)); n != 0 {
		t.Errorf("%d more messages in the dead-letter queue", n)
	}
	w.signal(syscall.SIGTERM)
	if code := w.wait(30 * time.Second); code != 0 {
		t.Fatalf("last worker exit %d, want 0", code)
	}
}

// TestThroughput enqueues 10,000 jobs with --from-file and drains them with
// one worker running a trivial command, and logs both rates.
func TestThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	const n = 10000
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	path := writeJobs(t, n, "bulk")

	r := warrenRun(t, 120*time.Second, nil, "enqueue", "--queue", q, "--from-file", path)
	if r.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	sum := summaryRE.FindStringSubmatch(r.stderr)
	if sum == nil || sum[1] != fmt.Sprint(n) {
		t.Fatalf("summary: %q", r.stderr)
	}
	t.Logf("enqueue --from-file %d jobs: %s; wall %s (%.0f/s with process start, dial and declare)",
		n, sum[0], r.elapsed.Round(time.Millisecond), float64(n)/r.elapsed.Seconds())
	eventually(t, 10*time.Second, func() bool { return ready(t, conn, q) == n }, "queue holds %d", ready(t, conn, q))

	start := time.Now()
	w := startWarren(t, nil, "worker", "--queue", q, "--exec", "true", "--concurrency", "16", "--prefetch", "128")
	var succeeded int
	eventually(t, 180*time.Second, func() bool {
		succeeded = w.log.count(`msg="job succeeded"`)
		return succeeded >= n
	}, "%d of %d jobs succeeded", succeeded, n)
	elapsed := time.Since(start)
	t.Logf("worker --exec true --concurrency 16 drained %d jobs in %s: %.0f jobs/s (with process start)",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	w.signal(syscall.SIGTERM)
	if code := w.wait(30 * time.Second); code != 0 {
		t.Fatalf("worker exit %d", code)
	}
	if got := ready(t, conn, q); got != 0 {
		t.Errorf("%d left in the queue", got)
	}
}

// publishDeadLetter stores a dead letter in q's dead-letter queue as a
// worker would.
func publishDeadLetter(t *testing.T, conn *broker.Conn, q, id, typ, errText string) {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	msg := broker.Encode(&warren.Task{ID: id, Type: typ, Queue: q, Payload: []byte(`{"id":"` + id + `"}`), Attempt: 2, EnqueuedAt: time.Now().Add(-time.Hour)})
	msg.Headers[warren.HeaderDeadReason] = string(warren.ReasonExhausted)
	msg.Headers[warren.HeaderError] = errText
	msg.Headers[warren.HeaderFailedAt] = time.Now().UnixMilli()
	if err := ch.Publish("", warren.DeadLetterQueue(q), true, false, msg); err != nil {
		t.Fatal(err)
	}
}

func TestDLQCommands(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	if r := warrenRun(t, 30*time.Second, nil, "topology", "declare", "--queue", q); r.code != 0 {
		t.Fatalf("topology declare: exit %d\n%s", r.code, r.stderr)
	}
	publishDeadLetter(t, conn, q, "dl-1", "a", "boom one\nmore detail")
	publishDeadLetter(t, conn, q, "dl-2", "a", "boom two")
	publishDeadLetter(t, conn, q, "dl-3", "b", "boom three")
	dlq := warren.DeadLetterQueue(q)
	eventually(t, 10*time.Second, func() bool { return ready(t, conn, dlq) == 3 }, "dead letters not stored")

	ok := func(r cliResult) cliResult {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		return r
	}

	r := ok(warrenRun(t, 30*time.Second, nil, "dlq", "list", "--queue", q))
	rows := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(rows) != 4 || !strings.HasPrefix(rows[0], "ID") || !strings.Contains(rows[1], "dl-1") || !strings.Contains(rows[1], "boom one") ||
		!strings.Contains(rows[1], "attempts_exhausted") || strings.Contains(r.stdout, "more detail") {
		t.Fatalf("dlq list table:\n%s", r.stdout)
	}

	r = ok(warrenRun(t, 30*time.Second, nil, "dlq", "list", "--queue", q, "--type", "a", "--output", "json"))
	var listed []struct {
		ID      string         `json:"id"`
		Reason  string         `json:"reason"`
		Payload map[string]any `json:"payload"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || len(listed) != 2 || listed[0].ID != "dl-1" || listed[1].ID != "dl-2" ||
		listed[0].Payload["id"] != "dl-1" || listed[0].Reason != "attempts_exhausted" {
		t.Fatalf("dlq list --type a --output json: %v\n%s", err, r.stdout)
	}

	r = ok(warrenRun(t, 30*time.Second, nil, "dlq", "show", "--queue", q, "--id", "dl-1"))
	if !strings.Contains(r.stdout, "more detail") || !strings.Contains(r.stdout, `{"id":"dl-1"}`) {
		t.Fatalf("dlq show:\n%s", r.stdout)
	}

	r = ok(warrenRun(t, 30*time.Second, nil, "dlq", "replay", "--queue", q, "--id", "dl-1", "--dry-run"))
	if strings.TrimSpace(r.stdout) != "dl-1" || !strings.Contains(r.stderr, "would replay 1 dead letter") {
		t.Fatalf("dry run: stdout %q stderr %q", r.stdout, r.stderr)
	}
	if n := ready(t, conn, dlq); n != 3 || ready(t, conn, q) != 0 {
		t.Fatalf("a dry run changed the queues: %d dead letters", n)
	}

	r = ok(warrenRun(t, 30*time.Second, nil, "dlq", "replay", "--queue", q, "--id", "dl-1"))
	if strings.TrimSpace(r.stdout) != "dl-1" || !strings.Contains(r.stderr, "replayed 1 dead letter") {
		t.Fatalf("replay: stdout %q stderr %q", r.stdout, r.stderr)
	}
	m := getOne(t, conn, q, 10*time.Second)
	if m.MessageId != "dl-1" {
		t.Fatalf("replayed %s", m.MessageId)
	}
	if n, _ := broker.HeaderInt(m.Headers, warren.HeaderAttempt); n != 1 {
		t.Errorf("replayed attempt %d, want 1", n)
	}

	r = warrenRun(t, 30*time.Second, nil, "dlq", "replay", "--queue", q, "--id", "no-such-id")
	if r.code != 1 || !strings.Contains(r.stderr, "no-such-id") {
		t.Fatalf("replay of a missing ID: exit %d\n%s", r.code, r.stderr)
	}

	r = warrenRun(t, 30*time.Second, strings.NewReader("y\n"), "dlq", "purge", "--queue", q, "--type", "b")
	if r.code != 2 || !strings.Contains(r.stderr, "refusing to purge without --yes") {
		t.Fatalf("purge without --yes and without a terminal: exit %d\n%s", r.code, r.stderr)
	}
	r = ok(warrenRun(t, 30*time.Second, nil, "dlq", "purge", "--queue", q, "--type", "b", "--yes"))
	if strings.TrimSpace(r.stdout) != "dl-3" || !strings.Contains(r.stderr, "purged 1 dead letter") {
		t.Fatalf("purge: stdout %q stderr %q", r.stdout, r.stderr)
	}
	if n := ready(t, conn, dlq); n != 1 {
		t.Fatalf("%d dead letters left, want 1 (dl-2)", n)
	}

	publishDeadLetter(t, conn, q, "dl-4", "c", "boom four")
	r = ok(warrenRun(t, 30*time.Second, nil, "queues", "--queue", q, "--output", "json"))
	var infos []struct {
		Name        string `json:"name"`
		Exists      bool   `json:"exists"`
		Ready       int    `json:"ready"`
		DeadLetters int    `json:"dead_letters"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil || len(infos) != 1 || !infos[0].Exists || infos[0].DeadLetters != 2 {
		t.Fatalf("queues --output json: %v\n%s", err, r.stdout)
	}
	r = ok(warrenRun(t, 30*time.Second, nil, "queues", "--queue", q))
	if !strings.HasPrefix(r.stdout, "QUEUE") || !strings.Contains(r.stdout, "HELD") || !strings.Contains(r.stdout, q) {
		t.Fatalf("queues table:\n%s", r.stdout)
	}

	missing := q + "-missing"
	r = warrenRun(t, 30*time.Second, nil, "dlq", "list", "--queue", missing)
	if r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("dlq list of a missing queue: exit %d\n%s", r.code, r.stderr)
	}
}

// TestWorkerSurvivesOrReportsConnectionLoss closes the worker's own
// connection on the broker (rabbitmqctl close_connection, found by the
// connection name that carries the worker's pid; other clients are not
// touched). The worker must not linger half-dead: either it exits 1 with a
// clear message (no reconnecting), or it reconnects and goes on working.
func TestWorkerSurvivesOrReportsConnectionLoss(t *testing.T) {
	ctl, err := exec.LookPath("rabbitmqctl")
	if err != nil {
		t.Skip("rabbitmqctl not found: cannot close one connection on the broker")
	}
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	dir := t.TempDir()
	h := handlerScript(t, dir)
	w := startWarren(t, nil, "worker", "--queue", q, "--exec", h)
	w.waitLog(20*time.Second, "worker: started")

	name := fmt.Sprintf("warren worker (pid %d)", w.cmd.Process.Pid)
	var connPid string
	eventually(t, 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, ctl, "list_connections", "pid", "client_properties", "-q").Output()
		if err != nil {
			t.Skipf("rabbitmqctl list_connections: %v", err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, `"`+name+`"`) {
				connPid, _, _ = strings.Cut(line, "\t")
				return true
			}
		}
		return false
	}, "no connection named %q", name)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, ctl, "close_connection", connPid, "warren test: simulated connection loss").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl close_connection: %v\n%s", err, out)
	}

	eventually(t, 30*time.Second, func() bool { return w.exited() || w.log.count("broker: reconnected") > 0 },
		"the worker neither exited nor reconnected after losing its connection")
	if w.exited() {
		if w.code != 1 {
			t.Fatalf("worker exit %d after losing its connection, want 1", w.code)
		}
		if !strings.Contains(w.log.String(), "warren: worker: connection to the broker lost") {
			t.Errorf("no clear message:\n%s", w.log.String())
		}
		return
	}
	// Reconnected: it must still work, and still drain on SIGTERM.
	id := enqueue(t, q, "ok")
	w.waitLog(30*time.Second, `msg="job succeeded"`, "task_id="+id)
	w.signal(syscall.SIGTERM)
	if code := w.wait(30 * time.Second); code != 0 {
		t.Fatalf("worker exit %d after SIGTERM, want 0", code)
	}
}

// TestEnqueueFromStdinInterrupted streams jobs on stdin, then sends SIGINT:
// what was read is enqueued, the summary is printed, and the exit is 1.
func TestEnqueueFromStdinInterrupted(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	cmd := exec.Command(bin, "--url", testbroker.URL(), "enqueue", "--queue", q, "--from-file", "-", "--print-ids")
	cmd.Env = cliEnv()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	errLog := &logLines{}
	cmd.Stdout, cmd.Stderr = &out, errLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}) // closed once the process is reaped
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	for i := range 3 {
		fmt.Fprintf(stdin, `{"type":"stream","payload":{"i":%d}}`+"\n", i)
	}
	// The lines trickle in: each partial batch goes out after a short linger.
	eventually(t, 20*time.Second, func() bool {
		st, err := broker.Inspect(context.Background(), conn, q) // not found until the command declares it
		return err == nil && st.Ready == 3
	}, "streamed jobs not enqueued before the input ended")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("enqueue still running 20s after SIGINT")
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d after SIGINT, want 1; stderr:\n%s", code, errLog.String())
	}
	if !strings.Contains(errLog.String(), "enqueued 3, failed 0") || !strings.Contains(errLog.String(), "interrupted") {
		t.Errorf("stderr:\n%s", errLog.String())
	}
	if n := len(strings.Fields(out.String())); n != 3 {
		t.Errorf("printed %d IDs, want 3", n)
	}
}
