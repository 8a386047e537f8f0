package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenq/warren/dashboard"
)

type dashboardFlags struct {
	listen         string
	queues         []string
	tokenFile      string
	basicAuthFile  string
	readOnly       bool
	tlsCert        string
	tlsKey         string
	auditFile      string
	sampleInterval time.Duration
	maxPayload     int
	maxBatch       int
}

func (a *app) dashboardCmd() *cobra.Command {
	f := &dashboardFlags{}
	cmd := &cobra.Command{
		Use:   "dashboard [--listen ADDR] [--token-file F | --basic-auth-file F] [--read-only]",
		Short: "Serve the web dashboard and the HTTP API",
		Long: `Serve the web dashboard and its JSON HTTP API (/api/v1, described at
/api/v1/openapi.json), with /metrics and /healthz, until interrupted.

The dashboard shows every Warren queue it knows (--queue, the queues the
workers' heartbeats name, and queues opened by name) with its counts and
rates, dead letters to filter, group, show, replay, purge, export and
import, the live worker pools, and an enqueue form; it pauses and resumes
queues. It needs nothing but the broker: several instances behind a load
balancer share no state but RabbitMQ (docs/operations.md).

Listening beyond loopback needs authentication: --token-file (a bearer
token of at least 16 characters on the file's first line; type it as the
password on the login page) or --basic-auth-file (user:password lines).
Mutating requests from a page need its CSRF token, and --read-only refuses
them all. Every mutating action writes an audit line (to stderr, or to
--audit-file as JSON lines). --listen-tls-cert with --listen-tls-key serve
HTTPS.`,
		Example: `  warren dashboard --queue emails
  warren dashboard --listen :8080 --token-file /run/secrets/dashboard-token
  warren dashboard --listen :8443 --basic-auth-file users.txt --listen-tls-cert cert.pem --listen-tls-key key.pem
  warren dashboard --listen :8080 --token-file token.txt --read-only --audit-file /var/log/warren-audit.json`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error { return a.runDashboard(cmd, f) }),
	}
	fs := cmd.Flags()
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "serve on this `address` (host:port)")
	fs.StringSliceVarP(&f.queues, "queue", "q", nil, "`queue` to always show (repeatable, or comma-separated)")
	fs.StringVar(&f.tokenFile, "token-file", "", "require the bearer token on the first line of `file`")
	fs.StringVar(&f.basicAuthFile, "basic-auth-file", "", "require basic-auth credentials from `file` (user:password lines)")
	fs.BoolVar(&f.readOnly, "read-only", false, "hide and refuse every mutating action")
	fs.StringVar(&f.tlsCert, "listen-tls-cert", "", "serve HTTPS with the certificate (PEM) in `file` (with --listen-tls-key)")
	fs.StringVar(&f.tlsKey, "listen-tls-key", "", "the HTTPS certificate's private key (PEM) `file`")
	fs.StringVar(&f.auditFile, "audit-file", "", "append audit lines (JSON) to `file` instead of the log")
	fs.DurationVar(&f.sampleInterval, "sample-interval", dashboard.DefaultSampleInterval, "sample the queues' counts every `duration`")
	fs.IntVar(&f.maxPayload, "max-payload", dashboard.DefaultMaxPayload, "refuse enqueued payloads over this many `bytes` (413)")
	fs.IntVar(&f.maxBatch, "max-batch", dashboard.DefaultMaxBatch, "refuse batch enqueues of more than this many `tasks` (413)")
	return cmd
}

func (a *app) runDashboard(cmd *cobra.Command, f *dashboardFlags) error {
	ctx := cmd.Context()
	if err := checkQueues(f.queues); err != nil && len(f.queues) > 0 {
		return err
	}
	if f.sampleInterval <= 0 {
		return usagef("--sample-interval must be positive (got %s)", f.sampleInterval)
	}
	if err := positive("max-payload", f.maxPayload); err != nil {
		return err
	}
	if err := positive("max-batch", f.maxBatch); err != nil {
		return err
	}
	var auth dashboard.Authenticator
	switch {
	case f.tokenFile != "" && f.basicAuthFile != "":
		return usagef("--token-file and --basic-auth-file cannot be used together")
	case f.tokenFile != "":
		t, err := dashboard.LoadToken(f.tokenFile)
		if err != nil {
			return usagef("--token-file: %w", err)
		}
		auth = t
	case f.basicAuthFile != "":
		b, err := dashboard.LoadBasic(f.basicAuthFile)
		if err != nil {
			return usagef("--basic-auth-file: %w", err)
		}
		auth = b
	}
	if err := dashboard.CheckListen(f.listen, auth); err != nil {
		return usagef("--listen: %w", err)
	}
	var tlsCfg *tls.Config
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usagef("--listen-tls-cert and --listen-tls-key go together")
	}
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return usagef("--listen-tls-cert %s, --listen-tls-key %s: %w", f.tlsCert, f.tlsKey, err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	audit := a.log
	if f.auditFile != "" {
		af, err := os.OpenFile(f.auditFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return usagef("--audit-file: %w", err)
		}
		defer af.Close()
		audit = slog.New(slog.NewJSONHandler(af, nil))
	}
	// Listen before connecting, so that a taken port fails at once.
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	defer ln.Close()

	conn, err := a.dial(ctx, "dashboard", 5)
	if err != nil {
		return err
	}
	defer a.closeConn(conn)
	srv, err := dashboard.New(ctx, conn, dashboard.Config{
		Queues:         f.queues,
		ReadOnly:       f.readOnly,
		Auth:           auth,
		SampleInterval: f.sampleInterval,
		MaxPayload:     f.maxPayload,
		MaxBatch:       f.maxBatch,
		Version:        version,
		Logger:         a.log,
		Audit:          audit,
	})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(cctx)
	}()
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go func() { _ = srv.Run(runCtx) }()

	hs := &http.Server{
		Handler:           srv,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	a.log.Info("dashboard: serving", "url", scheme+"://"+ln.Addr().String()+"/", "read_only", f.readOnly, "auth", auth != nil)
	fmt.Fprintf(a.stderr, "warren dashboard: serving on %s://%s/\n", scheme, ln.Addr())
	served := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			served <- hs.ServeTLS(ln, "", "")
		} else {
			served <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("dashboard: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}
