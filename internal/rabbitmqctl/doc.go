// Package rabbitmqctl runs RabbitMQ's rabbitmqctl for what AMQP cannot
// tell a client: unacked counts, queue arguments, bindings, node settings,
// alarms, feature flags and user permissions. It is the one place Warren
// calls rabbitmqctl; admin (warren queues) and doctor (warren doctor) use it.
//
// rabbitmqctl talks to a node over Erlang distribution, so it needs the
// node's name and its Erlang cookie ($HOME/.erlang.cookie). A bare
// rabbitmqctl (Runner.Node "") talks to rabbit@<this host>, the node behind
// the default listener; LocalVhost tells whether a broker URL points there.
package rabbitmqctl
