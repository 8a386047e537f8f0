//go:build integration

package testnode_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testnode"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestNodeStartsStopsAndServesTLS(t *testing.T) {
	dir := t.TempDir()
	certs, err := testnode.GenerateCerts(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	n := testnode.New(t, testnode.Options{TLS: certs.TLS()})
	if n.Port == 5672 || n.TLSPort == 0 {
		t.Fatalf("ports %d and %d", n.Port, n.TLSPort)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	if _, err := n.Ctl(ctx, "add_vhost", "testnode"); err != nil {
		t.Fatal(err)
	}
	out, err := n.Ctl(ctx, "list_vhosts", "--quiet")
	if err != nil || !strings.Contains(out, "testnode") {
		t.Fatalf("list_vhosts: %q, %v", out, err)
	}

	conn, err := broker.Dial(ctx, n.URL(), broker.Config{Name: "testnode test", ReconnectMax: 500 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	pem, err := os.ReadFile(certs.CACert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tconn, err := broker.Dial(ctx, n.TLSURL("guest", "guest", "/"), broker.Config{TLS: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, NoReconnect: true, Logger: quiet})
	if err != nil {
		t.Fatalf("amqps: %v", err)
	}
	_ = tconn.Close()

	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-conn.Lost():
	case <-time.After(30 * time.Second):
		t.Fatal("the connection did not notice the node stopping")
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := conn.Await(ctx); err != nil {
		t.Fatalf("no reconnect after the restart: %v", err)
	}
	// The data survives a restart.
	if out, err := n.Ctl(ctx, "list_vhosts", "--quiet"); err != nil || !strings.Contains(out, "testnode") {
		t.Fatalf("after restart: %q, %v", out, err)
	}
}
