package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"os"
	"strings"

	"github.com/warrenq/warren/broker"
)

// tlsConfig builds the TLS settings of --tls-ca, --tls-cert and --tls-key,
// or returns nil when none is given (amqps:// URLs then use the system's
// CAs). Server-name checks stay on: the URL's host must be named in the
// broker's certificate. Bad values are usage errors.
func (a *app) tlsConfig() (*tls.Config, error) {
	if a.tlsCA == "" && a.tlsCert == "" && a.tlsKey == "" {
		return nil, nil
	}
	if (a.tlsCert == "") != (a.tlsKey == "") {
		return nil, usagef("--tls-cert and --tls-key go together (a client certificate and its private key)")
	}
	for _, part := range strings.Split(a.url, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if u, err := url.Parse(part); err == nil && u.Scheme != "amqps" {
			return nil, usagef("--tls-ca, --tls-cert and --tls-key apply to amqps:// URLs, and %s is not one", broker.RedactURL(part))
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if a.tlsCA != "" {
		pem, err := os.ReadFile(a.tlsCA)
		if err != nil {
			return nil, usagef("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("--tls-ca %s: no PEM certificate found in it", a.tlsCA)
		}
		cfg.RootCAs = pool
	}
	if a.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(a.tlsCert, a.tlsKey)
		if err != nil {
			return nil, usagef("--tls-cert %s, --tls-key %s: %w", a.tlsCert, a.tlsKey, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
