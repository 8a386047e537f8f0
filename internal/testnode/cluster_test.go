package testnode

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fakeNet places node i at 10.9.9.(10+i) and runs commands through "ns i".
type fakeNet struct{}

func (fakeNet) IPOf(i int) string { return "10.9.9." + strconv.Itoa(10+i) }
func (fakeNet) Exec(i int, argv ...string) []string {
	return append([]string{"ns", strconv.Itoa(i)}, argv...)
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNewClusterPreparesNodesThatJoinNodeOne(t *testing.T) {
	dir := t.TempDir()
	c, err := NewCluster(dir, ClusterOptions{Nodes: 3, Tag: "a-b", Node: Options{Config: "x = 1", Advanced: "[]."}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != 3 {
		t.Fatalf("%d nodes", len(c.Nodes))
	}
	ports := map[int]bool{}
	for i, n := range c.Nodes {
		if n.Index != i+1 || n.Host != "127.0.0.1" || !strings.HasPrefix(n.Name, "a_b"+strconv.Itoa(i+1)+"_") {
			t.Errorf("node %d: index %d, host %s, name %s", i+1, n.Index, n.Host, n.Name)
		}
		if ports[n.Port] || reserved(n.Port) || n.TLSPort != 0 {
			t.Errorf("node %d: port %d (TLS %d)", i+1, n.Port, n.TLSPort)
		}
		ports[n.Port] = true
		if n.Home() != filepath.Join(dir, "home") {
			t.Errorf("node %d: home %s", i+1, n.Home())
		}
		conf := read(t, filepath.Join(n.Dir(), "rabbitmq.conf"))
		joins := strings.Contains(conf, "cluster_formation.classic_config.nodes.1 = "+c.Nodes[0].Name+"\n")
		if joins != (i > 0) || !strings.Contains(conf, "x = 1\n") || strings.Contains(conf, "loopback_users") {
			t.Errorf("node %d: rabbitmq.conf:\n%s", i+1, conf)
		}
		if got := read(t, filepath.Join(n.Dir(), "advanced.config")); got != "[].\n" {
			t.Errorf("node %d: advanced.config %q", i+1, got)
		}
		if !slices.Contains(n.env, "RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(n.Dir(), "advanced.config")) || slices.Contains(n.env, "RABBITMQ_USE_LONGNAME=true") {
			t.Errorf("node %d: env %v", i+1, n.env)
		}
	}
	if info, err := os.Stat(filepath.Join(dir, "home", ".erlang.cookie")); err != nil || info.Mode().Perm() != 0o400 {
		t.Errorf("cookie: %v, %v", info, err)
	}
	if got := c.URLs(); strings.Count(got, ",") != 2 || !strings.HasPrefix(got, "amqp://guest:guest@127.0.0.1:") {
		t.Errorf("URLs %s", got)
	}
	// Not started: no process to signal, nothing to stop.
	if _, err := c.Nodes[0].PID(); err == nil {
		t.Error("PID of a node never started")
	}
	if err := c.Nodes[0].Stop(context.Background()); err != nil {
		t.Errorf("Stop of a node never started: %v", err)
	}
}

func TestNewClusterOnANetwork(t *testing.T) {
	dir := t.TempDir()
	c, err := NewCluster(dir, ClusterOptions{Nodes: 2, Net: fakeNet{}, Node: Options{TLS: &TLS{CACertFile: "ca", CertFile: "c", KeyFile: "k"}}})
	if err != nil {
		t.Fatal(err)
	}
	n := c.Nodes[1]
	if n.Host != "10.9.9.12" || !strings.HasSuffix(n.Name, "@10.9.9.12") || !strings.HasPrefix(n.Name, "warren_testnode2_") {
		t.Fatalf("host %s, name %s", n.Host, n.Name)
	}
	conf := read(t, filepath.Join(n.Dir(), "rabbitmq.conf"))
	for _, want := range []string{
		"listeners.tcp.1 = 10.9.9.12:",
		"listeners.ssl.1 = 10.9.9.12:",
		"loopback_users = none\n",
		"ssl_options.verify = verify_none\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("rabbitmq.conf lacks %q:\n%s", want, conf)
		}
	}
	if !slices.Contains(n.env, "RABBITMQ_USE_LONGNAME=true") || !slices.Contains(n.env, "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {10,9,9,12}") {
		t.Errorf("env %v", n.env)
	}
	if _, err := os.Stat(filepath.Join(n.Dir(), "advanced.config")); !os.IsNotExist(err) {
		t.Errorf("advanced.config without Options.Advanced: %v", err)
	}
	cmd := n.command(context.Background(), CtlBin, "status")
	if want := []string{"ns", "2", CtlBin, "status"}; !slices.Equal(cmd.Args, want) {
		t.Errorf("command %v, want %v", cmd.Args, want)
	}
	if got := n.TLSURL("u", "p", "v h"); got != "amqps://u:p@10.9.9.12:"+strconv.Itoa(n.TLSPort)+"/v%20h" {
		t.Errorf("TLSURL %s", got)
	}
}
