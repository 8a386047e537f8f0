package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// Sentinel errors a caller can branch on with errors.Is.
var (
	// ErrNotFound: no dead letter has the requested ID.
	ErrNotFound = errors.New("admin: dead letter not found")
	// ErrNoSelector: a bulk operation (Replay, Purge) was given an empty
	// Filter without All. Selecting everything must be explicit.
	ErrNoSelector = errors.New("admin: no dead letters selected: give task IDs or types, or set All to select every dead letter")
	// ErrBusy: another admin operation (replay, purge, list, get) holds the
	// dead-letter queue's lock. It ends when that operation ends, or when
	// the process running it dies.
	ErrBusy = errors.New("admin: dead-letter queue busy")
	// ErrInvalidTarget: a replay or import names as its target a queue it
	// cannot send to (the dead-letter queue being replayed, its journal).
	ErrInvalidTarget = errors.New("admin: invalid target queue")
)

// Config tunes an Inspector. The zero Config is ready to use.
type Config struct {
	// NoRabbitmqctl keeps Queues from asking rabbitmqctl for the counts
	// AMQP cannot tell (QueueInfo.Unacked, QueueInfo.DelayedHeld stay -1):
	// for a caller that samples often, like the dashboard. false asks it
	// when the broker is the local node.
	NoRabbitmqctl bool
	// Logger receives the admin's events. nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Inspector inspects and repairs Warren queues: it lists, shows, replays
// and purges dead letters, and reports queue depths. It is safe for
// concurrent use; operations on the same dead-letter queue exclude one
// another (ErrBusy).
type Inspector struct {
	conn *broker.Conn
	log  *slog.Logger
	// counts reads rabbitmqctl's message counts per queue of vhost; nil
	// means unknown. Replaced in tests.
	counts func(ctx context.Context, vhost string) (map[string]queueCounts, error)
}

// Admin is Inspector.
//
// Deprecated: use Inspector; admin.Admin stutters.
type Admin = Inspector

// New returns an Inspector working over conn. It panics if conn is nil.
func New(conn *broker.Conn, cfg Config) *Inspector {
	if conn == nil {
		panic("admin: New: nil connection")
	}
	cfg = cfg.withDefaults()
	a := &Inspector{conn: conn, log: cfg.Logger, counts: rabbitmqctlCounts}
	if cfg.NoRabbitmqctl {
		a.counts = nil
	}
	return a
}

// Filter selects dead letters. A dead letter matches when it matches every
// selector given: its task ID is one of IDs (if any), its type is one of
// Types (if any), its error (DeadLetter.Error) matches ErrorRegexp (if
// set), and it failed (DeadLetter.FailedAt) at or after Since and before
// Until (if set; a dead letter with no failure time matches neither).
// Limit then caps the matches, taken in queue order.
//
// List and Get treat an empty Filter as "everything". Replay and Purge
// refuse it with ErrNoSelector unless All is set.
type Filter struct {
	IDs   []string // match these task IDs (AMQP message_id)
	Types []string // match these task types (AMQP type)
	All   bool     // match everything: required for bulk operations when no other selector is set
	Limit int      // at most this many matches; 0 means no limit

	ErrorRegexp  *regexp.Regexp // match dead letters whose error text matches; nil matches all
	Since, Until time.Time      // match dead letters that failed in [Since, Until); zero means unbounded
	Unreadable   bool           // match only dead letters whose headers this client cannot read (DeadLetter.Unreadable)
}

func (f Filter) validate() error {
	var errs []error
	if f.Limit < 0 {
		errs = append(errs, fmt.Errorf("admin: Filter.Limit cannot be negative (got %d)", f.Limit))
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		errs = append(errs, fmt.Errorf("admin: Filter.Since (%s) must be before Until (%s)", f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339)))
	}
	return errors.Join(errs...)
}

// selects reports whether f names something to act on in bulk.
func (f Filter) selects() bool {
	return f.All || len(f.IDs) > 0 || len(f.Types) > 0 || f.ErrorRegexp != nil || !f.Since.IsZero() || !f.Until.IsZero() || f.Unreadable
}

// matcher is a compiled Filter.
type matcher struct {
	ids, types   map[string]bool
	errRE        *regexp.Regexp
	since, until time.Time
	limit        int
	unreadable   bool
}

func newMatcher(f Filter) (*matcher, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	m := &matcher{limit: f.Limit, errRE: f.ErrorRegexp, since: f.Since, until: f.Until, unreadable: f.Unreadable}
	if len(f.IDs) > 0 {
		m.ids = make(map[string]bool, len(f.IDs))
		for _, id := range f.IDs {
			m.ids[id] = true
		}
	}
	if len(f.Types) > 0 {
		m.types = make(map[string]bool, len(f.Types))
		for _, t := range f.Types {
			m.types[t] = true
		}
	}
	return m, nil
}

func (m *matcher) match(d *amqp.Delivery) bool {
	if m.ids != nil && !m.ids[d.MessageId] {
		return false
	}
	if m.types != nil && !m.types[d.Type] {
		return false
	}
	if m.unreadable && !unreadable(d) {
		return false
	}
	if m.errRE != nil && !m.errRE.MatchString(deadError(d.Headers)) {
		return false
	}
	if !m.since.IsZero() || !m.until.IsZero() {
		at := failedAt(d.Headers)
		if at.IsZero() || (!m.since.IsZero() && at.Before(m.since)) || (!m.until.IsZero() && !at.Before(m.until)) {
			return false
		}
	}
	return true
}

// full reports whether n matches reach the limit.
func (m *matcher) full(n int) bool { return m.limit > 0 && n >= m.limit }

// checkQueue validates a Warren queue name given to an operation.
func checkQueue(queue string) error {
	if err := warren.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}
