package doctor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/check"
	"github.com/warrenq/warren/internal/rabbitmqctl"
)

// Config tunes Run. The zero Config checks with the worker's defaults and
// uses rabbitmqctl only for the local node's default listener.
type Config struct {
	// HandlerTimeout is the longest a handler may run, checked against
	// consumer_timeout. 0 means worker.DefaultHandlerTimeout (5m).
	HandlerTimeout time.Duration
	// Queues are the Warren queues to check. nil means every queue that
	// has a Warren dead-letter queue next to it, when rabbitmqctl can list
	// them; otherwise none.
	Queues []string
	// QueueOptions are the options the queues should have been declared
	// with. The zero value is Warren's default: quorum, delivery limit 20.
	QueueOptions broker.QueueOptions
	// Role is the role the user must be able to play: Producer, Worker or
	// Operator. "" means any of them.
	Role Role
	// Node is the Erlang node rabbitmqctl asks (rabbitmqctl -n). "" means
	// rabbitmqctl's default node, and only when the URL names the local
	// default listener (localhost, 127.0.0.1 or ::1, port 5672).
	Node string
	// Rabbitmqctl is the rabbitmqctl program. "" means rabbitmqctl on PATH.
	Rabbitmqctl string
	// NoRabbitmqctl turns rabbitmqctl off: the checks that need it WARN.
	NoRabbitmqctl bool
	// CtlTimeout bounds each rabbitmqctl call. 0 means 10s.
	CtlTimeout time.Duration
	// Logger receives debug events. nil means slog.Default().
	Logger *slog.Logger
}

// defaultHandlerTimeout mirrors worker.DefaultHandlerTimeout; doctor does
// not import worker (a test keeps the two equal).
const defaultHandlerTimeout = 5 * time.Minute

func (c Config) withDefaults() Config {
	c.HandlerTimeout = cmp.Or(c.HandlerTimeout, defaultHandlerTimeout)
	c.CtlTimeout = cmp.Or(c.CtlTimeout, 10*time.Second)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return c
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	errs := []error{
		check.NotNegative("doctor: HandlerTimeout", c.HandlerTimeout),
		check.NotNegative("doctor: CtlTimeout", c.CtlTimeout),
	}
	switch c.Role {
	case "", Producer, Worker, Operator:
	default:
		errs = append(errs, fmt.Errorf("doctor: role %q: want producer, worker or operator", c.Role))
	}
	for _, q := range c.Queues {
		if err := warren.ValidateQueueName(q); err != nil {
			errs = append(errs, fmt.Errorf("doctor: %w", err))
		}
	}
	if err := c.QueueOptions.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run checks the broker of conn and returns the report. It fails only
// when it cannot check at all (bad Config, no connection); every finding,
// a FAIL included, is in the report.
func Run(ctx context.Context, conn *broker.Conn, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	srv, err := conn.Server()
	if err != nil {
		return nil, fmt.Errorf("doctor: %w", err)
	}
	u, err := amqp.ParseURI(conn.URL())
	if err != nil {
		return nil, fmt.Errorf("doctor: %w", err)
	}
	r := &Report{Broker: broker.RedactURL(conn.URL()), Version: srv.Version}
	g := &gatherer{conn: conn, cfg: cfg, vhost: u.Vhost}
	g.ctl, g.ctlErr = cfg.runner(u)
	r.Rabbitmqctl = "not used: " + fmt.Sprint(g.ctlErr)
	if g.ctl != nil {
		r.Rabbitmqctl = "node " + cmpOr(cfg.Node, "default (rabbit@this host)")
	}

	r.add(checkVersion(srv.Product, srv.Version, srv.Platform, srv.Capabilities))

	if flags, err := g.featureFlags(ctx); err != nil {
		r.add(noCtl("feature_flags", "the feature flags", err))
	} else {
		r.add(checkFeatureFlags(flags))
	}

	if ct, err := g.consumerTimeout(ctx); err != nil {
		r.add(noCtl("consumer_timeout", "consumer_timeout", err))
	} else {
		r.add(checkConsumerTimeout(ct, cfg.HandlerTimeout))
	}

	if mode, nodes, err := g.partitionHandling(ctx); err != nil {
		r.add(noCtl("partition_handling", "cluster_partition_handling", err))
	} else {
		r.add(checkPartitionHandling(mode, nodes, srv.Version))
	}

	queues, qerr := g.queues(ctx)
	bindings, berr := g.bindings(ctx)
	if qerr != nil || berr != nil {
		g.log("doctor: rabbitmqctl listing failed", errors.Join(qerr, berr))
		bindings = nil
	}
	names := cfg.Queues
	if names == nil && queues != nil {
		names = warrenQueues(queues)
	}
	for _, name := range names {
		q, dlq := queues[name], queues[warren.DeadLetterQueue(name)]
		if queues == nil { // no rabbitmqctl: passive declares
			if q, err = g.inspect(ctx, name); err != nil {
				return nil, err
			}
			if dlq, err = g.inspect(ctx, warren.DeadLetterQueue(name)); err != nil {
				return nil, err
			}
		}
		r.add(checkQueue(name, q, dlq, bindings, cfg.QueueOptions, srv.Version, g.why()))
	}

	exchanges, shared, err := g.sharedTopology(ctx, queues)
	if err != nil {
		return nil, err
	}
	r.add(checkDelayLevels(shared, exchanges, bindings, g.why()))

	if alarms, err := g.alarms(ctx); err != nil {
		if b := conn.Blocked(); b != "" {
			r.add(checkAlarms(nil, b))
		} else {
			r.add(noCtl("alarms", "memory and disk alarms", err))
		}
	} else {
		r.add(checkAlarms(alarms, conn.Blocked()))
	}

	r.add(checkFrameMax(srv.FrameMax, g.maxMessageSize(ctx)))

	if perm, err := g.permissions(ctx, u.Username); err != nil {
		r.add(noCtl("permissions", "the user's permissions", err))
	} else {
		r.add(checkPermissions(u.Username, u.Vhost, perm, names, cfg.Role))
	}
	return r, nil
}

// runner returns the rabbitmqctl runner for the broker at u, or why none.
func (c Config) runner(u amqp.URI) (*rabbitmqctl.Runner, error) {
	switch {
	case c.NoRabbitmqctl:
		return nil, errors.New("turned off")
	case c.Node != "":
	case u.Port == 5672 && (u.Host == "localhost" || u.Host == "127.0.0.1" || u.Host == "::1"):
	default:
		return nil, fmt.Errorf("the URL names %s:%d, not the local default listener, and no node was given", u.Host, u.Port)
	}
	return &rabbitmqctl.Runner{Node: c.Node, Path: c.Rabbitmqctl, Timeout: c.CtlTimeout}, nil
}

// gatherer collects the facts the checks judge.
type gatherer struct {
	conn   *broker.Conn
	cfg    Config
	vhost  string
	ctl    *rabbitmqctl.Runner
	ctlErr error

	settings    []string // settingsExpr's answer, once asked
	settingsErr error
}

func (g *gatherer) log(msg string, err error) { g.cfg.Logger.Debug(msg, "err", err) }

// why says why rabbitmqctl's facts are missing.
func (g *gatherer) why() error {
	if g.ctlErr != nil {
		return g.ctlErr
	}
	return errors.New("its listing failed")
}

// run runs rabbitmqctl, or returns why it cannot. The first failure turns
// rabbitmqctl off for the rest of the run: a node that cannot be reached
// costs one timeout, not one per check.
func (g *gatherer) run(ctx context.Context, args ...string) ([]byte, error) {
	if g.ctl == nil {
		return nil, g.ctlErr
	}
	out, err := g.ctl.Run(ctx, args...)
	if err != nil && !strings.Contains(err.Error(), "no_such_user") {
		g.ctl, g.ctlErr = nil, err
	}
	return out, err
}

func (g *gatherer) json(ctx context.Context, v any, args ...string) error {
	if g.ctl == nil {
		return g.ctlErr
	}
	err := g.ctl.JSON(ctx, v, args...)
	if err != nil && !strings.Contains(err.Error(), "no_such_user") {
		g.ctl, g.ctlErr = nil, err
	}
	return err
}

// settingsExpr asks the node, in one rabbitmqctl call, for what the
// checks read from its running configuration, separated by "|":
// consumer_timeout, cluster_partition_handling, the number of cluster
// nodes, the alarms in force and max_message_size.
const settingsExpr = `lists:flatten(io_lib:format("~w|~w|~w|~w|~w", [` +
	`application:get_env(rabbit, consumer_timeout), ` +
	`application:get_env(rabbit, cluster_partition_handling), ` +
	`length(rabbit_nodes:all()), ` +
	`rabbit_alarm:get_alarms(), ` +
	`application:get_env(rabbit, max_message_size)])).`

// The fields of settingsExpr's answer.
const (
	setConsumerTimeout = iota
	setPartitionHandling
	setNodes
	setAlarms
	setMaxMessageSize
	setFields
)

// setting returns field i of settingsExpr's answer, asked once per run.
func (g *gatherer) setting(ctx context.Context, i int) (string, error) {
	if g.settings == nil && g.settingsErr == nil {
		out, err := g.run(ctx, "eval", settingsExpr)
		if err == nil {
			g.settings, err = parseSettings(string(out))
		}
		g.settingsErr = err
	}
	if g.settingsErr != nil {
		return "", g.settingsErr
	}
	return g.settings[i], nil
}

// parseSettings splits the printed answer of settingsExpr: a quoted string
// of setFields terms separated by "|".
func parseSettings(out string) ([]string, error) {
	s := strings.TrimSpace(out)
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return nil, fmt.Errorf("rabbitmqctl eval: unexpected output %q", s)
	}
	fields := strings.Split(s[1:len(s)-1], "|")
	if len(fields) != setFields {
		return nil, fmt.Errorf("rabbitmqctl eval: unexpected output %q", s)
	}
	return fields, nil
}

func (g *gatherer) featureFlags(ctx context.Context) (map[string]string, error) {
	var rows []struct{ Name, State string }
	if err := g.json(ctx, &rows, "list_feature_flags", "name", "state"); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.Name] = r.State
	}
	return out, nil
}

var (
	okInt  = regexp.MustCompile(`^\{ok,(\d+)\}$`)
	okAtom = regexp.MustCompile(`^\{ok,\{?([a-z_]+)`)
)

// consumerTimeout returns consumer_timeout, nil when disabled.
func (g *gatherer) consumerTimeout(ctx context.Context) (*time.Duration, error) {
	out, err := g.setting(ctx, setConsumerTimeout)
	if err != nil {
		return nil, err
	}
	if out == "undefined" || out == "{ok,infinity}" || out == "{ok,false}" {
		return nil, nil
	}
	m := okInt.FindStringSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("consumer_timeout: unexpected %q", out)
	}
	ms, _ := strconv.ParseInt(m[1], 10, 64)
	d := time.Duration(ms) * time.Millisecond
	return &d, nil
}

func (g *gatherer) partitionHandling(ctx context.Context) (string, int, error) {
	out, err := g.setting(ctx, setPartitionHandling)
	if err != nil {
		return "", 0, err
	}
	mode := "ignore" // RabbitMQ's default
	if m := okAtom.FindStringSubmatch(out); m != nil {
		mode = m[1]
	}
	out, err = g.setting(ctx, setNodes)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(out)
	if err != nil {
		return "", 0, fmt.Errorf("cluster size: unexpected %q", out)
	}
	return mode, n, nil
}

// queues lists the vhost's queues with their types and arguments; nil
// without rabbitmqctl.
func (g *gatherer) queues(ctx context.Context) (map[string]*queueFact, error) {
	var rows []struct {
		Name      string `json:"name"`
		Type      string `json:"type"`
		Arguments [][]any
	}
	if err := g.json(ctx, &rows, "list_queues", "-p", g.vhost, "name", "type", "arguments"); err != nil {
		return nil, err
	}
	out := make(map[string]*queueFact, len(rows))
	for _, r := range rows {
		f := &queueFact{Type: r.Type, Args: map[string]any{}}
		for _, a := range r.Arguments { // [name, AMQP type, value]
			if len(a) == 3 {
				if name, ok := a[0].(string); ok {
					f.Args[name] = a[2]
				}
			}
		}
		out[r.Name] = f
	}
	return out, nil
}

// bindings lists the vhost's bindings; nil without rabbitmqctl.
func (g *gatherer) bindings(ctx context.Context) ([]binding, error) {
	var rows []struct {
		Source string `json:"source_name"`
		Dest   string `json:"destination_name"`
		Kind   string `json:"destination_kind"`
		Key    string `json:"routing_key"`
	}
	if err := g.json(ctx, &rows, "list_bindings", "-p", g.vhost, "source_name", "destination_name", "destination_kind", "routing_key"); err != nil {
		return nil, err
	}
	out := make([]binding, 0, len(rows))
	for _, r := range rows {
		out = append(out, binding{r.Source, r.Dest, r.Kind, r.Key})
	}
	return out, nil
}

// warrenQueues returns the queues Q that have a Q.dlq next to them.
func warrenQueues(queues map[string]*queueFact) []string {
	var out []string
	for name := range queues {
		if _, ok := queues[warren.DeadLetterQueue(name)]; ok && warren.ValidateQueueName(name) == nil {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// inspect checks that a queue exists with a passive declare; its type and
// arguments stay unknown.
func (g *gatherer) inspect(ctx context.Context, name string) (*queueFact, error) {
	_, err := broker.Inspect(ctx, g.conn, name)
	switch {
	case errors.Is(err, broker.ErrQueueNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("doctor: %w", err)
	}
	return &queueFact{}, nil
}

// sharedTopology finds the shared exchanges (passive declares) and the
// delay-level and unroutable queues (from queues, or passive declares).
func (g *gatherer) sharedTopology(ctx context.Context, queues map[string]*queueFact) (map[string]bool, map[string]*queueFact, error) {
	exchanges := map[string]bool{}
	shared := map[string]*queueFact{}
	names := []string{broker.DeliveryExchange, broker.UnroutableExchange}
	for k := range broker.DelayLevels {
		names = append(names, broker.DelayExchange(k))
	}
	for _, x := range names {
		ok, err := broker.ExchangeExists(ctx, g.conn, x)
		if err != nil {
			return nil, nil, fmt.Errorf("doctor: %w", err)
		}
		exchanges[x] = ok
		if x == broker.DeliveryExchange {
			continue // an exchange only
		}
		if queues != nil {
			if q := queues[x]; q != nil {
				shared[x] = q
			}
			continue
		}
		q, err := g.inspect(ctx, x)
		if err != nil {
			return nil, nil, err
		}
		if q != nil {
			shared[x] = q
		}
	}
	return exchanges, shared, nil
}

var alarmRE = regexp.MustCompile(`\{resource_limit,(\w+),'?([^'},]+)'?\}`)

// alarms lists the resource alarms in force, as "memory on NODE".
func (g *gatherer) alarms(ctx context.Context) ([]string, error) {
	out, err := g.setting(ctx, setAlarms)
	if err != nil {
		return nil, err
	}
	var alarms []string
	for _, m := range alarmRE.FindAllStringSubmatch(out, -1) {
		alarms = append(alarms, m[1]+" on "+m[2])
	}
	if strings.Contains(out, "file_descriptor_limit") {
		alarms = append(alarms, "file descriptors")
	}
	if alarms == nil && out != "[]" {
		return nil, fmt.Errorf("alarms: unexpected %q", out)
	}
	return alarms, nil
}

// maxMessageSize returns max_message_size in bytes, 0 when unknown.
func (g *gatherer) maxMessageSize(ctx context.Context) int64 {
	out, err := g.setting(ctx, setMaxMessageSize)
	if err != nil {
		return 0
	}
	if m := okInt.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	return 0
}

// permissions returns user's permissions on the vhost, nil when none.
func (g *gatherer) permissions(ctx context.Context, user string) (*Perm, error) {
	var rows []struct{ Vhost, Configure, Write, Read string }
	if err := g.json(ctx, &rows, "list_user_permissions", user); err != nil {
		if strings.Contains(err.Error(), "no_such_user") {
			return nil, fmt.Errorf("user %q is not in RabbitMQ's internal database (LDAP or another backend?)", user)
		}
		return nil, err
	}
	for _, r := range rows {
		if r.Vhost == g.vhost {
			return &Perm{Configure: r.Configure, Write: r.Write, Read: r.Read}, nil
		}
	}
	return nil, nil
}
