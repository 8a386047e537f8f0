package testnode

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Certs are PEM files of a test PKI: a CA, a server certificate for the
// node and a client certificate, both signed by the CA.
type Certs struct {
	CACert, CAKey         string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
}

// TLS returns the node options that serve ServerCert and verify clients
// against CACert (without requiring a client certificate).
func (c Certs) TLS() *TLS {
	return &TLS{CACertFile: c.CACert, CertFile: c.ServerCert, KeyFile: c.ServerKey, VerifyPeer: true}
}

// GenerateCerts writes a new CA, a server certificate valid for hosts (IP
// addresses or DNS names; none means 127.0.0.1 and localhost) and a client
// certificate with common name "client" into dir, prefixed with prefix
// ("" or "other-" for a second, unrelated PKI). Keys are ECDSA P-256 in
// PKCS #8; certificates are valid for a day.
func GenerateCerts(dir, prefix string, hosts ...string) (Certs, error) {
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	path := func(name string) string { return filepath.Join(dir, prefix+name) }
	c := Certs{
		CACert: path("ca.pem"), CAKey: path("ca-key.pem"),
		ServerCert: path("server.pem"), ServerKey: path("server-key.pem"),
		ClientCert: path("client.pem"), ClientKey: path("client-key.pem"),
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return c, err
	}
	ca := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: prefix + "warren test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return c, err
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return c, err
	}
	if err := writePEM(c.CACert, "CERTIFICATE", caDER); err != nil {
		return c, err
	}
	if err := writeKey(c.CAKey, caKey); err != nil {
		return c, err
	}
	server := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			server.IPAddresses = append(server.IPAddresses, ip)
		} else {
			server.DNSNames = append(server.DNSNames, h)
		}
	}
	client := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "client"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, leaf := range []struct {
		tmpl      *x509.Certificate
		cert, key string
	}{{server, c.ServerCert, c.ServerKey}, {client, c.ClientCert, c.ClientKey}} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return c, err
		}
		der, err := x509.CreateCertificate(rand.Reader, leaf.tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return c, err
		}
		if err := writePEM(leaf.cert, "CERTIFICATE", der); err != nil {
			return c, err
		}
		if err := writeKey(leaf.key, key); err != nil {
			return c, err
		}
	}
	return c, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func writeKey(file string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(file, "PRIVATE KEY", der)
}

func writePEM(file, typ string, der []byte) error {
	// The node runs as this user, so 0600 keys stay readable to it.
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("testnode: %w", err)
	}
	return nil
}
