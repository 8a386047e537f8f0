// Package metrics exports what Warren does as Prometheus metrics.
//
// A Metrics is a worker.Observer and a producer.Observer: set it as the
// Observer of a worker.Config and of a producer.Config. AddConn and
// AddProducer add gauges read from a broker.Conn and a producer.Producer at
// each scrape. Serve serves them on an address of their own with the Go
// runtime's and the process's, beside health's /healthz and /readyz, as
// `warren worker --metrics-addr` does.
//
// The metrics, with their labels:
//
//	warren_tasks_enqueued_total{queue,type,result}     result: ok or error
//	warren_enqueue_duration_seconds{queue}             histogram, call to confirm
//	warren_tasks_started_total{queue,type}
//	warren_tasks_finished_total{queue,type,outcome}    succeeded, skipped, retried, dead_lettered, requeued, voided
//	warren_tasks_failed_total{queue,type}              the handler returned an error
//	warren_tasks_dead_lettered_total{queue,type,reason}
//	warren_handler_duration_seconds{queue,type}        histogram
//	warren_tasks_in_flight{queue}                      gauge
//	warren_redeliveries_total{queue}
//	warren_reconnects_total                            from broker.Conn
//	warren_broker_connected                            1 or 0
//	warren_broker_blocked                              1 while the broker blocks publishing
//	warren_publish_breaker_state                       0 closed, 1 half-open, 2 open
//
// Task types and queue names come from messages and callers, so their
// label values are capped: past Config.MaxTaskTypes distinct types (and
// Config.MaxQueues queues) new values are counted under "other". Values
// that are not valid UTF-8 are repaired.
//
// The core packages (worker, producer, broker) do not import Prometheus;
// only this package does.
package metrics
