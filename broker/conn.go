package broker

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/retry"
)

// DefaultURL is the broker URL used when none is given.
const DefaultURL = "amqp://guest:guest@localhost:5672/"

// ErrNotConnected is returned by Channel while the connection is down and
// being re-established. It is transient: Await waits for the next one.
var ErrNotConnected = errors.New("broker: not connected (reconnecting)")

// Config tunes Dial. The zero Config is ready to use.
type Config struct {
	// Name is shown as the connection name in RabbitMQ's tools.
	// "" means "warren <program> (pid N)".
	Name string
	// Heartbeat is the AMQP heartbeat interval: a dead peer is noticed
	// after about two of them. 0 means 5s.
	Heartbeat time.Duration
	// DialTimeout bounds each TCP+AMQP handshake. 0 means 10s.
	DialTimeout time.Duration
	// DialRetries is how many times Dial retries the first connection
	// (over all URLs) with backoff before it gives up. 0 means 3; negative
	// means no retry.
	DialRetries int
	// NoReconnect turns off reconnecting: after a loss the Conn stays down
	// and Err reports why.
	NoReconnect bool
	// ReconnectMin and ReconnectMax bound the exponential backoff, with
	// jitter, before each reconnect attempt (the first included). 0 means
	// 100ms and 5s: a client is back at most about 5s after its broker.
	ReconnectMin, ReconnectMax time.Duration
	// TLS is used for amqps:// URLs. nil means the system roots and
	// server-name checks on.
	TLS *tls.Config
	// Logger receives connection events. nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	c.Name = cmp.Or(c.Name, fmt.Sprintf("warren %s (pid %d)", progName(), os.Getpid()))
	c.Heartbeat = cmp.Or(c.Heartbeat, 5*time.Second)
	c.DialTimeout = cmp.Or(c.DialTimeout, 10*time.Second)
	c.DialRetries = cmp.Or(c.DialRetries, 3)
	if c.DialRetries < 0 {
		c.DialRetries = 0
	}
	c.ReconnectMin = cmp.Or(c.ReconnectMin, 100*time.Millisecond)
	c.ReconnectMax = cmp.Or(c.ReconnectMax, 5*time.Second)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return c
}

func progName() string {
	if len(os.Args) == 0 {
		return "client"
	}
	name := os.Args[0]
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return name
}

// endpoint is one broker URL of the list.
type endpoint struct {
	raw      string
	redacted string
	secrets  Secrets
}

// Conn is a connection to RabbitMQ that re-establishes itself. When the
// connection drops, Conn dials again with backoff and jitter, trying the
// URLs of a cluster in shuffled order, runs the hooks registered with
// OnReconnect (topology declarations), and then serves new channels.
// Channels of the lost connection are dead: their users notice through the
// channel's own close notification, call Await, and open new ones.
// It is safe for concurrent use.
type Conn struct {
	cfg       Config
	endpoints []endpoint
	acfg      amqp.Config

	mu      sync.Mutex
	cur     *amqp.Connection
	curURL  string
	up      chan struct{} // closed while connected
	lost    chan struct{} // closed when the current connection is lost
	err     error         // why the last connection was lost
	hooks   []func(context.Context, *Conn) error
	blocked string        // reason, while the broker blocks publishing
	unblock chan struct{} // closed when the block ends; nil while not blocked

	closing    chan struct{}
	closeOnce  sync.Once
	supervisor chan struct{}

	reconnects atomic.Uint64
	unreadable atomic.Uint64 // content headers the guard rewrote
	frameMax   atomic.Int64  // frame_max of the current (or last) connection
}

// Dial connects to the broker at rawURL ("amqp://user:pass@host:port/vhost"
// or "amqps://..."); a comma-separated list names the nodes of a cluster.
// The first connection is retried DialRetries times with backoff within
// ctx; after that the Conn reconnects by itself until Close. Errors never
// contain a password.
func Dial(ctx context.Context, rawURL string, cfg Config) (*Conn, error) {
	cfg = cfg.withDefaults()
	eps, err := parseURLs(rawURL)
	if err != nil {
		return nil, err
	}
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(cfg.Name)
	c := &Conn{
		cfg:       cfg,
		endpoints: eps,
		acfg: amqp.Config{
			Heartbeat:       cfg.Heartbeat,
			Locale:          "en_US",
			Properties:      props,
			Dial:            amqp.DefaultDial(cfg.DialTimeout),
			TLSClientConfig: cfg.TLS,
			FrameSize:       defaultFrameMax,
		},
		up:         make(chan struct{}),
		lost:       make(chan struct{}),
		closing:    make(chan struct{}),
		supervisor: make(chan struct{}),
	}
	r := retry.Infra(cfg.DialRetries, 200*time.Millisecond, func(err error) bool {
		return !errors.Is(err, ErrAccessRefused)
	})
	var conn *amqp.Connection
	var ep endpoint
	err = r.RunCtx(ctx, func(ctx context.Context) error {
		var derr error
		conn, ep, derr = c.dialAny(ctx)
		return derr
	})
	if err != nil {
		where := eps[0].redacted
		if len(eps) > 1 {
			where = fmt.Sprintf("any of %d brokers", len(eps))
		}
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = errors.Join(ctx.Err(), err)
		}
		return nil, fmt.Errorf("broker: connect to %s: %w", where, err)
	}
	c.install(conn, ep)
	go c.supervise(conn)
	return c, nil
}

func parseURLs(raw string) ([]endpoint, error) {
	var eps []endpoint
	for _, part := range strings.Split(raw, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		redacted := RedactURL(part)
		u, err := url.Parse(part)
		if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
			return nil, fmt.Errorf("broker: invalid URL %s: want amqp://user:password@host:port/vhost", redacted)
		}
		secrets := URLSecrets(part)
		if _, err := amqp.ParseURI(part); err != nil {
			return nil, fmt.Errorf("broker: invalid URL %s: %w", redacted, secrets.RedactError(err))
		}
		eps = append(eps, endpoint{raw: part, redacted: redacted, secrets: secrets})
	}
	if len(eps) == 0 {
		return nil, errors.New("broker: no broker URL given")
	}
	return eps, nil
}

// dialAny tries every endpoint once, in shuffled order.
func (c *Conn) dialAny(ctx context.Context) (*amqp.Connection, endpoint, error) {
	order := rand.Perm(len(c.endpoints))
	var errs []error
	for _, i := range order {
		if err := ctx.Err(); err != nil {
			return nil, endpoint{}, err
		}
		ep := c.endpoints[i]
		conn, err := c.dial(ep)
		if err == nil {
			return conn, ep, nil
		}
		err = classifyDial(ep.secrets.RedactError(unnest(err)))
		if len(c.endpoints) > 1 {
			err = fmt.Errorf("%s: %w", ep.redacted, err)
		}
		c.cfg.Logger.Debug("broker: dial failed", "url", ep.redacted, "err", err)
		errs = append(errs, err)
	}
	return nil, endpoint{}, errors.Join(errs...)
}

// dial opens one connection to ep. The socket is wrapped in a guard
// (guard.go) that reads the plain stream (inside TLS), so that no message the broker delivers can make
// the client close the connection: amqp091-go is handed the plain stream,
// and TLS, when the URL is amqps, is done here.
func (c *Conn) dial(ep endpoint) (*amqp.Connection, error) {
	acfg := c.acfg
	uri, err := amqp.ParseURI(ep.raw)
	if err != nil {
		return nil, err
	}
	raw := ep.raw
	var tcfg *tls.Config
	if uri.Scheme == "amqps" {
		if tcfg, err = tlsConfig(acfg.TLSClientConfig, uri); err != nil {
			return nil, err
		}
		// amqp091-go does TLS itself for amqps: it is given an amqp URL
		// with the port made explicit, and a TLS connection.
		u, err := url.Parse(ep.raw)
		if err != nil {
			return nil, err
		}
		u.Scheme = "amqp"
		u.Host = net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port))
		raw = u.String()
	}
	acfg.TLSClientConfig = nil
	tcp := acfg.Dial
	acfg.Dial = func(network, addr string) (net.Conn, error) {
		conn, err := tcp(network, addr)
		if err != nil {
			return nil, err
		}
		if tcfg != nil {
			tc := tls.Client(conn, tcfg)
			if err := tc.Handshake(); err != nil {
				conn.Close()
				return nil, err
			}
			conn = tc
		}
		return newGuardConn(conn, acfg.FrameSize, &c.unreadable), nil
	}
	conn, err := amqp.DialConfig(raw, acfg)
	if err != nil {
		return nil, err
	}
	c.frameMax.Store(int64(conn.Config.FrameSize))
	return conn, nil
}

// FrameMax returns the frame_max negotiated with the broker on the current
// (or last) connection: no frame Warren sends or reads may be larger.
func (c *Conn) FrameMax() int { return int(c.frameMax.Load()) }

// Unreadable counts the messages delivered to this Conn whose headers the
// client could not have read (see HeaderUnreadable in package warren):
// their headers were replaced by a note, and the connection lived on.
func (c *Conn) Unreadable() uint64 { return c.unreadable.Load() }

// install makes conn the current connection.
func (c *Conn) install(conn *amqp.Connection, ep endpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur = conn
	c.curURL = ep.redacted
	c.err = nil
	c.blocked = ""
	c.lost = make(chan struct{})
	close(c.up)
}

// supervise watches the current connection and replaces it when it is lost.
func (c *Conn) supervise(conn *amqp.Connection) {
	defer close(c.supervisor)
	for {
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
		var reason error
	watch:
		for {
			select {
			case <-c.closing:
				return
			case b, ok := <-blocked:
				if !ok {
					blocked = nil
					continue
				}
				c.setBlocked(b.Active, b.Reason)
				c.cfg.Logger.Warn("broker: publishing blocked by the broker", "active", b.Active, "reason", b.Reason)
			case e := <-closed:
				if e != nil {
					reason = unnest(e) // amqp091-go's frame reader nests a 501 in a 501
				} else {
					reason = errors.New("connection closed")
				}
				break watch
			}
		}
		c.setBlocked(false, "")
		c.mu.Lock()
		c.cur = nil
		c.err = reason
		c.up = make(chan struct{})
		close(c.lost)
		c.mu.Unlock()
		c.cfg.Logger.Warn("broker: connection lost", "url", c.curURL, "err", reason)
		if c.cfg.NoReconnect {
			return
		}
		next := c.reconnect()
		if next == nil {
			return
		}
		conn = next
	}
}

// reconnect dials until it succeeds and the hooks pass, or Close is
// called. Every attempt, the first too, comes after a wait drawn by
// retry.Policy (full jitter from ReconnectMin up to a ceiling that doubles
// to ReconnectMax), so a restarting broker is not hammered by every client
// at once.
func (c *Conn) reconnect() *amqp.Connection {
	backoff := retry.Policy{Base: c.cfg.ReconnectMin, Cap: c.cfg.ReconnectMax, Min: c.cfg.ReconnectMin}
	for attempt := 1; ; attempt++ {
		select {
		case <-c.closing:
			return nil
		case <-time.After(backoff.Backoff(attempt)):
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-c.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		conn, ep, err := c.dialAny(ctx)
		if err == nil {
			if herr := c.runHooks(ctx, conn, ep); herr != nil {
				_ = conn.Close()
				err = herr
			}
		}
		cancel()
		if err == nil {
			c.install(conn, ep)
			n := c.reconnects.Add(1)
			c.cfg.Logger.Info("broker: reconnected", "url", ep.redacted, "attempts", attempt, "reconnects", n)
			return conn
		}
		c.cfg.Logger.Warn("broker: reconnect failed", "attempt", attempt, "err", err)
	}
}

// runHooks runs the OnReconnect hooks against a connection that is not yet
// current, so nothing else uses it before the topology is back.
func (c *Conn) runHooks(ctx context.Context, conn *amqp.Connection, ep endpoint) error {
	c.mu.Lock()
	hooks := append([]func(context.Context, *Conn) error(nil), c.hooks...)
	c.mu.Unlock()
	if len(hooks) == 0 {
		return nil
	}
	staged := &Conn{cfg: c.cfg, endpoints: c.endpoints, cur: conn, curURL: ep.redacted,
		up: closedChan(), lost: make(chan struct{}), closing: c.closing}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, h := range hooks {
		if err := h(ctx, staged); err != nil {
			return fmt.Errorf("broker: after reconnect: %w", err)
		}
	}
	return nil
}

func closedChan() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// OnReconnect registers f to run on every new connection before it is
// used: re-declaring the topology, for instance. If f fails, the new
// connection is dropped and the Conn dials again.
func (c *Conn) OnReconnect(f func(ctx context.Context, c *Conn) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hooks = append(c.hooks, f)
}

// URL returns the URL of the current (or last) broker, password redacted.
func (c *Conn) URL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.curURL != "" {
		return c.curURL
	}
	return c.endpoints[0].redacted
}

// Channel opens a new AMQP channel on the current connection. While the
// connection is down it returns ErrNotConnected; after Close, ErrClosed.
func (c *Conn) Channel() (*amqp.Channel, error) {
	c.mu.Lock()
	conn := c.cur
	c.mu.Unlock()
	if conn == nil {
		if c.isClosing() {
			return nil, ErrClosed
		}
		return nil, ErrNotConnected
	}
	ch, err := conn.Channel()
	if err != nil {
		if errors.Is(err, amqp.ErrClosed) {
			if c.isClosing() {
				return nil, ErrClosed
			}
			return nil, fmt.Errorf("%w: %w", ErrNotConnected, err)
		}
		return nil, classify(err, OpChannel, "open channel")
	}
	return ch, nil
}

// Await blocks until the Conn is connected, ctx ends, or the Conn is
// closed (ErrClosed).
func (c *Conn) Await(ctx context.Context) error {
	c.mu.Lock()
	up := c.up
	c.mu.Unlock()
	select {
	case <-up:
		return nil
	default:
	}
	select {
	case <-up:
		return nil
	case <-c.closing:
		return ErrClosed
	case <-c.supervisor:
		return c.Err()
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the broker: %w", ErrNotConnected, ctx.Err())
	}
}

// Connected reports whether a connection is up now.
func (c *Conn) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil
}

// Lost returns a channel that is closed when the current connection is
// lost (or at once, while down).
func (c *Conn) Lost() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return closedChan()
	}
	return c.lost
}

// Blocked returns the broker's reason while it blocks publishing (a
// memory or disk alarm), or "".
func (c *Conn) Blocked() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blocked
}

func (c *Conn) setBlocked(active bool, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if active {
		reason = cmp.Or(reason, "blocked")
		c.blocked = reason
		if c.unblock == nil {
			c.unblock = make(chan struct{})
		}
		return
	}
	c.blocked = ""
	if c.unblock != nil {
		close(c.unblock)
		c.unblock = nil
	}
}

// AwaitUnblocked returns at once unless the broker blocks publishing (a
// memory or disk alarm); then it waits until the block ends or ctx ends.
// Publishing on a blocked connection would hang in the socket write.
func (c *Conn) AwaitUnblocked(ctx context.Context) error {
	c.mu.Lock()
	wait, reason := c.unblock, c.blocked
	c.mu.Unlock()
	if wait == nil {
		return nil
	}
	select {
	case <-wait:
		return nil
	case <-c.closing:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("%w: %s: %w", ErrBlocked, reason, ctx.Err())
	}
}

// Reconnects counts the connections re-established since Dial.
func (c *Conn) Reconnects() uint64 { return c.reconnects.Load() }

// Done is closed once the Conn is closed for good: by Close, or after a
// loss when reconnecting is off.
func (c *Conn) Done() <-chan struct{} { return c.supervisor }

// Err returns why the Conn is unusable for good, or nil while it is open or
// reconnecting, and after a clean Close.
func (c *Conn) Err() error {
	select {
	case <-c.supervisor:
	default:
		return nil
	}
	if c.isClosing() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrClosed, c.err)
}

func (c *Conn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// Close closes the connection and stops reconnecting. It waits at most
// DialTimeout for a dial in progress and 5s for the broker's close-ok.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closing)
		<-c.supervisor
		c.mu.Lock()
		conn := c.cur
		c.cur = nil
		c.mu.Unlock()
		if conn != nil {
			err = conn.CloseDeadline(time.Now().Add(5 * time.Second))
			if errors.Is(err, amqp.ErrClosed) {
				err = nil
			}
		}
	})
	return err
}
