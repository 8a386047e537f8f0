package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/retry"
)

// DefaultURL is the broker URL used when none is given.
const DefaultURL = "amqp://guest:guest@localhost:5672/"

// Config tunes Dial. The zero Config is ready to use.
type Config struct {
	// Name is shown as the connection name in RabbitMQ's tools.
	// "" means "warren <program> (pid N)".
	Name string
	// Heartbeat is the AMQP heartbeat interval. 0 means 10s.
	Heartbeat time.Duration
	// DialTimeout bounds each TCP+AMQP handshake. 0 means 10s.
	DialTimeout time.Duration
	// DialRetries is how many times a failed dial is retried with backoff
	// before Dial gives up. 0 means 3; negative means no retry.
	DialRetries int
	// Logger receives connection events. nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = fmt.Sprintf("warren %s (pid %d)", progName(), os.Getpid())
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.DialRetries == 0 {
		c.DialRetries = 3
	}
	if c.DialRetries < 0 {
		c.DialRetries = 0
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
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

// Conn is a connection to RabbitMQ. It is safe for concurrent use.
type Conn struct {
	amqp     *amqp.Connection
	url      string // redacted
	secret   string
	log      *slog.Logger
	closed   chan struct{}
	closeErr error
}

// Dial connects to the broker at rawURL ("amqp://user:pass@host:port/vhost"
// or "amqps://..."). Transient failures are retried DialRetries times with
// backoff; ctx bounds the whole attempt. Errors never contain the password.
func Dial(ctx context.Context, rawURL string, cfg Config) (*Conn, error) {
	cfg = cfg.withDefaults()
	redacted := RedactURL(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
		return nil, fmt.Errorf("broker: invalid URL %s: want amqp://user:password@host:port/vhost", redacted)
	}
	secret, _ := u.User.Password()
	if _, err := amqp.ParseURI(rawURL); err != nil {
		return nil, fmt.Errorf("broker: invalid URL %s: %w", redacted, scrub(err, secret))
	}
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(cfg.Name)
	acfg := amqp.Config{
		Heartbeat:  cfg.Heartbeat,
		Locale:     "en_US",
		Properties: props,
		Dial:       amqp.DefaultDial(cfg.DialTimeout),
	}
	var conn *amqp.Connection
	r := retry.Infra(cfg.DialRetries, 200*time.Millisecond, func(err error) bool {
		return !errors.Is(err, ErrAccessRefused)
	})
	err = r.RunCtx(ctx, func(ctx context.Context) error {
		c, err := amqp.DialConfig(rawURL, acfg)
		if err != nil {
			if errors.Is(err, amqp.ErrSASL) || errors.Is(err, amqp.ErrCredentials) {
				return fmt.Errorf("%w: %w", ErrAccessRefused, err)
			}
			var ae *amqp.Error
			if errors.As(err, &ae) && ae.Code == amqp.AccessRefused {
				return fmt.Errorf("%w: %w", ErrAccessRefused, err)
			}
			cfg.Logger.Debug("broker: dial failed", "url", redacted, "err", scrub(err, secret))
			return err
		}
		conn = c
		return nil
	})
	if err != nil {
		if ctx.Err() != nil && conn == nil {
			return nil, fmt.Errorf("broker: connect to %s: %w", redacted, errors.Join(ctx.Err(), scrub(err, secret)))
		}
		return nil, fmt.Errorf("broker: connect to %s: %w", redacted, scrub(err, secret))
	}
	c := &Conn{amqp: conn, url: redacted, secret: secret, log: cfg.Logger, closed: make(chan struct{})}
	notify := conn.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		e, ok := <-notify
		if ok && e != nil {
			c.closeErr = e
			c.log.Warn("broker: connection lost", "url", redacted, "err", e)
		}
		close(c.closed)
	}()
	return c, nil
}

// URL returns the broker URL with the password redacted.
func (c *Conn) URL() string { return c.url }

// Channel opens a new AMQP channel.
func (c *Conn) Channel() (*amqp.Channel, error) {
	ch, err := c.amqp.Channel()
	if err != nil {
		if errors.Is(err, amqp.ErrClosed) {
			return nil, fmt.Errorf("%w: open channel: %w", ErrClosed, err)
		}
		return nil, classify(err, "open channel")
	}
	return ch, nil
}

// Done is closed when the connection is closed, by Close or by the broker.
func (c *Conn) Done() <-chan struct{} { return c.closed }

// Err returns why the connection closed: nil while open or after Close.
func (c *Conn) Err() error {
	select {
	case <-c.closed:
		if c.closeErr == nil {
			return nil
		}
		return fmt.Errorf("%w: %w", ErrClosed, c.closeErr)
	default:
		return nil
	}
}

// Close closes the connection; it does not wait longer than 5s for the broker.
func (c *Conn) Close() error {
	if c.amqp.IsClosed() {
		return nil
	}
	err := c.amqp.CloseDeadline(time.Now().Add(5 * time.Second))
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}
