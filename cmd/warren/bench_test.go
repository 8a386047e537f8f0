package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// runBenchCLI runs the CLI with args like runCLI, with the bench command
// registered on the root even where the root does not list it yet.
func runBenchCLI(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{
		stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	}
	root := a.rootCmd()
	if c, _, err := root.Find([]string{"bench"}); err != nil || c == root {
		root.AddCommand(a.benchCmd())
	}
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := root.ExecuteContextC(ctx)
	code := exitOK
	if err != nil {
		errb.WriteString("warren: " + err.Error() + "\n")
		var ue *usageError
		code = exitFailure
		if errors.As(err, &ue) || !a.running {
			code = exitUsage
		}
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func TestBenchBadInputExitsTwo(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--mode", "soak"}, "--mode"},
		{[]string{"--output", "yaml"}, "--output"},
		{[]string{"--size", "8"}, "--size"},
		{[]string{"--producers", "0"}, "--producers"},
		{[]string{"--batch", "-1"}, "--batch"},
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--rounds", "0"}, "--rounds"},
		{[]string{"--jobs", "-5"}, "--jobs"},
		{[]string{"--prefetch", "70000"}, "--prefetch"},
		{[]string{"--queue-type", "stream"}, "--queue-type"},
		{[]string{"--handler-latency", "-1s"}, "--handler-latency"},
		{[]string{"--rate", "-3"}, "--rate"},
		{[]string{"--mode", "retry", "--retry-delay", "100ms"}, "--retry-delay"},
		{[]string{"--mode", "retry", "--baseline"}, "--baseline"},
		{[]string{"--mode", "idle", "--baseline"}, "--baseline"},
		{[]string{"extra"}, "unknown command"},
	} {
		r := runBenchCLI(t, nil, append([]string{"--url", deadURL, "bench"}, tc.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: code %d, stderr %q, want 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
		if strings.Contains(r.stderr, "s3cr3tpw") {
			t.Errorf("%v: password in %q", tc.args, r.stderr)
		}
	}
}

func TestBenchUnreachableBrokerExitsOne(t *testing.T) {
	r := runBenchCLI(t, map[string]string{"WARREN_JOBS": "10"}, "--url", deadURL, "--connect-timeout", "1s", "bench", "--rounds", "1")
	if r.code != exitFailure || !strings.Contains(r.stderr, "bench") {
		t.Errorf("code %d, stderr %q", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "s3cr3tpw") {
		t.Errorf("password in %q", r.stderr)
	}
}

func TestBenchFlagsFromTheEnvironment(t *testing.T) {
	a := &app{lookupEnv: func(k string) (string, bool) {
		v, ok := map[string]string{"WARREN_CONCURRENCY": "64", "WARREN_PREFETCH": "500", "WARREN_MODE": "publish"}[k]
		return v, ok
	}}
	cmd := a.benchCmd()
	if err := cmd.ParseFlags([]string{"--prefetch", "100"}); err != nil {
		t.Fatal(err)
	}
	if err := a.bindEnv(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	get := func(name string) string { return cmd.Flags().Lookup(name).Value.String() }
	if get("concurrency") != "64" || get("prefetch") != "100" || get("mode") != "publish" {
		t.Errorf("concurrency %s prefetch %s mode %s", get("concurrency"), get("prefetch"), get("mode"))
	}
}
