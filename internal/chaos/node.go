package chaos

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/warrenq/warren/internal/testnode"
)

// RabbitMQ binaries. The /usr/sbin wrappers switch to the rabbitmq user
// and its home directory, so the suite calls these directly.
var (
	RabbitMQServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	RabbitMQCtl    = "/usr/lib/rabbitmq/bin/rabbitmqctl"
	RabbitMQQueues = "/usr/lib/rabbitmq/bin/rabbitmq-queues"
)

// The shared development node's ports: never used, never touched.
var reservedPorts = map[int]bool{4369: true, 5672: true, 15672: true, 25672: true}

// DirPrefix starts the name of every run directory the suite creates under
// os.TempDir(); SweepStale looks for leftovers by it.
const DirPrefix = "warren-chaos-"

// Nodes is a set of private RabbitMQ nodes: one standalone node, or a
// cluster. Every node and every CLI call shares a HOME holding the suite's
// own Erlang cookie; rabbitmqctl is always called with -n and one of these
// nodes' names.
type Nodes struct {
	dir    string
	home   string
	ctlMin int
	logf   func(string, ...any)
	Nodes  []*Node
}

// Node is one private RabbitMQ node.
type Node struct {
	set      *Nodes
	Index    int // 1-based
	Name     string
	Port     int    // AMQP
	Host     string // the address it listens on: 127.0.0.1, or its IP on a Net
	DistPort int
	net      *Net // nil, or the network whose namespace it runs in
	dir      string
	pidFile  string
	env      []string
}

// DeadLetterRetry is the dead_letter_worker_publisher_confirm_timeout of
// the suite's nodes, the setting docs/reliability.md recommends (section
// 7): how long RabbitMQ 3.10's at-least-once dead-letter worker waits
// before it forwards again a message whose target refused it, or did not
// confirm it. The broker's default is 180s.
const DeadLetterRetry = 10 * time.Second

// DefaultAdvancedConfig is every node's advanced.config unless Configure
// replaces it.
var DefaultAdvancedConfig = fmt.Sprintf("[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, %d}]}].", DeadLetterRetry.Milliseconds())

// NewNodes prepares n nodes under dir (config files, data directories,
// free ports) without starting them. tag makes the node names unique to
// the run ("single", "cluster").
func NewNodes(dir, tag string, n int, logf func(string, ...any)) (*Nodes, error) {
	return newNodes(dir, tag, n, nil, logf)
}

// PartitionHandling is the cluster_partition_handling of nodes on a Net.
// A node that finds itself on the minority side of a partition pauses
// (closes its client listeners) until the partition heals, then restarts
// and rejoins by itself: clients on its side stop instead of working
// against a minority, and no manual restart is needed. It is the mode
// RabbitMQ recommends for quorum queues.
const PartitionHandling = "pause_minority"

// NewNodesOnNet prepares one node per namespace of nw, each listening on
// its own address with a long Erlang name (name@IP), and
// cluster_partition_handling set to PartitionHandling.
func NewNodesOnNet(dir, tag string, nw *Net, logf func(string, ...any)) (*Nodes, error) {
	return newNodes(dir, tag, nw.n, nw, logf)
}

func newNodes(dir, tag string, n int, nw *Net, logf func(string, ...any)) (*Nodes, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("chaos: hostname: %w", err)
	}
	host, _, _ = strings.Cut(host, ".")
	s := &Nodes{dir: dir, home: filepath.Join(dir, "home"), logf: logf}
	if err := os.MkdirAll(s.home, 0o700); err != nil {
		return nil, err
	}
	var b [16]byte
	_, _ = cryptoRead(b[:])
	cookie := filepath.Join(s.home, ".erlang.cookie")
	if err := os.WriteFile(cookie, []byte(strings.ToUpper(hex.EncodeToString(b[:]))), 0o400); err != nil {
		return nil, fmt.Errorf("chaos: write cookie: %w", err)
	}
	taken := map[int]bool{}
	// CLI calls take their distribution port from a range of their own:
	// the default range (35672-35682) is shared with every other
	// rabbitmqctl on the host, and a node's listener could land in it.
	s.ctlMin, err = freeRange(20, taken)
	if err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		port, err := freePair(taken)
		if err != nil {
			return nil, err
		}
		nd := &Node{
			set:      s,
			Index:    i,
			Name:     fmt.Sprintf("chaos%s%d_%d@%s", tag, i, os.Getpid(), host),
			Port:     port,
			Host:     "127.0.0.1",
			DistPort: port + 20000,
			dir:      filepath.Join(dir, fmt.Sprintf("%s%d", tag, i)),
			net:      nw,
		}
		iface := "{127,0,0,1}"
		if nw != nil {
			nd.Host = nw.IPOf(i)
			nd.Name = fmt.Sprintf("chaos%s%d_%d@%s", tag, i, os.Getpid(), nd.Host)
			iface = "{" + strings.ReplaceAll(nd.Host, ".", ",") + "}"
		}
		nd.pidFile = filepath.Join(nd.dir, "rabbit.pid")
		if err := os.MkdirAll(nd.dir, 0o755); err != nil {
			return nil, err
		}
		conf := fmt.Sprintf("listeners.tcp.1 = %s:%d\nnet_ticktime = 10\n", nd.Host, port)
		if nw != nil {
			// guest may log in over the namespaces' private addresses,
			// not only over loopback.
			conf += "cluster_partition_handling = " + PartitionHandling + "\nloopback_users = none\n"
		}
		if lvl := os.Getenv("CHAOS_NODE_LOG_LEVEL"); lvl != "" {
			conf += "log.file.level = " + lvl + "\n"
		}
		if i > 1 {
			// A fresh node joins node 1 on its first boot (classic peer
			// discovery): faster than stop_app, reset, join_cluster and
			// start_app, which Start falls back to if it did not.
			conf += "cluster_formation.peer_discovery_backend = classic_config\n" +
				"cluster_formation.classic_config.nodes.1 = " + s.Nodes[0].Name + "\n"
		}
		files := map[string]string{"rabbitmq.conf": conf, "rabbitmq-env.conf": "", "enabled_plugins": "[].\n", "advanced.config": DefaultAdvancedConfig + "\n"}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(nd.dir, name), []byte(body), 0o644); err != nil {
				return nil, err
			}
		}
		nd.env = append(cleanEnv(),
			"HOME="+s.home,
			"RABBITMQ_NODENAME="+nd.Name,
			"RABBITMQ_NODE_PORT="+strconv.Itoa(port),
			"RABBITMQ_DIST_PORT="+strconv.Itoa(nd.DistPort),
			"RABBITMQ_MNESIA_BASE="+filepath.Join(nd.dir, "mnesia"),
			"RABBITMQ_LOG_BASE="+filepath.Join(nd.dir, "log"),
			"RABBITMQ_PID_FILE="+nd.pidFile,
			"RABBITMQ_CONFIG_FILE="+filepath.Join(nd.dir, "rabbitmq.conf"),
			"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(nd.dir, "advanced.config"),
			"RABBITMQ_CONF_ENV_FILE="+filepath.Join(nd.dir, "rabbitmq-env.conf"),
			"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(nd.dir, "enabled_plugins"),
			"RABBITMQ_PLUGINS_EXPAND_DIR="+filepath.Join(nd.dir, "plugins-expand"),
			"RABBITMQ_CTL_DIST_PORT_MIN="+strconv.Itoa(s.ctlMin),
			"RABBITMQ_CTL_DIST_PORT_MAX="+strconv.Itoa(s.ctlMin+19),
			"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface "+iface,
		)
		if nw != nil {
			nd.env = append(nd.env, "RABBITMQ_USE_LONGNAME=true")
		}
		s.Nodes = append(s.Nodes, nd)
	}
	return s, nil
}

var cryptoRead = crand.Read

// cleanEnv is the environment without RabbitMQ's and Erlang's variables
// (a shell may carry the shared node's).
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "RABBITMQ_") || strings.HasPrefix(kv, "ERL_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func portFree(p int) bool {
	if reservedPorts[p] || (p >= 35672 && p <= 35682) {
		return false
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// freePair finds a free AMQP port in 21000-24999 whose distribution port
// (+20000) is free too.
func freePair(taken map[int]bool) (int, error) {
	for range 500 {
		p := 21000 + mrand.IntN(4000)
		if taken[p] || taken[p+20000] || !portFree(p) || !portFree(p+20000) {
			continue
		}
		taken[p], taken[p+20000] = true, true
		return p, nil
	}
	return 0, errors.New("chaos: no free port pair (AMQP 21000-24999, distribution +20000)")
}

// freeRange finds n consecutive free ports in 26000-29999.
func freeRange(n int, taken map[int]bool) (int, error) {
outer:
	for range 200 {
		base := 26000 + mrand.IntN(4000-n)
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
	return 0, fmt.Errorf("chaos: no %d consecutive free ports in 26000-29999", n)
}

// Configure adds lines to the node's rabbitmq.conf and replaces its
// advanced.config (Erlang terms; "" keeps DefaultAdvancedConfig). Call it
// before Start.
func (n *Node) Configure(conf, advanced string) error {
	f, err := os.OpenFile(filepath.Join(n.dir, "rabbitmq.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(conf + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || advanced == "" {
		return err
	}
	return os.WriteFile(filepath.Join(n.dir, "advanced.config"), []byte(advanced+"\n"), 0o644)
}

// URL is the node's AMQP URL.
func (n *Node) URL() string { return fmt.Sprintf("amqp://guest:guest@%s:%d/", n.Host, n.Port) }

// URLs is every node's URL, comma-separated.
func (s *Nodes) URLs() string {
	var u []string
	for _, n := range s.Nodes {
		u = append(u, n.URL())
	}
	return strings.Join(u, ",")
}

// Ctl runs rabbitmqctl -n <this node> args... under ctx.
func (n *Node) Ctl(ctx context.Context, args ...string) (string, error) {
	return n.run(ctx, RabbitMQCtl, append([]string{"-n", n.Name}, args...)...)
}

// Queues runs rabbitmq-queues -n <this node> args... under ctx.
func (n *Node) Queues(ctx context.Context, args ...string) (string, error) {
	return n.run(ctx, RabbitMQQueues, append([]string{"-n", n.Name}, args...)...)
}

// command is bin args..., inside the node's namespace if it has one.
func (n *Node) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	if n.net != nil {
		argv := n.net.Exec(n.Index, append([]string{bin}, args...)...)
		return exec.CommandContext(ctx, argv[0], argv[1:]...)
	}
	return exec.CommandContext(ctx, bin, args...)
}

func (n *Node) run(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := n.command(ctx, bin, args...)
	cmd.Env = n.env
	cmd.Dir = n.dir
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("chaos: %s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(tail(out.String(), 600)))
	}
	return out.String(), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Start starts the node (detached) and waits until RabbitMQ runs on it.
func (n *Node) Start(ctx context.Context) error {
	_ = os.Remove(n.pidFile) // a stale pid file (after SIGKILL) would fool `wait`
	start := time.Now()
	cmd := n.command(ctx, RabbitMQServer, "-detached")
	cmd.Env = n.env
	cmd.Dir = n.dir
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chaos: start node %s: %w: %s", n.Name, err, out)
	}
	wctx, cancel := context.WithTimeout(ctx, 150*time.Second)
	defer cancel()
	err := testnode.AwaitPidFile(wctx, n.pidFile)
	if err == nil {
		_, err = n.Ctl(wctx, "wait", n.pidFile, "--timeout", "120")
	}
	if err != nil {
		return fmt.Errorf("chaos: node %s did not start (log: %s): %w", n.Name, n.LogFile(), err)
	}
	n.set.logf("node %s up on port %d in %s", n.Name, n.Port, time.Since(start).Round(time.Millisecond))
	return nil
}

// LogFile is the node's RabbitMQ log.
func (n *Node) LogFile() string { return filepath.Join(n.dir, "log", n.Name+".log") }

// PID returns the node's OS process ID from its pid file, checked against
// the process's command line so that a recycled PID is never signalled.
func (n *Node) PID() (int, error) {
	b, err := os.ReadFile(n.pidFile)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("chaos: bad pid file %s: %q", n.pidFile, b)
	}
	if !processMatches(pid, n.set.home) {
		return 0, fmt.Errorf("chaos: pid %d of %s is not running (or is another program)", pid, n.Name)
	}
	return pid, nil
}

// processMatches reports whether pid runs (not a zombie) with marker in
// its command line. A node's command line names its HOME (-home DIR), the
// run's own directory.
func processMatches(pid int, marker string) bool {
	if !alive(pid) {
		return false
	}
	cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(cl, []byte(marker))
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	i := bytes.LastIndexByte(st, ')')
	return i > 0 && i+2 < len(st) && st[i+2] != 'Z' && st[i+2] != 'X'
}

// Kill SIGKILLs the node's Erlang VM and waits until it is gone.
func (n *Node) Kill(ctx context.Context) error {
	pid, err := n.PID()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("chaos: kill node %s: %w", n.Name, err)
	}
	return waitGone(ctx, pid, 15*time.Second)
}

func waitGone(ctx context.Context, pid int, d time.Duration) error {
	return poll(ctx, d, 20*time.Millisecond, func() bool { return !alive(pid) },
		fmt.Sprintf("process %d still alive", pid))
}

// poll checks cond every interval until it holds, ctx ends or d passes.
func poll(ctx context.Context, d, interval time.Duration, cond func() bool, what string) error {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: %s: %w", what, ctx.Err())
		case <-deadline.C:
			if cond() {
				return nil
			}
			return fmt.Errorf("chaos: %s after %s", what, d)
		case <-tick.C:
		}
	}
}

// Stop stops the node with rabbitmqctl stop, and SIGKILLs it if that fails.
func (n *Node) Stop(ctx context.Context) {
	pid, perr := n.PID()
	if perr != nil {
		return // not running
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := n.Ctl(sctx, "stop"); err != nil {
		n.set.logf("node %s: stop: %v; killing it", n.Name, err)
	}
	if alive(pid) {
		if err := waitGone(sctx, pid, 10*time.Second); err != nil && processMatches(pid, n.set.home) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			_ = waitGone(context.Background(), pid, 10*time.Second)
		}
	}
}

// Freeze stops the node's Erlang VM with SIGSTOP, as a long GC pause or a
// stalled host would: its sockets stay open and nothing answers.
func (n *Node) Freeze() error {
	pid, err := n.PID()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("chaos: freeze node %s: %w", n.Name, err)
	}
	return nil
}

// Thaw resumes a node Freeze stopped (a running node ignores it).
func (n *Node) Thaw() error {
	pid, err := n.PID()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		return fmt.Errorf("chaos: thaw node %s: %w", n.Name, err)
	}
	return nil
}

// CloseAllConnections has the node close every client connection.
func (n *Node) CloseAllConnections(ctx context.Context, reason string) error {
	_, err := n.Ctl(ctx, "close_all_connections", reason)
	return err
}

// StopApp stops RabbitMQ on the node, leaving the Erlang VM up.
func (n *Node) StopApp(ctx context.Context) error {
	_, err := n.Ctl(ctx, "stop_app")
	return err
}

// StartApp starts RabbitMQ again after StopApp and waits for it.
func (n *Node) StartApp(ctx context.Context) error {
	if _, err := n.Ctl(ctx, "start_app"); err != nil {
		return err
	}
	_, err := n.Ctl(ctx, "await_startup", "--timeout", "120")
	return err
}

// Start starts every node. With more than one, node 1 starts first and
// the others join its cluster as they boot; a node that did not is joined
// with stop_app, reset, join_cluster and start_app.
func (s *Nodes) Start(ctx context.Context) error {
	if err := os.WriteFile(filepath.Join(s.dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	first := s.Nodes[0]
	if err := first.Start(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(s.Nodes))
	for i, n := range s.Nodes[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.Start(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(s.Nodes) == 1 {
		return nil
	}
	for _, n := range s.Nodes[1:] {
		if s.inCluster(ctx, n) {
			continue
		}
		start := time.Now()
		for _, args := range [][]string{{"stop_app"}, {"reset"}, {"join_cluster", first.Name}, {"start_app"}, {"await_startup", "--timeout", "120"}} {
			if _, err := n.Ctl(ctx, args...); err != nil {
				return fmt.Errorf("chaos: join %s to %s: %w", n.Name, first.Name, err)
			}
		}
		s.logf("node %s joined %s with join_cluster in %s", n.Name, first.Name, time.Since(start).Round(time.Millisecond))
	}
	for _, n := range s.Nodes[1:] {
		if !s.inCluster(ctx, n) {
			return fmt.Errorf("chaos: %s is not in the cluster of %s", n.Name, first.Name)
		}
	}
	s.logf("cluster of %d nodes formed", len(s.Nodes))
	return nil
}

// inCluster reports whether node 1 lists n as a running member.
func (s *Nodes) inCluster(ctx context.Context, n *Node) bool {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := s.Nodes[0].Ctl(cctx, "cluster_status", "--formatter", "json")
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

// Close stops every node (thawing a frozen one first) and removes nothing:
// the caller owns the directory.
func (s *Nodes) Close() {
	var wg sync.WaitGroup
	for _, n := range s.Nodes {
		_ = n.Thaw()
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.Stop(context.Background())
		}()
	}
	wg.Wait()
}

// SweepStale stops the nodes of earlier runs whose suite process died
// without cleaning up (a test binary killed by its -timeout), and removes
// their directories unless they were kept for inspection. Only processes
// whose command line names such a directory are signalled.
func SweepStale(logf func(string, ...any)) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), DirPrefix+"*"))
	for _, d := range dirs {
		var owners, pidFiles []string
		_ = filepath.WalkDir(d, func(path string, e os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if e.IsDir() && (e.Name() == "mnesia" || e.Name() == "log") {
				return filepath.SkipDir
			}
			switch e.Name() {
			case "owner":
				owners = append(owners, path)
			case "rabbit.pid":
				pidFiles = append(pidFiles, path)
			}
			return nil
		})
		live := false
		for _, o := range owners {
			b, _ := os.ReadFile(o)
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && alive(pid) {
				live = true
			}
		}
		if live || len(owners) == 0 {
			continue // a run in progress, or not one of ours
		}
		for _, pf := range pidFiles {
			b, err := os.ReadFile(pf)
			if err != nil {
				continue
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err == nil && pid > 1 && processMatches(pid, d) {
				logf("sweep: killing node process %d left behind by %s", pid, d)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if _, err := os.Stat(filepath.Join(d, "keep")); err == nil {
			continue // a failed run, kept for inspection
		}
		_ = os.RemoveAll(d)
	}
}
