package broker

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/internal/testnode"
)

func TestTLSFiles(t *testing.T) {
	dir := t.TempDir()
	certs, err := testnode.GenerateCerts(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := TLSFiles{CA: certs.CACert, Cert: certs.ClientCert, Key: certs.ClientKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs == nil || len(cfg.Certificates) != 1 || cfg.InsecureSkipVerify || cfg.MinVersion < tls.VersionTLS12 {
		t.Fatalf("config %+v", cfg)
	}
	if cfg, err := (TLSFiles{}).Config(); cfg != nil || err != nil {
		t.Fatalf("no files: %v, %v (want nil: the system's CAs)", cfg, err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		files       TLSFiles
		field, text string
	}{
		{TLSFiles{Cert: certs.ClientCert}, "Cert and Key", "broker: TLS Cert and Key go together"},
		{TLSFiles{Key: certs.ClientKey}, "Cert and Key", "go together"},
		{TLSFiles{CA: filepath.Join(dir, "nope.pem")}, "CA", "nope.pem: no such file"},
		{TLSFiles{CA: notPEM}, "CA", "not.pem: no PEM certificate found in it"},
		{TLSFiles{Cert: notPEM, Key: notPEM}, "Cert and Key", "not.pem, " + notPEM},
	} {
		_, err := c.files.Config()
		var fe *TLSFileError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%+v: %v, want %s: ...%s...", c.files, err, c.field, c.text)
		}
	}
	// The URL's query names files the same way.
	uri, err := amqp.ParseURI("amqps://h/?cacertfile=" + notPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlsConfig(nil, uri); !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("cacertfile not PEM: %v", err)
	}
	uri, _ = amqp.ParseURI("amqps://h.example/")
	if cfg, err := tlsConfig(nil, uri); err != nil || cfg.ServerName != "h.example" {
		t.Errorf("no files: %+v, %v", cfg, err)
	}
}
