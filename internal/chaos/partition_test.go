package chaos

import (
	"reflect"
	"testing"
)

func TestParseClusterStatus(t *testing.T) {
	const whole = `Cluster status of node a@10.231.1.11 ...
{"alarms":[],"cluster_name":"a@10.231.1.11","disk_nodes":["a@10.231.1.11","b@10.231.1.12","c@10.231.1.13"],"partitions":{},"ram_nodes":[],"running_nodes":["c@10.231.1.13","a@10.231.1.11","b@10.231.1.12"]}`
	running, parts, err := parseClusterStatus(whole)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a@10.231.1.11", "b@10.231.1.12", "c@10.231.1.13"}; !reflect.DeepEqual(running, want) {
		t.Errorf("running = %v, want %v", running, want)
	}
	if len(parts) != 0 {
		t.Errorf("partitions = %v, want none", parts)
	}

	const split = `{"partitions":{"a@10.231.1.11":["b@10.231.1.12","c@10.231.1.13"]},"running_nodes":["a@10.231.1.11"]}`
	running, parts, err = parseClusterStatus(split)
	if err != nil {
		t.Fatal(err)
	}
	if len(running) != 1 || len(parts["a@10.231.1.11"]) != 2 {
		t.Errorf("split: running %v, partitions %v", running, parts)
	}

	for _, bad := range []string{"", "Error: unable to perform an operation on node", `{"running_nodes": 3}`} {
		if _, _, err := parseClusterStatus(bad); err == nil {
			t.Errorf("parseClusterStatus(%q): no error", bad)
		}
	}
}

func TestOwnerOf(t *testing.T) {
	for name, want := range map[string]int{"wqp123br": 123, "wqp123n1": 123, "wqp4567h3": 4567, "wqp1234p2": 1234} {
		if got, ok := ownerOf(name); !ok || got != want {
			t.Errorf("ownerOf(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
	for _, name := range []string{"eth0", "wqp", "wqpbr", "xwqp12n1", "lo"} {
		if pid, ok := ownerOf(name); ok {
			t.Errorf("ownerOf(%q) = %d, want not ours", name, pid)
		}
	}
}
