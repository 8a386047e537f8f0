package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/fleet"
)

// beats is what a pool's heartbeats tell of it beyond its Config: who it
// is, its counters per queue and the tasks it runs.
type beats struct {
	id        string
	startedAt time.Time
	counts    map[string]*queueCounters // by queue; fixed at New

	runMu  sync.Mutex
	runSeq uint64
	runs   map[uint64]fleet.Running
}

// queueCounters are one queue's counters since the pool started.
type queueCounters struct {
	succeeded, retried, dead atomic.Uint64
}

var poolSeq atomic.Uint64

func (b *beats) init(cfg Config) {
	b.id = fmt.Sprintf("%s/%d/%d", cfg.Hostname, os.Getpid(), poolSeq.Add(1))
	b.startedAt = time.Now()
	b.counts = make(map[string]*queueCounters, len(cfg.Queues))
	for _, q := range cfg.Queues {
		b.counts[q] = &queueCounters{}
	}
	b.runs = map[uint64]fleet.Running{}
}

// ID returns the pool's ID in its heartbeats (fleet.Beat.ID):
// "host/pid/n", unique per pool.
func (p *Pool) ID() string { return p.id }

// queueCounts returns queue's counters; a queue not consumed gets
// counters of its own that nothing reads.
func (b *beats) queueCounts(queue string) *queueCounters {
	if c, ok := b.counts[queue]; ok {
		return c
	}
	return &queueCounters{}
}

// runStart records that t started running at; the func returned
// records that it ended.
func (b *beats) runStart(t *warren.Task, at time.Time) (end func()) {
	b.runMu.Lock()
	b.runSeq++
	n := b.runSeq
	b.runs[n] = fleet.Running{Queue: t.Queue, Type: t.Type, ID: t.ID, Started: at}
	b.runMu.Unlock()
	return func() {
		b.runMu.Lock()
		delete(b.runs, n)
		b.runMu.Unlock()
	}
}

// running returns the tasks running now, the longest-running first, at
// most fleet.MaxRunning, and how many run.
func (b *beats) runningNow() ([]fleet.Running, int) {
	b.runMu.Lock()
	rs := make([]fleet.Running, 0, len(b.runs))
	for _, r := range b.runs {
		rs = append(rs, r)
	}
	b.runMu.Unlock()
	slices.SortFunc(rs, func(x, y fleet.Running) int {
		return cmp.Or(x.Started.Compare(y.Started), cmp.Compare(x.ID, y.ID))
	})
	return rs[:min(len(rs), fleet.MaxRunning)], len(rs)
}

// beat is the pool's heartbeat now, consuming cs.
func (p *Pool) beat(now time.Time, cs []*consumer) fleet.Beat {
	running, total := p.runningNow()
	b := fleet.Beat{
		ID:           p.id,
		Host:         p.cfg.Hostname,
		PID:          os.Getpid(),
		Version:      p.cfg.Version,
		Queues:       p.cfg.Queues,
		Concurrency:  p.cfg.Concurrency,
		Started:      p.startedAt,
		Sent:         now,
		Interval:     p.cfg.HeartbeatInterval,
		Stopping:     p.stopping.Load(),
		Running:      running,
		RunningTotal: total,
		Counts:       make(map[string]fleet.QueueCounts, len(cs)),
	}
	for _, c := range cs {
		qc := p.queueCounts(c.queue)
		b.Counts[c.queue] = fleet.QueueCounts{
			Succeeded:    qc.succeeded.Load(),
			Retried:      qc.retried.Load(),
			DeadLettered: qc.dead.Load(),
			Unacked:      c.unacked(),
		}
		if c.paused.Load() {
			b.Paused = append(b.Paused, c.queue)
		}
	}
	return b
}

// heart publishes a pool's heartbeats.
type heart struct {
	p        *Pool
	cs       []*consumer
	pub      *broker.Broadcaster
	declared bool // the exchange is declared
	off      bool // refused: no more heartbeats
}

// startBeats publishes the pool's heartbeat at once and every
// HeartbeatInterval (unless negative). The func returned stops them; final
// publishes a last beat, which says the pool stops.
func (p *Pool) startBeats(cs []*consumer) (stop func(final bool)) {
	if p.cfg.HeartbeatInterval < 0 {
		return func(bool) {}
	}
	p.startedAt = time.Now()
	h := &heart{p: p, cs: cs, pub: broker.NewBroadcaster(p.conn)}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(p.cfg.HeartbeatInterval)
		defer t.Stop()
		h.send()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				h.send()
			}
		}
	}()
	return func(final bool) {
		close(quit)
		<-done
		if final {
			p.stopping.Store(true)
			h.send()
		}
		_ = h.pub.Close()
	}
}

// send publishes one heartbeat, declaring the exchange first if need be.
// A refusal turns heartbeats off, with one log line; other failures are
// left for the next beat.
func (h *heart) send() {
	if h.off {
		return
	}
	p := h.p
	ctx, cancel := context.WithTimeout(context.Background(), max(p.cfg.HeartbeatInterval, time.Second))
	defer cancel()
	refused := func(err error) bool {
		if !errors.Is(err, broker.ErrAccessRefused) {
			return false
		}
		h.off = true
		p.log.Warn("worker: heartbeats off: the broker refused them; dashboards will not list this worker", "exchange", fleet.HeartbeatExchange, "err", err)
		return true
	}
	if !h.declared {
		if err := broker.DeclareFanout(ctx, p.conn, fleet.HeartbeatExchange); err != nil {
			if !refused(err) {
				p.log.Debug("worker: heartbeat exchange not declared", "err", err)
			}
			return
		}
		h.declared = true
	}
	now := time.Now()
	body, err := json.Marshal(p.beat(now, h.cs))
	if err != nil {
		p.log.Debug("worker: heartbeat not encoded", "err", err)
		return
	}
	err = h.pub.Publish(ctx, fleet.HeartbeatExchange, "", amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Transient,
		Timestamp:    now,
		// A beat older than three intervals says nothing any more.
		Expiration: strconv.FormatInt(max(3*p.cfg.HeartbeatInterval.Milliseconds(), 1), 10),
		Body:       body,
	})
	switch {
	case err == nil, refused(err):
	case errors.Is(err, broker.ErrQueueNotFound): // the exchange was deleted
		h.declared = false
		p.log.Debug("worker: heartbeat exchange gone; declaring it again", "err", err)
	default:
		p.log.Debug("worker: heartbeat not sent", "err", err)
	}
}
