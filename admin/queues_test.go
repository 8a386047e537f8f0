package admin

import (
	"reflect"
	"testing"
)

func TestParseListQueues(t *testing.T) {
	out := []byte("emails\t10\t7\t3\nemails.dlq\t0\t0\t0\nwarren.delay.0\t29\t0\t0\n\nshort\t1\n")
	got, err := parseListQueues(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]queueCounts{"emails": {10, 7, 3}, "emails.dlq": {}, "warren.delay.0": {Messages: 29}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got, err := parseListQueues(nil); err != nil || len(got) != 0 {
		t.Errorf("empty output: %v, %v", got, err)
	}
	if _, err := parseListQueues([]byte("Error: unable to perform an operation on node\n")); err == nil {
		t.Error("an error text parsed as counts")
	}
}

func TestLocalVhost(t *testing.T) {
	for _, c := range []struct {
		url   string
		vhost string
		ok    bool
	}{
		{"amqp://guest:xxxxx@127.0.0.1:5672/", "/", true},
		{"amqp://guest:xxxxx@localhost/", "/", true},
		{"amqp://u:p@localhost:5672/prod", "prod", true},
		{"amqp://u:p@[::1]:5672/%2f", "/", true},
		{"amqp://u:p@127.0.0.1:5673/", "", false}, // another local node: a bare rabbitmqctl would ask the wrong one
		{"amqp://u:p@rabbit.example.com:5672/", "", false},
		{"amqps://u:p@localhost/", "", false},
		{"::", "", false},
	} {
		vhost, ok := localVhost(c.url)
		if vhost != c.vhost || ok != c.ok {
			t.Errorf("localVhost(%q) = %q, %v; want %q, %v", c.url, vhost, ok, c.vhost, c.ok)
		}
	}
}

func TestLockQueueName(t *testing.T) {
	if got := lockQueue("emails.dlq"); got != "warren.lock.emails.dlq" {
		t.Errorf("lockQueue = %q", got)
	}
}
