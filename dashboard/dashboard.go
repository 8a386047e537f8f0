package dashboard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/fleet"
	"github.com/warrenq/warren/internal/check"
	"github.com/warrenq/warren/producer"
)

// Defaults of Config.
const (
	DefaultSampleInterval = 5 * time.Second
	DefaultHistory        = time.Hour
	DefaultMaxPayload     = 1 << 20
	DefaultMaxBatch       = 1000
	DefaultMaxBody        = 32 << 20
)

// Config tunes a Server. The zero value serves every page and action with
// no authentication (which only a loopback listener may do: see Listen).
type Config struct {
	// Queues are always shown; queues the workers' heartbeats name and
	// queues that are paused join them.
	Queues []string
	// ReadOnly hides every mutating action and refuses its request with
	// 403 read_only.
	ReadOnly bool
	// Auth checks each request's credentials. nil means none.
	Auth Authenticator
	// SampleInterval is how often the queues' counts are sampled for the
	// overview and the charts. 0 means 5s.
	SampleInterval time.Duration
	// History is how much of the samples the charts keep. 0 means 1h.
	History time.Duration
	// MaxPayload bounds one enqueued task's payload in bytes; larger ones
	// answer 413. 0 means 1 MiB.
	MaxPayload int
	// MaxBatch bounds the tasks of one batch enqueue; more answer 413.
	// 0 means 1000.
	MaxBatch int
	// MaxBody bounds a request body in bytes (an import upload, a batch).
	// 0 means 32 MiB.
	MaxBody int64
	// Deduper remembers the caller task IDs the enqueue endpoints have
	// enqueued, so that a retried request enqueues once. nil means a
	// memory store of this instance (100,000 IDs for 24h): behind a load
	// balancer, give every instance one shared store, or route retries of
	// an ID to one instance.
	Deduper Deduper
	// KeepGone is how long workers that went away stay listed. 0 means 1h.
	KeepGone time.Duration
	// Version is shown in the page footer and /api/v1/overview.
	// "" means "dev".
	Version string
	// Logger receives the server's events. nil means slog.Default().
	Logger *slog.Logger
	// Audit receives one line per mutating action: who, what, which queue,
	// how many. nil means Logger.
	Audit *slog.Logger
}

func (c Config) withDefaults() Config {
	c.SampleInterval = cmp.Or(c.SampleInterval, DefaultSampleInterval)
	c.History = cmp.Or(c.History, DefaultHistory)
	c.MaxPayload = cmp.Or(c.MaxPayload, DefaultMaxPayload)
	c.MaxBatch = cmp.Or(c.MaxBatch, DefaultMaxBatch)
	c.MaxBody = cmp.Or(c.MaxBody, DefaultMaxBody)
	c.KeepGone = cmp.Or(c.KeepGone, time.Hour)
	c.Version = cmp.Or(c.Version, "dev")
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Audit == nil {
		c.Audit = c.Logger
	}
	return c
}

func (c Config) validate() error {
	return errors.Join(
		check.NotNegative("SampleInterval", c.SampleInterval),
		check.NotNegative("History", c.History),
		check.NotNegative("MaxPayload", c.MaxPayload),
		check.NotNegative("MaxBatch", c.MaxBatch),
		check.NotNegative("MaxBody", c.MaxBody),
		check.NotNegative("KeepGone", c.KeepGone),
	)
}

// Server serves the dashboard's pages and its JSON API on one broker
// connection. It keeps no state that another instance needs: pauses live on
// the broker, workers are heard from their heartbeats, samples are taken by
// each instance. Create it with New, start its background work with Run,
// and serve it as an http.Handler.
type Server struct {
	cfg      Config
	conn     *broker.Conn
	adm      *admin.Inspector
	producer *producer.Producer
	roster   *fleet.Roster
	samples  *sampler
	mux      *http.ServeMux
	handler  http.Handler
	log      *slog.Logger
	started  time.Time
	stats    *serverMetrics
	api      *api
	signKey  []byte
}

// New returns a Server on conn. It opens a producer for the enqueue
// endpoints at once, so that a broker that refuses it fails here.
func New(ctx context.Context, conn *broker.Conn, cfg Config) (*Server, error) {
	if conn == nil {
		return nil, errors.New("dashboard: nil connection")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	cfg = cfg.withDefaults()
	prod, err := producer.New(ctx, conn, producer.Config{Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		conn:     conn,
		adm:      admin.New(conn, admin.Config{Logger: cfg.Logger, NoRabbitmqctl: true}),
		producer: prod,
		roster:   fleet.NewRoster(conn, fleet.RosterConfig{Keep: cfg.KeepGone, Logger: cfg.Logger}),
		log:      cfg.Logger,
		started:  time.Now(),
		mux:      http.NewServeMux(),
		stats:    newServerMetrics(),
	}
	s.signKey = newRandomKey()
	if cfg.Auth != nil {
		s.signKey = cfg.Auth.Key()
	}
	s.samples = newSampler(s)
	s.routes()
	s.handler = s.stats.instrument(s.mux, s.secure(s.mux))
	return s, nil
}

// Run samples the queues and listens to the workers' heartbeats until ctx
// ends. The pages and the API work without it, with what they can ask the
// broker on each request.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	var rosterErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		rosterErr = s.roster.Run(ctx)
	}()
	s.samples.run(ctx)
	wg.Wait()
	return rosterErr
}

// Close ends the dead-letter indexing passes under way, waits for the
// producer's pending confirms (until ctx ends) and releases it. The
// connection is the caller's.
func (s *Server) Close(ctx context.Context) error {
	s.api.dead.close()
	return s.producer.Close(ctx)
}

// ServeHTTP serves the pages under /, the API under /api/v1, /metrics and
// /healthz.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// routes registers every route: the server's own, the API's (api.go) and
// the pages' (pages.go).
func (s *Server) routes() {
	s.ownRoutes()
	s.apiRoutes()
	s.pageRoutes()
}

// ownRoutes registers what is neither API nor page: health, metrics, and
// logging in and out.
func (s *Server) ownRoutes() {
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.Handle("GET /metrics", s.stats.handler(s))
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.HandleFunc("POST /logout", s.logout)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if !s.conn.Connected() {
		writeError(w, r, http.StatusServiceUnavailable, CodeBrokerUnavailable, "not connected to the broker")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}
