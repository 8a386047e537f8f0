package main

import (
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/warrenq/warren/worker"
)

// commandEnv returns the environment variables of every flag of root's
// commands other than the global ones (those of root's persistent flags):
// what picks a task, its queue, its budget or a command's behaviour. A
// worker removes them from its --exec command's environment, so that a
// warren the command runs is configured by the command, never by the
// worker's settings. The global flags' variables (how to reach the broker,
// logging; WARREN_URL excepted, a secret) are inherited.
func commandEnv(root *cobra.Command) []string {
	global := map[string]bool{}
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) { global[f.Name] = true })
	seen := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if !global[f.Name] && f.Name != "help" {
				seen[envName(f.Name)] = true
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// taskEnvVar reports whether name is one of the variables a worker gives
// its --exec command about its task. No flag is ever read from one.
func taskEnvVar(name string) bool {
	return strings.HasPrefix(name, worker.EnvTaskPrefix)
}
