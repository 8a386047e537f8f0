package testbroker

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
)

// Foreign is a message published by a client other than amqp091-go
// (Python's pika), with headers Warren's client cannot read.
type Foreign struct {
	// ID and Type are the AMQP message_id and type.
	ID, Type string
	// Body is the message body.
	Body string
	// Deep nests the headers this many tables deep; Wide puts this many
	// entries in one table; Big adds one string header of this many bytes.
	// Zero values add nothing.
	Deep, Wide, Big int
}

// pikaScript publishes the messages of a JSON list (stdin) to a queue
// through the default exchange with publisher confirms.
const pikaScript = `
import json, sys, pika
sys.setrecursionlimit(20000)
url, queue = sys.argv[1], sys.argv[2]
msgs = json.load(sys.stdin)
conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
ch.confirm_delivery()
for m in msgs:
    h = {}
    if m.get("Deep"):
        t = {"leaf": 1}
        for _ in range(m["Deep"]):
            t = {"n": t}
        h["deep"] = t
    if m.get("Wide"):
        for i in range(m["Wide"]):
            h["k%d" % i] = i
    if m.get("Big"):
        h["big"] = "b" * m["Big"]
    props = pika.BasicProperties(message_id=m["ID"], type=m["Type"], delivery_mode=2,
                                 content_type="application/json", headers=h or None)
    ch.basic_publish(exchange="", routing_key=queue, body=m["Body"].encode(), properties=props, mandatory=True)
conn.close()
`

// PublishForeign publishes msgs to queue with pika (Debian's python3-pika)
// and returns once the broker confirmed each. It fails the test when
// python3 or pika is missing under CI=true and skips it otherwise.
func PublishForeign(t testing.TB, queue string, msgs ...Foreign) {
	t.Helper()
	python := "python3"
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		python = "/usr/bin/python3" // Debian's, where python3-pika installs
	}
	if err := exec.Command(python, "-c", "import pika").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3-pika is missing under CI=true (apt-get install python3-pika): %v", err)
		}
		t.Skipf("python3-pika is missing (apt-get install python3-pika): %v", err)
	}
	in, err := json.Marshal(msgs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", pikaScript, URL(), queue)
	cmd.Stdin = bytes.NewReader(in)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("pika publish to %s: %v\n%s", queue, err, out.String())
	}
}
