package testnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The RabbitMQ programs, called directly: the /usr/sbin wrappers switch to
// the rabbitmq user and its home directory.
var (
	ServerBin = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	CtlBin    = "/usr/lib/rabbitmq/bin/rabbitmqctl"
	QueuesBin = "/usr/lib/rabbitmq/bin/rabbitmq-queues"
)

// dirPrefix starts the name of every directory Start creates under
// os.TempDir(), followed by the owning process's pid: Sweep finds
// leftovers by it.
const dirPrefix = "warren-testnode-"

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
	// TLS, when set, adds a TLS listener on the node's address
	// (Node.TLSPort).
	TLS *TLS
	// Config holds extra rabbitmq.conf lines.
	Config string
	// Advanced is the node's advanced.config (Erlang terms). "" means
	// none.
	Advanced string
	// Env holds extra environment variables of the node and its
	// rabbitmqctl calls, as NAME=value (RABBITMQ_FEATURE_FLAGS=...).
	Env []string
	// StartTimeout bounds each start. 0 means 2 minutes.
	StartTimeout time.Duration
	// Logf, when set, receives progress messages (t.Logf).
	Logf func(format string, args ...any)
}

// Node is a private RabbitMQ node. Its methods are safe for concurrent use,
// but stopping and starting it are for one caller at a time.
type Node struct {
	// Name is the Erlang node name, for rabbitmqctl -n.
	Name string
	// Index is the node's place in its cluster, from 1.
	Index int
	// Host is the address the node listens on: 127.0.0.1, or its address
	// on a ClusterOptions.Net.
	Host string
	// Port is the AMQP port on Host.
	Port int
	// TLSPort is the AMQPS port on Host, or 0 without TLS.
	TLSPort int

	cluster *Cluster
	dir     string
	pidFile string
	env     []string
	timeout time.Duration // of each start
	remove  string        // Close removes it: the directory Start made

	mu sync.Mutex // serialises Start and Stop
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
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
	if err != nil {
		return nil, err
	}
	c, err := NewCluster(dir, ClusterOptions{Node: opts})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	n := c.Nodes[0]
	n.remove = dir
	if err := c.Start(ctx); err != nil {
		_ = n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) logf(format string, args ...any) { n.cluster.logf(format, args...) }

// Dir is the node's directory: configuration, data, logs.
func (n *Node) Dir() string { return n.dir }

// Home is the HOME of the node and of its rabbitmqctl calls: it holds the
// Erlang cookie another rabbitmqctl needs to reach the node.
func (n *Node) Home() string { return n.cluster.home }

// LogFile is the node's main log.
func (n *Node) LogFile() string { return filepath.Join(n.dir, "log", n.Name+".log") }

// URL is the AMQP URL of the node for the default guest user and vhost.
func (n *Node) URL() string { return n.URLFor("guest", "guest", "/") }

// URLFor is the AMQP URL of the node for user, password and vhost.
func (n *Node) URLFor(user, password, vhost string) string {
	return n.url("amqp", n.Port, user, password, vhost)
}

// TLSURL is the AMQPS URL of the node's TLS listener for user, password
// and vhost. It is "" without TLS.
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
	return fmt.Sprintf("%s://%s@%s:%d%s", scheme, url.UserPassword(user, password).String(), n.Host, port, path)
}

// Ctl runs rabbitmqctl -n <node> args... and returns its output.
func (n *Node) Ctl(ctx context.Context, args ...string) (string, error) {
	return n.run(ctx, CtlBin, append([]string{"-n", n.Name}, args...)...)
}

// Queues runs rabbitmq-queues -n <node> args... and returns its output.
func (n *Node) Queues(ctx context.Context, args ...string) (string, error) {
	return n.run(ctx, QueuesBin, append([]string{"-n", n.Name}, args...)...)
}

// command is bin args..., inside the node's network namespace if it has
// one, with the node's environment and directory.
func (n *Node) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	argv := append([]string{bin}, args...)
	if nw := n.cluster.net; nw != nil {
		argv = nw.Exec(n.Index, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = n.env, n.dir
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (n *Node) run(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := n.command(ctx, bin, args...)
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

// Start starts the node (again) and waits until RabbitMQ runs on it. A node
// whose process runs already is left alone.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := n.PID(); err == nil {
		return nil
	}
	_ = os.Remove(n.pidFile) // a stale pid file (after SIGKILL) would fool `wait`
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	out, err := os.Create(filepath.Join(n.dir, "start.out"))
	if err != nil {
		return err
	}
	defer out.Close()
	// The detached server inherits its output: a file, so that nothing
	// waits for a pipe the daemon holds open.
	cmd := n.command(ctx, ServerBin, "-detached")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		return fmt.Errorf("testnode: start %s: %w: %s", n.Name, err, tail(string(b), 800))
	}
	err = n.awaitPidFile(ctx)
	if err == nil {
		_, err = n.Ctl(ctx, "wait", n.pidFile, "--timeout", strconv.Itoa(int(n.timeout/time.Second)))
	}
	if err != nil {
		_ = n.Kill(context.Background())
		return fmt.Errorf("testnode: node %s did not start (log %s): %w", n.Name, n.LogFile(), err)
	}
	n.logf("testnode: %s up on %s:%d in %s", n.Name, n.Host, n.Port, time.Since(start).Round(time.Millisecond))
	return nil
}

// Stop stops the node with rabbitmqctl stop and waits until its process
// has exited; if that fails, it SIGKILLs the process and returns the
// error. Its data stays for the next Start. Clients see their connections
// closed. A node that does not run is left alone.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	pid, err := n.PID()
	if err != nil {
		return nil // not running
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// With the pid file, `stop` returns once the OS process is gone.
	if _, err = n.Ctl(ctx, "stop", n.pidFile); err == nil {
		err = WaitGone(ctx, pid, 10*time.Second)
	}
	if err != nil {
		n.logf("testnode: %s: stop: %v; killing it", n.Name, err)
		n.kill(pid)
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

// CloseAllConnections has the node close every client connection.
func (n *Node) CloseAllConnections(ctx context.Context, reason string) error {
	_, err := n.Ctl(ctx, "close_all_connections", reason)
	return err
}

// Close stops the node (thawing it first, if frozen). A node from Start
// also loses its directory; a cluster's node keeps it (the cluster's
// caller owns the directory).
func (n *Node) Close() error {
	_ = n.Thaw()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err := n.Stop(ctx)
	cancel()
	if pid, perr := n.PID(); perr == nil {
		n.kill(pid) // whatever is left, after a failed stop or start
	}
	if n.remove != "" {
		err = errors.Join(err, os.RemoveAll(n.remove))
	}
	return err
}
