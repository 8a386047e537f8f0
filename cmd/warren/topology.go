package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/broker"
)

func (a *app) topologyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topology",
		Short: "Manage Warren's queues and exchanges on the broker",
		Long: `Manage the exchanges and queues Warren needs on the broker. Producers and
workers declare them by themselves unless they run with --no-declare; an
operator declares them once with "topology declare" when they do, so that
producers and workers need no configure permission.`,
		Example: `  warren topology declare --queue emails --queue reports`,
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(a.topologyDeclareCmd())
	return cmd
}

func (a *app) topologyDeclareCmd() *cobra.Command {
	var (
		queues []string
		qf     queueFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "declare [--queue Q ...]",
		Short: "Declare the shared delay levels and the given queues with their dead-letter queues",
		Long: `Declare the topology shared by every Warren queue (the delay levels, the
delivery and unroutable exchanges) and, for each --queue Q, the queue Q, its
dead-letter queue Q.dlq and Q's binding for delayed tasks. It is idempotent.

Use it when producers and workers run with --no-declare (a user without the
configure permission). Declare a queue with the options every producer and
worker of it uses: the broker refuses to redeclare a queue with others.

It prints what it declared; --output json prints one object listing the
exchanges and queues.`,
		Example: `  warren topology declare
  warren topology declare --queue emails --queue reports --delivery-limit 5
  warren topology declare --queue emails --output json`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			if err := checkQueues(queues); err != nil {
				return err
			}
			qo, err := qf.options()
			if err != nil {
				return err
			}
			if err := oneOf("output", output, "table", "json"); err != nil {
				return err
			}
			ctx := cmd.Context()
			conn, err := a.dial(ctx, "topology", 1)
			if err != nil {
				return err
			}
			defer a.closeConn(conn)
			if err := broker.DeclareShared(ctx, conn); err != nil {
				return err
			}
			t := admin.DescribeTopology(queues, qo)
			if output != "json" {
				fmt.Fprintf(a.stdout, "declared shared topology: %d delay levels (%s0..%d), %s, %s\n",
					broker.DelayLevels, broker.DelayPrefix, broker.DelayLevels-1, broker.DeliveryExchange, broker.UnroutableQueue)
			}
			for _, q := range t.Queues {
				if err := broker.DeclareQueue(ctx, conn, q.Name, qo); err != nil {
					return err
				}
				if output != "json" {
					fmt.Fprintf(a.stdout, "declared queue %s (%s) with dead-letter queue %s\n", q.Name, q.Kind(), q.DeadLetterQueue)
				}
			}
			if output == "json" {
				return writeJSON(a.stdout, t)
			}
			return nil
		}),
	}
	cmd.Flags().StringSliceVarP(&queues, "queue", "q", nil, "`queue` to declare (repeatable, or comma-separated)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output `format`: table or json")
	qf.add(cmd.Flags())
	return cmd
}
