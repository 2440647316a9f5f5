package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/remediator/remediator/internal/policy/policydoc"
)

//go:generate go run . policy docs --write ../../docs/policies.md

func newPolicyDocsCmd() *cobra.Command {
	var write string
	cmd := &cobra.Command{
		Use:   "docs [--write FILE]",
		Short: "Print the policy reference (fields, probes and their evidence, actions and their RBAC) as Markdown",
		Long: `Prints the reference part of docs/policies.md, generated from the policy
file schema, the probe and action catalog, the evidence types and the
Kubernetes permissions the probes and actions declare. With --write FILE it
replaces the text between the markers in FILE instead:

  ` + policydoc.Begin + `
  ` + policydoc.End + `

make docs runs it for docs/policies.md; a test fails while that is stale.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ref, err := policydoc.Reference()
			if err != nil {
				return err
			}
			if write == "" {
				_, err = cmd.OutOrStdout().Write(ref)
				return err
			}
			doc, err := os.ReadFile(write)
			if err != nil {
				return err
			}
			out, err := policydoc.Splice(doc, ref)
			if err != nil {
				return fmt.Errorf("%s: %w", write, err)
			}
			return os.WriteFile(write, out, 0o644)
		},
	}
	cmd.Flags().StringVar(&write, "write", "", "replace the generated part of this Markdown file")
	return cmd
}
