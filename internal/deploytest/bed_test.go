package deploytest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/remediator/remediator/internal/testbed"
)

func TestMain(m *testing.M) { testbed.Main(m) }

// applier server-side-applies objects as they are (namespace included),
// with strict field validation, for real or as a dry run.
type applier struct {
	dyn      dynamic.Interface
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	mu       sync.Mutex
	warnings []string
}

func newApplier(t *testing.T, cfg *rest.Config) *applier {
	t.Helper()
	a := &applier{}
	cfg.WarningHandler = a
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	if a.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return a
}

// HandleWarningHeader collects the API server's warnings.
func (a *applier) HandleWarningHeader(_ int, _ string, text string) {
	a.mu.Lock()
	a.warnings = append(a.warnings, text)
	a.mu.Unlock()
}

func (a *applier) takeWarnings() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.warnings
	a.warnings = nil
	return w
}

func (a *applier) resource(o *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if o.GetNamespace() == "" {
			return nil, fmt.Errorf("%s has no namespace", describe(o))
		}
		return a.dyn.Resource(m.Resource).Namespace(o.GetNamespace()), nil
	}
	if o.GetNamespace() != "" {
		return nil, fmt.Errorf("%s is cluster-scoped but names a namespace", describe(o))
	}
	return a.dyn.Resource(m.Resource), nil
}

// apply server-side-applies o; with dryRun the API server runs everything
// (defaulting, schema and strict field validation, admission) but stores
// nothing (dryRun=All).
func (a *applier) apply(ctx context.Context, o *unstructured.Unstructured, dryRun bool) (*unstructured.Unstructured, error) {
	ri, err := a.resource(o)
	if err != nil {
		return nil, err
	}
	body, err := o.MarshalJSON()
	if err != nil {
		return nil, err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: "deploytest", Force: &force, FieldValidation: metav1.FieldValidationStrict}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, opts)
}

// dryRunAll dry-runs every object and fails the test for each one the API
// server refuses or warns about.
func (a *applier) dryRunAll(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	a.takeWarnings()
	for _, o := range objs {
		got, err := a.apply(t.Context(), o, true)
		if err != nil {
			t.Errorf("dry-run %s: %v", describe(o), err)
			continue
		}
		if w := a.takeWarnings(); len(w) > 0 {
			t.Errorf("dry-run %s: warnings %q", describe(o), w)
		}
		if got.GetName() != o.GetName() || got.GetNamespace() != o.GetNamespace() {
			t.Errorf("dry-run %s returned %s", describe(o), describe(got))
		}
		t.Logf("dry-run ok: %s", describe(o))
	}
}

// ensureNamespace creates namespace for real unless it exists, waiting out
// an earlier deletion. It is left in place: the bed may be shared, and a
// namespace deleted now would still be terminating for the next run.
func ensureNamespace(t *testing.T, c kubernetes.Interface, name string) {
	t.Helper()
	ctx := t.Context()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ns, err := c.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil && ns.DeletionTimestamp == nil:
			return
		case err == nil:
			// terminating: wait
		case apierrors.IsNotFound(err):
			_, err = c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			if err == nil || apierrors.IsAlreadyExists(err) {
				continue
			}
			t.Fatalf("creating namespace %s: %v", name, err)
		default:
			t.Fatalf("namespace %s: %v", name, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s is still terminating", name)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// namespacesOf creates, for real, every namespace the objects go into (a
// Namespace among them is only dry-run, so it would not be there for the
// objects in it).
func namespacesOf(t *testing.T, c kubernetes.Interface, objs []*unstructured.Unstructured) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" && !seen[ns] {
			seen[ns] = true
			ensureNamespace(t, c, ns)
		}
	}
}

// Every object of the base and of the example overlay, as kustomize
// renders them, is accepted by the real API server: server-side apply with
// dryRun=All and strict field validation (unknown or duplicate fields are
// errors), no warnings.
func TestDeployDryRun(t *testing.T) {
	env := testbed.Get(t)
	a := newApplier(t, env.AdminConfig())
	admin := env.AdminClient()
	for _, dir := range []string{baseDir, overlayDir} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := build(t, dir)
			namespacesOf(t, admin, objs)
			a.dryRunAll(t, objs)
		})
	}

	// The check is real: a misspelt field is refused.
	d := find(t, build(t, overlayDir), "Deployment", "remediator")
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	cs[0].(map[string]any)["securityContxt"] = map[string]any{"privileged": true}
	if err := unstructured.SetNestedSlice(d.Object, cs, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.apply(t.Context(), d, true); err == nil || !strings.Contains(err.Error(), "securityContxt") {
		t.Errorf("a Deployment with an unknown field was not refused: %v", err)
	}
}

// The pods meet the "restricted" Pod Security Standard that the base's
// Namespace enforces: a Pod made from the Deployment's template is admitted
// (dry run) into a namespace that enforces it, and one without the security
// settings is not.
func TestDeployDryRunPodSecurityRestricted(t *testing.T) {
	env := testbed.Get(t)
	admin := env.AdminClient()
	ns := env.NewNamespace()
	cur, err := admin.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := find(t, build(t, baseDir), "Namespace", systemNamespace).GetLabels()
	for k, v := range want {
		if strings.HasPrefix(k, "pod-security.kubernetes.io/") {
			cur.Labels[k] = v
		}
	}
	if _, err := admin.CoreV1().Namespaces().Update(t.Context(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := as[appsv1.Deployment](t, find(t, build(t, overlayDir), "Deployment", "remediator"))
	// Admission looks the pod's ServiceAccount up.
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(t.Context(), &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: d.Spec.Template.Spec.ServiceAccountName}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "remediator-pss", Namespace: ns, Labels: d.Spec.Template.Labels},
		Spec:       d.Spec.Template.Spec,
	}
	a := newApplier(t, env.AdminConfig())
	toU := func(p *corev1.Pod) *unstructured.Unstructured {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		unstructured.RemoveNestedField(u.Object, "status")
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		return u
	}
	a.dryRunAll(t, []*unstructured.Unstructured{toU(pod)})

	weak := pod.DeepCopy()
	weak.Spec.SecurityContext = nil
	weak.Spec.Containers[0].SecurityContext = nil
	_, err = a.apply(t.Context(), toU(weak), true)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
		t.Fatalf("control: a pod without security settings was not refused by PodSecurity admission: %v", err)
	}
}

// The prometheus-operator CRDs, generated from its published API types
// with controller-gen as upstream does (hack/tools/crdgen), are installed
// for real; then the objects of deploy/monitoring are dry-run against them
// with strict field validation, so the API server checks them against the
// CRDs' structural schemas.
func TestCRDMonitoringDryRun(t *testing.T) {
	env := testbed.Get(t)
	ctx := t.Context()
	dir := generateCRDs(t)
	a := newApplier(t, env.AdminConfig())
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, plural := range []string{"servicemonitors", "prometheusrules", "alertmanagerconfigs"} {
		objs := readFileObjects(t, filepath.Join(dir, "monitoring.coreos.com_"+plural+".yaml"))
		if len(objs) != 1 || objs[0].GetKind() != "CustomResourceDefinition" {
			t.Fatalf("%s: want one CRD", plural)
		}
		if _, err := a.apply(ctx, objs[0], false); err != nil {
			t.Fatalf("installing CRD %s: %v", objs[0].GetName(), err)
		}
		name := objs[0].GetName()
		deadline := time.Now().Add(30 * time.Second)
		for !crdEstablished(t, a.dyn.Resource(crdGVR), name) {
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not established", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	a.mapper.Reset()
	a.takeWarnings()

	objs := build(t, monitoringDir)
	namespacesOf(t, env.AdminClient(), objs)
	// Discovery may lag the Established condition a little.
	deadline := time.Now().Add(30 * time.Second)
	for _, o := range objs {
		for {
			if _, err := a.resource(o); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			a.mapper.Reset()
		}
	}
	a.dryRunAll(t, objs)

	// The checks are real: the schemas refuse an unknown field and a value
	// outside an enum.
	pr := find(t, objs, "PrometheusRule", "").DeepCopy()
	groups, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
	rules := groups[0].(map[string]any)["rules"].([]any)
	rules[0].(map[string]any)["expresion"] = "up == 0"
	if err := unstructured.SetNestedSlice(pr.Object, groups, "spec", "groups"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.apply(ctx, pr, true); err == nil || !strings.Contains(err.Error(), "expresion") {
		t.Errorf("a PrometheusRule with an unknown field was not refused: %v", err)
	}
	amc := find(t, objs, "AlertmanagerConfig", "").DeepCopy()
	if err := unstructured.SetNestedField(amc.Object, []any{map[string]any{"name": "alertname", "matchType": "~=", "value": "x"}},
		"spec", "route", "matchers"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.apply(ctx, amc, true); err == nil || !strings.Contains(err.Error(), "matchType") {
		t.Errorf("an AlertmanagerConfig with an invalid matchType was not refused: %v", err)
	}
}

// generateCRDs runs hack/tools/crdgen/generate.sh (a no-op when its output
// is current) and returns the directory of the CRDs.
func generateCRDs(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	out := filepath.Join(root, "bin", "monitoring-crds")
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "tools", "crdgen", "generate.sh"))
	cmd.Env = append(os.Environ(), "OUT_DIR="+out)
	t0 := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/tools/crdgen/generate.sh: %v\n%s", err, b)
	} else if len(b) > 0 {
		t.Logf("generate.sh (%.1fs):\n%s", time.Since(t0).Seconds(), strings.TrimSpace(string(b)))
	}
	return out
}

func readFileObjects(t *testing.T, file string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(b)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return objs
}

func crdEstablished(t *testing.T, ri dynamic.ResourceInterface, name string) bool {
	t.Helper()
	crd, err := ri.Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return false
		}
		t.Fatal(err)
	}
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		c := c.(map[string]any)
		if c["type"] == "Established" && c["status"] == "True" {
			return true
		}
	}
	return false
}
