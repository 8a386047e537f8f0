package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenq/warren/doctor"
	"github.com/warrenq/warren/worker"
)

func (a *app) doctorCmd() *cobra.Command {
	var (
		queues         []string
		qf             queueFlags
		output         string
		role           string
		node           string
		ctlPath        string
		noCtl          bool
		handlerTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "doctor [--queue Q ...] [--handler-timeout D] [--role R] [--node NAME@HOST] [--output text|json]",
		Short: "Check the broker against what Warren needs, with a fix for each problem",
		Long: `Connect with the URL and check the broker: its version and Erlang/OTP, the
feature flags Warren relies on, consumer_timeout against --handler-timeout,
cluster_partition_handling, each Warren queue's type and arguments against
what Warren declares (dead-letter target and delivery limit included), the
delay levels and their bindings, memory and disk alarms, frame_max and the
room it leaves for a task's own headers, and the user's permissions against
what the producer, worker and operator roles need. Each check prints OK,
WARN or FAIL, and a one-line fix. docs/operations.md (Doctor) explains them.

AMQP cannot tell settings, queue arguments, bindings, alarms or
permissions: for those doctor runs rabbitmqctl on the broker's node, which
needs this machine to be one of its nodes (or to hold its Erlang cookie),
and the right to run rabbitmqctl. It asks the node given with --node, or,
without --node, rabbitmqctl's default node (rabbit@this host) when the URL
names localhost:5672. Otherwise those checks WARN "cannot check without
rabbitmqctl access". The management plugin is never used.

--queue names the queues to check (default: every queue with a Q.dlq next
to it, when rabbitmqctl can list them). --queue-type and --delivery-limit
are the options they should have been declared with. --role makes the
permissions check FAIL unless the user can act in that role.

Exit status: 0 when no check fails (WARN passes), 1 when one fails, 2 on bad
input.`,
		Example: `  warren doctor --queue emails --handler-timeout 10m
  warren doctor --url amqp://app:secret@rabbit1:5672/prod --node rabbit@rabbit1 --role worker --queue emails
  warren doctor --output json | jq '.checks[] | select(.status != "OK")'`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			if err := checkQueues(queues); err != nil {
				return err
			}
			if err := oneOf("output", output, "text", "json"); err != nil {
				return err
			}
			if handlerTimeout <= 0 {
				return usagef("--handler-timeout must be positive (got %s)", handlerTimeout)
			}
			switch doctor.Role(role) {
			case "", doctor.Producer, doctor.Worker, doctor.Operator:
			default:
				return usagef("--role %q: want producer, worker or operator", role)
			}
			if noCtl && (cmd.Flags().Changed("node") || cmd.Flags().Changed("rabbitmqctl")) {
				return usagef("--no-rabbitmqctl excludes --node and --rabbitmqctl")
			}
			qo, err := qf.options()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			conn, err := a.dial(ctx, "doctor", 1)
			if err != nil {
				return err
			}
			defer a.closeConn(conn)
			report, err := doctor.Run(ctx, conn, doctor.Config{
				HandlerTimeout: handlerTimeout,
				Queues:         queues,
				QueueOptions:   qo,
				Role:           doctor.Role(role),
				Node:           node,
				Rabbitmqctl:    ctlPath,
				NoRabbitmqctl:  noCtl,
				Logger:         a.log,
			})
			if err != nil {
				return err
			}
			if output == "json" {
				err = writeJSON(a.stdout, report)
			} else {
				err = report.WriteText(a.stdout)
			}
			if err != nil {
				return err
			}
			if report.Failed() {
				return fmt.Errorf("%s failed", plural(report.Fail, "check", "checks"))
			}
			return nil
		}),
	}
	fs := cmd.Flags()
	fs.StringSliceVarP(&queues, "queue", "q", nil, "Warren `queue` to check (repeatable, or comma-separated; default: every queue with a Q.dlq, via rabbitmqctl)")
	qf.add(fs)
	fs.DurationVar(&handlerTimeout, "handler-timeout", worker.DefaultHandlerTimeout, "the workers' handler timeout, checked against the broker's consumer_timeout")
	fs.StringVar(&role, "role", "", "fail unless the user can act as this `role`: producer, worker or operator (default: any)")
	fs.StringVar(&node, "node", "", "Erlang `node` rabbitmqctl asks (default: rabbit@this host, and only when the URL names localhost:5672)")
	fs.StringVar(&ctlPath, "rabbitmqctl", "", "rabbitmqctl `program` (default: rabbitmqctl on PATH)")
	fs.BoolVar(&noCtl, "no-rabbitmqctl", false, "never run rabbitmqctl: the checks that need it WARN")
	fs.StringVarP(&output, "output", "o", "text", "output `format`: text or json")
	return cmd
}
