package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/producer"
)

// deadURL points at a port where no broker listens: a command that gets as
// far as dialling fails fast with status 1, so status 2 proves that the
// input was refused before any broker was needed.
const deadURL = "amqp://guest:s3cr3tpw@127.0.0.1:1/"

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the CLI in-process with env as its whole environment.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := a.run(ctx, args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	good := []string{"--url", deadURL, "enqueue", "--queue", "q", "--type", "t"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"no command", nil, "missing command"},
		{"unknown flag", append(good, "--bogus"), "unknown flag: --bogus"},
		{"unknown global flag", []string{"--bogus", "version"}, "unknown flag: --bogus"},
		{"stray argument", append(good, "extra"), `unknown command "extra"`},
		{"missing queue", []string{"--url", deadURL, "enqueue", "--type", "t"}, `required flag(s) "queue" not set`},
		{"missing type", []string{"--url", deadURL, "enqueue", "--queue", "q"}, "--type is required"},
		{"invalid JSON", append(good, "--payload", `{"a":`), "invalid JSON payload"},
		{"empty payload", append(good, "--payload", ""), "invalid JSON payload"},
		{"two JSON values", append(good, "--payload", `{} {}`), "invalid JSON payload"},
		{"bad duration", append(good, "--delay", "5 parsecs"), `invalid argument "5 parsecs" for "--delay"`},
		{"negative delay", append(good, "--delay", "-1s"), "--delay cannot be negative"},
		{"bad process-at", append(good, "--process-at", "tomorrow"), "--process-at"},
		{"delay and process-at", append(good, "--delay", "1s", "--process-at", "2030-01-01T00:00:00Z"), "delay process-at"},
		{"payload and payload-file", append(good, "--payload", "{}", "--payload-file", "x"), "payload payload-file"},
		{"missing payload file", append(good, "--payload-file", filepath.Join(dir, "nope.json")), "--payload-file"},
		{"invalid queue name", []string{"--url", deadURL, "enqueue", "--queue", "amq.x", "--type", "t"}, "invalid queue name"},
		{"queue with space", []string{"--url", deadURL, "enqueue", "--queue", "a b", "--type", "t"}, "invalid queue name"},
		{"header without =", append(good, "--header", "novalue"), "want key=value"},
		{"reserved header", append(good, "--header", "x-death=1"), "reserved"},
		{"negative max attempts", append(good, "--max-attempts", "-1"), "--max-attempts"},
		{"bad queue type", append(good, "--queue-type", "stream"), "--queue-type"},
		{"print-ids without from-file", append(good, "--print-ids"), "--print-ids"},
		{"replay to the dead-letter queue itself", []string{"--url", deadURL, "dlq", "replay", "--queue", "q", "--all", "--to-queue", "q.dlq"}, "--to-queue q.dlq is the dead-letter queue being replayed"},
		{"replay with --all and --unreadable", []string{"--url", deadURL, "dlq", "replay", "--queue", "q", "--all", "--unreadable"}, "do not combine it with"},
		{"from-file and id", []string{"--url", deadURL, "enqueue", "--queue", "q", "--from-file", "-", "--id", "x"}, "from-file id"},
		{"missing from-file", []string{"--url", deadURL, "enqueue", "--queue", "q", "--from-file", filepath.Join(dir, "nope.ndjson")}, "--from-file"},
		{"from-file non-JSON content type", []string{"--url", deadURL, "enqueue", "--queue", "q", "--from-file", "-", "--content-type", "text/plain"}, "--content-type"},
		{"bad log level", []string{"--log-level", "loud", "version"}, "--log-level"},
		{"bad log format", []string{"--log-format", "xml", "version"}, "--log-format"},
		{"worker without exec", []string{"--url", deadURL, "worker", "--queue", "q"}, `required flag(s) "exec" not set`},
		{"worker without queue", []string{"--url", deadURL, "worker", "--exec", "true"}, `required flag(s) "queue" not set`},
		{"worker unterminated quote", []string{"--url", deadURL, "worker", "--queue", "q", "--exec", "sh -c 'oops"}, "unterminated"},
		{"worker command not found", []string{"--url", deadURL, "worker", "--queue", "q", "--exec", "no-such-command-warren-xyz"}, "no-such-command-warren-xyz"},
		{"worker shell syntax", []string{"--url", deadURL, "worker", "--queue", "q", "--exec", "handler > log"}, "sh -c"},
		{"worker bad duration", []string{"--url", deadURL, "worker", "--queue", "q", "--exec", "true", "--handler-timeout", "forever"}, "--handler-timeout"},
		{"worker zero concurrency", []string{"--url", deadURL, "worker", "--queue", "q", "--exec", "true", "--concurrency", "0"}, "--concurrency"},
		{"worker base over cap", []string{"--url", deadURL, "worker", "--queue", "q", "--exec", "true", "--retry-base", "2s", "--retry-cap", "1s"}, "--retry-base 2s cannot exceed --retry-cap 1s"},
		{"worker timeout near consumer_timeout", []string{"--url", deadURL, "worker", "--queue", "q", "--exec", "true", "--handler-timeout", "2h"}, "consumer_timeout"},
		{"worker queue twice", []string{"--url", deadURL, "worker", "--queue", "q", "--queue", "q", "--exec", "true"}, "twice"},
		{"url not amqp", []string{"--url", "http://localhost:5672/", "enqueue", "--queue", "q", "--type", "t"}, "invalid URL http://localhost:5672/"},
		{"url without scheme", []string{"--url", "localhost:5672", "dlq", "list", "--queue", "q"}, "invalid URL"},
		{"url with a bad port", []string{"--url", "amqp://u:s3cr3tpw@h:port/", "queues", "--queue", "q"}, "invalid URL"},
		{"url after the command", []string{"worker", "--queue", "q", "--exec", "true", "--url", "amqps//h"}, "invalid URL"},
		{"payload file is a directory", append(good, "--payload-file", dir), "is a directory"},
		{"topology bad queue", []string{"--url", deadURL, "topology", "declare", "--queue", "warren.x"}, "invalid queue name"},
		{"topology bad delivery limit", []string{"--url", deadURL, "topology", "declare", "--queue", "q", "--delivery-limit", "0"}, "--delivery-limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, nil, "", tt.args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", r.code, exitUsage, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "warren: ") && !strings.Contains(r.stderr, "\nwarren: ") {
				t.Errorf("stderr does not start its error with \"warren: \":\n%s", r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, r.stderr)
			}
			if strings.Contains(r.stderr, "warren: warren:") {
				t.Errorf("stuttering prefix:\n%s", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %q", r.stdout)
			}
			if strings.Contains(r.stderr, "is RabbitMQ running") || strings.Contains(r.stderr, "s3cr3tpw") {
				t.Errorf("bad input explained as a broker problem, or a password shown:\n%s", r.stderr)
			}
			if m := goFieldRE.FindString(r.stderr); m != "" {
				t.Errorf("the error names the Go field %q, not a flag:\n%s", m, r.stderr)
			}
		})
	}
}

func TestUnreachableBrokerExitsOneWithoutPassword(t *testing.T) {
	start := time.Now()
	r := runCLI(t, nil, "", "--url", deadURL, "enqueue", "--queue", "q", "--type", "t", "--payload", `{"a":1}`)
	if r.code != exitFailure {
		t.Fatalf("exit %d, want 1; stderr:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "s3cr3tpw") {
		t.Fatalf("stderr shows the password:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "127.0.0.1:1") || !strings.Contains(r.stderr, "warren: ") {
		t.Errorf("stderr does not say where it failed to connect:\n%s", r.stderr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s to give up", d)
	}
	// The same through the environment, and with an URL-encoded password.
	r = runCLI(t, map[string]string{"WARREN_URL": "amqp://guest:s3cr%40pw@127.0.0.1:1/"}, "", "topology", "declare")
	if r.code != exitFailure || strings.Contains(r.stderr, "s3cr@pw") || strings.Contains(r.stderr, "s3cr%40pw") {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// parsed parses args for the command at path (after root flags) and runs
// setup, as cobra does before RunE, returning the command.
// goFieldRE matches Go configuration field names that a CLI error must
// say as flags (--retry-base, not Base).
var goFieldRE = regexp.MustCompile(`\b(Config|Options|Policy|Filter)\.[A-Z]|\b(Base|Cap|MaxAttempts|DeliveryLimit|HandlerTimeout|ShutdownTimeout|ConsumerTimeout|Prefetch|Concurrency|MaxPayloadSize|ToQueue|StderrTail)\b`)

func parsed(t *testing.T, env map[string]string, path []string, args ...string) (*app, *cobra.Command, error) {
	t.Helper()
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard,
		lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	root := a.rootCmd()
	cmd, _, err := root.Find(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return a, cmd, a.setup(cmd, nil)
}

func TestFlagsFromEnvironment(t *testing.T) {
	env := map[string]string{
		"WARREN_HANDLER_TIMEOUT":  "7s",
		"WARREN_CONCURRENCY":      "3",
		"WARREN_QUEUE":            "a,b",
		"WARREN_NO_DECLARE":       "true",
		"WARREN_URL":              "amqp://u:p@envhost:5672/",
		"WARREN_LOG_LEVEL":        "debug",
		"WARREN_EXEC":             "",  // empty: ignored
		"WARREN_ID":               "x", // never read from the environment
		"WARREN_SHUTDOWN_TIMEOUT": "1s",
	}
	a, cmd, err := parsed(t, env, []string{"worker"}, "--shutdown-timeout", "9s", "--exec", "true")
	if err != nil {
		t.Fatal(err)
	}
	fs := cmd.Flags()
	if d, _ := fs.GetDuration("handler-timeout"); d != 7*time.Second {
		t.Errorf("handler-timeout = %s, want 7s from WARREN_HANDLER_TIMEOUT", d)
	}
	if d, _ := fs.GetDuration("shutdown-timeout"); d != 9*time.Second {
		t.Errorf("shutdown-timeout = %s, want the command line's 9s over WARREN_SHUTDOWN_TIMEOUT", d)
	}
	if n, _ := fs.GetInt("concurrency"); n != 3 {
		t.Errorf("concurrency = %d, want 3", n)
	}
	if q, _ := fs.GetStringSlice("queue"); !reflect.DeepEqual(q, []string{"a", "b"}) {
		t.Errorf("queue = %q, want [a b]", q)
	}
	if b, _ := fs.GetBool("no-declare"); !b {
		t.Error("no-declare not read from WARREN_NO_DECLARE")
	}
	if e, _ := fs.GetString("exec"); e != "true" {
		t.Errorf("exec = %q", e)
	}
	if a.url != "amqp://u:p@envhost:5672/" {
		t.Errorf("url = %q, want WARREN_URL", a.url)
	}
	if !a.log.Enabled(context.Background(), -4) {
		t.Error("log level is not debug")
	}

	// --id is never taken from the environment.
	_, cmd, err = parsed(t, env, []string{"enqueue"})
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := cmd.Flags().GetString("id"); id != "" {
		t.Errorf("id = %q from the environment", id)
	}

	// A required flag may come from the environment.
	r := runCLI(t, map[string]string{"WARREN_URL": deadURL, "WARREN_QUEUE": "q", "WARREN_TYPE": "t", "WARREN_PAYLOAD": "{bad"}, "", "enqueue")
	if r.code != exitUsage || !strings.Contains(r.stderr, "invalid JSON payload") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	// A bad value in the environment is bad input, naming the variable.
	r = runCLI(t, map[string]string{"WARREN_URL": deadURL, "WARREN_DELAY": "soon"}, "", "enqueue", "--queue", "q", "--type", "t")
	if r.code != exitUsage || !strings.Contains(r.stderr, "WARREN_DELAY") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	// The command line wins over a bad environment value.
	r = runCLI(t, map[string]string{"WARREN_DELAY": "soon"}, "", "--url", deadURL, "enqueue", "--queue", "q", "--type", "t", "--delay", "1s")
	if r.code != exitFailure { // got as far as dialling the dead broker
		t.Errorf("exit %d, want 1; stderr:\n%s", r.code, r.stderr)
	}
}

func TestEveryFlagHasAnEnvironmentVariable(t *testing.T) {
	if got := envName("handler-timeout"); got != "WARREN_HANDLER_TIMEOUT" {
		t.Fatalf("envName = %q", got)
	}
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, lookupEnv: func(string) (string, bool) { return "", false }}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.ContainsAny(f.Name, "_ ") || strings.ToLower(f.Name) != f.Name {
				t.Errorf("%s --%s: flag names are lower-case words joined by -", c.CommandPath(), f.Name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(a.rootCmd())
}

func TestURLFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(file, []byte(deadURL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, _, err := parsed(t, nil, []string{"version"}, "--url-file", file)
	if err != nil || a.url != deadURL {
		t.Fatalf("url = %q, %v", a.url, err)
	}
	if len(a.secrets) == 0 {
		t.Fatal("the password of --url-file is not scrubbed")
	}
	r := runCLI(t, map[string]string{"WARREN_URL_FILE": file}, "", "enqueue", "--queue", "q", "--type", "t")
	if r.code != exitFailure || strings.Contains(r.stderr, "s3cr3tpw") {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	r = runCLI(t, nil, "", "--url", deadURL, "--url-file", file, "version")
	if r.code != exitUsage {
		t.Fatalf("--url with --url-file: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

func TestHelpAndVersion(t *testing.T) {
	r := runCLI(t, nil, "", "--help")
	if r.code != exitOK || !strings.Contains(r.stdout, "enqueue") || !strings.Contains(r.stdout, "WARREN_") {
		t.Fatalf("--help: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "", "worker", "--help")
	if r.code != exitOK || !strings.Contains(r.stdout, "--handler-timeout") {
		t.Fatalf("worker --help: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "", "version")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "warren dev") || !strings.Contains(r.stdout, "go1.") {
		t.Fatalf("version: exit %d, %q", r.code, r.stdout)
	}
}

func TestReadPayload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.json")
	if err := os.WriteFile(file, []byte(`{"from":"file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &app{stdin: strings.NewReader(`{"from":"stdin"}`)}
	tests := []struct {
		f     enqueueFlags
		given bool
		want  string
	}{
		{enqueueFlags{contentType: "application/json"}, false, `{}`},
		{enqueueFlags{contentType: "text/plain"}, false, ``},
		{enqueueFlags{contentType: "application/json", payload: `[1]`}, true, `[1]`},
		{enqueueFlags{contentType: "text/plain", payload: ``}, true, ``},
		{enqueueFlags{contentType: "text/plain", payload: `not json`}, true, `not json`},
		{enqueueFlags{contentType: "application/vnd.x+json; charset=utf-8", payload: `"s"`}, true, `"s"`},
		{enqueueFlags{contentType: "application/json", payloadFile: file}, false, `{"from":"file"}`},
		{enqueueFlags{contentType: "application/json", payloadFile: "-"}, false, `{"from":"stdin"}`},
	}
	for _, tt := range tests {
		got, err := a.readPayload(&tt.f, tt.given)
		if err != nil || string(got) != tt.want {
			t.Errorf("%+v: got %q, %v; want %q", tt.f, got, err, tt.want)
		}
	}
	if _, err := a.readPayload(&enqueueFlags{contentType: "application/problem+json", payload: "nope"}, true); err == nil {
		t.Error("a +json content type must be checked")
	}
}

func TestProgressLine(t *testing.T) {
	got := progressLine(producer.StreamTotals{Enqueued: 400, Failed: 100, Bytes: 500}, 1000, time.Second)
	if got != "[===============               ]  50%  400 enqueued, 100 failed, 400/s" {
		t.Errorf("with a known size: %q", got)
	}
	if got := progressLine(producer.StreamTotals{Enqueued: 10}, 0, time.Second); got != "10 enqueued, 0 failed, 10/s" {
		t.Errorf("from a pipe: %q", got)
	}
}

// The permission hint follows the operation the error carries, not words
// in its text.
func TestAccessHintFollowsTheOperation(t *testing.T) {
	refused := func(op broker.Op, text string) error {
		return &broker.OpError{Op: op, Err: fmt.Errorf("%w: %s", broker.ErrAccessRefused, text)}
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{refused(broker.OpLock, "x"), "configure permission on warren.lock."},
		{refused(broker.OpConsume, "x"), "read permission on the queue"},
		{refused(broker.OpDeclare, "publish"), "declaring needs the configure permission"},
		{refused(broker.OpBind, "x"), "declaring needs the configure permission"},
		{refused(broker.OpPublish, "declare"), "write permission on the exchange"},
		{&broker.OpError{Op: broker.OpDeclare, Err: &broker.AccessError{Refused: broker.RefusedPermission, Kind: "queue", Name: "warren.paused.q", Err: broker.ErrAccessRefused}},
			"configure permission on warren.paused.<queue>"},
		{fmt.Errorf("%w: declare lock queue consume publish", broker.ErrAccessRefused), ""},
	} {
		if got := accessHint(c.err); (c.want == "" && got != "") || !strings.Contains(got, c.want) {
			t.Errorf("%v: hint %q, want %q", c.err, got, c.want)
		}
	}
}
