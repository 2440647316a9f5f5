// Command remediator-audit is the audit trail's command line on its own:
// verify, export, stats and cleanup directly on a store DSN, exactly as
// `remediator audit` (internal/store/audit/auditcli), in a binary that
// links only the store and audit packages. `remediator` carries the
// Kubernetes client, kubectl's helpers and CEL, whose code pages alone
// make its RSS ~75 MB before any work; this one starts at ~10 MB and
// exports a million records in under 64 MB (docs/benchmarks.md).
package main

import (
	"fmt"
	"os"

	"github.com/remediator/remediator/internal/config"
	"github.com/remediator/remediator/internal/store/audit/auditcli"
)

func main() {
	store := config.DefaultStore
	if v := os.Getenv("REMEDIATOR_STORE"); v != "" {
		store = v
	}
	cmd := auditcli.Command("remediator-audit", store)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "remediator-audit:", err)
		os.Exit(1)
	}
}
