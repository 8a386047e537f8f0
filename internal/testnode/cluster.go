package testnode

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Network places each node of a cluster in a network namespace of its
// own (the chaos suite's Net).
type Network interface {
	// IPOf is node i's address (i from 1).
	IPOf(i int) string
	// Exec is the command line that runs argv inside node i's namespace.
	Exec(i int, argv ...string) []string
}

// ClusterOptions shape a cluster.
type ClusterOptions struct {
	// Nodes is how many nodes it has. 0 means 1: a standalone node.
	Nodes int
	// Tag starts the Erlang name of every node (tag<i>_<pid>_<random>):
	// letters, digits and underscores. "" means "warren_testnode".
	Tag string
	// Node shapes every node.
	Node Options
	// Net, when set, runs node i in its namespace, listening on
	// Net.IPOf(i) under a long Erlang name (name@IP), with guest allowed
	// to log in over that address (loopback_users = none). Nil means every
	// node listens on 127.0.0.1.
	Net Network
}

// Cluster is a set of private RabbitMQ nodes that form one cluster, or a
// standalone node. Every node and every rabbitmqctl call shares a HOME
// holding the cluster's own Erlang cookie.
type Cluster struct {
	// Nodes are the nodes, node 1 first.
	Nodes []*Node

	dir  string
	home string
	net  Network
	logf func(format string, args ...any) // never nil
}

// NewCluster prepares the nodes of a cluster under dir (configuration,
// data directories, free ports) without starting them. The caller owns
// dir: Close leaves it.
func NewCluster(dir string, opts ClusterOptions) (*Cluster, error) {
	if opts.Nodes == 0 {
		opts.Nodes = 1
	}
	if opts.Tag == "" {
		opts.Tag = "warren_testnode"
	}
	if opts.Node.StartTimeout == 0 {
		opts.Node.StartTimeout = 2 * time.Minute
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("testnode: hostname: %w", err)
	}
	host, _, _ = strings.Cut(host, ".")
	c := &Cluster{dir: dir, home: filepath.Join(dir, "home"), net: opts.Net, logf: opts.Node.Logf}
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(c.home, 0o700); err != nil {
		return nil, err
	}
	var b [16]byte
	_, _ = crand.Read(b[:])
	if err := os.WriteFile(filepath.Join(c.home, ".erlang.cookie"), []byte(strings.ToUpper(hex.EncodeToString(b[:]))), 0o400); err != nil {
		return nil, fmt.Errorf("testnode: write cookie: %w", err)
	}
	taken := map[int]bool{}
	// rabbitmqctl calls take their distribution port from a range of
	// their own: the default range (35672-35682) is shared with every
	// other rabbitmqctl on the host, and a node's listener could land in it.
	ctlMin, err := freeRange(15000, 19999, 20, taken)
	if err != nil {
		return nil, err
	}
	_, _ = crand.Read(b[:2])
	suffix := fmt.Sprintf("%d_%s", os.Getpid(), hex.EncodeToString(b[:2]))
	tag := strings.ReplaceAll(opts.Tag, "-", "_")
	for i := 1; i <= opts.Nodes; i++ {
		n, err := c.prepare(i, fmt.Sprintf("%s%d_%s", tag, i, suffix), host, opts, ctlMin, taken)
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	return c, nil
}

// prepare writes node i's files and picks its ports.
func (c *Cluster) prepare(i int, name, host string, opts ClusterOptions, ctlMin int, taken map[int]bool) (*Node, error) {
	port, err := freePort(10000, 14999, taken, 20000)
	if err != nil {
		return nil, err
	}
	n := &Node{
		Name:    name + "@" + host,
		Index:   i,
		Host:    "127.0.0.1",
		Port:    port,
		cluster: c,
		dir:     filepath.Join(c.dir, "node"+strconv.Itoa(i)),
		timeout: opts.Node.StartTimeout,
	}
	n.pidFile = filepath.Join(n.dir, "rabbit.pid")
	if c.net != nil {
		n.Host = c.net.IPOf(i)
		n.Name = name + "@" + n.Host
	}
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return nil, err
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "listeners.tcp.1 = %s:%d\n", n.Host, port)
	if c.net != nil {
		conf.WriteString("loopback_users = none\n")
	}
	if t := opts.Node.TLS; t != nil {
		if n.TLSPort, err = freePort(10000, 14999, taken, 0); err != nil {
			return nil, err
		}
		verify := "verify_none"
		if t.VerifyPeer {
			verify = "verify_peer"
		}
		fmt.Fprintf(&conf, "listeners.ssl.1 = %s:%d\n", n.Host, n.TLSPort)
		fmt.Fprintf(&conf, "ssl_options.cacertfile = %s\nssl_options.certfile = %s\nssl_options.keyfile = %s\n", t.CACertFile, t.CertFile, t.KeyFile)
		fmt.Fprintf(&conf, "ssl_options.verify = %s\nssl_options.fail_if_no_peer_cert = %t\n", verify, t.FailIfNoPeerCert)
	}
	if i > 1 {
		// A fresh node joins node 1 on its first boot (classic peer
		// discovery): faster than stop_app, reset, join_cluster and
		// start_app, which Start falls back to if it did not.
		fmt.Fprintf(&conf, "cluster_formation.peer_discovery_backend = classic_config\ncluster_formation.classic_config.nodes.1 = %s\n", c.Nodes[0].Name)
	}
	if opts.Node.Config != "" {
		conf.WriteString(strings.TrimRight(opts.Node.Config, "\n") + "\n")
	}
	files := map[string]string{"rabbitmq.conf": conf.String(), "rabbitmq-env.conf": "", "enabled_plugins": "[].\n"}
	if opts.Node.Advanced != "" {
		files["advanced.config"] = strings.TrimRight(opts.Node.Advanced, "\n") + "\n"
	}
	for file, body := range files {
		if err := os.WriteFile(filepath.Join(n.dir, file), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	iface := "{" + strings.ReplaceAll(n.Host, ".", ",") + "}"
	n.env = append(CleanEnv(),
		"HOME="+c.home,
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_NODE_IP_ADDRESS="+n.Host,
		"RABBITMQ_NODE_PORT="+strconv.Itoa(port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(port+20000),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(n.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(n.dir, "log"),
		"RABBITMQ_PID_FILE="+n.pidFile,
		"RABBITMQ_CONFIG_FILE="+filepath.Join(n.dir, "rabbitmq.conf"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(n.dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(n.dir, "enabled_plugins"),
		"RABBITMQ_PLUGINS_EXPAND_DIR="+filepath.Join(n.dir, "plugins-expand"),
		"RABBITMQ_CTL_DIST_PORT_MIN="+strconv.Itoa(ctlMin),
		"RABBITMQ_CTL_DIST_PORT_MAX="+strconv.Itoa(ctlMin+19),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface "+iface,
	)
	if opts.Node.Advanced != "" {
		n.env = append(n.env, "RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(n.dir, "advanced.config"))
	}
	if c.net != nil {
		n.env = append(n.env, "RABBITMQ_USE_LONGNAME=true")
	}
	n.env = append(n.env, opts.Node.Env...)
	return n, nil
}

// CleanEnv is the environment without RabbitMQ's and Erlang's variables
// and HOME (a shell may carry the shared node's): the base of every node's
// environment, and of the programs that run beside it.
func CleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "RABBITMQ_") || strings.HasPrefix(kv, "ERL_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// reserved reports the ports never used: the shared node's (AMQP,
// distribution, management), epmd's, and the default range of
// rabbitmqctl's own distribution ports.
func reserved(p int) bool {
	switch p {
	case 4369, 5671, 5672, 15672, 25672:
		return true
	}
	return p >= 35672 && p <= 35682
}

func portFree(p int) bool {
	if reserved(p) {
		return false
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// freePort picks a free port in [lo, hi]; with pair > 0, port+pair must be
// free too (the distribution port).
func freePort(lo, hi int, taken map[int]bool, pair int) (int, error) {
	for range 500 {
		p := lo + mrand.IntN(hi-lo+1)
		if taken[p] || !portFree(p) || (pair > 0 && (taken[p+pair] || !portFree(p+pair))) {
			continue
		}
		taken[p] = true
		if pair > 0 {
			taken[p+pair] = true
		}
		return p, nil
	}
	return 0, fmt.Errorf("testnode: no free port in %d-%d", lo, hi)
}

// freeRange finds n consecutive free ports in [lo, hi].
func freeRange(lo, hi, n int, taken map[int]bool) (int, error) {
outer:
	for range 200 {
		base := lo + mrand.IntN(hi-lo+1-n)
		for p := base; p < base+n; p++ {
			if taken[p] || !portFree(p) {
				continue outer
			}
		}
		for p := base; p < base+n; p++ {
			taken[p] = true
		}
		return base, nil
	}
	return 0, fmt.Errorf("testnode: no %d consecutive free ports in %d-%d", n, lo, hi)
}

// Home is the HOME of every node and rabbitmqctl call: it holds the
// cluster's Erlang cookie.
func (c *Cluster) Home() string { return c.home }

// URLs is every node's AMQP URL for guest, comma-separated.
func (c *Cluster) URLs() string {
	var u []string
	for _, n := range c.Nodes {
		u = append(u, n.URL())
	}
	return strings.Join(u, ",")
}

// Start starts every node and writes the file "owner" (this process's
// pid) into the cluster's directory, for sweeps. With more than one node,
// node 1 starts first and the others join its cluster as they boot; a node
// that did not is joined with stop_app, reset, join_cluster and start_app.
func (c *Cluster) Start(ctx context.Context) error {
	if err := os.WriteFile(filepath.Join(c.dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	first := c.Nodes[0]
	if err := first.Start(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.Nodes))
	for i, n := range c.Nodes[1:] {
		wg.Go(func() { errs[i] = n.Start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(c.Nodes) == 1 {
		return nil
	}
	for _, n := range c.Nodes[1:] {
		if c.inCluster(ctx, n) {
			continue
		}
		start := time.Now()
		for _, args := range [][]string{{"stop_app"}, {"reset"}, {"join_cluster", first.Name}, {"start_app"}, {"await_startup", "--timeout", "120"}} {
			if _, err := n.Ctl(ctx, args...); err != nil {
				return fmt.Errorf("testnode: join %s to %s: %w", n.Name, first.Name, err)
			}
		}
		c.logf("testnode: %s joined %s with join_cluster in %s", n.Name, first.Name, time.Since(start).Round(time.Millisecond))
	}
	for _, n := range c.Nodes[1:] {
		if !c.inCluster(ctx, n) {
			return fmt.Errorf("testnode: %s is not in the cluster of %s", n.Name, first.Name)
		}
	}
	c.logf("testnode: cluster of %d nodes formed", len(c.Nodes))
	return nil
}

// inCluster reports whether node 1 lists n as a running member.
func (c *Cluster) inCluster(ctx context.Context, n *Node) bool {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := c.Nodes[0].Ctl(cctx, "cluster_status", "--formatter", "json")
	if err != nil {
		return false
	}
	var st struct {
		Running []string `json:"running_nodes"`
	}
	if i := strings.Index(out, "{"); i >= 0 {
		_ = json.Unmarshal([]byte(out[i:]), &st)
	}
	for _, r := range st.Running {
		if r == n.Name {
			return true
		}
	}
	return false
}

// Close stops every node at once (thawing a frozen one first) and removes
// nothing: the caller owns the directory.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Go(func() { _ = n.Close() })
	}
	wg.Wait()
}
