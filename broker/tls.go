package broker

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TLSFiles names the PEM files of a client's TLS settings, for
// Config.TLS: a CLI's flags, a dashboard's settings.
type TLSFiles struct {
	// CA holds the CA certificates to trust; "" trusts the system's.
	CA string
	// Cert is the client certificate to present; "" presents none. It
	// goes with Key.
	Cert string
	// Key is the client certificate's private key; it goes with Cert.
	Key string
}

// TLSFileError is a TLSFiles setting the configuration cannot be built
// from: Field names it ("CA", or "Cert and Key"), Path its file or files
// ("" when one of the pair is missing), and Err what is wrong, without the
// path.
type TLSFileError struct {
	Field string
	Path  string
	Err   error
}

func (e *TLSFileError) Error() string {
	if e.Path == "" {
		return "broker: TLS " + e.Field + " " + e.Err.Error()
	}
	return "broker: TLS " + e.Field + " " + e.Path + ": " + e.Err.Error()
}

func (e *TLSFileError) Unwrap() error { return e.Err }

// Config reads the files into TLS settings (TLS 1.2 at least, the broker's
// host name checked against its certificate), or returns nil, nil when no
// file is named: the system's CAs and no client certificate. Its errors are
// *TLSFileError.
func (f TLSFiles) Config() (*tls.Config, error) {
	if f == (TLSFiles{}) {
		return nil, nil
	}
	if (f.Cert == "") != (f.Key == "") {
		return nil, &TLSFileError{Field: "Cert and Key", Err: errors.New("go together (a client certificate and its private key)")}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, &TLSFileError{Field: "CA", Path: f.CA, Err: err}
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, &TLSFileError{Field: "CA", Path: f.CA, Err: errors.New("no PEM certificate found in it")}
		}
	}
	if f.Cert != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, &TLSFileError{Field: "Cert and Key", Path: f.Cert + ", " + f.Key, Err: err}
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// tlsConfig is the TLS configuration for an amqps endpoint: a copy of
// base (each node of a cluster is checked against its own host name), or,
// when base is nil, one from the URL's query (cacertfile, certfile,
// keyfile, server_name_override), read as TLSFiles.
func tlsConfig(base *tls.Config, uri amqp.URI) (*tls.Config, error) {
	var cfg *tls.Config
	if base != nil {
		cfg = base.Clone()
	} else {
		var err error
		if cfg, err = (TLSFiles{CA: uri.CACertFile, Cert: uri.CertFile, Key: uri.KeyFile}).Config(); err != nil {
			return nil, err
		}
		cfg = cmp.Or(cfg, &tls.Config{MinVersion: tls.VersionTLS12})
		cfg.ServerName = uri.ServerName
	}
	cfg.ServerName = cmp.Or(cfg.ServerName, uri.Host)
	return cfg, nil
}
