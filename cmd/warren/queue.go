package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/fleet"
)

func (a *app) queueCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Pause and resume a queue",
		Long: `Pause and resume a queue. While a queue is paused, every worker consuming it
stops taking its tasks within a second, lets those it runs finish, and hands
back those it had prefetched; tasks can still be enqueued, and wait in the
queue. The pause lives on the broker, as the durable queue
warren.paused.<queue>: it holds across worker restarts until "queue resume".
"warren queues" shows a queue's STATE, paused or running.`,
		Example: `  warren queue pause emails
  warren queue resume emails`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(
		a.queueStateCmd("pause", "Pause a queue: workers stop taking its tasks",
			`Pause the queue: every worker consuming it stops taking its tasks within a
second (its --pause-check-interval), lets those it runs finish, and hands
back those it had prefetched. Tasks can still be enqueued. Pausing a paused
queue is no error; a queue that does not exist is. It needs the configure
permission on warren.paused.<queue>.`,
			fleet.Pause, "paused"),
		a.queueStateCmd("resume", "Resume a paused queue",
			`Resume the queue: workers consuming it take its tasks again within a second.
Resuming a queue that is not paused is no error; a queue that does not exist
is. It needs the configure permission on warren.paused.<queue>.`,
			fleet.Resume, "resumed"),
	)
	return cmd
}

// queueStateCmd is "queue pause" or "queue resume": do, then say done.
func (a *app) queueStateCmd(name, short, long string, do func(context.Context, *broker.Conn, string) error, done string) *cobra.Command {
	return &cobra.Command{
		Use:     name + " QUEUE",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  warren queue %s emails", name),
		Args:    cobra.ExactArgs(1),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			q := args[0]
			if err := warren.ValidateQueueName(q); err != nil {
				return usage(err)
			}
			ctx := cmd.Context()
			conn, err := a.dial(ctx, "queue "+name, 1)
			if err != nil {
				return err
			}
			defer a.closeConn(conn)
			if err := do(ctx, conn, q); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s %s\n", done, q)
			return nil
		}),
	}
}
