package main

import (
	"crypto/tls"
	"errors"
	"net/url"
	"strings"

	"github.com/warrenq/warren/broker"
)

// tlsFlags names the flags behind each broker.TLSFiles field a
// broker.TLSFileError can find at fault.
var tlsFlags = map[string]string{"CA": "--tls-ca", "Cert and Key": "--tls-cert and --tls-key"}

// tlsConfig builds the TLS settings of --tls-ca, --tls-cert and --tls-key,
// or returns nil when none is given (amqps:// URLs then use the system's
// CAs). Server-name checks stay on: the URL's host must be named in the
// broker's certificate. Bad values are usage errors.
func (a *app) tlsConfig() (*tls.Config, error) {
	files := broker.TLSFiles{CA: a.tlsCA, Cert: a.tlsCert, Key: a.tlsKey}
	if files == (broker.TLSFiles{}) {
		return nil, nil
	}
	for _, part := range strings.Split(a.url, ",") {
		part = strings.TrimSpace(part)
		if u, err := url.Parse(part); err == nil && part != "" && u.Scheme != "amqps" {
			return nil, usagef("--tls-ca, --tls-cert and --tls-key apply to amqps:// URLs, and %s is not one", broker.RedactURL(part))
		}
	}
	cfg, err := files.Config()
	var fe *broker.TLSFileError
	switch {
	case errors.As(err, &fe) && fe.Path == "":
		return nil, usagef("%s %w", tlsFlags[fe.Field], fe.Err)
	case errors.As(err, &fe):
		return nil, usagef("%s %s: %w", tlsFlags[fe.Field], fe.Path, fe.Err)
	}
	return cfg, err
}
