package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/warrenq/warren/metrics"
	"github.com/warrenq/warren/worker"
)

// opsServer serves /metrics, /healthz and /readyz for a worker.
type opsServer struct {
	*metrics.Server
	pool atomic.Pointer[worker.Pool]
}

// checkAddr refuses an --metrics-addr that is not host:port.
func checkAddr(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usagef("--metrics-addr %q: want [host]:port, like :9464 or 127.0.0.1:9464", addr)
	}
	return nil
}

// serveOps listens on addr at once (so that a taken port fails before
// anything else) and serves in the background until Shutdown.
func serveOps(addr string, log *slog.Logger) (*opsServer, error) {
	s := &opsServer{}
	srv, err := metrics.Serve(addr, metrics.ServerConfig{Ready: s.ready, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	s.Server = srv
	log.Info("worker: serving /metrics, /healthz and /readyz", "addr", srv.Addr().String())
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
