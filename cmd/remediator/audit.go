package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/remediator/remediator/internal/config"
	"github.com/remediator/remediator/internal/store/audit/auditcli"
)

// newAuditCmd is `remediator audit`: the audit trail, read (and sealed)
// directly on a store DSN, with or without the service running. The same
// commands are the lean `remediator-audit` binary (cmd/remediator-audit),
// which an export of millions of records should prefer: this binary's
// Kubernetes and CEL packages alone make its RSS ~75 MB.
func newAuditCmd() *cobra.Command {
	return auditcli.Command("audit", envOr("REMEDIATOR_STORE", config.DefaultStore))
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
