package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/retry"
)

// Defaults of a Roster.
const (
	// DefaultKeep is how long a pool that went away stays listed.
	DefaultKeep = time.Hour
	// DefaultInterval is the beat interval assumed of a beat that states
	// none.
	DefaultInterval = 2 * time.Second
	// MaxBeatSize bounds one heartbeat's body: a larger one is ignored.
	MaxBeatSize = 256 << 10
	// goneAfter is how many intervals a pool may stay silent before it is
	// gone.
	goneAfter = 3
	// subscriptionBacklog bounds the roster's queue: beats beyond it are
	// dropped, oldest first, while the roster cannot keep up.
	subscriptionBacklog = 10000
)

// Roster keeps the pools heard from on HeartbeatExchange. Run it to
// listen. It is safe for concurrent use.
type Roster struct {
	conn *broker.Conn
	keep time.Duration
	log  *slog.Logger
	now  func() time.Time // time.Now but in tests

	mu    sync.Mutex
	pools map[string]*Worker
}

// RosterConfig tunes a Roster.
type RosterConfig struct {
	// Keep is how long a pool that went away stays listed. 0 means 1h.
	Keep time.Duration
	// Logger receives the roster's events. nil means slog.Default().
	Logger *slog.Logger
}

// NewRoster returns a roster for conn. Run it to listen.
func NewRoster(conn *broker.Conn, cfg RosterConfig) *Roster {
	keep := cfg.Keep
	if keep <= 0 {
		keep = DefaultKeep
	}
	return &Roster{conn: conn, keep: keep, log: cmp.Or(cfg.Logger, slog.Default()), now: time.Now, pools: map[string]*Worker{}}
}

// listenBackoff spaces the roster's tries to listen again while it cannot.
var listenBackoff = retry.Policy{Base: 100 * time.Millisecond, Cap: 5 * time.Second, Min: 100 * time.Millisecond}

// Run listens until ctx ends, binding again after reconnects. It declares
// HeartbeatExchange (a durable fanout exchange) and listens on a private
// queue bound to it: server-named, exclusive, auto-delete. It needs the
// configure permission on amq.gen-.* (and on warren.heartbeats unless a
// worker declared it), write on amq.gen-.* and read on warren.heartbeats
// and amq.gen-.*. It returns nil once ctx ends, or an error when the
// connection is closed for good; anything else it logs and tries again.
func (r *Roster) Run(ctx context.Context) error {
	warned := false
	for attempt := 1; ; attempt++ {
		if err := r.conn.Await(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		sub, err := r.subscribe(ctx)
		if err == nil {
			if warned {
				r.log.Info("fleet: listening to worker heartbeats again")
			}
			warned, attempt = false, 0
			r.listen(ctx, sub)
			_ = sub.Close()
			if ctx.Err() != nil {
				return nil
			}
			r.log.Debug("fleet: heartbeat subscription lost; subscribing again", "err", sub.Err())
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, broker.ErrClosed) {
			return err
		}
		if !warned || !broker.Transient(err) {
			r.log.Warn("fleet: cannot listen to worker heartbeats; trying again", "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(listenBackoff.Backoff(max(attempt, 1))):
		}
	}
}

// subscribe declares the exchange (a refusal is no error: it may exist)
// and subscribes to it.
func (r *Roster) subscribe(ctx context.Context) (*broker.Subscription, error) {
	if err := broker.DeclareFanout(ctx, r.conn, HeartbeatExchange); err != nil {
		if !errors.Is(err, broker.ErrAccessRefused) {
			return nil, err
		}
		r.log.Debug("fleet: cannot declare the heartbeat exchange; binding to it anyway", "err", err)
	}
	return broker.Subscribe(ctx, r.conn, HeartbeatExchange, subscriptionBacklog)
}

// listen reads beats until the subscription ends or ctx does.
func (r *Roster) listen(ctx context.Context, sub *broker.Subscription) {
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-sub.Deliveries():
			if !ok {
				return
			}
			r.receive(d.Body)
		}
	}
}

// receive records one heartbeat body, ignoring one that is too large or
// not a beat.
func (r *Roster) receive(body []byte) {
	if len(body) > MaxBeatSize {
		r.log.Debug("fleet: heartbeat ignored: too large", "bytes", len(body))
		return
	}
	var b Beat
	if err := json.Unmarshal(body, &b); err != nil {
		r.log.Debug("fleet: heartbeat ignored: malformed", "err", err)
		return
	}
	if b.ID == "" {
		r.log.Debug("fleet: heartbeat ignored: no id")
		return
	}
	r.observe(b, r.now())
}

// observe records beat b, heard at now.
func (r *Roster) observe(b Beat, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prune(now)
	r.pools[b.ID] = &Worker{Beat: b, LastSeen: now}
}

// interval is b's interval, or the default for a beat that states none.
func interval(b *Beat) time.Duration {
	if b.Interval <= 0 {
		return DefaultInterval
	}
	return b.Interval
}

// goneSince returns when w went away, and false while it is live at now.
func goneSince(w *Worker, now time.Time) (time.Time, bool) {
	if w.Stopping {
		return w.LastSeen, true
	}
	deadline := w.LastSeen.Add(goneAfter * interval(&w.Beat))
	if now.After(deadline) {
		return deadline, true
	}
	return time.Time{}, false
}

// prune drops the pools gone for longer than keep. r.mu is held.
func (r *Roster) prune(now time.Time) {
	for id, w := range r.pools {
		if since, gone := goneSince(w, now); gone && now.Sub(since) > r.keep {
			delete(r.pools, id)
		}
	}
}

// Workers returns every pool known: live ones first, then by host, pid
// and id. A pool is gone once its last beat said it stops, or when it
// was not heard from for three of its intervals; it stays listed for
// RosterConfig.Keep after that.
func (r *Roster) Workers() []Worker {
	now := r.now()
	r.mu.Lock()
	r.prune(now)
	out := make([]Worker, 0, len(r.pools))
	for _, w := range r.pools {
		c := *w
		c.Queues, c.Running, c.Paused, c.Counts = slices.Clone(c.Queues), slices.Clone(c.Running), slices.Clone(c.Paused), maps.Clone(c.Counts)
		_, c.Gone = goneSince(w, now)
		out = append(out, c)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Worker) int {
		if a.Gone != b.Gone {
			if a.Gone {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.PID, b.PID), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Queues returns the queues the live pools consume, sorted, each once.
func (r *Roster) Queues() []string {
	var qs []string
	for _, w := range r.Workers() {
		if !w.Gone {
			qs = append(qs, w.Queues...)
		}
	}
	slices.Sort(qs)
	return slices.Compact(qs)
}
