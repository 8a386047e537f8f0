package dashboard

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/fleet"
)

// overviewResponse is GET /api/v1/overview.
type overviewResponse struct {
	Version   string          `json:"version"`
	SampledAt *time.Time      `json:"sampled_at"`
	SampleErr string          `json:"sample_error,omitempty"`
	Queues    json.RawMessage `json:"queues"` // []Queue
	Broker    brokerInfo      `json:"broker"`
	Workers   workerCount     `json:"workers"`
}

type brokerInfo struct {
	Product   string `json:"product"`
	Version   string `json:"version"`
	Platform  string `json:"platform"`
	Connected bool   `json:"connected"`
	Blocked   string `json:"blocked"`
	URL       string `json:"url"`
}

type workerCount struct {
	Live int `json:"live"`
	Gone int `json:"gone"`
}

// snapshot returns the sampler's last sample (never nil) and when it was
// taken (nil before the first).
func (a *api) snapshot() ([]Queue, *time.Time, error) {
	qs, at, err := a.s.samples.snapshot()
	if qs == nil {
		qs = []Queue{}
	}
	if at.IsZero() {
		return qs, nil, err
	}
	return qs, &at, err
}

// queuesJSON returns the sampler's last sample as JSON, encoded once per
// sample: with 200 queues, encoding them is most of an overview's cost.
func (a *api) queuesJSON() (json.RawMessage, *time.Time, error) {
	qs, at, err := a.snapshot()
	var key time.Time
	if at != nil {
		key = *at
	}
	a.cache.Lock()
	defer a.cache.Unlock()
	if a.cache.body != nil && a.cache.at.Equal(key) && a.cache.n == len(qs) {
		return a.cache.body, at, err
	}
	body, merr := json.Marshal(qs)
	if merr != nil {
		return nil, at, merr
	}
	a.cache.at, a.cache.n, a.cache.body = key, len(qs), body
	return body, at, err
}

// overview serves GET /api/v1/overview from the sampler's last sample:
// it never asks the broker about every queue itself.
func (a *api) overview(w http.ResponseWriter, r *http.Request) {
	qs, at, err := a.queuesJSON()
	if qs == nil {
		a.fail(w, r, err)
		return
	}
	out := overviewResponse{Version: a.s.cfg.Version, SampledAt: at, Queues: qs}
	if err != nil {
		out.SampleErr = redact(err.Error())
	}
	if srv, err := a.s.conn.Server(); err == nil {
		out.Broker.Product, out.Broker.Version, out.Broker.Platform = srv.Product, srv.Version, srv.Platform
	}
	out.Broker.Connected = a.s.conn.Connected()
	out.Broker.Blocked = a.s.conn.Blocked()
	out.Broker.URL = broker.RedactURL(a.s.conn.URL())
	for _, wk := range a.s.roster.Workers() {
		if wk.Gone {
			out.Workers.Gone++
		} else {
			out.Workers.Live++
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// queues serves GET /api/v1/queues from the sampler's last sample.
func (a *api) queues(w http.ResponseWriter, r *http.Request) {
	qs, _, err := a.queuesJSON()
	if qs == nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, qs)
}

// queueResponse is GET /api/v1/queues/{queue}.
type queueResponse struct {
	Queue   Queue   `json:"queue"`
	History []Point `json:"history"`
}

// queue serves GET /api/v1/queues/{queue}: the queue's last sample and its
// history. It asks the sampler to sample the queue from now on, and asks
// the broker once when no sample has it yet.
func (a *api) queue(w http.ResponseWriter, r *http.Request) {
	name, err := queueParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.s.samples.ask(name)
	q, err := a.s.queueInfo(r.Context(), name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !q.Exists {
		a.fail(w, r, badQueue(name))
		return
	}
	hist := a.s.samples.points(name)
	if hist == nil {
		hist = []Point{}
	}
	out := queueResponse{Queue: q, History: hist}
	// The sample may be a few seconds old: ask for the pause state now.
	if p, err := fleet.Paused(r.Context(), a.s.conn, name); err == nil {
		out.Queue.Paused = p
	}
	writeJSON(w, http.StatusOK, out)
}

// badQueue is the error of a queue that does not exist.
func badQueue(name string) error {
	return &requestError{http.StatusNotFound, CodeQueueNotFound, "queue " + name + " does not exist"}
}

// pauseResponse answers a pause or a resume.
type pauseResponse struct {
	Queue  string `json:"queue"`
	Paused bool   `json:"paused"`
}

// pause serves POST /api/v1/queues/{queue}/pause.
func (a *api) pause(w http.ResponseWriter, r *http.Request) { a.setPaused(w, r, true) }

// resume serves POST /api/v1/queues/{queue}/resume.
func (a *api) resume(w http.ResponseWriter, r *http.Request) { a.setPaused(w, r, false) }

func (a *api) setPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	queue, err := queueParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.checkQueue(r, queue); err != nil {
		a.fail(w, r, err)
		return
	}
	action := "resume"
	if paused {
		action = "pause"
		err = fleet.Pause(r.Context(), a.s.conn, queue)
	} else {
		err = fleet.Resume(r.Context(), a.s.conn, queue)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.s.samples.setPaused(queue, paused)
	a.s.audit(r, action, queue, 1)
	writeJSON(w, http.StatusOK, pauseResponse{Queue: queue, Paused: paused})
}

// checkQueue returns a 404 error when the Warren queue does not exist.
func (a *api) checkQueue(r *http.Request, queue string) error {
	if _, err := broker.Inspect(r.Context(), a.s.conn, queue); err != nil {
		if isNotFound(err) {
			return badQueue(queue)
		}
		return err
	}
	return nil
}

// workersResponse is GET /api/v1/workers.
type workersResponse struct {
	Workers []fleet.Worker `json:"workers"`
}

// workers serves GET /api/v1/workers: the pools the roster heard from.
func (a *api) workers(w http.ResponseWriter, r *http.Request) {
	ws := a.s.roster.Workers()
	if ws == nil {
		ws = []fleet.Worker{}
	}
	writeJSON(w, http.StatusOK, workersResponse{Workers: ws})
}
