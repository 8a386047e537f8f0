package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/warrenq/warren/internal/testnode"
)

// IP is the iproute2 binary; TC is its traffic-control tool (looked up
// in PATH; scripts/chaos.sh installs iproute2 when they are missing).
var (
	IP = "ip"
	TC = "tc"
)

// NetPrefix starts the name of every network namespace, bridge and veth
// the suite creates; the owner's PID follows it. SweepNets removes those
// of owners that are gone.
const NetPrefix = "wqp"

// Net is a private network for a cluster: one network namespace per node,
// each joined to a bridge in the root namespace by a veth pair, on a
// 10.231.X.0/24 that no interface of the host uses. The bridge holds .1,
// node i holds .10+i. Only these addresses, and loopback, carry the
// suite's traffic.
//
// Cutting node i's link (Cut) isolates it from the other nodes and from
// every client outside its namespace: a 1 | 2 split in which the clients
// inside its namespace are on the minority side.
type Net struct {
	tag    string // NetPrefix + owner PID
	owner  int
	subnet string // "10.231.X"
	n      int
	logf   func(string, ...any)
}

// NewNet creates the bridge and n namespaces with their links, loopback up
// in each. On error it removes what it created.
func NewNet(ctx context.Context, n int, logf func(string, ...any)) (*Net, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("chaos: network namespaces need root")
	}
	subnet, err := freeSubnet(ctx)
	if err != nil {
		return nil, err
	}
	nw := &Net{tag: NetPrefix + strconv.Itoa(os.Getpid()), owner: os.Getpid(), subnet: subnet, n: n, logf: logf}
	if err := nw.create(ctx); err != nil {
		nw.Close()
		return nil, err
	}
	logf("network %s.0/24: bridge %s, namespaces %s1..%d", subnet, nw.Bridge(), nw.tag+"n", n)
	return nw, nil
}

func (nw *Net) create(ctx context.Context) error {
	br := nw.Bridge()
	steps := [][]string{
		{IP, "link", "add", br, "type", "bridge"},
		{IP, "addr", "add", nw.subnet + ".1/24", "dev", br},
		{IP, "link", "set", br, "up"},
	}
	for i := 1; i <= nw.n; i++ {
		ns, host, peer := nw.NS(i), nw.HostIf(i), nw.tag+"p"+strconv.Itoa(i)
		steps = append(steps,
			[]string{IP, "netns", "add", ns},
			[]string{IP, "-n", ns, "link", "set", "lo", "up"},
			[]string{IP, "link", "add", host, "type", "veth", "peer", "name", peer},
			[]string{IP, "link", "set", peer, "netns", ns},
			[]string{IP, "link", "set", host, "master", br},
			[]string{IP, "link", "set", host, "up"},
			[]string{IP, "-n", ns, "link", "set", peer, "name", "eth0"},
			[]string{IP, "-n", ns, "addr", "add", nw.IPOf(i) + "/24", "dev", "eth0"},
			[]string{IP, "-n", ns, "link", "set", "eth0", "up"},
		)
	}
	for _, s := range steps {
		if err := run(ctx, s...); err != nil {
			return err
		}
	}
	return nil
}

// run runs a command and returns its output in the error if it fails.
func run(ctx context.Context, args ...string) error {
	_, err := output(ctx, args...)
	return err
}

func output(ctx context.Context, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("chaos: %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// freeSubnet picks a 10.231.X.0/24 no interface of the host has an
// address in.
func freeSubnet(ctx context.Context) (string, error) {
	out, err := output(ctx, IP, "-4", "-o", "addr", "show")
	if err != nil {
		return "", err
	}
	for range 100 {
		s := fmt.Sprintf("10.231.%d", mrand.IntN(250))
		if !strings.Contains(out, " "+s+".") {
			return s, nil
		}
	}
	return "", errors.New("chaos: no free 10.231.X.0/24")
}

// Bridge is the name of the bridge in the root namespace.
func (nw *Net) Bridge() string { return nw.tag + "br" }

// NS is the name of node i's network namespace (1-based).
func (nw *Net) NS(i int) string { return nw.tag + "n" + strconv.Itoa(i) }

// HostIf is the root-namespace end of node i's veth pair, on the bridge.
func (nw *Net) HostIf(i int) string { return nw.tag + "h" + strconv.Itoa(i) }

// IPOf is node i's address.
func (nw *Net) IPOf(i int) string { return nw.subnet + "." + strconv.Itoa(10+i) }

// Exec returns the command line that runs args inside node i's namespace.
func (nw *Net) Exec(i int, args ...string) []string {
	return append([]string{IP, "netns", "exec", nw.NS(i)}, args...)
}

// Cut takes node i's link down: node i and the clients in its namespace
// reach nothing outside it, and nothing outside reaches them.
func (nw *Net) Cut(ctx context.Context, i int) error {
	return run(ctx, IP, "link", "set", nw.HostIf(i), "down")
}

// Heal brings node i's link back up and removes any shaping on it.
func (nw *Net) Heal(ctx context.Context, i int) error {
	nw.Unshape(ctx, i)
	return run(ctx, IP, "link", "set", nw.HostIf(i), "up")
}

// Shape makes node i's link slow and lossy in both directions: a token
// bucket of rate (e.g. "2mbit") that queues at most latency and drops what
// does not fit. This kernel has no netem; tbf gives delay and loss.
func (nw *Net) Shape(ctx context.Context, i int, rate, latency string) error {
	tbf := []string{"root", "tbf", "rate", rate, "burst", "16kb", "latency", latency}
	if err := run(ctx, append([]string{TC, "qdisc", "replace", "dev", nw.HostIf(i)}, tbf...)...); err != nil {
		return err
	}
	return run(ctx, append([]string{IP, "netns", "exec", nw.NS(i), TC, "qdisc", "replace", "dev", "eth0"}, tbf...)...)
}

// Unshape removes Shape's queues (none is fine).
func (nw *Net) Unshape(ctx context.Context, i int) {
	_ = run(ctx, TC, "qdisc", "del", "dev", nw.HostIf(i), "root")
	_ = run(ctx, IP, "netns", "exec", nw.NS(i), TC, "qdisc", "del", "dev", "eth0", "root")
}

// Close kills every process left in the namespaces (the nodes' epmd
// outlives them), then deletes the namespaces, the veths and the bridge.
func (nw *Net) Close() {
	removeNet(nw.owner, nw.logf)
}

// removeNet removes every namespace and link of the run whose owner is pid.
func removeNet(pid int, logf func(string, ...any)) {
	mine := func(name string) bool { p, ok := ownerOf(name); return ok && p == pid }
	ctx := context.Background()
	nsOut, _ := output(ctx, IP, "netns", "list")
	for _, line := range strings.Split(nsOut, "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !mine(name) {
			continue
		}
		pids, _ := output(ctx, IP, "netns", "pids", name)
		for _, f := range strings.Fields(pids) {
			if p, err := strconv.Atoi(f); err == nil && p > 1 {
				_ = syscall.Kill(p, syscall.SIGKILL)
				_ = testnode.WaitGone(ctx, p, 10*time.Second)
			}
		}
		if err := run(ctx, IP, "netns", "del", name); err != nil {
			logf("remove namespace %s: %v", name, err)
		}
	}
	// A host veth can outlive its namespace's end for a moment; the bridge
	// goes last.
	for _, l := range links(ctx, NetPrefix) {
		if mine(l) && !strings.HasSuffix(l, "br") {
			_ = run(ctx, IP, "link", "del", l)
		}
	}
	for _, l := range links(ctx, NetPrefix) {
		if !mine(l) {
			continue
		}
		if err := run(ctx, IP, "link", "del", l); err != nil {
			logf("remove link %s: %v", l, err)
		}
	}
}

// links lists the root namespace's links whose names start with tag.
func links(ctx context.Context, tag string) []string {
	out, _ := output(ctx, IP, "-o", "link", "show")
	var names []string
	for _, line := range strings.Split(out, "\n") {
		// "12: wqp123h1@if11: <...>"
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, tag) {
			names = append(names, name)
		}
	}
	return names
}

// SweepNets removes the namespaces, veths and bridges of earlier runs
// whose owner process is gone (a suite killed by its -timeout). Only names
// starting with NetPrefix and a dead PID are touched.
func SweepNets(logf func(string, ...any)) {
	ctx := context.Background()
	owners := map[int]bool{}
	nsOut, _ := output(ctx, IP, "netns", "list")
	names := links(ctx, NetPrefix)
	for _, line := range strings.Split(nsOut, "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		names = append(names, name)
	}
	for _, name := range names {
		if pid, ok := ownerOf(name); ok {
			owners[pid] = true
		}
	}
	for pid := range owners {
		if pid == os.Getpid() || testnode.Alive(pid) {
			continue
		}
		logf("sweep: removing the network namespaces and links of dead run %d", pid)
		removeNet(pid, logf)
	}
}

// ownerOf parses the PID out of a name NetPrefix + PID + kind + index.
func ownerOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, NetPrefix)
	if !ok {
		return 0, false
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end <= 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(rest[:end])
	return pid, err == nil
}
