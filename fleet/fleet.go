package fleet

import (
	"time"
)

// HeartbeatExchange is the fanout exchange worker pools publish their
// heartbeats to. Every Roster binds a queue of its own to it.
const HeartbeatExchange = "warren.heartbeats"

// PausePrefix names a paused queue's marker: queue Q is paused while the
// durable queue PausePrefix+Q exists.
const PausePrefix = "warren.paused."

// Beat is one heartbeat of one worker pool: who it is, what it consumes and
// what it runs now. It is JSON on the wire (docs/protocol.md).
type Beat struct {
	// ID identifies the pool for its lifetime: "host/pid/n".
	ID          string    `json:"id"`
	Host        string    `json:"host"`
	PID         int       `json:"pid"`
	Version     string    `json:"version"`
	Queues      []string  `json:"queues"`
	Concurrency int       `json:"concurrency"`
	Started     time.Time `json:"started"`
	Sent        time.Time `json:"sent"`
	// Interval is how often the pool beats; a pool not heard from for
	// three intervals is gone.
	Interval time.Duration `json:"interval_ns"`
	// Stopping is set on the last beat of a pool that shuts down.
	Stopping bool `json:"stopping,omitempty"`
	// Running lists the tasks the pool runs now, the longest-running
	// first, at most MaxRunning of them.
	Running []Running `json:"running"`
	// RunningTotal counts the tasks the pool runs now, those left out of
	// Running too.
	RunningTotal int `json:"running_total"`
	// Counts holds per-queue counters since the pool started.
	Counts map[string]QueueCounts `json:"counts"`
	// Paused lists the queues the pool holds back because they are paused.
	Paused []string `json:"paused,omitempty"`
}

// Running is a task a pool runs now.
type Running struct {
	Queue   string    `json:"queue"`
	Type    string    `json:"type"`
	ID      string    `json:"id"`
	Started time.Time `json:"started"`
}

// QueueCounts are one pool's counters for one queue since it started.
type QueueCounts struct {
	Succeeded    uint64 `json:"succeeded"`
	Retried      uint64 `json:"retried"`
	DeadLettered uint64 `json:"dead_lettered"`
	// Unacked counts deliveries the pool holds unsettled now (running or
	// prefetched).
	Unacked int `json:"unacked"`
}

// Worker is what a Roster knows of one pool.
type Worker struct {
	Beat
	// Gone is set once the pool said it stops or was not heard from for
	// three intervals.
	Gone bool `json:"gone"`
	// LastSeen is when the roster last heard from it.
	LastSeen time.Time `json:"last_seen"`
}

// MaxRunning bounds Beat.Running: a pool running more tasks at once lists
// the MaxRunning that started first, and RunningTotal counts them all.
const MaxRunning = 100
