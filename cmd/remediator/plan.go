package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/remediator/remediator/internal/intake"
	"github.com/remediator/remediator/internal/planner"
	"github.com/remediator/remediator/internal/policy"
)

func newPlanCmd() *cobra.Command {
	var alertFile, policies, kubeconfig, prometheusURL, output string
	cmd := &cobra.Command{
		Use:   "plan --alert FILE.json",
		Short: "Show what the service would do for an Alertmanager webhook body: policy, target, evidence, decision",
		Long: "plan reads one Alertmanager webhook body and, for each firing alert, matches the policies, resolves the\n" +
			"target, runs the diagnosis probes against the cluster (read only) and evaluates every remedy condition.\n" +
			"Nothing is changed anywhere.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o must be table or json, got %q", output)
			}
			body, err := readInput(cmd, alertFile)
			if err != nil {
				return err
			}
			n, err := intake.Decode(body)
			if err != nil {
				return fmt.Errorf("%s: %w", alertFile, err)
			}
			set, err := loadPolicies(policies)
			if err != nil {
				return err
			}
			kube, restCfg, kubeErr := kubeClient(kubeconfig)
			if kubeErr != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: no Kubernetes client, cluster probes are not run:", kubeErr)
			}
			p := &planner.Planner{Policies: func() *policy.Set { return set }, Probes: probes(kube, prometheusURL), Kube: kube,
				Actions: actions(kube, restCfg)}
			var out []alertPlan
			for _, a := range n.Alerts {
				pa := policy.Alert{Status: a.Status, Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.StartsAt}
				ap := alertPlan{Alert: pa}
				if a.Status != "firing" {
					ap.Skipped = "alert is resolved: the service never acts on a resolved alert"
				} else {
					plan, err := p.Plan(cmd.Context(), pa)
					if err != nil {
						return err
					}
					ap.Plan = plan
				}
				out = append(out, ap)
			}
			if output == "json" {
				return writeIndented(cmd.OutOrStdout(), out)
			}
			return renderPlans(cmd.OutOrStdout(), out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&alertFile, "alert", "", "Alertmanager webhook JSON body (- for stdin)")
	f.StringVar(&policies, "policies", "./policies", "directory of policy files")
	f.StringVar(&kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig (default $KUBECONFIG, else in-cluster)")
	f.StringVar(&prometheusURL, "prometheus", "", "Prometheus base URL for the prometheus probe")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	_ = cmd.MarkFlagRequired("alert")
	return cmd
}

func readInput(cmd *cobra.Command, file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<20))
	}
	return os.ReadFile(file)
}

type alertPlan struct {
	Alert   policy.Alert  `json:"alert"`
	Skipped string        `json:"skipped,omitempty"`
	Plan    *planner.Plan `json:"plan,omitempty"`
}

// renderPlans prints each alert's plan for a person.
func renderPlans(w io.Writer, plans []alertPlan) error {
	for i, ap := range plans {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "Alert:      %s %s (%s)\n", ap.Alert.Labels["alertname"], labelString(ap.Alert.Labels), ap.Alert.Status)
		if ap.Skipped != "" {
			fmt.Fprintf(w, "Skipped:    %s\n", ap.Skipped)
			continue
		}
		p := ap.Plan
		if !p.Matched {
			fmt.Fprintf(w, "Policy:     none: %s\n", p.Why)
			continue
		}
		fmt.Fprintf(w, "Policy:     %s (%s)\n", p.Policy, p.Why)
		if p.TargetError != "" {
			fmt.Fprintf(w, "Target:     none: %s\n", p.TargetError)
		} else {
			fmt.Fprintf(w, "Target:     %s\n", p.Target)
		}
		if len(p.Evidence) > 0 {
			fmt.Fprintln(w, "Evidence:")
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  ID\tPROBE\tRESULT")
			for _, r := range p.Evidence {
				res := "error: " + errString(r.Err)
				if r.Err == nil {
					res = truncateRunes(compactJSON(r.Evidence), 160)
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.ID, r.Probe, res)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		d := p.Decision
		fmt.Fprintln(w, "Conditions:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  REMEDY\tVALUE\tWHEN")
		for _, c := range d.Conditions {
			when := oneLine(c.When)
			if c.Error != "" {
				when += "  [error: " + c.Error + "]"
			}
			fmt.Fprintf(tw, "  %s\t%v\t%s\n", c.Name, c.Value, truncateRunes(when, 200))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if p.Change != nil {
			fmt.Fprintf(w, "Change:     %s\n", p.Change.Summary)
		}
		if p.ChangeError != "" {
			fmt.Fprintf(w, "Change:     cannot be planned: %s\n", oneLine(p.ChangeError))
		}
		for _, b := range p.Blocks {
			fmt.Fprintf(w, "Pre-flight: %s\n", b)
		}
		fmt.Fprintf(w, "Decision:   %s\n", planner.Summary(p, "dry-run"))
	}
	return nil
}

// compactJSON is v as one line of JSON, without HTML escaping (log
// messages are normalised to "<n>", which should read as such).
func compactJSON(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "unprintable: " + err.Error()
	}
	return strings.TrimSpace(b.String())
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		if k != "alertname" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, l[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return oneLine(err.Error())
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
