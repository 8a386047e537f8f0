package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/warrenq/warren/admin"
)

func (a *app) queuesCmd() *cobra.Command {
	var (
		queues []string
		output string
	)
	cmd := &cobra.Command{
		Use:   "queues --queue Q [--queue ...] [--output table|json]",
		Short: "Show queue depths: state, ready, unacked, consumers, dead letters, delayed",
		Long: `Show, for each queue, its STATE (paused by "warren queue pause", or running),
the tasks ready, delivered but not acked (when known), its consumers and its
dead letters. DELAYED counts every task waiting in the
delay levels, which all queues share (retries and delayed enqueues). HELD
counts the tasks the delay levels have passed on but their queue has not
confirmed yet: RabbitMQ 3.10 holds them while the node leading the queue is
down, and tries again every dead_letter_worker_publisher_confirm_timeout
(docs/reliability.md, section 7). UNACKED and HELD come from rabbitmqctl, so
they are known ("?" otherwise) only when --url names the local node's
default listener (localhost:5672) and rabbitmqctl runs here.`,
		Example: `  warren queues --queue emails --queue reports
  warren queues --queue emails --output json | jq '.[0].dead_letters'`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			if err := checkQueues(queues); err != nil {
				return err
			}
			if err := oneOf("output", output, "table", "json"); err != nil {
				return err
			}
			return a.withAdmin(cmd.Context(), "queues", func(adm *admin.Inspector) error {
				infos, err := adm.Queues(cmd.Context(), queues)
				if err != nil {
					return err
				}
				if output == "json" {
					return writeJSON(a.stdout, nonNil(infos))
				}
				if err := admin.WriteQueues(a.stdout, infos); err != nil {
					return err
				}
				missing := 0
				for _, q := range infos {
					if !q.Exists {
						missing++
					}
				}
				if missing > 0 {
					return fmt.Errorf("%s not found", plural(missing, "queue", "queues"))
				}
				return nil
			})
		}),
	}
	cmd.Flags().StringSliceVarP(&queues, "queue", "q", nil, "`queue` to show (repeatable, or comma-separated; required)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output `format`: table or json")
	_ = cmd.MarkFlagRequired("queue")
	return cmd
}
