// Package doctor checks a RabbitMQ broker against what Warren needs and
// reports each finding as OK, WARN or FAIL with a one-line fix. The CLI's
// `warren doctor` prints a Report as text or JSON; an HTTP API or a web page
// can print the same Report, whose JSON field names are stable.
//
// The checks, each a Check in the Report in this order:
//
//   - version: the broker's product and version, its Erlang/OTP and the
//     protocol extensions Warren uses (from the AMQP handshake). Below 3.10
//     fails: Warren needs at-least-once dead-lettering.
//   - feature_flags: quorum_queue and stream_queue (at-least-once
//     dead-lettering needs both), and flags left disabled.
//   - consumer_timeout: the broker's consumer_timeout must exceed the
//     handler timeout by a minute, or the broker takes a running task back.
//   - partition_handling: cluster_partition_handling on a cluster.
//   - queue:NAME, one per Warren queue: type, x-arguments, dead-letter
//     target and delivery limit against broker.QueueArgs, its dead-letter
//     queue and its binding to the delivery exchange.
//   - delay_levels: the 24 delay levels, their arguments and bindings.
//   - alarms: memory and disk alarms (publishing is blocked while one is on).
//   - frame_max: the negotiated frame size and the header room it leaves
//     (HeaderBudget).
//   - permissions: the user's permissions against what the producer,
//     worker and operator roles need (docs/operations.md, Least privilege).
//
// AMQP tells a client its broker's version, the negotiated frame_max,
// whether a queue or exchange exists and whether publishing is blocked.
// The rest (settings, queue arguments, bindings, alarms, permissions) needs
// rabbitmqctl on the broker's node: Run uses it when Config.Node is set, or
// when the URL points at the local node's default listener. Without it,
// those checks WARN with "cannot check without rabbitmqctl access" and say
// how to get it. The management plugin is never used.
package doctor
