// Command demo is `make demo`: it starts the real-component test bed (a
// Kubernetes control plane with simulated nodes, and the real Alertmanager),
// deploys the runbook's platform-service, rolls out a bad version whose pods
// log errors, starts remediator in dry-run on SQLite with the shipped
// policies and its own least-privilege identity, makes Alertmanager send a
// HighErrorRate alert, and prints the incident: the runbook's diagnosis
// (rollout history, error distribution, resources, dependencies) and the
// proposal (roll back to revision 1). It checks that dry-run changed
// nothing, then approves the proposal through the API as an operator would:
// the guards run again, the rollback happens, its rollout is verified. Then
// it resolves the alert, shows the incident verified and closed, prints the
// Slack messages the service would have sent (no Slack credentials: it
// writes them to slack.log_file), and cleans everything up.
//
// Run it through `make demo` (which builds bin/remediator and the bed's
// binaries first), or `go run ./hack/demo` once they are built.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo: FAILED:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

func run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(root, "bin", "remediator")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s missing: run `make demo` (it builds it)", bin)
	}
	work, err := os.MkdirTemp("", "remediator-demo-")
	if err != nil {
		return err
	}
	keep := false
	defer func() {
		if keep {
			fmt.Println("demo: logs kept in", work)
			return
		}
		_ = os.RemoveAll(work)
	}()

	say("starting the test bed: etcd, kube-apiserver, controller-manager, scheduler, kwok (simulated node)")
	start := time.Now()
	bed, err := testbed.Up(ctx, testbed.Options{Dir: filepath.Join(work, "bed"), KillWithParent: true,
		Logf: func(f string, a ...any) { fmt.Printf("    "+f+"\n", a...) }})
	if err != nil {
		keep = true
		return err
	}
	defer func() {
		say("cleaning up")
		if err := bed.Down(); err != nil {
			fmt.Println("    bed down:", err)
		}
	}()
	fmt.Printf("    control plane ready in %s\n", time.Since(start).Round(100*time.Millisecond))

	ns, err := bed.CreateNamespace(ctx, "demo")
	if err != nil {
		return err
	}
	say("deploying platform-service (3 replicas + HPA) into namespace %s", ns)
	if err := testbed.ApplyDemo(ctx, bed.AdminConfig(), ns); err != nil {
		return err
	}
	kc, err := bed.AdminClient()
	if err != nil {
		return err
	}
	d, err := kc.AppsV1().Deployments(ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("    deployment/%s: %d/%d ready, image %s\n", d.Name, d.Status.ReadyReplicas, *d.Spec.Replicas,
		d.Spec.Template.Spec.Containers[0].Image)

	say("rolling out a bad version (revision 2) whose pods log errors")
	d.Spec.Template.Spec.Containers[0].Image = "registry.example/platform-service:v1.1.0"
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations["kubernetes.io/change-cause"] = "deploy v1.1.0"
	if _, err := kc.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		return err
	}
	if err := testbed.WaitForRollout(ctx, kc, ns, testbed.DemoDeployment, time.Minute); err != nil {
		return err
	}
	pods, err := testbed.ReadyPods(ctx, kc, ns, "app="+testbed.DemoDeployment)
	if err != nil {
		return err
	}
	for _, p := range pods {
		if err := bed.SetPodLogs(ctx, ns, p.Name, []testbed.LogRecord{
			{Line: `{"level":"ERROR","msg":"payment gateway returned 502 for order 1001"}`},
			{Line: `{"level":"ERROR","msg":"payment gateway returned 502 for order 1002"}`},
			{Line: `{"level":"ERROR","msg":"nil pointer dereference in CheckoutHandler"}`},
			{Line: `{"level":"info","msg":"served","path":"/api/orders","responseTimeMs":840}`},
		}); err != nil {
			return err
		}
	}
	if d, err = kc.AppsV1().Deployments(ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{}); err != nil {
		return err
	}
	fmt.Printf("    deployment/%s: revision %s, image %s, %d pods logging errors\n", d.Name,
		d.Annotations["deployment.kubernetes.io/revision"], d.Spec.Template.Spec.Containers[0].Image, len(pods))

	say("granting remediator's ServiceAccount what its probes and actions declare they need (least privilege)")
	if err := bed.GrantRemediator(ctx, ns, "remediator-probes", probe.AllRules()...); err != nil {
		return err
	}
	if err := bed.GrantRemediator(ctx, ns, "remediator-actions", action.Rules(actionList(action.New(kc))...)...); err != nil {
		return err
	}
	// The runbook's dependencies (database:5432, redis:6379) stand in here
	// as one local listener, so the dependency check passes.
	deps, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer deps.Close()
	go acceptAndClose(deps)
	policies, err := demoPolicies(filepath.Join(root, "policies"), filepath.Join(work, "policies"), deps.Addr().String())
	if err != nil {
		return err
	}

	token := filepath.Join(work, "webhook-token")
	if err := os.WriteFile(token, []byte(fmt.Sprintf("demo-%d\n", time.Now().UnixNano())), 0o600); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	base := "http://" + addr
	// Guards: only the demo namespace may be changed (an empty allow-list
	// allows none). Slack: no credentials here, so the messages the service
	// would send go to a file, shown at the end.
	demoConfig := filepath.Join(work, "remediator.yaml")
	slackLog := filepath.Join(work, "slack-messages.txt")
	if err := os.WriteFile(demoConfig, []byte("guards:\n  namespaces: ["+ns+"]\n"+
		"external_url: "+base+"\n"+
		"slack:\n  log_file: "+slackLog+"\n  default_channel: \"#incidents\"\n"), 0o600); err != nil {
		return err
	}
	say("starting remediator serve on %s (dry-run, SQLite, bearer token, guards allow namespace %s)", addr, ns)
	logFile, err := os.Create(filepath.Join(work, "remediator.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	srv := exec.Command(bin, "serve", "--listen", addr, "--mode", "dry-run",
		"--config", demoConfig,
		"--store", "sqlite://"+filepath.Join(work, "remediator.db"), "--webhook-token-file", token,
		"--policies", policies, "--kubeconfig", bed.State().RemediatorKubeconfig)
	srv.Stdout, srv.Stderr = logFile, logFile
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Signal(syscall.SIGTERM); _ = srv.Wait() }()
	if err := waitReady(ctx, base); err != nil {
		keep = true
		return err
	}

	say("starting the real Alertmanager, routing to remediator with the bearer token")
	am, err := testbed.StartAlertmanager(ctx, testbed.AlertmanagerOptions{
		Dir: filepath.Join(work, "alertmanager"), WebhookURL: base + "/webhook/alertmanager", BearerTokenFile: token,
		GroupWait: time.Second, GroupInterval: 2 * time.Second, RepeatInterval: time.Hour, KillWithParent: true,
	})
	if err != nil {
		keep = true
		return err
	}
	defer func() { _ = am.Stop() }()
	fmt.Println("    alertmanager at", am.URL)

	alert := testbed.Alert{
		Labels: map[string]string{"alertname": "HighErrorRate", "severity": "critical", "namespace": ns,
			"deployment": testbed.DemoDeployment, "service": "platform-service"},
		Annotations: map[string]string{"summary": "5xx rate above 5% for 5 minutes",
			"runbook_url": "runbook.md#high-error-rate"},
		StartsAt: time.Now().UTC().Add(-time.Minute),
	}
	say("firing HighErrorRate for %s/%s in Alertmanager (POST /api/v2/alerts)", ns, testbed.DemoDeployment)
	if err := am.PushAlerts(ctx, alert); err != nil {
		return err
	}
	id, err := waitIncident(ctx, base, token, func(status string, events []string) bool {
		return status == "firing" && contains(events, "planned")
	})
	if err != nil {
		keep = true
		return err
	}
	say("remediator's incidents (remediator incidents)")
	if err := show(ctx, bin, base, token); err != nil {
		return err
	}
	say("the incident and its timeline (remediator incidents %s)", id)
	if err := show(ctx, bin, base, token, id); err != nil {
		return err
	}

	say("the same plan with its evidence and every condition (remediator plan --alert, read only)")
	body := fmt.Sprintf(`{"version":"4","status":"firing","receiver":"remediator","alerts":[{"status":"firing","labels":%s,"startsAt":%q}]}`,
		mustJSON(alert.Labels), alert.StartsAt.Format(time.RFC3339))
	alertFile := filepath.Join(work, "alert.json")
	if err := os.WriteFile(alertFile, []byte(body), 0o600); err != nil {
		return err
	}
	planCmd := exec.CommandContext(ctx, bin, "plan", "--alert", alertFile, "--policies", policies,
		"--kubeconfig", bed.State().RemediatorKubeconfig)
	planCmd.Stdout, planCmd.Stderr = os.Stdout, os.Stderr
	if err := planCmd.Run(); err != nil {
		return err
	}

	d2, err := kc.AppsV1().Deployments(ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		return err
	}
	say("dry-run: the plan was proposed, the cluster was not changed (deployment generation %d → %d)", d.Generation, d2.Generation)
	if d2.Generation != d.Generation {
		return fmt.Errorf("deployment changed in dry-run")
	}

	say("an operator approves the proposal (POST /api/v1/incidents/%s/approve); the guards run again", id)
	if err := post(ctx, base, token, "/api/v1/incidents/"+id+"/approve", `{"by":"demo-operator","reason":"rollback looks right"}`); err != nil {
		return err
	}
	if _, err := waitIncident(ctx, base, token, func(_ string, events []string) bool {
		return contains(events, "rollout-complete") || contains(events, "failed") || contains(events, "blocked")
	}); err != nil {
		keep = true
		return err
	}
	if err := show(ctx, bin, base, token, id); err != nil {
		return err
	}
	d3, err := kc.AppsV1().Deployments(ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("    deployment/%s: revision %s, image %s\n", d3.Name, d3.Annotations["deployment.kubernetes.io/revision"],
		d3.Spec.Template.Spec.Containers[0].Image)
	if img := d3.Spec.Template.Spec.Containers[0].Image; img != "registry.example/platform-service:v1.0.0" {
		keep = true
		return fmt.Errorf("after the approved rollback the image is %s, want v1.0.0", img)
	}

	say("the errors stop; resolving the alert in Alertmanager")
	if err := am.ResolveAlerts(ctx, alert); err != nil {
		return err
	}
	if _, err := waitIncident(ctx, base, token, func(status string, events []string) bool {
		return status == "resolved" && contains(events, "verified")
	}); err != nil {
		keep = true
		return err
	}
	if err := show(ctx, bin, base, token, id); err != nil {
		return err
	}
	if err := showSlack(ctx, slackLog); err != nil {
		return err
	}
	fmt.Println("\ndemo: OK")
	return nil
}

// showSlack prints the Slack messages the service would have sent, once
// the feed (which follows the audit trail, about a second behind) has
// written the incident's last step.
func showSlack(ctx context.Context, path string) error {
	deadline := time.Now().Add(15 * time.Second)
	var b []byte
	for {
		var err error
		b, err = os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		if strings.Contains(string(b), "*Resolved*") && strings.Contains(string(b), "*Verified*") || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	say("Slack messages the service would have sent (no Slack credentials configured)")
	if len(b) == 0 {
		fmt.Println("    (none written to " + path + ")")
		return nil
	}
	fmt.Print(string(b))
	return nil
}

// demoPolicies copies the shipped policies into dst with the runbook's
// dependency endpoints pointed at addr, and returns dst.
func demoPolicies(src, dst, addr string) (string, error) {
	files, err := filepath.Glob(filepath.Join(src, "*.yaml"))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", err
	}
	r := strings.NewReplacer("database:5432", addr, "redis:6379", addr)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), []byte(r.Replace(string(b))), 0o644); err != nil {
			return "", err
		}
	}
	return dst, nil
}

func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

func actionList(m map[string]action.Action) []action.Action {
	out := make([]action.Action, 0, len(m))
	for _, a := range m {
		out = append(out, a)
	}
	return out
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitReady(ctx context.Context, base string) error {
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remediator not ready: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitIncident polls the API until the HighErrorRate incident satisfies ok.
func waitIncident(ctx context.Context, base, tokenFile string, ok func(status string, events []string) bool) (string, error) {
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return "", err
	}
	get := func(path string, v any) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(v)
	}
	for {
		var list struct {
			Incidents []struct{ ID, Status string } `json:"incidents"`
		}
		if err := get("/api/v1/incidents?alertname=HighErrorRate", &list); err == nil && len(list.Incidents) > 0 {
			inc := list.Incidents[0]
			var one struct {
				Timeline []struct{ Type string } `json:"timeline"`
			}
			if err := get("/api/v1/incidents/"+inc.ID, &one); err == nil {
				var types []string
				for _, e := range one.Timeline {
					types = append(types, e.Type)
				}
				if ok(inc.Status, types) {
					return inc.ID, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for the incident: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// post sends an operator API request with the bearer token.
func post(ctx context.Context, base, tokenFile, path, body string) error {
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, e.Error)
	}
	return nil
}

func show(ctx context.Context, bin, base, token string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, append(append([]string{"incidents"}, args...), "--server", base, "--token-file", token)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}
