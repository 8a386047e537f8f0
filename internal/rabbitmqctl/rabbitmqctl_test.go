package rabbitmqctl

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fake writes a stand-in rabbitmqctl that prints its arguments, or fails
// with a multi-line error as rabbitmqctl does.
func fake(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rabbitmqctl")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunPassesNodeAndQuiet(t *testing.T) {
	out, err := Runner{Node: "rabbit@h", Path: fake(t, `echo "$@"`)}.Run(context.Background(), "list_queues", "name")
	if err != nil || strings.TrimSpace(string(out)) != "-q -n rabbit@h list_queues name" {
		t.Fatalf("Run = %q, %v", out, err)
	}
	out, err = Runner{Path: fake(t, `echo "$@"`)}.Run(context.Background(), "status")
	if err != nil || strings.TrimSpace(string(out)) != "-q status" {
		t.Fatalf("Run without a node = %q, %v", out, err)
	}
}

func TestRunErrorKeepsEveryLineOfStderr(t *testing.T) {
	_, err := Runner{Path: fake(t, `printf 'Error:\n{:no_such_user, "bob"}\n' >&2; exit 69`)}.Run(context.Background(), "list_user_permissions", "bob")
	if err == nil || !strings.Contains(err.Error(), `Error: {:no_such_user, "bob"}`) || !strings.Contains(err.Error(), "rabbitmqctl list_user_permissions") {
		t.Fatalf("err = %v", err)
	}
}

func TestJSON(t *testing.T) {
	var rows []struct{ Name string }
	err := Runner{Path: fake(t, `echo '[{"name":"a"},{"name":"b"}]'`)}.JSON(context.Background(), &rows, "list_queues", "name")
	if err != nil || len(rows) != 2 || rows[1].Name != "b" {
		t.Fatalf("JSON = %v, %v", rows, err)
	}
	err = Runner{Path: fake(t, `echo 'not json'`)}.JSON(context.Background(), &rows, "list_queues")
	if err == nil || !strings.Contains(err.Error(), "unexpected output") {
		t.Fatalf("JSON of garbage: %v", err)
	}
}

func TestRunMissingProgram(t *testing.T) {
	if _, err := (Runner{Path: filepath.Join(t.TempDir(), "nope")}).Run(context.Background(), "status"); err == nil {
		t.Fatal("want an error")
	}
}

func TestLocalVhost(t *testing.T) {
	for _, c := range []struct {
		url   string
		vhost string
		ok    bool
	}{
		{"amqp://u:p@localhost:5672/", "/", true},
		{"amqp://u:p@127.0.0.1:5672/prod", "prod", true},
		{"amqp://u:p@127.0.0.1:5673/", "", false},
		{"amqp://u:p@rabbit1:5672/", "", false},
		{"::", "", false},
	} {
		vhost, ok := LocalVhost(c.url)
		if vhost != c.vhost || ok != c.ok {
			t.Errorf("LocalVhost(%q) = %q, %v; want %q, %v", c.url, vhost, ok, c.vhost, c.ok)
		}
	}
}
