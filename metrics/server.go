package metrics

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/warrenq/warren/health"
)

// ServerConfig tunes Serve. The zero ServerConfig is ready to use.
type ServerConfig struct {
	// Ready is the readiness check of /readyz. nil is always ready.
	Ready health.Check
	// Metrics tunes the Metrics served; its Registerer is ignored (the
	// server has a registry of its own).
	Metrics Config
	// Logger receives the server's errors. nil means slog.Default().
	Logger *slog.Logger
}

// Server serves, on one address, /metrics (Warren's metrics with the Go
// runtime's and the process's), and /healthz and /readyz (package health).
type Server struct {
	// Metrics are the metrics served: the Observer of a worker or a
	// producer.
	Metrics *Metrics

	srv  *http.Server
	addr net.Addr
	done chan struct{}
	log  *slog.Logger
}

// Serve listens on addr ("host:port") at once, so that a taken port fails
// here, and serves in the background until Shutdown.
func Serve(addr string, cfg ServerConfig) (*Server, error) {
	log := cmp.Or(cfg.Logger, slog.Default())
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	mcfg := cfg.Metrics
	mcfg.Registerer = reg
	m, err := New(mcfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError),
		Registry: reg, // promhttp_metric_handler_* series
	}))
	health.Register(mux, cfg.Ready)
	s := &Server{
		Metrics: m,
		srv:     &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)},
		addr:    ln.Addr(),
		done:    make(chan struct{}),
		log:     log,
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics: server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr returns the address the server listens on (the port chosen, for
// ":0").
func (s *Server) Addr() net.Addr { return s.addr }

// Shutdown stops serving, waiting up to 5 seconds for requests in
// progress, and returns once the server has stopped.
func (s *Server) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.log.Debug("metrics: server shutdown", "err", err)
		_ = s.srv.Close()
	}
	<-s.done
}
