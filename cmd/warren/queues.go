package main

import (
	"fmt"
	"text/tabwriter"

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
		Short: "Show queue depths: ready, unacked, consumers, dead letters, delayed",
		Long: `Show, for each queue, the tasks ready, delivered but not acked (when known),
its consumers and its dead letters. DELAYED counts every task waiting in the
delay levels, which all queues share (retries and delayed enqueues).`,
		Example: `  warren queues --queue emails --queue reports
  warren queues --queue emails --output json | jq '.[0].dead_letters'`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			if err := checkQueues(queues); err != nil {
				return err
			}
			if output != "table" && output != "json" {
				return usagef("--output %q: want table or json", output)
			}
			return a.withAdmin(cmd.Context(), "queues", func(adm *admin.Admin) error {
				infos, err := adm.Queues(cmd.Context(), queues)
				if err != nil {
					return err
				}
				if output == "json" {
					return writeJSON(a.stdout, queuesJSON(infos))
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "QUEUE\tREADY\tUNACKED\tCONSUMERS\tDEAD\tDELAYED")
				missing := 0
				for _, q := range infos {
					if !q.Exists {
						missing++
						fmt.Fprintf(tw, "%s\t-\t-\t-\t%d\t%d\t(no such queue)\n", q.Name, q.DeadLetters, q.Delayed)
						continue
					}
					unacked := "?"
					if q.Unacked >= 0 {
						unacked = fmt.Sprint(q.Unacked)
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\n", q.Name, q.Ready, unacked, q.Consumers, q.DeadLetters, q.Delayed)
				}
				if err := tw.Flush(); err != nil {
					return err
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

type queueJSON struct {
	Name        string `json:"name"`
	Exists      bool   `json:"exists"`
	Ready       int    `json:"ready"`
	Unacked     *int   `json:"unacked"` // null when unknown
	Consumers   int    `json:"consumers"`
	DeadLetters int    `json:"dead_letters"`
	Delayed     int    `json:"delayed"`
}

func queuesJSON(infos []admin.QueueInfo) []queueJSON {
	out := make([]queueJSON, 0, len(infos))
	for _, q := range infos {
		j := queueJSON{Name: q.Name, Exists: q.Exists, Ready: q.Ready, Consumers: q.Consumers, DeadLetters: q.DeadLetters, Delayed: q.Delayed}
		if q.Unacked >= 0 {
			n := q.Unacked
			j.Unacked = &n
		}
		out = append(out, j)
	}
	return out
}
