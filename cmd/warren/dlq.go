package main

import "github.com/spf13/cobra"

// Placeholder until package admin lands.
func (a *app) dlqCmd() *cobra.Command    { return &cobra.Command{Use: "dlq", Short: "Dead-letter queues"} }
func (a *app) queuesCmd() *cobra.Command { return &cobra.Command{Use: "queues", Short: "Queue depths"} }
