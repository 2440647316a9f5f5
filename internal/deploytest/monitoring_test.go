package deploytest

import (
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	amlabels "github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/remediator/remediator/internal/policy"
)

// rule is one alerting rule, as in a Prometheus rule file and in a
// PrometheusRule's spec.groups.
type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type ruleGroup struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

func rulesFile(t *testing.T) []ruleGroup {
	t.Helper()
	b, err := os.ReadFile(repoPath(t, "deploy/monitoring/rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []ruleGroup `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("rules.yml: %v", err)
	}
	return f.Groups
}

// The runbook's alerts and where their labels come from.
var runbookAlerts = map[string][]string{
	"HighErrorRate":   {"http_request_errors_total", "http_requests_total"},
	"HighLatency":     {"http_request_duration_seconds_bucket"},
	"HighMemoryUsage": {"container_memory_working_set_bytes", "container_spec_memory_limit_bytes"},
}

// rules.yml and the PrometheusRule carry the same rules: same groups, same
// alerts, same expressions, durations, labels and annotations.
func TestManifestMonitoringRulesEqual(t *testing.T) {
	file := rulesFile(t)
	pr := find(t, build(t, monitoringDir), "PrometheusRule", "remediator-runbook")
	var spec struct {
		Groups []ruleGroup `json:"groups"`
	}
	b, err := yaml.Marshal(pr.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &spec); err != nil {
		t.Fatalf("PrometheusRule spec: %v", err)
	}
	exprs := func(gs []ruleGroup) []string {
		var out []string
		for _, g := range gs {
			for _, r := range g.Rules {
				out = append(out, r.Alert+": "+r.Expr)
			}
		}
		return out
	}
	fe, pe := exprs(file), exprs(spec.Groups)
	if len(fe) != len(pe) {
		t.Fatalf("rules.yml has %d rules, the PrometheusRule %d", len(fe), len(pe))
	}
	for i := range fe {
		if fe[i] != pe[i] {
			t.Errorf("rule %d differs:\nrules.yml:      %s\nPrometheusRule: %s", i, fe[i], pe[i])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if !reflect.DeepEqual(file, spec.Groups) {
		t.Fatalf("rule groups differ:\nrules.yml:      %+v\nPrometheusRule: %+v", file, spec.Groups)
	}
	var alerts []string
	for _, g := range file {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			for _, m := range runbookAlerts[r.Alert] {
				if !strings.Contains(r.Expr, m) {
					t.Errorf("%s does not use %s", r.Alert, m)
				}
			}
			for _, l := range []string{"namespace", "deployment"} {
				if !strings.Contains(r.Expr, l) {
					t.Errorf("%s: the expression does not keep the label %s", r.Alert, l)
				}
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, the policies prioritise critical and warning", r.Alert, s)
			}
		}
	}
	slices.Sort(alerts)
	if !reflect.DeepEqual(alerts, sortedKeys(runbookAlerts)) {
		t.Errorf("alerts %v, want the runbook's %v", alerts, sortedKeys(runbookAlerts))
	}
}

// promtool validates rules.yml and runs its unit tests (rules_test.yml):
// each alert fires after its "for", for the unhealthy Deployment only.
func TestManifestMonitoringPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found in PATH: install the Debian package prometheus (hack/install-deps.sh does) to validate deploy/monitoring/rules.yml")
	}
	for _, args := range [][]string{
		{"check", "rules", "rules.yml"},
		{"test", "rules", "rules_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = repoPath(t, monitoringDir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	}
}

// expectedAlerts are the label sets rules_test.yml expects the rules to
// fire with, by alert name.
func expectedAlerts(t *testing.T) map[string][]map[string]string {
	t.Helper()
	b, err := os.ReadFile(repoPath(t, "deploy/monitoring/rules_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []struct {
					ExpLabels map[string]string `json:"exp_labels"`
				} `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string][]map[string]string{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTest {
			for _, e := range a.ExpAlerts {
				out[a.Alertname] = append(out[a.Alertname], e.ExpLabels)
			}
		}
	}
	return out
}

// Every alert, with the labels promtool showed it fires with, is matched by
// a shipped policy, which resolves its target Deployment from them.
func TestManifestMonitoringAlertsMatchPolicies(t *testing.T) {
	set, err := policy.Load(repoPath(t, "policies"), policy.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	exp := expectedAlerts(t)
	for _, g := range rulesFile(t) {
		for _, r := range g.Rules {
			if len(exp[r.Alert]) == 0 {
				t.Errorf("%s: rules_test.yml expects it nowhere", r.Alert)
			}
			for _, lbls := range exp[r.Alert] {
				p, ok, why := set.Match(lbls)
				if !ok {
					t.Errorf("%s %v: %s", r.Alert, lbls, why)
					continue
				}
				tg, err := p.ResolveTarget(lbls)
				if err != nil {
					t.Errorf("%s %v: policy %s cannot resolve its target: %v", r.Alert, lbls, p.Name, err)
					continue
				}
				if tg.Kind != "Deployment" || tg.Namespace != lbls["namespace"] || tg.Name != lbls["deployment"] {
					t.Errorf("%s %v: policy %s resolves %v", r.Alert, lbls, p.Name, tg)
				}
				t.Logf("%s %v → policy %s, target %s", r.Alert, lbls, p.Name, tg)
			}
		}
	}
}

// policyAlertnames are the alert names the shipped policies match on.
func policyAlertnames(t *testing.T) []string {
	t.Helper()
	set, err := policy.Load(repoPath(t, "policies"), policy.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range set.Policies() {
		for _, m := range p.Match {
			if m.Name == "alertname" && m.Type == amlabels.MatchEqual {
				names = append(names, m.Value)
			}
		}
	}
	slices.Sort(names)
	return names
}

// alertmanager.yml routes the policies' alerts in the target namespace to
// remediator, with the bearer token from a file, and lets the routes after
// it see them too. Checked in Go for its structure and, when amtool (the
// Debian prometheus-alertmanager package) is installed, with Alertmanager's
// own loader and router.
func TestManifestMonitoringAlertmanagerYML(t *testing.T) {
	file := repoPath(t, "deploy/monitoring/alertmanager.yml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	type route struct {
		Receiver string   `json:"receiver"`
		Matchers []string `json:"matchers"`
		Continue bool     `json:"continue"`
		Routes   []route  `json:"routes"`
	}
	var cfg struct {
		Route     route `json:"route"`
		Receivers []struct {
			Name           string `json:"name"`
			WebhookConfigs []struct {
				URL          string `json:"url"`
				SendResolved bool   `json:"send_resolved"`
				HTTPConfig   struct {
					Authorization struct {
						Type            string `json:"type"`
						Credentials     string `json:"credentials"`
						CredentialsFile string `json:"credentials_file"`
					} `json:"authorization"`
				} `json:"http_config"`
			} `json:"webhook_configs"`
		} `json:"receivers"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Route.Routes) == 0 || cfg.Route.Routes[0].Receiver != "remediator" || !cfg.Route.Routes[0].Continue {
		t.Fatalf("the first route must send to remediator and continue: %+v", cfg.Route.Routes)
	}
	var ms amlabels.Matchers
	for _, m := range cfg.Route.Routes[0].Matchers {
		pm, err := amlabels.ParseMatcher(m)
		if err != nil {
			t.Fatalf("matcher %q: %v", m, err)
		}
		ms = append(ms, pm)
	}
	for _, name := range policyAlertnames(t) {
		if ls := (model.LabelSet{"alertname": model.LabelValue(name), "namespace": exampleTarget}); !ms.Matches(ls) {
			t.Errorf("the remediator route does not match %v", ls)
		}
	}
	for _, ls := range []model.LabelSet{
		{"alertname": "HighErrorRate", "namespace": "staging"},
		{"alertname": "Watchdog", "namespace": exampleTarget},
	} {
		if ms.Matches(ls) {
			t.Errorf("the remediator route matches %v", ls)
		}
	}
	var hooks int
	for _, r := range cfg.Receivers {
		if r.Name != "remediator" {
			continue
		}
		for _, h := range r.WebhookConfigs {
			hooks++
			a := h.HTTPConfig.Authorization
			if h.URL != webhookURL || !h.SendResolved || a.Type != "Bearer" || a.CredentialsFile == "" || a.Credentials != "" {
				t.Errorf("webhook %+v: want %s, send_resolved, Bearer from credentials_file", h, webhookURL)
			}
		}
	}
	if hooks != 1 {
		t.Fatalf("receiver remediator has %d webhooks, want 1", hooks)
	}

	amtool, err := exec.LookPath("amtool")
	if err != nil {
		t.Skip("amtool not found in PATH (Debian package prometheus-alertmanager): Alertmanager's own checks skipped")
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(amtool, args...).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("amtool %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		return strings.TrimSpace(string(out))
	}
	t.Logf("amtool check-config:\n%s", run("check-config", file))
	for _, name := range policyAlertnames(t) {
		lbls := []string{"alertname=" + name, "namespace=" + exampleTarget, "deployment=platform-service", "severity=critical"}
		if got := run(append([]string{"config", "routes", "test", "--config.file=" + file}, lbls...)...); got != "remediator,default" {
			t.Errorf("amtool: %v goes to %q, want remediator,default", lbls, got)
		}
	}
	for _, lbls := range [][]string{
		{"alertname=HighErrorRate", "namespace=staging", "deployment=platform-service"},
		{"alertname=Watchdog", "namespace=" + exampleTarget},
	} {
		if got := run(append([]string{"config", "routes", "test", "--config.file=" + file}, lbls...)...); got != "default" {
			t.Errorf("amtool: %v goes to %q, want default", lbls, got)
		}
	}
}

// The AlertmanagerConfig routes the same alerts to the same URL, with the
// token from the Secret, in the overlay's target namespace; the
// ServiceMonitor scrapes the Service's port.
func TestManifestMonitoringOperatorObjects(t *testing.T) {
	objs := build(t, monitoringDir)
	amc := find(t, objs, "AlertmanagerConfig", "remediator")
	if amc.GetNamespace() != exampleTarget {
		t.Errorf("AlertmanagerConfig in %q: it routes only alerts of its own namespace, %s", amc.GetNamespace(), exampleTarget)
	}
	str := func(o *unstructured.Unstructured, path ...string) string {
		s, _, _ := unstructured.NestedString(o.Object, path...)
		return s
	}
	if r := str(amc, "spec", "route", "receiver"); r != "remediator" {
		t.Errorf("route receiver %q", r)
	}
	matchers, _, _ := unstructured.NestedSlice(amc.Object, "spec", "route", "matchers")
	var re *regexp.Regexp
	for _, m := range matchers {
		m := m.(map[string]any)
		if m["name"] == "alertname" && m["matchType"] == "=~" {
			re = regexp.MustCompile("^(?:" + m["value"].(string) + ")$")
		}
	}
	if re == nil {
		t.Fatalf("route matchers %v: no alertname=~ matcher", matchers)
	}
	for _, name := range policyAlertnames(t) {
		if !re.MatchString(name) {
			t.Errorf("route does not send %s", name)
		}
	}
	receivers, _, _ := unstructured.NestedSlice(amc.Object, "spec", "receivers")
	if len(receivers) != 1 {
		t.Fatalf("receivers %v", receivers)
	}
	hooks, _, _ := unstructured.NestedSlice(receivers[0].(map[string]any), "webhookConfigs")
	if len(hooks) != 1 {
		t.Fatalf("webhookConfigs %v", hooks)
	}
	hook := &unstructured.Unstructured{Object: hooks[0].(map[string]any)}
	if u := str(hook, "url"); u != webhookURL {
		t.Errorf("url %q, want %s", u, webhookURL)
	}
	if sr, _, _ := unstructured.NestedBool(hook.Object, "sendResolved"); !sr {
		t.Errorf("sendResolved must be true: resolved alerts close incidents")
	}
	if typ, name, key := str(hook, "httpConfig", "authorization", "type"), str(hook, "httpConfig", "authorization", "credentials", "name"),
		str(hook, "httpConfig", "authorization", "credentials", "key"); typ != "Bearer" || name != webhookSecret || key != webhookSecretKey {
		t.Errorf("authorization %s from Secret %s key %s, want Bearer from %s key %s", typ, name, key, webhookSecret, webhookSecretKey)
	}

	sm := find(t, objs, "ServiceMonitor", "remediator")
	svc := as[corev1.Service](t, find(t, build(t, baseDir), "Service", "remediator"))
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(labels.Set(svc.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not select the Service (labels %v)", sel, svc.Labels)
	}
	nss, _, _ := unstructured.NestedStringSlice(sm.Object, "spec", "namespaceSelector", "matchNames")
	if sm.GetNamespace() != svc.Namespace && !slices.Contains(nss, svc.Namespace) {
		t.Errorf("ServiceMonitor in %s selects namespaces %v, the Service is in %s", sm.GetNamespace(), nss, svc.Namespace)
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 {
		t.Fatalf("endpoints %v", eps)
	}
	ep := &unstructured.Unstructured{Object: eps[0].(map[string]any)}
	if str(ep, "port") != svc.Spec.Ports[0].Name || str(ep, "path") != "/metrics" {
		t.Errorf("endpoint %v, want port %s path /metrics", ep.Object, svc.Spec.Ports[0].Name)
	}
}
