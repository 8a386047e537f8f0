// Package chaos is Warren's fault-injection suite. It starts private
// RabbitMQ nodes (a single node and a 3-node cluster with quorum queues) on
// ports and data directories of its own, runs producer and worker processes
// built from this repository (cmd/chaos-agent), and injects faults in turn
// and mixed: SIGKILL and SIGTERM of workers, every client connection closed
// by the broker, a broker node killed and restarted, a cluster node stopped
// for a while, and a poison job that kills its own worker each time.
//
// The partition scenario puts each node of a 3-node cluster in a network
// namespace of its own (Net), with cluster_partition_handling set to
// pause_minority and producers and workers on every side, and cuts, flaps
// and freezes the queue leader's node: real partitions. It needs root.
//
// Every job carries a unique key. Producers write a ledger line for each
// job the broker confirmed; workers write one when a job starts and when it
// completes. At the end the suite drains the dead-letter queue and prints a
// ledger: enqueued (confirmed), completed, duplicates, dead-lettered, lost,
// and the time to recover from each fault. A job that was confirmed (or
// seen by a worker) and is neither completed nor dead-lettered fails the run.
//
// The suite itself runs under the build tag chaos:
//
//	go test -v -race -tags chaos -run TestChaos ./internal/chaos -timeout 20m
//
// CHAOS_JOBS and CHAOS_DURATION scale it; see docs/reliability.md.
package chaos
