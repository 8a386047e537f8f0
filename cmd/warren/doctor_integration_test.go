//go:build integration

package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// TestDoctorExitCodesAndJSON runs warren doctor against the shared broker
// without rabbitmqctl (the private-node checks are in doctor's own tests):
// WARNs pass with exit 0, a missing queue FAILs with exit 1, --output json
// prints the report, bad input exits 2, and the password never shows.
func TestDoctorExitCodesAndJSON(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := broker.Declare(ctx, conn, broker.QueueOptions{}, q); err != nil {
		t.Fatal(err)
	}

	r := warrenRun(t, time.Minute, nil, "doctor", "--no-rabbitmqctl", "--queue", q)
	if r.code != 0 {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"WARN  queue:" + q, "exists, with its dead-letter queue", "without rabbitmqctl access (turned off)", "OK    frame_max", "0 fail"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}

	missing := q + "-missing"
	r = warrenRun(t, time.Minute, nil, "doctor", "--no-rabbitmqctl", "--queue", q, "--queue", missing, "--output", "json")
	if r.code != 1 || !strings.Contains(r.stderr, "1 check failed") {
		t.Fatalf("exit %d, stderr %q; want 1 and the count of failed checks", r.code, r.stderr)
	}
	var report struct {
		Broker string `json:"broker"`
		Checks []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
			Fix    string `json:"fix"`
		} `json:"checks"`
		Fail int `json:"fail"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	found := false
	for _, c := range report.Checks {
		if c.Name == "queue:"+missing {
			found = c.Status == "FAIL" && strings.Contains(c.Fix, "warren topology declare --queue "+missing)
		}
	}
	if !found || report.Fail != 1 {
		t.Errorf("want queue:%s FAIL with its fix, and 1 failure: %s", missing, r.stdout)
	}
	if pw := "guest"; strings.Contains(report.Broker, ":"+pw+"@") || !strings.Contains(report.Broker, "xxxxx") {
		t.Errorf("broker %q: want the password redacted", report.Broker)
	}

	for _, args := range [][]string{
		{"doctor", "--role", "boss"},
		{"doctor", "--output", "yaml"},
		{"doctor", "--handler-timeout", "0s"},
		{"doctor", "--no-rabbitmqctl", "--node", "rabbit@x"},
		{"doctor", "--queue", "bad name"},
	} {
		if r := warrenRun(t, 30*time.Second, nil, args...); r.code != 2 {
			t.Errorf("warren %s: exit %d, want 2; stderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}
