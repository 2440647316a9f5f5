// Package auditcli is the audit trail's command line: verify, export,
// stats and cleanup, directly on a store DSN. Both `remediator audit` and
// the lean `remediator-audit` binary (cmd/remediator-audit: the store and
// audit packages only, no Kubernetes client, so an export of any size
// stays under 64 MB of RSS; docs/benchmarks.md) are built from it.
package auditcli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/remediator/remediator/internal/config"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/audit"
	"github.com/remediator/remediator/internal/store/open"
)

// Command is the audit trail's command tree, read (and sealed) directly on
// a store DSN, with or without the service running: `remediator audit`
// (use "audit") and the lean `remediator-audit` binary (use
// "remediator-audit"). defaultStore is the --store default.
func Command(use, defaultStore string) *cobra.Command {
	var dsn string
	cmd := &cobra.Command{
		Use:   use,
		Short: "Verify, export, count and clean up the audit trail, directly on a store",
		Long: `Works on the database itself (sqlite://PATH or postgres://...), with or without
the service running. Each subcommand first seals the events not yet in the
chain, as the service does every second. docs/audit.md.`,
	}
	cmd.PersistentFlags().StringVar(&dsn, "store", defaultStore,
		"store DSN: sqlite://PATH or postgres://USER@HOST:PORT/DB (env REMEDIATOR_STORE)")
	withStore := func(cmd *cobra.Command, days int, f func(ctx context.Context, st store.Store, svc *audit.Service) error) error {
		ctx := cmd.Context()
		st, err := open.Open(ctx, dsn)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		defer st.Close()
		svc := audit.NewService(st, audit.Options{RetentionDays: days})
		if _, err := svc.SealAll(ctx); err != nil {
			return fmt.Errorf("seal: %w", err)
		}
		return f(ctx, st, svc)
	}

	var output string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Walk the hash chain from the latest checkpoint; name the first broken record (exit 1)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, 0, func(ctx context.Context, st store.Store, _ *audit.Service) error {
				rep, err := audit.Verify(ctx, st)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if output == "json" {
					if err := writeIndented(out, rep); err != nil {
						return err
					}
				} else {
					fmt.Fprintln(out, rep.String())
				}
				if !rep.Valid {
					return errors.New("audit chain broken")
				}
				return nil
			})
		},
	}
	verify.Flags().StringVarP(&output, "output", "o", "text", "text or json")

	var format, startDate, endDate, alertname, outFile string
	export := &cobra.Command{
		Use:   "export",
		Short: "Stream the records of a date range as csv, json or ndjson",
		Long: `Stream the records of a date range, in time order, exactly as GET /audit/export does:
--start-date is inclusive from 00:00:00Z, --end-date inclusive (the whole UTC day).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := url.Values{"format": {format}, "startDate": {startDate}}
			if endDate != "" {
				v.Set("endDate", endDate)
			}
			if alertname != "" {
				v.Set("alertname", alertname)
			}
			q, err := audit.ParseExportQuery(v)
			if err != nil {
				return err
			}
			return withStore(cmd, 0, func(ctx context.Context, _ store.Store, svc *audit.Service) error {
				var w io.Writer = cmd.OutOrStdout()
				if outFile != "" && outFile != "-" {
					f, err := os.Create(outFile)
					if err != nil {
						return err
					}
					defer f.Close()
					w = f
				}
				bw := bufio.NewWriterSize(w, 64<<10)
				enc, err := audit.NewEncoder(bw, q.Format)
				if err != nil {
					return err
				}
				if err := svc.Export(ctx, q.Filter, enc.Encode); err != nil {
					return err
				}
				if err := enc.Close(); err != nil {
					return err
				}
				if err := bw.Flush(); err != nil {
					return err
				}
				if f, ok := w.(*os.File); ok && f != os.Stdout {
					return f.Close()
				}
				return nil
			})
		},
	}
	ef := export.Flags()
	ef.StringVar(&format, "format", audit.FormatCSV, "csv, json or ndjson")
	ef.StringVar(&startDate, "start-date", "", "first day, YYYY-MM-DD (UTC, inclusive; required)")
	ef.StringVar(&endDate, "end-date", "", "last day, YYYY-MM-DD (UTC, inclusive)")
	ef.StringVar(&alertname, "alertname", "", "only records of this alert")
	ef.StringVar(&outFile, "out", "-", "file to write (- for standard output)")

	var statsOut string
	stats := &cobra.Command{
		Use:   "stats",
		Short: "Record counts by type, action, outcome, alertname and priority; size; oldest and newest",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, 0, func(ctx context.Context, _ store.Store, svc *audit.Service) error {
				st, err := svc.Stats(ctx)
				if err != nil {
					return err
				}
				if statsOut == "json" {
					return writeIndented(cmd.OutOrStdout(), st)
				}
				return renderAuditStats(cmd.OutOrStdout(), st)
			})
		},
	}
	stats.Flags().StringVarP(&statsOut, "output", "o", "table", "table or json")

	var days int
	cleanup := &cobra.Command{
		Use:   "cleanup",
		Short: "Delete the records older than the retention, behind a checkpoint",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days < 1 {
				return errors.New("--retention-days: must be at least 1")
			}
			actor := "cli"
			if u, err := user.Current(); err == nil {
				actor = "cli:" + u.Username
			}
			return withStore(cmd, days, func(ctx context.Context, _ store.Store, svc *audit.Service) error {
				res, err := svc.Cleanup(ctx, actor, "")
				if err != nil {
					return err
				}
				return writeIndented(cmd.OutOrStdout(), res)
			})
		},
	}
	cleanup.Flags().IntVar(&days, "retention-days", config.DefaultAuditRetentionDays, "delete records older than this many days")

	cmd.AddCommand(verify, export, stats, cleanup)
	return cmd
}

func renderAuditStats(w io.Writer, st audit.Stats) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	when := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return ts(*t)
	}
	fmt.Fprintf(tw, "Records:\t%d (%d bytes)\n", st.Records, st.Bytes)
	fmt.Fprintf(tw, "Oldest:\t%s\n", when(st.Oldest))
	fmt.Fprintf(tw, "Newest:\t%s\n", when(st.Newest))
	fmt.Fprintf(tw, "Head:\tseq %d %s\n", st.HeadSeq, st.HeadHash)
	if cp := st.Checkpoint; cp != nil {
		fmt.Fprintf(tw, "Checkpoint:\tseq %d (%d deleted %s by %s)\n", cp.Seq, cp.Deleted, ts(cp.Time), cp.Actor)
	}
	fmt.Fprintf(tw, "Unsealed:\t%d\n", st.Unsealed)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		m    map[string]int64
	}{{"TYPE", st.ByType}, {"ACTION", st.ByAction}, {"OUTCOME", st.ByOutcome}, {"ALERTNAME", st.ByAlertName}, {"PRIORITY", st.ByPriority}} {
		keys := make([]string, 0, len(d.m))
		for k := range d.m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if d.m[keys[i]] != d.m[keys[j]] {
				return d.m[keys[i]] > d.m[keys[j]]
			}
			return keys[i] < keys[j]
		})
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "%s\tRECORDS\n", d.name)
		for _, k := range keys {
			name := k
			if name == "" {
				name = "-"
			}
			fmt.Fprintf(tw, "%s\t%d\n", name, d.m[k])
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }
