// Command remediator is the Alertmanager webhook auto-remediation service.
// This file is the composition root: it reads configuration, builds the
// dependencies and hands them to each other. Logic lives in internal/.
package main

import (
	"fmt"
	"os"
	_ "time/tzdata" // maintenance windows name time zones; the distroless image has no zoneinfo to rely on

	"github.com/spf13/cobra"

	"github.com/remediator/remediator/internal/version"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "remediator:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "remediator",
		Short:         "Alertmanager webhook auto-remediation service",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newVersionCmd(), newIncidentsCmd(), newPlanCmd(), newPolicyCmd(), newRBACCmd())
	root.AddCommand(newAuditCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version.Version
			if version.Commit != "" {
				v += " (" + version.Commit + ")"
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "remediator", v)
			return err
		},
	}
}
