package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/remediator/remediator/internal/policy"
)

// errLint makes the command exit 1 after the problems were printed.
var errLint = errors.New("policy lint failed")

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check policy files, print their JSON Schema and reference",
	}
	cmd.AddCommand(newPolicyLintCmd(), newPolicySchemaCmd(), newPolicyDocsCmd())
	return cmd
}

func newPolicyLintCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "lint [DIR]",
		Short: "Load the policies of DIR (default ./policies) exactly as the service does and print every problem",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "./policies"
			if len(args) == 1 {
				dir = args[0]
			}
			set, err := policy.Load(dir, policy.DefaultCatalog())
			var perrs policy.Errors
			if errors.As(err, &perrs) {
				for _, e := range perrs {
					fmt.Fprintln(cmd.OutOrStdout(), e.Error())
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%d problem(s) in %s\n", len(perrs), dir)
				cmd.SilenceErrors = true
				return errLint
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%d policies OK\n", len(set.Policies()))
			return err
		},
	}
}

func newPolicySchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of policy files (for editors)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := policy.Schema()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
}
