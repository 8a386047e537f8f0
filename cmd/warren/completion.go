package main

import (
	"github.com/spf13/cobra"
)

func (a *app) completionCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print the shell completion script for bash, zsh or fish",
		Long: `Print a script that completes warren's commands, flags and flag values
in bash, zsh or fish. Load it in the current shell, or install it where
your shell looks for completions.

bash needs the bash-completion package. zsh needs compinit (add
"autoload -U compinit; compinit" to ~/.zshrc if completion is not on yet).`,
		Example: `  source <(warren completion bash)
  warren completion bash > /etc/bash_completion.d/warren
  warren completion zsh > "${fpath[1]}/_warren"
  warren completion fish > ~/.config/fish/completions/warren.fish`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		RunE: a.action(func(_ *cobra.Command, args []string) error {
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(a.stdout, true)
			case "zsh":
				return root.GenZshCompletion(a.stdout)
			default:
				return root.GenFishCompletion(a.stdout, true)
			}
		}),
	}
}

// flagValues are the values offered for completion of flags that take one
// of a few words.
var flagValues = map[string][]string{
	"log-format": {"text", "json"},
	"log-level":  {"debug", "info", "warn", "error"},
	"queue-type": {"quorum", "classic"},
	"output":     {"table", "json"},
}

// registerCompletions offers those values wherever the flags are, and file
// names for the TLS flags.
func registerCompletions(root *cobra.Command) {
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		for name, values := range flagValues {
			if cmd.LocalNonPersistentFlags().Lookup(name) == nil && (cmd != root || cmd.PersistentFlags().Lookup(name) == nil) {
				continue
			}
			if name == "output" && cmd.Name() == "bench" {
				values = []string{"text", "json"}
			}
			_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
		}
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(root)
	for _, name := range []string{"tls-ca", "tls-cert", "tls-key"} {
		_ = root.MarkPersistentFlagFilename(name, "pem", "crt", "key")
	}
}
