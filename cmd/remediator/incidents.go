package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/remediator/remediator/internal/incident"
)

func newIncidentsCmd() *cobra.Command {
	var (
		server, tokenFile, status, alertname, output string
		limit                                        int
	)
	cmd := &cobra.Command{
		Use:   "incidents [ID]",
		Short: "List incidents, or show one with its timeline, from a running service",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := apiClient{base: strings.TrimRight(server, "/"), http: &http.Client{Timeout: 10 * time.Second}}
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return err
				}
				c.token = strings.TrimSpace(string(b))
			}
			out := cmd.OutOrStdout()
			if len(args) == 1 {
				var resp struct {
					Incident incident.Incident `json:"incident"`
					Timeline []incident.Event  `json:"timeline"`
				}
				if err := c.get(cmd.Context(), "/api/v1/incidents/"+url.PathEscape(args[0]), &resp); err != nil {
					return err
				}
				if output == "json" {
					return writeIndented(out, resp)
				}
				return renderIncident(out, resp.Incident, resp.Timeline)
			}
			q := url.Values{}
			for k, v := range map[string]string{"status": status, "alertname": alertname} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			var resp struct {
				Incidents []incident.Incident `json:"incidents"`
			}
			if err := c.get(cmd.Context(), "/api/v1/incidents?"+q.Encode(), &resp); err != nil {
				return err
			}
			if output == "json" {
				return writeIndented(out, resp)
			}
			return renderIncidentList(out, resp.Incidents)
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "http://127.0.0.1:9095", "base URL of the service")
	f.StringVar(&tokenFile, "token-file", os.Getenv("REMEDIATOR_WEBHOOK_TOKEN_FILE"), "bearer token file")
	f.StringVar(&status, "status", "", "filter: firing or resolved")
	f.StringVar(&alertname, "alertname", "", "filter: alert name")
	f.IntVar(&limit, "limit", 0, "at most this many (1-1000)")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

type apiClient struct {
	base, token string
	http        *http.Client
}

func (c apiClient) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	return json.Unmarshal(b, v)
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

func target(inc incident.Incident) string {
	ns, dep := inc.Labels["namespace"], inc.Labels["deployment"]
	switch {
	case ns != "" && dep != "":
		return ns + "/" + dep
	case ns != "":
		return ns + "/-"
	default:
		return "-"
	}
}

// renderIncidentList prints the incidents as a table.
func renderIncidentList(w io.Writer, list []incident.Incident) error {
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "no incidents")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tALERT\tSTATUS\tTARGET\tSTARTED\tRECEIPTS\tDUPLICATES")
	for _, inc := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", inc.ID, inc.AlertName, inc.Status, target(inc),
			ts(inc.StartsAt), inc.Receipts, inc.Duplicates)
	}
	return tw.Flush()
}

// renderIncident prints one incident and its timeline.
func renderIncident(w io.Writer, inc incident.Incident, timeline []incident.Event) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Incident:\t%s\n", inc.ID)
	fmt.Fprintf(tw, "Alert:\t%s (fingerprint %s)\n", inc.AlertName, inc.Fingerprint)
	fmt.Fprintf(tw, "Status:\t%s\n", inc.Status)
	fmt.Fprintf(tw, "Target:\t%s\n", target(inc))
	fmt.Fprintf(tw, "Started:\t%s\n", ts(inc.StartsAt))
	if inc.ResolvedAt != nil {
		fmt.Fprintf(tw, "Resolved:\t%s\n", ts(*inc.ResolvedAt))
	}
	fmt.Fprintf(tw, "Receipts:\t%d (%d duplicates)\n", inc.Receipts, inc.Duplicates)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nTimeline:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tEVENT\tACTOR\tREASON")
	for _, e := range timeline {
		reason := e.Reason
		if reason == "" {
			reason = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ts(e.Time), e.Type, e.Actor, reason)
	}
	return tw.Flush()
}
