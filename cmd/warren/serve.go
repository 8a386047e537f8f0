package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/warrenq/warren/health"
	"github.com/warrenq/warren/metrics"
	"github.com/warrenq/warren/worker"
)

// opsServer serves /metrics, /healthz and /readyz for a worker.
type opsServer struct {
	metrics *metrics.Metrics
	pool    atomic.Pointer[worker.Pool]
	srv     *http.Server
	done    chan struct{}
	log     *slog.Logger
}

// checkAddr refuses an --metrics-addr that is not host:port.
func checkAddr(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usagef("--metrics-addr %q: want [host]:port, like :9464 or 127.0.0.1:9464", addr)
	}
	return nil
}

// serveOps listens on addr at once (so that a taken port fails before
// anything else) and serves in the background until shutdown.
func serveOps(addr string, log *slog.Logger) (*opsServer, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m, err := metrics.New(metrics.Config{Registerer: reg})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	s := &opsServer{metrics: m, done: make(chan struct{}), log: log}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError),
		Registry: reg, // promhttp_metric_handler_* series
	}))
	health.Register(mux, s.ready)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("worker: metrics server stopped", "err", err)
		}
	}()
	log.Info("worker: serving /metrics, /healthz and /readyz", "addr", ln.Addr().String())
	return s, nil
}

// ready is the readiness check: the pool's, once there is one.
func (s *opsServer) ready() error {
	p := s.pool.Load()
	if p == nil {
		return errors.New("connecting to the broker")
	}
	return p.Ready()
}

// shutdown stops serving, waiting a little for requests in progress.
func (s *opsServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.log.Debug("worker: metrics server shutdown", "err", err)
		_ = s.srv.Close()
	}
	<-s.done
}
