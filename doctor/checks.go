package doctor

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// This file holds the verdicts: pure functions from what was found to a
// Check, tested without a broker.

// noCtl is the detail and fix of a check that needs rabbitmqctl.
func noCtl(name, what string, why error) Check {
	return Check{Name: name, Status: Warn,
		Detail: fmt.Sprintf("cannot check %s without rabbitmqctl access (%v)", what, why),
		Fix:    "run warren doctor on a broker node as a user that can run rabbitmqctl, with --node NAME@HOST if the URL does not name localhost:5672"}
}

// requiredCapabilities are the protocol extensions Warren uses: confirms
// and their nacks, exchange-to-exchange bindings (the delay levels),
// per-consumer prefetch and connection.blocked.
var requiredCapabilities = []string{"publisher_confirms", "basic.nack", "exchange_exchange_bindings", "per_consumer_qos", "connection.blocked"}

// checkVersion judges the broker's product, version and capabilities.
func checkVersion(product, version, platform string, caps map[string]bool) Check {
	c := Check{Name: "version", Detail: fmt.Sprintf("%s %s on %s", product, version, platform)}
	var missing []string
	for _, k := range requiredCapabilities {
		if !caps[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		c.Status = Fail
		c.Detail += "; lacks " + strings.Join(missing, ", ")
		c.Fix = "use RabbitMQ 3.13 or 4.x: Warren needs these protocol extensions"
		return c
	}
	if product != "RabbitMQ" {
		c.Status, c.Fix = Warn, "Warren is built and tested for RabbitMQ; other brokers may lack quorum queues or at-least-once dead-lettering"
		return c
	}
	v, err := broker.ParseVersion(version)
	switch {
	case err != nil:
		c.Status, c.Fix = Warn, "cannot read the version; see docs/compatibility.md for what Warren needs"
	case !v.AtLeast(3, 10):
		c.Status, c.Fix = Fail, "upgrade RabbitMQ to 3.13 or 4.x: Warren needs at-least-once dead-lettering (3.10 and later)"
	case !v.AtLeast(3, 13):
		c.Status, c.Fix = Warn, "this line is out of community support: plan an upgrade to 3.13 or 4.x (docs/compatibility.md)"
		c.Detail += "; Warren's test suite runs on 3.10"
	default:
		c.Status = OK
		c.Detail += "; not covered by Warren's test suite (docs/compatibility.md)"
	}
	return c
}

// requiredFlags are the feature flags Warren relies on: quorum queues,
// and stream_queue for at-least-once dead-lettering.
var requiredFlags = []string{"quorum_queue", "stream_queue"}

// checkFeatureFlags judges the feature flags' states (name to "enabled",
// "disabled" or "unavailable").
func checkFeatureFlags(flags map[string]string) Check {
	c := Check{Name: "feature_flags"}
	var missing, disabled []string
	for _, f := range requiredFlags {
		if flags[f] != "enabled" {
			missing = append(missing, f)
		}
	}
	for f, st := range flags {
		if st != "enabled" {
			disabled = append(disabled, f)
		}
	}
	sort.Strings(disabled)
	switch {
	case len(missing) > 0:
		c.Status = Fail
		c.Detail = "not enabled: " + strings.Join(missing, ", ") + " (quorum queues and at-least-once dead-lettering need them)"
		c.Fix = "rabbitmqctl enable_feature_flag all"
	case len(disabled) > 0:
		c.Status = Warn
		c.Detail = fmt.Sprintf("%s enabled; disabled: %s", strings.Join(requiredFlags, ", "), strings.Join(disabled, ", "))
		c.Fix = "rabbitmqctl enable_feature_flag all (an upgrade needs every flag enabled first)"
	default:
		c.Status = OK
		c.Detail = fmt.Sprintf("all %d enabled, %s among them", len(flags), strings.Join(requiredFlags, " and "))
	}
	return c
}

// consumerTimeoutMargin is how far the handler timeout must stay under
// consumer_timeout: the broker checks it about once a minute.
const consumerTimeoutMargin = time.Minute

// checkConsumerTimeout judges consumer_timeout (nil: disabled) against
// the handler timeout.
func checkConsumerTimeout(timeout *time.Duration, handler time.Duration) Check {
	c := Check{Name: "consumer_timeout"}
	if timeout == nil {
		c.Status, c.Detail = OK, fmt.Sprintf("disabled; handler timeout %s", handler)
		return c
	}
	c.Detail = fmt.Sprintf("%s; handler timeout %s", *timeout, handler)
	if handler > *timeout-consumerTimeoutMargin {
		c.Status = Fail
		c.Detail += ": the broker would take back a task while its handler still runs"
		c.Fix = fmt.Sprintf("set consumer_timeout = %d in rabbitmq.conf (handler timeout plus a minute, in ms) and restart the node, or lower the handler timeout",
			(handler + consumerTimeoutMargin).Milliseconds())
		return c
	}
	c.Status = OK
	return c
}

// checkPartitionHandling judges cluster_partition_handling on a cluster
// of nodes nodes.
func checkPartitionHandling(mode string, nodes int, version string) Check {
	c := Check{Name: "partition_handling", Detail: fmt.Sprintf("%s, %d node(s)", mode, nodes)}
	if v, err := broker.ParseVersion(version); err == nil && v.AtLeast(4, 3) {
		c.Status, c.Detail = OK, c.Detail+"; RabbitMQ 4.3 and later ignore it (Khepri)"
		return c
	}
	switch {
	case mode == "pause_minority" || mode == "pause_if_all_down":
		c.Status = OK
	case nodes <= 1:
		c.Status = Warn
		c.Detail += "; no effect on a single node, but a cluster would keep both sides of a partition running"
		c.Fix = "before clustering, set cluster_partition_handling = pause_minority in rabbitmq.conf (3 or more nodes)"
	case mode == "autoheal":
		c.Status = Warn
		c.Detail += "; autoheal restarts the losing side and drops what it took meanwhile"
		c.Fix = "set cluster_partition_handling = pause_minority in rabbitmq.conf (3 or more nodes)"
	default:
		c.Status = Fail
		c.Detail += "; a partition lasts until an operator restarts the minority, and both sides accept work"
		c.Fix = "set cluster_partition_handling = pause_minority in rabbitmq.conf (3 or more nodes) and restart each node"
	}
	return c
}

// queueFact is what rabbitmqctl (or a passive declare) says of a queue.
type queueFact struct {
	Type string
	Args map[string]any // nil when unknown (no rabbitmqctl)
}

// binding is one binding as rabbitmqctl lists it.
type binding struct {
	Source, Destination, Kind, Key string
}

// argsDrift lists the differences between want and got, as "name: got X,
// want Y", sorted. Numbers compare by value whatever their AMQP type.
func argsDrift(want amqp.Table, got map[string]any) []string {
	var out []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s missing, want %s", k, show(w)))
		case !sameValue(w, g):
			out = append(out, fmt.Sprintf("%s = %s, want %s", k, show(g), show(w)))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%s = %s, not Warren's", k, show(g)))
		}
	}
	sort.Strings(out)
	return out
}

// show prints an argument's value: strings quoted, numbers in full.
func show(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	if n, ok := number(v); ok {
		return strconv.FormatFloat(n, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

func sameValue(a, b any) bool {
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x == y
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// checkQueue judges Warren queue name: the queue and its dead-letter queue
// (nil when missing), and whether it is bound to the delivery exchange
// (nil bindings: unknown). why says why arguments are unknown (nil Args).
func checkQueue(name string, q, dlq *queueFact, bindings []binding, o broker.QueueOptions, version string, why error) Check {
	c := Check{Name: "queue:" + name}
	declare := fmt.Sprintf("warren topology declare --queue %s --queue-type %s --delivery-limit %d", name, cmpOr(string(o.Type), "quorum"), cmpOr(o.DeliveryLimit, broker.DefaultDeliveryLimit))
	if q == nil {
		c.Status, c.Detail, c.Fix = Fail, "does not exist", declare
		return c
	}
	var problems []string
	if dlq == nil {
		problems = append(problems, "its dead-letter queue "+warren.DeadLetterQueue(name)+" does not exist")
	} else if dlq.Type != "" && dlq.Type != "quorum" {
		problems = append(problems, fmt.Sprintf("its dead-letter queue is %s, want quorum", dlq.Type))
	}
	if q.Args == nil {
		if len(problems) > 0 {
			c.Status, c.Detail, c.Fix = Fail, "exists, but "+strings.Join(problems, "; "), declare
			return c
		}
		ch := noCtl(c.Name, "its type and arguments", why)
		ch.Detail = "exists, with its dead-letter queue; " + ch.Detail
		return ch
	}
	want := broker.QueueArgs(name, o)
	drift := argsDrift(want, q.Args)
	problems = append(problems, drift...)
	if bindings != nil && !slices.Contains(bindings, binding{broker.DeliveryExchange, name, "queue", broker.DeliveryBindingKey(name)}) {
		problems = append(problems, "not bound to "+broker.DeliveryExchange+" (delayed tasks and retries would not reach it)")
	}
	if len(problems) > 0 {
		c.Status = Fail
		c.Detail = "drift: " + strings.Join(problems, "; ")
		c.Fix = declare
		if len(drift) > 0 {
			c.Fix = "drain it, delete it (rabbitmqctl delete_queue " + name + ") and " + declare + "; or run doctor with the --queue-type and --delivery-limit it was declared with"
		}
		return c
	}
	c.Status = OK
	c.Detail = fmt.Sprintf("%s, dead-letters to %s", want["x-queue-type"], warren.DeadLetterQueue(name))
	if l, ok := want["x-delivery-limit"]; ok {
		c.Detail += fmt.Sprintf(", delivery limit %v", l)
	}
	if v, err := broker.ParseVersion(version); err == nil && v.AtLeast(4, 0) && !v.AtLeast(4, 3) {
		if _, ok := dlq.Args["x-delivery-limit"]; !ok {
			dl := warren.DeadLetterQueue(name)
			c.Status = Warn
			c.Detail += fmt.Sprintf("; RabbitMQ %s gives %s the default delivery limit of 20, and counts every hand-back: a dead letter that dlq list, show or replay hands back 20 times is dropped, unless a policy raises the limit", version, dl)
			c.Fix = `rabbitmqctl set_policy warren-dlq '\.dlq(\.replayed)?$' '{"delivery-limit":1000000}' --apply-to quorum_queues (docs/compatibility.md)`
		}
	}
	return c
}

// checkDelayLevels judges the shared topology: queues (name to fact, or
// absent), exchanges present, and bindings (nil: unknown); why says why
// arguments or bindings are unknown.
func checkDelayLevels(queues map[string]*queueFact, exchanges map[string]bool, bindings []binding, why error) Check {
	c := Check{Name: "delay_levels"}
	var problems []string
	argsKnown := false
	for k := range broker.DelayLevels {
		name := broker.DelayExchange(k)
		if !exchanges[name] {
			problems = append(problems, "exchange "+name+" missing")
		}
		q := queues[name]
		if q == nil {
			problems = append(problems, "queue "+name+" missing")
			continue
		}
		if q.Args != nil {
			argsKnown = true
			for _, d := range argsDrift(broker.DelayQueueArgs(k), q.Args) {
				problems = append(problems, name+": "+d)
			}
		}
		if bindings != nil {
			toQueue, toNext := broker.DelayBindingKeys(k)
			if !slices.Contains(bindings, binding{name, name, "queue", toQueue}) {
				problems = append(problems, name+" not bound to its exchange")
			}
			if !slices.Contains(bindings, binding{name, broker.DelayNext(k), "exchange", toNext}) {
				problems = append(problems, "exchange "+name+" not bound to "+broker.DelayNext(k))
			}
		}
	}
	for _, x := range []string{broker.DeliveryExchange, broker.UnroutableExchange} {
		if !exchanges[x] {
			problems = append(problems, "exchange "+x+" missing")
		}
	}
	if queues[broker.UnroutableQueue] == nil {
		problems = append(problems, "queue "+broker.UnroutableQueue+" missing")
	}
	if len(problems) > 0 {
		c.Status = Fail
		shown := problems
		if len(shown) > 4 {
			shown = append(shown[:4:4], fmt.Sprintf("and %d more", len(problems)-4))
		}
		c.Detail = strings.Join(shown, "; ")
		c.Fix = "warren topology declare (as a user with the operator's permissions); delete a level first if its arguments drifted"
		return c
	}
	if !argsKnown || bindings == nil {
		ch := noCtl(c.Name, "their arguments and bindings", why)
		ch.Detail = fmt.Sprintf("all %d levels present; %s", broker.DelayLevels, ch.Detail)
		return ch
	}
	c.Status = OK
	c.Detail = fmt.Sprintf("all %d levels present, with their arguments and bindings (delays up to %s)", broker.DelayLevels, broker.MaxDelay)
	return c
}

// checkAlarms judges the broker's resource alarms ("memory on NODE") and
// whether it blocks this connection (blocked: the reason, or "").
func checkAlarms(alarms []string, blocked string) Check {
	c := Check{Name: "alarms"}
	switch {
	case len(alarms) > 0:
		c.Status, c.Detail = Fail, "alarm on: "+strings.Join(alarms, ", ")+"; publishing is blocked"
		c.Fix = "free memory or disk on that node, or raise vm_memory_high_watermark / disk_free_limit; rabbitmq-diagnostics alarms shows them"
	case blocked != "":
		c.Status, c.Detail = Fail, "the broker blocks publishing: "+blocked
		c.Fix = "free memory or disk on the broker's nodes; rabbitmq-diagnostics alarms shows them"
	default:
		c.Status, c.Detail = OK, "no memory or disk alarm"
	}
	return c
}

// checkFrameMax judges the negotiated frame_max; maxMessage is the
// broker's max_message_size in bytes (0: unknown).
func checkFrameMax(frameMax int, maxMessage int64) Check {
	c := Check{Name: "frame_max"}
	budget := HeaderBudget(frameMax)
	body := "bodies up to max_message_size (unknown without rabbitmqctl)"
	if maxMessage > 0 {
		body = fmt.Sprintf("bodies up to max_message_size, %s", bytesText(maxMessage))
	}
	c.Detail = fmt.Sprintf("%d bytes: a task's own headers can take up to %d bytes and still be retried (Warren keeps %d for its trimmed metadata and %d for the broker's x-death entries); %s",
		frameMax, max(budget, 0), RetryMetadata, frameMax-broker.DelayedHeaderBudget(frameMax), body)
	switch {
	case budget < 0:
		c.Status = Fail
		c.Detail = fmt.Sprintf("%d bytes: too small for Warren's trimmed metadata (%d) and the broker's x-death entries (%d); the broker closes the connection on a larger header (FRAME_ERROR)",
			frameMax, RetryMetadata, frameMax-broker.DelayedHeaderBudget(frameMax))
		c.Fix = "remove frame_max from rabbitmq.conf (default 131072) and restart the node"
	case budget < 16<<10:
		c.Status = Warn
		c.Fix = "raise frame_max to 131072 (the default) if tasks carry headers of their own"
	default:
		c.Status = OK
	}
	return c
}

func bytesText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Perm is one vhost's permissions of a user: three regular expressions
// over resource names, as rabbitmqctl set_permissions takes them.
type Perm struct {
	Configure, Write, Read string
}

// Role is a Warren role whose needs the permissions check knows.
type Role string

// Roles, as docs/operations.md (Least privilege) describes them.
const (
	Producer Role = "producer"
	Worker   Role = "worker"
	Operator Role = "operator"
)

// Roles lists the roles in the order the permissions check reports them.
var Roles = []Role{Producer, Worker, Operator}

// need is one permission a role needs on one resource.
type need struct {
	perm     string // "configure", "write" or "read"
	resource string
}

// roleNeeds lists what role needs for queues. The default exchange is
// amq.default in permission checks.
func roleNeeds(role Role, queues []string) []need {
	var out []need
	// Producers (delayed tasks) and workers (retries) publish to the level
	// of the delay's highest bit: any of them.
	pub := []need{{"write", "amq.default"}}
	for k := range broker.DelayLevels {
		pub = append(pub, need{"write", broker.DelayExchange(k)})
	}
	switch role {
	case Producer:
		out = pub
	case Worker:
		out = pub
		for _, q := range queues {
			out = append(out, need{"read", q})
		}
	case Operator:
		out = append(out, need{"write", "amq.default"})
		shared := []string{broker.DelayExchange(0), broker.DelayExchange(broker.DelayLevels - 1), broker.DeliveryExchange, broker.UnroutableExchange}
		for _, r := range shared {
			out = append(out, need{"configure", r}, need{"write", r}, need{"read", r})
		}
		for _, q := range queues {
			dlq := warren.DeadLetterQueue(q)
			out = append(out, need{"configure", q}, need{"write", q}, need{"read", q},
				need{"configure", dlq}, need{"read", dlq},
				need{"configure", dlq + ".replayed"}, need{"read", dlq + ".replayed"},
				need{"configure", "warren.lock." + dlq})
		}
	}
	return out
}

// lacks returns what p lacks of needs, as "write on amq.default".
// RabbitMQ matches its patterns unanchored, as Go's MatchString does.
func lacks(p Perm, needs []need) ([]string, error) {
	res := map[string]*regexp.Regexp{}
	for kind, pat := range map[string]string{"configure": p.Configure, "write": p.Write, "read": p.Read} {
		re, err := regexp.Compile(pat)
		if err != nil {
			return nil, fmt.Errorf("%s pattern %q: %w", kind, pat, err)
		}
		res[kind] = re
	}
	var out []string
	for _, n := range needs {
		if !res[n.perm].MatchString(n.resource) {
			out = append(out, n.perm+" on "+n.resource)
		}
	}
	return out, nil
}

// checkPermissions judges user's permissions on vhost (nil: none) against
// the roles' needs for queues. role "" passes when the user can act in
// any role; otherwise the user must be able to act in that role.
func checkPermissions(user, vhost string, p *Perm, queues []string, role Role) Check {
	c := Check{Name: "permissions"}
	where := fmt.Sprintf("user %q on vhost %q", user, vhost)
	if p == nil {
		c.Status, c.Detail = Fail, where+": no permissions"
		c.Fix = fmt.Sprintf("rabbitmqctl set_permissions -p %s %s CONFIGURE WRITE READ (docs/operations.md, Least privilege)", vhost, user)
		return c
	}
	var can []string
	missing := map[Role][]string{}
	for _, r := range Roles {
		l, err := lacks(*p, roleNeeds(r, queues))
		if err != nil {
			c.Status, c.Detail, c.Fix = Warn, where+": "+err.Error(), "check the user's permission patterns"
			return c
		}
		if len(l) == 0 {
			can = append(can, string(r))
		}
		missing[r] = l
	}
	c.Detail = fmt.Sprintf("%s (configure '%s', write '%s', read '%s'): ", where, p.Configure, p.Write, p.Read)
	if len(can) > 0 {
		c.Detail += "enough for " + strings.Join(can, ", ")
	} else {
		c.Detail += "enough for no role"
	}
	if len(queues) == 0 {
		c.Detail += " (no queue named: queue permissions not checked)"
	}
	fix := fmt.Sprintf("rabbitmqctl set_permissions -p %s %s with the patterns of docs/operations.md (Least privilege)", vhost, user)
	switch {
	case role != "" && len(missing[role]) > 0:
		c.Status = Fail
		c.Detail += fmt.Sprintf("; as %s it lacks %s", role, firstN(missing[role], 3))
		c.Fix = fix
	case role == "" && len(can) == 0:
		c.Status = Fail
		c.Detail += fmt.Sprintf("; even a producer needs %s", firstN(missing[Producer], 3))
		c.Fix = fix
	case p.Configure == ".*" && p.Write == ".*" && p.Read == ".*":
		c.Status = Warn
		c.Detail += "; it may do anything in the vhost"
		c.Fix = "give each role its own user with only what it needs (docs/operations.md, Least privilege)"
	default:
		c.Status = OK
	}
	return c
}

func firstN(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:n], ", ") + fmt.Sprintf(" and %d more", len(s)-n)
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
