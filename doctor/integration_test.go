//go:build integration

package doctor_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/doctor"
	"github.com/warrenq/warren/internal/testnode"
)

// Permission patterns of docs/operations.md (Least privilege) for queue
// "emails".
const (
	producerWrite = `^(amq\.default|warren\.delay\.[0-9]+)$`
	workerRead    = `^(emails)$`
)

// dial connects to url, closing the connection when the test ends.
func dial(t *testing.T, url string) *broker.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := broker.Dial(ctx, url, broker.Config{DialRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// ctl runs rabbitmqctl on n, failing the test on error.
func ctl(t *testing.T, n *testnode.Node, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := n.Ctl(ctx, args...); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// run runs the doctor against n as url, with rabbitmqctl pointed at n: its
// name, the program itself (not the /usr/sbin wrapper, which changes HOME)
// and the node's Erlang cookie through HOME.
func run(t *testing.T, n *testnode.Node, url string, cfg doctor.Config) *doctor.Report {
	t.Helper()
	t.Setenv("HOME", n.Home())
	cfg.Node, cfg.Rabbitmqctl, cfg.CtlTimeout = n.Name, testnode.CtlBin, 30*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := doctor.Run(ctx, dial(t, url), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	_ = r.WriteText(&text)
	t.Logf("report:\n%s", text.String())
	if !strings.HasPrefix(r.Rabbitmqctl, "node "+n.Name) {
		t.Fatalf("rabbitmqctl %q: want node %s", r.Rabbitmqctl, n.Name)
	}
	return r
}

// expect checks that the report has check name with status, its detail
// holding every one of details.
func expect(t *testing.T, r *doctor.Report, name string, status doctor.Status, details ...string) {
	t.Helper()
	c, ok := r.Find(name)
	if !ok {
		t.Errorf("no check %s", name)
		return
	}
	if c.Status != status {
		t.Errorf("%s: %s %q (fix %q); want %s", name, c.Status, c.Detail, c.Fix, status)
	}
	for _, d := range details {
		if !strings.Contains(c.Detail, d) {
			t.Errorf("%s: detail %q lacks %q", name, c.Detail, d)
		}
	}
	if status != doctor.OK && c.Fix == "" {
		t.Errorf("%s: %s without a fix", name, c.Status)
	}
}

// TestDoctorHealthyNode: a node set up as Warren wants it, checked as a
// least-privilege worker, passes every check; only the version WARNs
// (3.10 is out of community support).
func TestDoctorHealthyNode(t *testing.T) {
	n := testnode.New(t, testnode.Options{Config: "cluster_partition_handling = pause_minority\n"})
	ctx := context.Background()
	if err := broker.Declare(ctx, dial(t, n.URL()), broker.QueueOptions{}, "emails"); err != nil {
		t.Fatal(err)
	}
	ctl(t, n, "add_user", "doc-worker", "s3cret-w")
	ctl(t, n, "set_permissions", "-p", "/", "doc-worker", "^$", producerWrite, workerRead)

	r := run(t, n, n.URLFor("doc-worker", "s3cret-w", "/"), doctor.Config{Role: doctor.Worker, Queues: []string{"emails"}})
	expect(t, r, "version", doctor.Warn, "RabbitMQ 3.10.8", "Erlang/OTP")
	for _, name := range []string{"feature_flags", "consumer_timeout", "partition_handling", "queue:emails", "delay_levels", "alarms", "frame_max", "permissions"} {
		expect(t, r, name, doctor.OK)
	}
	expect(t, r, "frame_max", doctor.OK, "131072 bytes", "128 MiB")
	expect(t, r, "permissions", doctor.OK, "enough for producer, worker")
	if r.Failed() || r.Fail != 0 || r.OK != 8 || r.Warn != 1 {
		t.Errorf("counts: %d ok, %d warn, %d fail; want 8, 1, 0", r.OK, r.Warn, r.Fail)
	}
	if strings.Contains(r.Broker, "s3cret-w") {
		t.Errorf("report shows the password: %s", r.Broker)
	}

	// Without --queue, the doctor finds the Warren queues by their .dlq.
	r = run(t, n, n.URL(), doctor.Config{})
	expect(t, r, "queue:emails", doctor.OK, "delivery limit 20")
	expect(t, r, "permissions", doctor.Warn, "may do anything") // guest
}

// TestDoctorFaultyNode: one node configured to fail every check it can:
// stream_queue off, consumer_timeout under the handler timeout, the
// default partition handling, a small frame_max; then queues that drifted,
// a dead-letter queue gone, a delay level unbound and another's exchange
// deleted, a user with a
// producer's permissions, and a memory alarm.
func TestDoctorFaultyNode(t *testing.T) {
	n := testnode.New(t, testnode.Options{
		Config: "consumer_timeout = 60000\nframe_max = 8192\n",
		Env:    []string{"RABBITMQ_FEATURE_FLAGS=quorum_queue,implicit_default_bindings,virtual_host_metadata,maintenance_mode_status,user_limits"},
	})
	ctx := context.Background()
	conn := dial(t, n.URL())
	if err := broker.Declare(ctx, conn, broker.QueueOptions{}, "emails", "nodlq"); err != nil {
		t.Fatal(err)
	}
	if err := broker.DeclareQueue(ctx, conn, "drift", broker.QueueOptions{DeliveryLimit: 5}); err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	toQueue, _ := broker.DelayBindingKeys(3)
	if err := ch.QueueUnbind("warren.delay.3", toQueue, "warren.delay.3", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDelete("nodlq.dlq", false, false, false); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDelete("warren.delay.5", false, false); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()
	ctl(t, n, "add_user", "doc-producer", "s3cret-p")
	ctl(t, n, "set_permissions", "-p", "/", "doc-producer", "^$", producerWrite, "^$")

	// As the producer, asked whether it can work "emails".
	r := run(t, n, n.URLFor("doc-producer", "s3cret-p", "/"), doctor.Config{Role: doctor.Worker, Queues: []string{"emails"}})
	expect(t, r, "permissions", doctor.Fail, `user "doc-producer"`, "enough for producer", "as worker it lacks read on emails")

	ctl(t, n, "set_vm_memory_high_watermark", "0.0000001")
	ctl(t, n, "set_disk_free_limit", "1000000GB")
	t.Cleanup(func() {
		ctl(t, n, "set_vm_memory_high_watermark", "0.4")
		ctl(t, n, "set_disk_free_limit", "50MB")
	})
	awaitAlarms(t, n, "memory", "disk")

	r = run(t, n, n.URL(), doctor.Config{Queues: []string{"emails", "drift", "nodlq", "missing"}, HandlerTimeout: 5 * time.Minute})
	expect(t, r, "feature_flags", doctor.Fail, "stream_queue")
	expect(t, r, "consumer_timeout", doctor.Fail, "1m0s; handler timeout 5m0s")
	expect(t, r, "partition_handling", doctor.Warn, "ignore, 1 node(s)")
	expect(t, r, "queue:emails", doctor.OK)
	expect(t, r, "queue:drift", doctor.Fail, "x-delivery-limit = 5, want 20")
	expect(t, r, "queue:nodlq", doctor.Fail, "nodlq.dlq does not exist")
	expect(t, r, "queue:missing", doctor.Fail, "does not exist")
	expect(t, r, "delay_levels", doctor.Fail, "warren.delay.3 not bound to its exchange", "exchange warren.delay.5 missing")
	expect(t, r, "alarms", doctor.Fail, "memory on "+n.Name, "disk on "+n.Name)
	expect(t, r, "frame_max", doctor.Fail, "8192 bytes: too small")
	if !r.Failed() {
		t.Error("Failed() = false")
	}

	// The JSON names are stable: a program reads them.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Checks []struct{ Name, Status, Detail, Fix string }
		Fail   int
	}
	if err := json.Unmarshal(b, &decoded); err != nil || decoded.Fail != r.Fail || len(decoded.Checks) != len(r.Checks) {
		t.Fatalf("JSON %s: %v", b, err)
	}

	// A node rabbitmqctl cannot reach: the checks that need it WARN,
	// the AMQP ones still run.
	r2, err := doctor.Run(ctx, conn, doctor.Config{Node: "nosuch@nohost", Rabbitmqctl: testnode.CtlBin, CtlTimeout: 30 * time.Second, Queues: []string{"drift"}})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, r2, "consumer_timeout", doctor.Warn, "cannot check consumer_timeout without rabbitmqctl access")
	expect(t, r2, "queue:drift", doctor.Warn, "exists")
	expect(t, r2, "delay_levels", doctor.Fail, "exchange warren.delay.5 missing") // passive declares
	expect(t, r2, "frame_max", doctor.Fail, "too small")
}

// TestDoctorPartitionHandlingOnCluster: a two-node cluster left with
// RabbitMQ's default cluster_partition_handling (ignore) FAILs the check;
// a single node only WARNs (TestDoctorFaultyNode).
func TestDoctorPartitionHandlingOnCluster(t *testing.T) {
	if err := testnode.Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	nodes, err := testnode.NewCluster(dir, testnode.ClusterOptions{Nodes: 2, Tag: "doctor", Node: testnode.Options{Logf: t.Logf}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nodes.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := nodes.Start(ctx); err != nil {
		t.Fatal(err)
	}
	first := nodes.Nodes[0]
	t.Setenv("HOME", nodes.Home()) // the cluster's Erlang cookie
	r, err := doctor.Run(ctx, dial(t, first.URL()), doctor.Config{Node: first.Name, Rabbitmqctl: testnode.CtlBin, CtlTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, r, "partition_handling", doctor.Fail, "ignore, 2 node(s)", "both sides")
}

// awaitAlarms waits until node n has raised every alarm of kinds (the
// node's monitors raise them asynchronously).
func awaitAlarms(t *testing.T, n *testnode.Node, kinds ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := n.Ctl(ctx, "-q", "eval", "rabbit_alarm:get_alarms().")
		all := err == nil
		for _, k := range kinds {
			all = all && strings.Contains(out, "resource_limit,"+k)
		}
		if all {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("alarms %v not raised: %s %v", kinds, out, err)
		case <-tick.C:
		}
	}
}
