package main

import (
	"strings"
	"testing"
)

// The worker's configuration is checked by worker.Config.Validate before
// any connection (deadURL would exit 1), and each problem names its flags.
func TestWorkerConfigErrorsNameFlags(t *testing.T) {
	base := []string{"--url", deadURL, "worker", "--exec", "true"}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"prefetch out of range", []string{"--queue", "q", "--prefetch", "70000"}, []string{"--prefetch: ", "0 to 65535"}},
		// --handler-timeout against --consumer-timeout and --retry-base
		// against --retry-cap are said in the flags' own words before
		// Validate: TestUsageErrorsExitTwo.
		{"queue twice", []string{"--queue", "q,q"}, []string{"--queue: ", "twice"}},
		{"bad queue name", []string{"--queue", "amq.x"}, []string{"--queue: ", "invalid queue name"}},
		{"every problem at once", []string{"--queue", "a b", "--prefetch", "-1"},
			[]string{"--queue: ", "--prefetch: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, nil, "", append(base, tt.args...)...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", r.code, exitUsage, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}
