package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of warren",
		Long: `Print warren's version, the commit it was built from (when known), the Go
version and the platform.`,
		Example: `  warren version`,
		Args:    cobra.NoArgs,
		RunE: a.action(func(*cobra.Command, []string) error {
			fmt.Fprintln(a.stdout, versionString())
			return nil
		}),
	}
}

// versionString is "warren VERSION (REVISION[, modified]) GOVERSION OS/ARCH".
func versionString() string {
	s := "warren " + version
	if info, ok := debug.ReadBuildInfo(); ok {
		var rev, modified string
		for _, kv := range info.Settings {
			switch kv.Key {
			case "vcs.revision":
				rev = kv.Value
			case "vcs.modified":
				modified = kv.Value
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			if modified == "true" {
				rev += ", modified"
			}
			s += " (" + rev + ")"
		}
	}
	return fmt.Sprintf("%s %s %s/%s", s, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
