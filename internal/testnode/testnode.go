// Package testnode starts private RabbitMQ nodes for tests that need a
// broker of their own: one they can stop and start again, one with a TLS
// listener, or one whose users, vhosts and permissions they change. The
// shared development broker (127.0.0.1:5672) is never touched: a private
// node has its own ports, data directory, HOME and Erlang cookie, and every
// rabbitmqctl call names it with -n.
//
// Starting a node costs several seconds; share one per test binary with a
// Lazy, closed from TestMain:
//
//	var node = &testnode.Lazy{Options: testnode.Options{TLS: ...}}
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		node.Close()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		n := node.Get(t) // started on first use; skipped (or failed under CI=true) without RabbitMQ
//		...
//	}
//
// A node left running by a test binary that was killed is stopped by the
// next Start (see Sweep).
package testnode

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The RabbitMQ programs, called directly: the /usr/sbin wrappers switch to
// the rabbitmq user and its home directory.
var (
	ServerBin = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	CtlBin    = "/usr/lib/rabbitmq/bin/rabbitmqctl"
)

// dirPrefix starts the name of every node directory under os.TempDir(),
// followed by the owning process's pid: Sweep finds leftovers by it.
const dirPrefix = "warren-testnode-"

// Ports never used: the shared node's (AMQP, distribution, management),
// epmd's, and the default range of rabbitmqctl's own distribution ports.
func reserved(p int) bool {
	switch p {
	case 4369, 5671, 5672, 15672, 25672:
		return true
	}
	return p >= 35672 && p <= 35682
}

// TLS configures a node's TLS listener. The files are PEM.
type TLS struct {
	CACertFile string // CA bundle the node trusts for client certificates
	CertFile   string // the node's certificate
	KeyFile    string // the node's private key
	// VerifyPeer makes the node ask clients for a certificate and check it
	// against CACertFile (ssl_options.verify = verify_peer); otherwise
	// verify_none.
	VerifyPeer bool
	// FailIfNoPeerCert refuses clients that present no certificate.
	FailIfNoPeerCert bool
}

// Options shape a node. The zero Options is a plain AMQP node.
type Options struct {
	// TLS, when set, adds a TLS listener on 127.0.0.1 (Node.TLSPort).
	TLS *TLS
	// Config holds extra rabbitmq.conf lines.
	Config string
	// Env holds extra environment variables of the node and its
	// rabbitmqctl calls, as NAME=value (RABBITMQ_FEATURE_FLAGS=...).
	Env []string
	// StartTimeout bounds each start. 0 means 2 minutes.
	StartTimeout time.Duration
	// Logf, when set, receives progress messages (t.Logf).
	Logf func(format string, args ...any)
}

// Node is a private RabbitMQ node. Its methods are safe for concurrent use,
// but stopping and starting it are for one test at a time.
type Node struct {
	// Name is the Erlang node name, for rabbitmqctl -n.
	Name string
	// Port is the AMQP port on 127.0.0.1.
	Port int
	// TLSPort is the AMQPS port on 127.0.0.1, or 0 without TLS.
	TLSPort int

	dir     string
	pidFile string
	env     []string
	opts    Options

	mu      sync.Mutex
	running bool
}

// Available reports why private nodes cannot be started here, or nil.
func Available() error {
	for _, bin := range []string{ServerBin, CtlBin} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("testnode: RabbitMQ is not installed: %w", err)
		}
	}
	return nil
}

// Start prepares a node in a new directory under os.TempDir() and starts
// it. Close stops it and removes the directory.
func Start(ctx context.Context, opts Options) (*Node, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	Sweep()
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	n, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		_ = n.Close()
		return nil, err
	}
	return n, nil
}

func prepare(opts Options) (*Node, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("testnode: hostname: %w", err)
	}
	host, _, _ = strings.Cut(host, ".")
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Node, error) {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fail(err)
	}
	var b [16]byte
	_, _ = crand.Read(b[:])
	if err := os.WriteFile(filepath.Join(home, ".erlang.cookie"), []byte(strings.ToUpper(hex.EncodeToString(b[:]))), 0o400); err != nil {
		return fail(fmt.Errorf("testnode: write cookie: %w", err))
	}
	taken := map[int]bool{}
	port, err := freePort(10000, 14999, taken, 20000)
	if err != nil {
		return fail(err)
	}
	ctlMin, err := freeRange(15000, 19999, 10, taken)
	if err != nil {
		return fail(err)
	}
	n := &Node{
		Name:    fmt.Sprintf("warren_testnode_%s@%s", filepath.Base(dir)[len(dirPrefix):], host), // pid and a random part
		Port:    port,
		dir:     dir,
		pidFile: filepath.Join(dir, "rabbit.pid"),
		opts:    opts,
	}
	n.Name = strings.ReplaceAll(n.Name, "-", "_")
	var conf strings.Builder
	fmt.Fprintf(&conf, "listeners.tcp.1 = 127.0.0.1:%d\n", port)
	if t := opts.TLS; t != nil {
		if n.TLSPort, err = freePort(10000, 14999, taken, 0); err != nil {
			return fail(err)
		}
		verify := "verify_none"
		if t.VerifyPeer {
			verify = "verify_peer"
		}
		fmt.Fprintf(&conf, "listeners.ssl.1 = 127.0.0.1:%d\n", n.TLSPort)
		fmt.Fprintf(&conf, "ssl_options.cacertfile = %s\nssl_options.certfile = %s\nssl_options.keyfile = %s\n", t.CACertFile, t.CertFile, t.KeyFile)
		fmt.Fprintf(&conf, "ssl_options.verify = %s\nssl_options.fail_if_no_peer_cert = %t\n", verify, t.FailIfNoPeerCert)
	}
	if opts.Config != "" {
		conf.WriteString(strings.TrimRight(opts.Config, "\n") + "\n")
	}
	files := map[string]string{"rabbitmq.conf": conf.String(), "rabbitmq-env.conf": "", "enabled_plugins": "[].\n"}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return fail(err)
		}
	}
	n.env = append(cleanEnv(),
		"HOME="+home,
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(port+20000),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+n.pidFile,
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_PLUGINS_EXPAND_DIR="+filepath.Join(dir, "plugins-expand"),
		"RABBITMQ_CTL_DIST_PORT_MIN="+strconv.Itoa(ctlMin),
		"RABBITMQ_CTL_DIST_PORT_MAX="+strconv.Itoa(ctlMin+9),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
	)
	n.env = append(n.env, opts.Env...)
	return n, nil
}

// cleanEnv is the environment without RabbitMQ's and Erlang's variables
// and HOME (a shell may carry the shared node's).
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

func (n *Node) logf(format string, args ...any) {
	if n.opts.Logf != nil {
		n.opts.Logf(format, args...)
	}
}

// Dir is the node's directory: configuration, data, logs.
func (n *Node) Dir() string { return n.dir }

// LogFile is the node's main log.
func (n *Node) LogFile() string { return filepath.Join(n.dir, "log", n.Name+".log") }

// URL is the AMQP URL of the node for the default guest user and vhost.
func (n *Node) URL() string { return n.URLFor("guest", "guest", "/") }

// URLFor is the AMQP URL of the node for user, password and vhost.
func (n *Node) URLFor(user, password, vhost string) string {
	return n.url("amqp", n.Port, user, password, vhost)
}

// TLSURL is the AMQPS URL of the node's TLS listener for user, password
// and vhost, with host 127.0.0.1. It is "" without TLS.
func (n *Node) TLSURL(user, password, vhost string) string {
	if n.TLSPort == 0 {
		return ""
	}
	return n.url("amqps", n.TLSPort, user, password, vhost)
}

func (n *Node) url(scheme string, port int, user, password, vhost string) string {
	path := "/"
	if vhost != "/" {
		path += url.PathEscape(vhost)
	}
	return fmt.Sprintf("%s://%s@127.0.0.1:%d%s", scheme, url.UserPassword(user, password).String(), port, path)
}

// Ctl runs rabbitmqctl -n <node> args... and returns its output.
func (n *Node) Ctl(ctx context.Context, args ...string) (string, error) {
	return n.run(ctx, CtlBin, append([]string{"-n", n.Name}, args...)...)
}

func (n *Node) run(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = n.env
	cmd.Dir = n.dir
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("testnode: %s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(tail(out.String(), 800)))
	}
	return out.String(), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Start starts the node (again) and waits until RabbitMQ runs on it.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.running {
		return nil
	}
	_ = os.Remove(n.pidFile) // a stale pid file would fool `wait`
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, n.opts.StartTimeout)
	defer cancel()
	out, err := os.Create(filepath.Join(n.dir, "start.out"))
	if err != nil {
		return err
	}
	defer out.Close()
	// The detached server inherits its output: a file, so that nothing
	// waits for a pipe the daemon holds open.
	cmd := exec.CommandContext(ctx, ServerBin, "-detached")
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = n.env, n.dir, out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		return fmt.Errorf("testnode: start %s: %w: %s", n.Name, err, tail(string(b), 800))
	}
	err = AwaitPidFile(ctx, n.pidFile)
	if err == nil {
		_, err = n.Ctl(ctx, "wait", n.pidFile, "--timeout", strconv.Itoa(int(n.opts.StartTimeout/time.Second)))
	}
	if err != nil {
		n.kill()
		return fmt.Errorf("testnode: node %s did not start (log %s): %w", n.Name, n.LogFile(), err)
	}
	n.running = true
	n.logf("testnode: %s up on 127.0.0.1:%d in %s", n.Name, n.Port, time.Since(start).Round(time.Millisecond))
	return nil
}

// Stop stops the node and waits until its process has exited; its data
// stays for the next Start. Clients see their connections closed.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.running {
		return nil
	}
	n.running = false
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// With the pid file, `stop` returns once the OS process is gone.
	if _, err := n.Ctl(ctx, "stop", n.pidFile); err != nil {
		n.kill()
		return err
	}
	n.logf("testnode: %s stopped in %s", n.Name, time.Since(start).Round(time.Millisecond))
	return nil
}

// Restart stops and starts the node.
func (n *Node) Restart(ctx context.Context) error {
	if err := n.Stop(ctx); err != nil {
		return err
	}
	return n.Start(ctx)
}

// kill sends SIGKILL to the node's process, if the pid file names it.
func (n *Node) kill() {
	if pid := readPid(n.pidFile); pid > 0 && ownedBy(pid, n.dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Close stops the node and removes its directory.
func (n *Node) Close() error {
	var err error
	n.mu.Lock()
	running := n.running
	n.mu.Unlock()
	if running {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = n.Stop(ctx)
		cancel()
	}
	n.kill() // whatever is left, after a failed stop or start
	return errors.Join(err, os.RemoveAll(n.dir))
}

// AwaitPidFile waits until file holds a process ID, as rabbitmq-server
// -detached writes it a moment after it returns. `rabbitmqctl wait` on a
// file caught half-written fails with garbage_in_pid_file instead of
// waiting: call this first.
func AwaitPidFile(ctx context.Context, file string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for readPid(file) <= 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("testnode: no process ID in %s: %w", file, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

func readPid(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// ownedBy reports whether process pid runs with dir on its command line:
// a pid file is never trusted to name a process of ours blindly.
func ownedBy(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(b, []byte(dir))
}

// Sweep stops the nodes left behind by test processes that no longer run
// (a test binary killed by a timeout) and removes their directories.
func Sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		rest := strings.TrimPrefix(filepath.Base(dir), dirPrefix)
		owner, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err != nil || owner == os.Getpid() || syscall.Kill(owner, 0) == nil {
			continue
		}
		if pid := readPid(filepath.Join(dir, "rabbit.pid")); pid > 0 && ownedBy(pid, dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = os.RemoveAll(dir)
	}
}
