package dashboard

import (
	"context"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/fleet"
)

// Queue is one Warren queue as the overview, the queue page and
// GET /api/v1/queues show it: admin's QueueInfo (what `warren queues`
// prints), with the queue's rates from the dashboard's samples.
type Queue struct {
	admin.QueueInfo
	// EnqueueRate estimates the tasks arriving each second over the last
	// sample interval: the change in ready and unacked tasks plus the
	// tasks the workers finished. -1 until two samples were taken.
	EnqueueRate float64
	// CompleteRate is the tasks the workers finished (succeeded, retried or
	// dead-lettered) each second over the last sample interval, from their
	// heartbeats. -1 until two samples were taken.
	CompleteRate float64
}

// MarshalJSON writes q as QueueInfo does, with the rates added (null while
// unknown).
func (q Queue) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(q.QueueInfo)
	if err != nil || len(b) < 2 || b[len(b)-1] != '}' {
		return b, err
	}
	// QueueInfo's object, with the two rates added before its brace.
	b = append(b[:len(b)-1], `,"enqueue_rate":`...)
	b = appendRate(b, q.EnqueueRate)
	b = append(b, `,"complete_rate":`...)
	b = appendRate(b, q.CompleteRate)
	return append(b, '}'), nil
}

// appendRate appends r, or null when it is unknown (negative).
func appendRate(b []byte, r float64) []byte {
	if r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, r, 'g', -1, 64)
}

// Point is one sample of one queue, as the charts draw it.
type Point struct {
	At           time.Time `json:"at"`
	Ready        int       `json:"ready"`
	Unacked      int       `json:"unacked"`
	DeadLetters  int       `json:"dead_letters"`
	EnqueueRate  float64   `json:"enqueue_rate"`
	CompleteRate float64   `json:"complete_rate"`
}

// MarshalJSON writes p with the counts and rates that are unknown (-1) as
// null, as Queue does.
func (p Point) MarshalJSON() ([]byte, error) {
	b := append([]byte(`{"at":`), p.At.Format(`"`+time.RFC3339Nano+`"`)...)
	b = append(b, `,"ready":`...)
	b = strconv.AppendInt(b, int64(p.Ready), 10)
	b = append(b, `,"unacked":`...)
	b = appendRate(b, float64(p.Unacked))
	b = append(b, `,"dead_letters":`...)
	b = strconv.AppendInt(b, int64(p.DeadLetters), 10)
	b = append(b, `,"enqueue_rate":`...)
	b = appendRate(b, p.EnqueueRate)
	b = append(b, `,"complete_rate":`...)
	b = appendRate(b, p.CompleteRate)
	return append(b, '}'), nil
}

// sampler samples the queues' counts every SampleInterval and keeps their
// history for the charts. Every dashboard instance samples on its own.
type sampler struct {
	s *Server

	mu      sync.RWMutex
	latest  []Queue
	at      time.Time
	err     error
	history map[string][]Point
	asked   map[string]time.Time // queues asked for by name, recently
	// done is the finished count of each worker and queue at the last
	// sample, so that a rate counts each worker's progress once.
	done map[string]map[string]uint64
}

func newSampler(s *Server) *sampler {
	return &sampler{s: s, history: map[string][]Point{}, asked: map[string]time.Time{}, done: map[string]map[string]uint64{}}
}

func (sm *sampler) run(ctx context.Context) {
	t := time.NewTicker(sm.s.cfg.SampleInterval)
	defer t.Stop()
	for {
		sm.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ask adds queue to the sampled ones for a while: a queue page or API call
// named it.
func (sm *sampler) ask(queue string) {
	sm.mu.Lock()
	sm.asked[queue] = time.Now()
	sm.mu.Unlock()
}

// names are the queues to sample: the configured ones, the ones workers
// consume, the ones asked for in the last History.
func (sm *sampler) names(workers []fleet.Worker, now time.Time) []string {
	set := map[string]bool{}
	for _, q := range sm.s.cfg.Queues {
		set[q] = true
	}
	for _, w := range workers {
		for _, q := range w.Queues {
			set[q] = true
		}
	}
	sm.mu.Lock()
	for q, at := range sm.asked {
		if now.Sub(at) > sm.s.cfg.History {
			delete(sm.asked, q)
			continue
		}
		set[q] = true
	}
	sm.mu.Unlock()
	return slices.Sorted(maps.Keys(set))
}

// sample takes one sample of every queue.
func (sm *sampler) sample(ctx context.Context) {
	start := time.Now()
	workers := sm.s.roster.Workers()
	names := sm.names(workers, start)
	ctx, cancel := context.WithTimeout(ctx, max(sm.s.cfg.SampleInterval, 5*time.Second))
	defer cancel()
	infos, err := sm.s.adm.Queues(ctx, names)
	sm.s.stats.sampled(time.Since(start), err)
	if err != nil {
		sm.mu.Lock()
		sm.err = err
		sm.mu.Unlock()
		sm.s.log.Warn("dashboard: sampling the queues failed", "err", err)
		return
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	dt := start.Sub(sm.at).Seconds()
	finished := sm.finished(workers)
	prev := map[string]Queue{}
	for _, q := range sm.latest {
		prev[q.Name] = q
	}
	out := make([]Queue, len(infos))
	for i, info := range infos {
		q := unsampled(info, workers)
		if p, ok := prev[q.Name]; ok && dt > 0 {
			q.CompleteRate = float64(finished[q.Name]) / dt
			arrived := float64(q.Ready-p.Ready) + float64(max(q.Unacked, 0)-max(p.Unacked, 0)) + float64(finished[q.Name])
			q.EnqueueRate = max(0, arrived) / dt
		}
		out[i] = q
		h := append(sm.history[q.Name], Point{At: start, Ready: q.Ready, Unacked: q.Unacked,
			DeadLetters: q.DeadLetters, EnqueueRate: q.EnqueueRate, CompleteRate: q.CompleteRate})
		for len(h) > 0 && start.Sub(h[0].At) > sm.s.cfg.History {
			h = h[1:]
		}
		sm.history[q.Name] = h
	}
	sm.latest, sm.at, sm.err = out, start, nil
}

// finished returns the tasks each queue's workers finished since the last
// sample, and remembers their counts. Called with mu held.
func (sm *sampler) finished(workers []fleet.Worker) map[string]uint64 {
	out := map[string]uint64{}
	seen := map[string]bool{}
	for _, w := range workers {
		seen[w.ID] = true
		last, known := sm.done[w.ID]
		if !known {
			last = map[string]uint64{}
			sm.done[w.ID] = last
		}
		for q, c := range w.Counts {
			n := c.Succeeded + c.Retried + c.DeadLettered
			// A worker first heard from that started before the last
			// sample brings counts from before it: they are not this
			// interval's.
			if !known && w.Started.Before(sm.at) {
				last[q] = n
				continue
			}
			if n >= last[q] {
				out[q] += n - last[q]
			}
			last[q] = n
		}
	}
	for id := range sm.done {
		if !seen[id] {
			delete(sm.done, id)
		}
	}
	return out
}

// unsampled is info as the dashboard shows a queue before its rates are
// known: unacked filled in from the workers' heartbeats, rates unknown.
func unsampled(info admin.QueueInfo, workers []fleet.Worker) Queue {
	info.Unacked = unacked(info, workers)
	return Queue{QueueInfo: info, EnqueueRate: -1, CompleteRate: -1}
}

// unacked fills in what AMQP cannot tell: a queue with no consumers has
// nothing unacked; one consumed only by Warren workers has what their
// heartbeats say.
func unacked(info admin.QueueInfo, workers []fleet.Worker) int {
	if info.Unacked >= 0 || !info.Exists {
		return info.Unacked
	}
	if info.Consumers == 0 {
		return 0
	}
	n, heard := 0, 0
	for _, w := range workers {
		if w.Gone {
			continue
		}
		if c, ok := w.Counts[info.Name]; ok {
			n += c.Unacked
			heard++
		}
	}
	if heard == 0 || heard < info.Consumers {
		return -1 // some consumers are not Warren workers we hear
	}
	return n
}

// snapshot returns the last sample of every queue, when it was taken, and
// the error of the last try if it failed.
func (sm *sampler) snapshot() ([]Queue, time.Time, error) {
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	return slices.Clone(sm.latest), sm.at, sm.err
}

// setPaused records a pause or resume made through this instance in the
// last sample, so that the overview shows it before the next one.
func (sm *sampler) setPaused(queue string, paused bool) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	for i := range sm.latest {
		if sm.latest[i].Name == queue {
			sm.latest[i].Paused = paused
		}
	}
}

// points returns queue's history.
func (sm *sampler) points(queue string) []Point {
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	return slices.Clone(sm.history[queue])
}
