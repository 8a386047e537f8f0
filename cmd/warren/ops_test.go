package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testnode"
)

func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, lookupEnv: func(string) (string, bool) { return "", false }}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		if c.Short == "" || c.Long == "" || strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s: Short, Long and Example are all required (have %t, %t, %t)", c.CommandPath(), c.Short != "", c.Long != "", c.Example != "")
		}
		for _, line := range strings.Split(c.Example, "\n") {
			if !strings.HasPrefix(line, "  warren ") && !strings.HasPrefix(line, "  export ") && !strings.HasPrefix(line, "  source ") {
				t.Errorf("%s: example line %q: start examples with two spaces and the command", c.CommandPath(), line)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(a.rootCmd())
}

func TestEveryListingHasJSONOutput(t *testing.T) {
	for _, path := range [][]string{{"queues"}, {"dlq", "list"}, {"dlq", "show"}, {"dlq", "replay"}, {"dlq", "purge"}, {"dlq", "export"}, {"dlq", "import"}, {"topology", "declare"}} {
		a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, lookupEnv: func(string) (string, bool) { return "", false }}
		cmd, _, err := a.rootCmd().Find(path)
		if err != nil {
			t.Fatal(err)
		}
		if f := cmd.Flags().Lookup("output"); f == nil || !strings.Contains(f.Usage, "json") {
			t.Errorf("%s has no --output json", cmd.CommandPath())
		}
	}
}

func TestCompletion(t *testing.T) {
	for shell, marker := range map[string]string{"bash": "__start_warren", "zsh": "#compdef warren", "fish": "complete -c warren"} {
		r := runCLI(t, nil, "", "completion", shell)
		if r.code != exitOK || !strings.Contains(r.stdout, marker) {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %s", shell, r.code, len(r.stdout), r.stderr)
		}
	}
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}} {
		if r := runCLI(t, nil, "", args...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want 2; stderr %s", args, r.code, r.stderr)
		}
	}
	// Flag values complete.
	r := runCLI(t, nil, "", "__complete", "dlq", "list", "--output", "")
	if r.code != exitOK || !strings.Contains(r.stdout, "json") || !strings.Contains(r.stdout, "table") {
		t.Errorf("__complete --output: exit %d\n%s", r.code, r.stdout)
	}
}

func TestOpsUsageErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	amqps := "amqps://guest:s3cr3tpw@127.0.0.1:1/"
	enq := []string{"enqueue", "--queue", "q", "--type", "t"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"tls with amqp URL", append([]string{"--url", deadURL, "--tls-ca", notPEM}, enq...), "apply to amqps:// URLs"},
		{"cert without key", append([]string{"--url", amqps, "--tls-cert", notPEM}, enq...), "--tls-cert and --tls-key go together"},
		{"missing CA file", append([]string{"--url", amqps, "--tls-ca", filepath.Join(dir, "nope.pem")}, enq...), "--tls-ca"},
		{"CA not PEM", append([]string{"--url", amqps, "--tls-ca", notPEM}, enq...), "no PEM certificate"},
		{"bad key pair", append([]string{"--url", amqps, "--tls-cert", notPEM, "--tls-key", notPEM}, enq...), "--tls-cert"},
		{"bad max payload size", append([]string{"--url", deadURL}, append(enq, "--max-payload-size", "lots")...), "--max-payload-size"},
		{"zero max payload size", append([]string{"--url", deadURL}, append(enq, "--max-payload-size", "0")...), "--max-payload-size"},
		{"payload over the limit", append([]string{"--url", deadURL}, append(enq, "--max-payload-size", "8B", "--payload", `{"a":"123456"}`)...), "payload too large: the limit is 8 bytes"},
		{"bad metrics addr", []string{"--url", deadURL, "worker", "--queue", "q", "--exec", "true", "--metrics-addr", "9464"}, "--metrics-addr"},
		{"bad replay output", []string{"--url", deadURL, "dlq", "replay", "--queue", "q", "--all", "--output", "xml"}, "--output"},
		{"bad purge output", []string{"--url", deadURL, "dlq", "purge", "--queue", "q", "--all", "--yes", "--output", "xml"}, "--output"},
		{"bad topology output", []string{"--url", deadURL, "topology", "declare", "--output", "xml"}, "--output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, nil, "", tt.args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, want 2 with %q; stderr:\n%s", r.code, tt.want, r.stderr)
			}
			if strings.Contains(r.stderr, "s3cr3tpw") {
				t.Fatalf("password shown:\n%s", r.stderr)
			}
		})
	}
}

func TestOversizedPayloadFileIsRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(file, []byte(`"`+strings.Repeat("x", 2<<20)+`"`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, nil, "", "--url", deadURL, "enqueue", "--queue", "q", "--type", "t", "--payload-file", file)
	if r.code != exitUsage || !strings.Contains(r.stderr, "payload too large: the limit is 1048576 bytes (1MiB, --max-payload-size)") {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	// Raising the limit lets it through to the broker (unreachable here: 1).
	r = runCLI(t, nil, "", "--url", deadURL, "enqueue", "--queue", "q", "--type", "t", "--payload-file", file, "--max-payload-size", "4MiB")
	if r.code != exitFailure || strings.Contains(r.stderr, "payload too large") {
		t.Fatalf("with 4MiB: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	// And from the environment.
	r = runCLI(t, map[string]string{"WARREN_MAX_PAYLOAD_SIZE": "100"}, "", "--url", deadURL, "enqueue", "--queue", "q", "--type", "t", "--payload-file", file)
	if r.code != exitUsage || !strings.Contains(r.stderr, "the limit is 100 bytes") {
		t.Fatalf("from the environment: exit %d; stderr:\n%s", r.code, r.stderr)
	}
}

func TestSizeValue(t *testing.T) {
	for in, want := range map[string]int{"1": 1, "1048576": 1 << 20, "512KiB": 512 << 10, "4MiB": 4 << 20, "2mb": 2000000, "10 kB": 10000, "1GiB": 0, "-1": 0, "0": 0, "1.5MiB": 0} {
		var s sizeValue
		err := s.Set(in)
		if want == 0 {
			if err == nil {
				t.Errorf("%q: accepted as %d", in, s)
			}
			continue
		}
		if err != nil || int(s) != want {
			t.Errorf("%q: %d, %v; want %d", in, s, err, want)
		}
	}
	if got := formatSize(1 << 20); got != "1MiB" {
		t.Errorf("formatSize = %q", got)
	}
}

func TestTLSConfig(t *testing.T) {
	certs, err := testnode.GenerateCerts(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	a := &app{url: "amqps://u:p@h1:5671/,amqps://u:p@h2:5671/", tlsCA: certs.CACert, tlsCert: certs.ClientCert, tlsKey: certs.ClientKey}
	cfg, err := a.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs == nil || len(cfg.Certificates) != 1 || cfg.InsecureSkipVerify || cfg.MinVersion == 0 {
		t.Fatalf("config %+v", cfg)
	}
	if cfg, err := (&app{url: "amqps://h/"}).tlsConfig(); cfg != nil || err != nil {
		t.Fatalf("no flags: %v, %v (want nil: the system's CAs)", cfg, err)
	}
}

func TestExplainAccessRefused(t *testing.T) {
	refused := &amqp.Error{Code: amqp.AccessRefused, Reason: "ACCESS_REFUSED - read access to queue 'q' in vhost 'v' refused for user 'p'", Server: true}
	for _, err := range []error{
		fmt.Errorf("worker: consume q: %w", refused),
		fmt.Errorf("worker: %w", &broker.AccessError{Refused: broker.RefusedPermission, User: "p", VHost: "v", Kind: "queue", Name: "q",
			Err: fmt.Errorf("%w: consume q: %s", broker.ErrAccessRefused, refused.Reason)}),
	} {
		got := explain(err).Error()
		if !strings.Contains(got, "access refused: user 'p' may not use queue 'q' in vhost 'v'") || !strings.Contains(got, "Least privilege") {
			t.Errorf("explain(%v) = %q", err, got)
		}
		if !errors.Is(explain(err), err) {
			t.Errorf("explain(%v) lost its cause", err)
		}
	}
	other := errors.New("something else")
	if explain(other) != other {
		t.Error("explain changed an unrelated error")
	}
}

func TestLogsAreScrubbed(t *testing.T) {
	var buf bytes.Buffer
	w := &scrubWriter{w: &buf, scrub: broker.URLSecrets("amqp://u:hunter2@h/").Redact}
	if n, err := w.Write([]byte("url=amqp://u:hunter2@h/\n")); err != nil || n != 24 {
		t.Fatalf("%d, %v", n, err)
	}
	if strings.Contains(buf.String(), "hunter2") {
		t.Fatalf("not scrubbed: %q", buf.String())
	}
}
