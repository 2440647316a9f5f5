package testbed_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/remediator/remediator/internal/testbed"
)

func TestMain(m *testing.M) { testbed.Main(m) }

const revisionAnnotation = "deployment.kubernetes.io/revision"

func TestDemoDeploymentGetsReadyPods(t *testing.T) {
	env := testbed.Get(t)
	ctx := t.Context()
	ns := env.NewNamespace()
	start := time.Now()
	env.ApplyDemo(ns)
	t.Logf("demo rolled out in %s", time.Since(start))
	c := env.AdminClient()

	d, err := c.AppsV1().Deployments(ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rss := ownedReplicaSets(t, c, d)
	if len(rss) != 1 {
		t.Fatalf("want 1 ReplicaSet owned by the deployment, got %d", len(rss))
	}
	if got := rss[0].Annotations[revisionAnnotation]; got != "1" {
		t.Errorf("ReplicaSet revision = %q, want 1", got)
	}
	pods, err := testbed.ReadyPods(ctx, c, ns, "app=platform-service")
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 3 {
		t.Fatalf("want 3 Ready pods, got %d", len(pods))
	}
	for _, p := range pods {
		if p.Spec.NodeName != testbed.NodeName {
			t.Errorf("pod %s on node %q, want %q", p.Name, p.Spec.NodeName, testbed.NodeName)
		}
	}
	if _, err := c.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{}); err != nil {
		t.Errorf("HPA: %v", err)
	}
	svc, err := c.CoreV1().Services(ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Service: %v", err)
	}
	if !strings.HasPrefix(svc.Spec.ClusterIP, "10.96.") {
		t.Errorf("Service ClusterIP %q not from 10.96.0.0/16", svc.Spec.ClusterIP)
	}
}

func TestSetImageThenUndo(t *testing.T) {
	env := testbed.Get(t)
	ctx := t.Context()
	ns := env.NewNamespace()
	env.ApplyDemo(ns)
	c := env.AdminClient()
	deps := c.AppsV1().Deployments(ns)

	// `kubectl set image`: revision 2.
	start := time.Now()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := deps.Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = "registry.example/platform-service:v1.1.0"
		_, err = deps.Update(ctx, d, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := testbed.WaitForRollout(ctx, c, ns, testbed.DemoDeployment, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("set image rolled out in %s", time.Since(start))
	d, err := deps.Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Annotations[revisionAnnotation]; got != "2" {
		t.Fatalf("deployment revision = %q, want 2", got)
	}
	if n := len(ownedReplicaSets(t, c, d)); n != 2 {
		t.Fatalf("want 2 ReplicaSets after set image, got %d", n)
	}

	// `kubectl rollout undo --to-revision=1`, done with client-go.
	start = time.Now()
	if err := rollbackTo(ctx, c, ns, testbed.DemoDeployment, "1"); err != nil {
		t.Fatal(err)
	}
	if err := testbed.WaitForRollout(ctx, c, ns, testbed.DemoDeployment, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("undo rolled out in %s", time.Since(start))
	d, err = deps.Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done, msg, err := testbed.RolloutStatus(d)
	if err != nil || !done {
		t.Fatalf("rollout status after undo: done=%v msg=%q err=%v", done, msg, err)
	}
	if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != 3 || d.Status.AvailableReplicas != 3 || d.Status.Replicas != 3 {
		t.Fatalf("status after undo: %+v (generation %d)", d.Status, d.Generation)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example/platform-service:v1.0.0" {
		t.Errorf("image after undo = %q", img)
	}
	// The controller re-labels revision 1's ReplicaSet as revision 3.
	if got := d.Annotations[revisionAnnotation]; got != "3" {
		t.Errorf("deployment revision after undo = %q, want 3", got)
	}
	rss := ownedReplicaSets(t, c, d)
	if len(rss) != 2 {
		t.Fatalf("want 2 ReplicaSets after undo (history reused), got %d", len(rss))
	}
	for _, rs := range rss {
		img := rs.Spec.Template.Spec.Containers[0].Image
		switch rs.Annotations[revisionAnnotation] {
		case "3":
			if img != "registry.example/platform-service:v1.0.0" || rs.Status.ReadyReplicas != 3 {
				t.Errorf("revision 3 ReplicaSet: image %q ready %d", img, rs.Status.ReadyReplicas)
			}
		case "2":
			if *rs.Spec.Replicas != 0 {
				t.Errorf("revision 2 ReplicaSet still has %d replicas", *rs.Spec.Replicas)
			}
		default:
			t.Errorf("unexpected ReplicaSet revision %q", rs.Annotations[revisionAnnotation])
		}
	}
}

// rollbackTo copies the pod template of the ReplicaSet with the given
// revision into the Deployment, as `kubectl rollout undo` does.
func rollbackTo(ctx context.Context, c kubernetes.Interface, ns, name, revision string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var src *appsv1.ReplicaSet
		for _, rs := range ownedReplicaSetsErr(ctx, c, d) {
			if rs.Annotations[revisionAnnotation] == revision {
				src = &rs
			}
		}
		if src == nil {
			return apierrors.NewNotFound(appsv1.Resource("replicasets"), "revision "+revision)
		}
		tmpl := src.Spec.Template.DeepCopy()
		delete(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
		d.Spec.Template = *tmpl
		_, err = c.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
}

func ownedReplicaSetsErr(ctx context.Context, c kubernetes.Interface, d *appsv1.Deployment) []appsv1.ReplicaSet {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil
	}
	l, err := c.AppsV1().ReplicaSets(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil
	}
	var out []appsv1.ReplicaSet
	for _, rs := range l.Items {
		if ref := metav1.GetControllerOf(&rs); ref != nil && ref.UID == d.UID {
			out = append(out, rs)
		}
	}
	return out
}

func ownedReplicaSets(t *testing.T, c kubernetes.Interface, d *appsv1.Deployment) []appsv1.ReplicaSet {
	t.Helper()
	return ownedReplicaSetsErr(t.Context(), c, d)
}

func TestRemediatorRBACIsReal(t *testing.T) {
	env := testbed.Get(t)
	ctx := t.Context()
	ns := env.NewNamespace()
	env.ApplyDemo(ns)
	rc := env.RemediatorClient()

	// Nothing granted yet.
	if _, err := rc.AppsV1().Deployments(ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("get before any grant: want 403, got %v", err)
	}
	env.GrantRemediator(ns, rbacv1.PolicyRule{
		APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch"},
	})
	if _, err := rc.AppsV1().Deployments(ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{}); err != nil {
		t.Fatalf("get with the Role: %v", err)
	}
	patch := []byte(`{"spec":{"template":{"metadata":{"annotations":{"remediator/restartedAt":"now"}}}}}`)
	_, err := rc.AppsV1().Deployments(ns).Patch(ctx, testbed.DemoDeployment, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("patch without the verb: want 403, got %v", err)
	}
	if se, ok := err.(apierrors.APIStatus); !ok || se.Status().Code != http.StatusForbidden {
		t.Fatalf("patch error is not a 403 status: %#v", err)
	}
	// Another namespace stays out of reach.
	if _, err := rc.AppsV1().Deployments("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("list in another namespace: want 403, got %v", err)
	}
	// Granting patch makes the same call succeed.
	env.GrantRemediator(ns, rbacv1.PolicyRule{
		APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch", "patch"},
	})
	if err := retryForbidden(ctx, func() error {
		_, err := rc.AppsV1().Deployments(ns).Patch(ctx, testbed.DemoDeployment, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		return err
	}); err != nil {
		t.Fatalf("patch with the verb granted: %v", err)
	}
}

// retryForbidden retries while RBAC changes propagate (the grant helper
// already waits for the first verb of each rule only).
func retryForbidden(ctx context.Context, f func() error) error {
	var err error
	for range 50 {
		if err = f(); !apierrors.IsForbidden(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}

func TestPodLogsThroughTheAPI(t *testing.T) {
	env := testbed.Get(t)
	ctx := t.Context()
	ns := env.NewNamespace()
	env.ApplyDemo(ns)
	c := env.AdminClient()
	pods, err := testbed.ReadyPods(ctx, c, ns, "app=platform-service")
	if err != nil || len(pods) == 0 {
		t.Fatalf("pods: %v (%d)", err, len(pods))
	}
	pod := pods[0].Name
	ts := time.Date(2026, 11, 26, 0, 50, 0, 0, time.UTC)
	env.SetPodLogs(ns, pod,
		testbed.LogRecord{Time: ts, Line: `{"level":"ERROR","msg":"upstream timeout","path":"/api/orders"}`},
		testbed.LogRecord{Time: ts.Add(time.Second), Stream: "stderr", Line: `{"level":"INFO","msg":"ok"}`},
	)
	var got string
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := c.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: "platform-service"}).DoRaw(ctx)
		got = string(b)
		if err == nil && strings.Contains(got, "upstream timeout") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods/log never served the file: err=%v body=%q", err, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(got, `"msg":"ok"`) {
		t.Errorf("second line missing: %q", got)
	}
}

func TestPostgresFreshDatabase(t *testing.T) {
	env := testbed.Get(t)
	if env.Bed().State().PostgresDSN == "" {
		t.Skip("bed runs without PostgreSQL")
	}
	a, b := env.PostgresDSN(), env.PostgresDSN()
	if a == b {
		t.Fatalf("two calls gave the same DSN %q", a)
	}
	for _, dsn := range []string{a, b} {
		out, err := psql(t.Context(), dsn, "SELECT current_database()")
		if err != nil {
			t.Fatalf("psql %s: %v: %s", dsn, err, out)
		}
		t.Logf("%s -> %s", dsn, strings.TrimSpace(out))
	}
}

func TestAttachToStateFile(t *testing.T) {
	env := testbed.Get(t)
	b, err := testbed.Attach(env.Bed().StateFile())
	if err != nil {
		t.Fatal(err)
	}
	if !b.Attached() {
		t.Fatal("not attached")
	}
	c, err := b.AdminClient()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Nodes().Get(t.Context(), testbed.NodeName, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Down(); err != nil { // no-op for an attached handle
		t.Fatal(err)
	}
	if _, err := c.Discovery().ServerVersion(); err != nil {
		t.Fatalf("bed gone after Down on an attached handle: %v", err)
	}
	for _, kc := range []string{b.State().AdminKubeconfig, b.State().RemediatorKubeconfig} {
		if _, err := os.Stat(kc); err != nil {
			t.Error(err)
		}
	}
}

type webhookCall struct {
	auth string
	body webhookMessage
}

type webhookMessage struct {
	Version  string            `json:"version"`
	Status   string            `json:"status"`
	Receiver string            `json:"receiver"`
	GroupKey string            `json:"groupKey"`
	Common   map[string]string `json:"commonLabels"`
	Alerts   []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		Fingerprint string            `json:"fingerprint"`
		StartsAt    time.Time         `json:"startsAt"`
		EndsAt      time.Time         `json:"endsAt"`
	} `json:"alerts"`
}

func TestAlertmanagerDeliversToWebhook(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Alertmanager")
	}
	calls := make(chan webhookCall, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m webhookMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("webhook body: %v: %s", err, b)
		}
		calls <- webhookCall{auth: r.Header.Get("Authorization"), body: m}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cr3t-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	am := testbed.StartTestAlertmanager(t, testbed.AlertmanagerOptions{
		WebhookURL:      srv.URL + "/webhook",
		BearerTokenFile: tokenFile,
		GroupWait:       200 * time.Millisecond,
		GroupInterval:   time.Second,
	})
	alert := testbed.Alert{
		Labels: map[string]string{
			"alertname": "HighErrorRate", "namespace": "shop", "deployment": "platform-service", "severity": "critical",
		},
		Annotations: map[string]string{"summary": "5xx above 5%"},
		StartsAt:    time.Now().Add(-time.Minute).Truncate(time.Second),
	}
	ctx := t.Context()
	if err := am.PushAlerts(ctx, alert); err != nil {
		t.Fatal(err)
	}
	first := waitCall(t, calls, "firing")
	if first.auth != "Bearer s3cr3t-token" {
		t.Errorf("Authorization = %q", first.auth)
	}
	if len(first.body.Alerts) != 1 {
		t.Fatalf("want 1 alert, got %d", len(first.body.Alerts))
	}
	a := first.body.Alerts[0]
	for k, v := range alert.Labels {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, a.Labels[k], v)
		}
	}
	if a.Status != "firing" || first.body.Version != "4" || a.Fingerprint == "" {
		t.Errorf("firing notification: %+v", first.body)
	}

	if err := am.ResolveAlerts(ctx, alert); err != nil {
		t.Fatal(err)
	}
	res := waitCall(t, calls, "resolved")
	if res.auth != "Bearer s3cr3t-token" {
		t.Errorf("Authorization on resolve = %q", res.auth)
	}
	if len(res.body.Alerts) != 1 || res.body.Alerts[0].Status != "resolved" || res.body.Alerts[0].Fingerprint != a.Fingerprint {
		t.Errorf("resolved notification: %+v", res.body)
	}
}

func waitCall(t *testing.T, calls <-chan webhookCall, status string) webhookCall {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case c := <-calls:
			if c.body.Status == status {
				return c
			}
			t.Logf("skipping a %q notification while waiting for %q", c.body.Status, status)
		case <-timeout:
			t.Fatalf("no %q notification within 30s", status)
		}
	}
}
