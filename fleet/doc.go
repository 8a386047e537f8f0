// Package fleet is what Warren knows of its running workers: which queues
// are paused, and which worker pools are alive, what they consume and
// what they run now.
//
// A pause lives on the broker: queue Q is paused while the durable queue
// PausePrefix+Q exists. Pause declares it, Resume deletes it, and every
// worker pool consuming Q checks for it (worker.Config.PauseCheckInterval)
// and stops taking Q's tasks while it exists. Producers are not affected.
//
// Worker pools publish a Beat as JSON to the fanout exchange
// HeartbeatExchange every few seconds (worker.Config.HeartbeatInterval); a
// Roster listens and keeps the pools it heard from. docs/protocol.md
// describes both on the wire.
package fleet
