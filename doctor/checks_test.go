package doctor

import (
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/worker"
)

func TestDefaultHandlerTimeoutIsTheWorkers(t *testing.T) {
	if defaultHandlerTimeout != worker.DefaultHandlerTimeout {
		t.Fatalf("defaultHandlerTimeout = %s, worker.DefaultHandlerTimeout = %s", defaultHandlerTimeout, worker.DefaultHandlerTimeout)
	}
}

func want(t *testing.T, c Check, status Status, detail string) {
	t.Helper()
	if c.Status != status || !strings.Contains(c.Detail, detail) {
		t.Errorf("%s: got %s %q; want %s containing %q", c.Name, c.Status, c.Detail, status, detail)
	}
	if (c.Status == OK) != (c.Fix == "") {
		t.Errorf("%s: status %s with fix %q: a fix goes with WARN and FAIL only", c.Name, c.Status, c.Fix)
	}
}

func TestCheckVersion(t *testing.T) {
	caps := map[string]bool{}
	for _, k := range requiredCapabilities {
		caps[k] = true
	}
	want(t, checkVersion("RabbitMQ", "3.9.29", "Erlang/OTP 24", caps), Fail, "3.9.29")
	want(t, checkVersion("RabbitMQ", "3.10.8", "Erlang/OTP 25.2.3", caps), Warn, "Erlang/OTP 25.2.3")
	want(t, checkVersion("RabbitMQ", "3.12.14", "Erlang/OTP 26", caps), Warn, "3.12.14")
	want(t, checkVersion("RabbitMQ", "3.13.7", "Erlang/OTP 26", caps), OK, "not covered")
	want(t, checkVersion("RabbitMQ", "4.1.0", "Erlang/OTP 27", caps), OK, "4.1.0")
	want(t, checkVersion("LavinMQ", "2.0.0", "", caps), Warn, "LavinMQ")
	want(t, checkVersion("RabbitMQ", "garbage", "", caps), Warn, "garbage")
	delete(caps, "exchange_exchange_bindings")
	want(t, checkVersion("RabbitMQ", "4.1.0", "", caps), Fail, "lacks exchange_exchange_bindings")
}

func TestCheckFeatureFlags(t *testing.T) {
	want(t, checkFeatureFlags(map[string]string{"quorum_queue": "enabled", "stream_queue": "enabled"}), OK, "all 2 enabled")
	want(t, checkFeatureFlags(map[string]string{"quorum_queue": "enabled", "stream_queue": "disabled"}), Fail, "stream_queue")
	want(t, checkFeatureFlags(map[string]string{"quorum_queue": "enabled"}), Fail, "stream_queue")
	want(t, checkFeatureFlags(map[string]string{"quorum_queue": "enabled", "stream_queue": "enabled", "khepri_db": "disabled"}), Warn, "khepri_db")
}

func TestCheckConsumerTimeout(t *testing.T) {
	d := func(s string) *time.Duration { v, _ := time.ParseDuration(s); return &v }
	want(t, checkConsumerTimeout(nil, 5*time.Minute), OK, "disabled")
	want(t, checkConsumerTimeout(d("30m"), 5*time.Minute), OK, "30m0s")
	want(t, checkConsumerTimeout(d("6m"), 5*time.Minute), OK, "6m0s")
	c := checkConsumerTimeout(d("5m59s"), 5*time.Minute)
	want(t, c, Fail, "take back")
	if !strings.Contains(c.Fix, "consumer_timeout = 360000") {
		t.Errorf("fix %q: want the timeout to set", c.Fix)
	}
	want(t, checkConsumerTimeout(d("1m"), 5*time.Minute), Fail, "1m0s")
}

func TestCheckPartitionHandling(t *testing.T) {
	want(t, checkPartitionHandling("pause_minority", 3, "3.10.8"), OK, "pause_minority")
	want(t, checkPartitionHandling("pause_if_all_down", 3, "3.13.0"), OK, "pause_if_all_down")
	want(t, checkPartitionHandling("ignore", 1, "3.10.8"), Warn, "single node")
	want(t, checkPartitionHandling("ignore", 3, "3.10.8"), Fail, "both sides")
	want(t, checkPartitionHandling("autoheal", 3, "4.0.1"), Warn, "autoheal")
	want(t, checkPartitionHandling("ignore", 3, "4.3.0"), OK, "Khepri")
}

func TestCheckQueue(t *testing.T) {
	o := broker.QueueOptions{}
	args := func(t broker.QueueOptions) map[string]any {
		m := map[string]any{}
		for k, v := range broker.QueueArgs("emails", t) {
			m[k] = v
		}
		return m
	}
	good := &queueFact{Type: "quorum", Args: args(o)}
	dlq := &queueFact{Type: "quorum", Args: map[string]any{"x-queue-type": "quorum"}}
	bound := []binding{{broker.DeliveryExchange, "emails", "queue", broker.DeliveryBindingKey("emails")}}

	want(t, checkQueue("emails", good, dlq, bound, o, "3.10.8", nil), OK, "delivery limit 20")
	want(t, checkQueue("emails", nil, nil, nil, o, "3.10.8", nil), Fail, "does not exist")
	want(t, checkQueue("emails", good, nil, bound, o, "3.10.8", nil), Fail, "emails.dlq does not exist")
	want(t, checkQueue("emails", good, dlq, []binding{}, o, "3.10.8", nil), Fail, "not bound")

	// rabbitmqctl's JSON numbers are float64.
	drift := args(o)
	drift["x-delivery-limit"] = float64(5)
	want(t, checkQueue("emails", &queueFact{Type: "quorum", Args: drift}, dlq, bound, o, "3.10.8", nil), Fail, "x-delivery-limit = 5, want 20")
	drift = args(o)
	drift["x-dead-letter-routing-key"] = "elsewhere"
	want(t, checkQueue("emails", &queueFact{Type: "quorum", Args: drift}, dlq, bound, o, "3.10.8", nil), Fail, `x-dead-letter-routing-key = "elsewhere"`)
	drift = args(o)
	delete(drift, "x-dead-letter-strategy")
	drift["x-max-length"] = float64(10)
	c := checkQueue("emails", &queueFact{Type: "quorum", Args: drift}, dlq, bound, o, "3.10.8", nil)
	want(t, c, Fail, "x-dead-letter-strategy missing")
	want(t, c, Fail, "x-max-length = 10, not Warren's")
	classic := args(broker.QueueOptions{Type: broker.Classic})
	want(t, checkQueue("emails", &queueFact{Type: "classic", Args: classic}, dlq, bound, o, "3.10.8", nil), Fail, `x-queue-type = "classic", want "quorum"`)
	want(t, checkQueue("emails", &queueFact{Type: "classic", Args: classic}, dlq, bound, broker.QueueOptions{Type: broker.Classic}, "3.10.8", nil), OK, "classic")

	// RabbitMQ 4.0 to 4.2 limit the dead-letter queue's deliveries to 20
	// by default, and count every hand-back.
	want(t, checkQueue("emails", good, dlq, bound, o, "4.1.2", nil), Warn, "default delivery limit of 20")
	want(t, checkQueue("emails", good, dlq, bound, o, "4.3.0", nil), OK, "delivery limit 20")
	want(t, checkQueue("emails", good, &queueFact{Type: "quorum", Args: map[string]any{"x-queue-type": "quorum", "x-delivery-limit": float64(1e6)}}, bound, o, "4.0.5", nil), OK, "delivery limit 20")

	// Without rabbitmqctl: existence only.
	want(t, checkQueue("emails", &queueFact{}, &queueFact{}, nil, o, "3.10.8", nil), Warn, "without rabbitmqctl")
	want(t, checkQueue("emails", &queueFact{}, nil, nil, o, "3.10.8", nil), Fail, "emails.dlq does not exist")
}

// sharedFacts is the shared topology as DeclareShared leaves it.
func sharedFacts() (map[string]*queueFact, map[string]bool, []binding) {
	queues := map[string]*queueFact{broker.UnroutableQueue: {Type: "quorum", Args: map[string]any{"x-queue-type": "quorum"}}}
	exchanges := map[string]bool{broker.DeliveryExchange: true, broker.UnroutableExchange: true}
	var bindings []binding
	for k := range broker.DelayLevels {
		name := broker.DelayExchange(k)
		args := map[string]any{}
		for a, v := range broker.DelayQueueArgs(k) {
			args[a] = v
		}
		queues[name] = &queueFact{Type: "quorum", Args: args}
		exchanges[name] = true
		toQueue, toNext := broker.DelayBindingKeys(k)
		bindings = append(bindings, binding{name, name, "queue", toQueue}, binding{name, broker.DelayNext(k), "exchange", toNext})
	}
	return queues, exchanges, bindings
}

func TestCheckDelayLevels(t *testing.T) {
	q, x, b := sharedFacts()
	want(t, checkDelayLevels(q, x, b, nil), OK, "all 24 levels")

	q, x, b = sharedFacts()
	delete(q, "warren.delay.7")
	want(t, checkDelayLevels(q, x, b, nil), Fail, "queue warren.delay.7 missing")

	q, x, b = sharedFacts()
	b = b[2:] // level 0 unbound
	c := checkDelayLevels(q, x, b, nil)
	want(t, c, Fail, "warren.delay.0 not bound to its exchange")
	want(t, c, Fail, "exchange warren.delay.0 not bound to warren.delivery")

	q, x, b = sharedFacts()
	q["warren.delay.3"].Args["x-message-ttl"] = float64(1000)
	want(t, checkDelayLevels(q, x, b, nil), Fail, "warren.delay.3: x-message-ttl = 1000, want 8000")

	q, x, b = sharedFacts()
	x[broker.DeliveryExchange] = false
	want(t, checkDelayLevels(q, x, b, nil), Fail, "exchange warren.delivery missing")

	// Without rabbitmqctl: presence only.
	q, x, _ = sharedFacts()
	for _, f := range q {
		f.Args = nil
	}
	want(t, checkDelayLevels(q, x, nil, nil), Warn, "all 24 levels present")

	// Many problems are cut short.
	c = checkDelayLevels(map[string]*queueFact{}, map[string]bool{}, nil, nil)
	want(t, c, Fail, "more")
}

func TestCheckAlarms(t *testing.T) {
	want(t, checkAlarms(nil, ""), OK, "no memory or disk alarm")
	want(t, checkAlarms([]string{"memory on rabbit@a"}, ""), Fail, "memory on rabbit@a")
	want(t, checkAlarms(nil, "low on memory"), Fail, "low on memory")
}

func TestCheckFrameMax(t *testing.T) {
	want(t, checkFrameMax(131072, 128<<20), OK, "128 MiB")
	want(t, checkFrameMax(131072, 0), OK, "unknown")
	want(t, checkFrameMax(8192, 128<<20), Fail, "too small")
	small := 8<<10 + 8 + 1024 + broker.DelayLevels*(131072-8-1024-broker.DelayedHeaderBudget(131072))/broker.DelayLevels + RetryMetadata
	want(t, checkFrameMax(small, 0), Warn, "up to 8192 bytes")
}

func TestHeaderBudget(t *testing.T) {
	if got := HeaderBudget(131072); got < 96<<10 || got > 128<<10 {
		t.Errorf("HeaderBudget(131072) = %d: want most of the default frame_max left", got)
	}
	if HeaderBudget(8192) >= 0 {
		t.Errorf("HeaderBudget(8192) = %d: want negative", HeaderBudget(8192))
	}
	if RetryMetadata < 3*255+warren.MaxQueueNameLen+128 {
		t.Errorf("RetryMetadata %d leaves out the IDs, the queue or the last error", RetryMetadata)
	}
}

func TestCheckPermissions(t *testing.T) {
	qs := []string{"emails"}
	producer := &Perm{Configure: "^$", Write: `^(amq\.default|warren\.delay\.[0-9]+)$`, Read: "^$"}
	workerP := &Perm{Configure: "^$", Write: `^(amq\.default|warren\.delay\.[0-9]+)$`, Read: "^(emails)$"}
	operator := &Perm{Configure: `^(warren\..*|emails|emails\.dlq(\.replayed)?)$`, Write: `^(warren\..*|amq\.default|emails)$`, Read: `^(warren\..*|emails|emails\.dlq(\.replayed)?)$`}
	all := &Perm{Configure: ".*", Write: ".*", Read: ".*"}
	none := &Perm{Configure: "^$", Write: "^$", Read: "^$"}

	want(t, checkPermissions("p", "prod", producer, qs, ""), OK, "enough for producer")
	want(t, checkPermissions("p", "prod", producer, qs, Producer), OK, "producer")
	want(t, checkPermissions("p", "prod", producer, qs, Worker), Fail, "as worker it lacks read on emails")
	want(t, checkPermissions("w", "prod", workerP, qs, Worker), OK, "enough for producer, worker")
	want(t, checkPermissions("o", "prod", operator, qs, Operator), OK, "operator")
	want(t, checkPermissions("w", "prod", workerP, qs, Operator), Fail, "as operator it lacks configure on warren.delay.0")
	want(t, checkPermissions("g", "/", all, qs, ""), Warn, "may do anything")
	want(t, checkPermissions("n", "/", none, qs, ""), Fail, "even a producer needs write on amq.default")
	want(t, checkPermissions("n", "/", nil, qs, ""), Fail, "no permissions")
	want(t, checkPermissions("x", "/", &Perm{Configure: "(", Write: "", Read: ""}, qs, ""), Warn, "configure pattern")
	// Write on the top level only: a delay of a few seconds enters a lower one.
	top := &Perm{Configure: "^$", Write: `^(amq\.default|warren\.delay\.23)$`, Read: "^$"}
	want(t, checkPermissions("p", "prod", top, qs, Producer), Fail, "as producer it lacks write on warren.delay.0")
}

func TestConfigValidate(t *testing.T) {
	err := Config{HandlerTimeout: -1, Role: "boss", Queues: []string{"bad name"}, QueueOptions: broker.QueueOptions{DeliveryLimit: -1}}.Validate()
	if err == nil {
		t.Fatal("want an error")
	}
	for _, s := range []string{"HandlerTimeout", "boss", "bad name", "DeliveryLimit"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}

func TestParseSettings(t *testing.T) {
	got, err := parseSettings(`"{ok,1800000}|{ok,{pause_if_all_down,['rabbit@a-b'],ignore}}|3|[{{resource_limit,memory,'rabbit@a-b'},[]}]|{ok,134217728}"` + "\n")
	if err != nil || len(got) != setFields || got[setNodes] != "3" || got[setAlarms] != "[{{resource_limit,memory,'rabbit@a-b'},[]}]" {
		t.Fatalf("parseSettings = %q, %v", got, err)
	}
	if m := okAtom.FindStringSubmatch(got[setPartitionHandling]); m == nil || m[1] != "pause_if_all_down" {
		t.Errorf("partition handling %q: read %v", got[setPartitionHandling], m)
	}
	if m := alarmRE.FindAllStringSubmatch(got[setAlarms], -1); len(m) != 1 || m[0][1] != "memory" || m[0][2] != "rabbit@a-b" {
		t.Errorf("alarms %q: read %v", got[setAlarms], m)
	}
	for _, bad := range []string{"", `"a|b"`, "{ok,1}|{ok,ignore}|1|[]|{ok,1}", `Error: {:badrpc, :nodedown}`} {
		if _, err := parseSettings(bad); err == nil {
			t.Errorf("parseSettings(%q): want an error", bad)
		}
	}
}
