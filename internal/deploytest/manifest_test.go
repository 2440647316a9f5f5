package deploytest

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/remediator/remediator/internal/config"
	"github.com/remediator/remediator/internal/policy"
)

const (
	systemNamespace  = "remediator-system"
	serviceAccount   = "remediator"
	targetRole       = "remediator"                 // ClusterRole bound in each target namespace
	leaderRole       = "remediator-leader-election" // ClusterRole bound in systemNamespace
	exampleTarget    = "production"                 // the overlay's target namespace
	servicePort      = 9095
	webhookURL       = "http://remediator.remediator-system.svc:9095/webhook/alertmanager"
	webhookSecret    = "remediator-webhook-token"
	webhookSecretKey = "token"
	storeSecret      = "remediator-store"
)

// deploy/base/policies must be policies/, byte for byte (kustomize cannot
// read files outside a kustomization's directory, so they are copied), and
// the ConfigMap the base generates must hold exactly them.
func TestManifestPoliciesInSync(t *testing.T) {
	const fix = "run `make deploy-sync` (hack/deploy-sync.sh)"
	src := policyFiles(t, repoPath(t, "policies"))
	dst := policyFiles(t, repoPath(t, "deploy/base/policies"))
	if len(src) == 0 {
		t.Fatal("no policies in policies/")
	}
	if !reflect.DeepEqual(sortedKeys(src), sortedKeys(dst)) {
		t.Fatalf("deploy/base/policies has %v, policies/ has %v: %s", sortedKeys(dst), sortedKeys(src), fix)
	}
	for name, b := range src {
		if !bytes.Equal(b, dst[name]) {
			t.Errorf("deploy/base/policies/%s differs from policies/%s: %s", name, name, fix)
		}
	}
	for _, dir := range []string{baseDir, overlayDir} {
		cms := generated(t, build(t, dir), "ConfigMap", "remediator-policies")
		cm := as[corev1.ConfigMap](t, cms)
		if !reflect.DeepEqual(sortedKeys(cm.Data), sortedKeys(src)) {
			t.Fatalf("%s: ConfigMap %s holds %v, policies/ has %v: %s", dir, cm.Name, sortedKeys(cm.Data), sortedKeys(src), fix)
		}
		for name, b := range src {
			if cm.Data[name] != string(b) {
				t.Errorf("%s: ConfigMap %s key %s differs from policies/%s: %s", dir, cm.Name, name, name, fix)
			}
		}
	}
}

// policyFiles reads the *.yaml and *.yml files of dir as the policy loader
// would, except a kustomization.yaml.
func policyFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") || e.Name() == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// generated finds the object kustomize generated from name (name plus its
// content hash suffix).
func generated(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var hits []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && strings.HasPrefix(o.GetName(), name+"-") && len(o.GetName()) == len(name)+11 {
			hits = append(hits, o)
		}
	}
	if len(hits) != 1 {
		t.Fatalf("want one generated %s %s-<hash>, found %d", kind, name, len(hits))
	}
	return hits[0]
}

// What both the base and the overlay must satisfy.
func TestManifestBaseAndOverlay(t *testing.T) {
	for _, dir := range []string{baseDir, overlayDir} {
		t.Run(path.Base(dir), func(t *testing.T) {
			objs := build(t, dir)
			for _, o := range objs {
				switch o.GetKind() {
				case "Secret":
					t.Errorf("%s: %s: Secrets are referenced, never shipped", dir, describe(o))
				case "ClusterRoleBinding":
					t.Errorf("%s: %s: the ClusterRoles are bound per namespace, never cluster-wide", dir, describe(o))
				case "Role", "ClusterRole":
					for _, r := range as[rbacv1.ClusterRole](t, o).Rules {
						for _, s := range append(append(r.Verbs, r.Resources...), r.APIGroups...) {
							if s == "*" {
								t.Errorf("%s: %s has a wildcard rule %v", dir, describe(o), r)
							}
						}
					}
				}
				if ns := o.GetNamespace(); ns != "" && ns != systemNamespace &&
					(dir == baseDir || o.GetKind() != "RoleBinding" || ns != exampleTarget) {
					t.Errorf("%s: %s is outside %s", dir, describe(o), systemNamespace)
				}
			}
			nsObj := as[corev1.Namespace](t, find(t, objs, "Namespace", systemNamespace))
			if nsObj.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
				t.Errorf("%s: namespace %s does not enforce the restricted Pod Security Standard: %v", dir, systemNamespace, nsObj.Labels)
			}
			sa := as[corev1.ServiceAccount](t, find(t, objs, "ServiceAccount", serviceAccount))
			if sa.Namespace != systemNamespace {
				t.Errorf("ServiceAccount in %q", sa.Namespace)
			}

			// The ClusterRoles are the generated ones, unchanged but for labels.
			want := readObjects(t, "deploy/base/rbac.yaml")
			for _, name := range []string{targetRole, leaderRole} {
				got := as[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", name))
				w := as[rbacv1.ClusterRole](t, find(t, want, "ClusterRole", name))
				if !reflect.DeepEqual(got.Rules, w.Rules) || got.AggregationRule != nil {
					t.Errorf("%s: ClusterRole %s differs from deploy/base/rbac.yaml: %v", dir, name, got.Rules)
				}
			}
			le := as[rbacv1.RoleBinding](t, find(t, objs, "RoleBinding", leaderRole))
			checkBinding(t, le, systemNamespace, leaderRole)

			d := as[appsv1.Deployment](t, find(t, objs, "Deployment", "remediator"))
			checkDeployment(t, objs, d)
			podLabels := labels.Set(d.Spec.Template.Labels)
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			if err != nil || !sel.Matches(podLabels) {
				t.Fatalf("Deployment selector %v does not select its pods %v", d.Spec.Selector, podLabels)
			}

			svc := as[corev1.Service](t, find(t, objs, "Service", "remediator"))
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
				t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, podLabels)
			}
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != servicePort || svc.Spec.Ports[0].TargetPort.String() != "http" ||
				svc.Spec.Ports[0].Name != "http" {
				t.Errorf("Service ports: %+v", svc.Spec.Ports)
			}
			if got := "http://" + svc.Name + "." + svc.Namespace + ".svc:9095/webhook/alertmanager"; got != webhookURL {
				t.Errorf("the Service is reached at %s, the monitoring files send to %s", got, webhookURL)
			}

			pdb := as[policyv1.PodDisruptionBudget](t, find(t, objs, "PodDisruptionBudget", "remediator"))
			if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.MaxUnavailable != nil {
				t.Errorf("PodDisruptionBudget: minAvailable %v maxUnavailable %v, want minAvailable 1", pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable)
			}
			if s, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || s.Empty() || !s.Matches(podLabels) {
				t.Errorf("PodDisruptionBudget selector %v does not select the pods", pdb.Spec.Selector)
			}
			if int(*d.Spec.Replicas) <= pdb.Spec.MinAvailable.IntValue() {
				t.Errorf("%d replicas with minAvailable %d: a node drain could never evict", *d.Spec.Replicas, pdb.Spec.MinAvailable.IntValue())
			}

			checkNetworkPolicy(t, as[networkingv1.NetworkPolicy](t, find(t, objs, "NetworkPolicy", "remediator")), podLabels)
		})
	}
}

// The overlay binds the target ClusterRole in its target namespaces only,
// and the guard allows exactly those namespaces.
func TestManifestOverlayTargets(t *testing.T) {
	objs := build(t, overlayDir)
	var bound []string
	for _, o := range findAll(objs, "RoleBinding", "") {
		rb := as[rbacv1.RoleBinding](t, o)
		if rb.RoleRef.Name != targetRole {
			continue
		}
		checkBinding(t, rb, rb.Namespace, targetRole)
		if rb.Namespace == systemNamespace {
			t.Errorf("the target ClusterRole is bound in the service's own namespace")
		}
		bound = append(bound, rb.Namespace)
	}
	if !reflect.DeepEqual(bound, []string{exampleTarget}) {
		t.Errorf("target RoleBindings in %v, want [%s]", bound, exampleTarget)
	}
	cfg := loadDeployedConfig(t, objs)
	if !reflect.DeepEqual(cfg.Guards.Namespaces, bound) {
		t.Errorf("guards.namespaces %v, RoleBindings in %v: they must be the same", cfg.Guards.Namespaces, bound)
	}
	d := as[appsv1.Deployment](t, find(t, objs, "Deployment", "remediator"))
	if img := d.Spec.Template.Spec.Containers[0].Image; img == "remediator" || !strings.Contains(img, ":") {
		t.Errorf("the overlay does not set the image: %q", img)
	}
	// The base alone allows no namespace (fail closed).
	if ns := loadDeployedConfig(t, build(t, baseDir)).Guards.Namespaces; len(ns) != 0 {
		t.Errorf("the base allows namespaces %v", ns)
	}
}

func checkBinding(t *testing.T, rb *rbacv1.RoleBinding, namespace, role string) {
	t.Helper()
	want := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: systemNamespace}
	if rb.Namespace != namespace || rb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}) ||
		!reflect.DeepEqual(rb.Subjects, []rbacv1.Subject{want}) {
		t.Errorf("RoleBinding %s/%s: roleRef %+v subjects %+v; want ClusterRole %s bound in %s to %+v",
			rb.Namespace, rb.Name, rb.RoleRef, rb.Subjects, role, namespace, want)
	}
}

func checkDeployment(t *testing.T, objs []*unstructured.Unstructured, d *appsv1.Deployment) {
	t.Helper()
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	if s := d.Spec.Strategy.RollingUpdate; s == nil || s.MaxUnavailable == nil || s.MaxUnavailable.IntValue() != 0 {
		t.Errorf("a rolling update may take a replica away: %+v", d.Spec.Strategy)
	}
	ps := d.Spec.Template.Spec
	if ps.ServiceAccountName != serviceAccount {
		t.Errorf("serviceAccountName %q", ps.ServiceAccountName)
	}
	if ps.AutomountServiceAccountToken != nil && !*ps.AutomountServiceAccountToken {
		t.Errorf("the token is not mounted: the service needs it for the probes, actions and the Lease")
	}
	// Kubernetes would inject REMEDIATOR_SERVICE_HOST etc. for the Service
	// "remediator"; the config loader refuses unknown REMEDIATOR_* variables.
	if ps.EnableServiceLinks == nil || *ps.EnableServiceLinks {
		t.Errorf("enableServiceLinks must be false")
	}
	psc := ps.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil ||
		psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext: %+v", psc)
	}
	if ps.HostNetwork || ps.HostPID || ps.HostIPC {
		t.Errorf("host namespaces shared")
	}
	if len(ps.Containers) != 1 || len(ps.InitContainers) != 0 {
		t.Fatalf("want one container, got %d (+%d init)", len(ps.Containers), len(ps.InitContainers))
	}
	c := ps.Containers[0]
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatalf("container has no securityContext")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("allowPrivilegeEscalation must be false")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("readOnlyRootFilesystem must be true")
	case sc.Privileged != nil && *sc.Privileged:
		t.Errorf("privileged")
	case sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0:
		t.Errorf("capabilities %+v, want drop [ALL] and no add", sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("container seccompProfile %+v", sc.SeccompProfile)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
		if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
			t.Errorf("resources %s: request %s limit %s", r, req.String(), lim.String())
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != servicePort {
		t.Errorf("ports %+v", c.Ports)
	}
	for _, p := range []struct {
		what string
		pr   *corev1.Probe
		path string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.pr == nil || p.pr.HTTPGet == nil || p.pr.HTTPGet.Path != p.path || p.pr.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe %+v, want GET %s on port http", p.what, p.pr, p.path)
		}
	}
	// Flags would override the configuration (the image's CMD sets --store).
	if len(c.Command) != 0 || len(c.Args) != 3 || c.Args[0] != "serve" || c.Args[1] != "--config" {
		t.Errorf("command %q args %q, want args [serve --config FILE] only", c.Command, c.Args)
	}
	for _, e := range c.Env {
		if e.Value != "" && (strings.Contains(e.Name, "STORE") || strings.Contains(e.Name, "TOKEN") || strings.Contains(e.Name, "PASSWORD")) {
			t.Errorf("env %s has a literal value: secrets come from Secrets", e.Name)
		}
	}
	env := envByName(c.Env)
	if s := env["REMEDIATOR_STORE"]; s.ValueFrom == nil || s.ValueFrom.SecretKeyRef == nil || s.ValueFrom.SecretKeyRef.Name != storeSecret ||
		s.ValueFrom.SecretKeyRef.Key != "dsn" || (s.ValueFrom.SecretKeyRef.Optional != nil && *s.ValueFrom.SecretKeyRef.Optional) {
		t.Errorf("REMEDIATOR_STORE must come from Secret %s key dsn, required: %+v", storeSecret, s)
	}
	if s := env["REMEDIATOR_HA_IDENTITY"]; s.ValueFrom == nil || s.ValueFrom.FieldRef == nil || s.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("REMEDIATOR_HA_IDENTITY must be the pod's name: %+v", s)
	}

	// Volumes: every ConfigMap is one the kustomization generates; the
	// webhook token is required, the future tokens optional; all mounted
	// read-only except scratch space.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	secrets := map[string]bool{}
	for _, v := range ps.Volumes {
		m, ok := mounts[v.Name]
		if !ok {
			t.Errorf("volume %s is not mounted", v.Name)
		}
		switch {
		case v.ConfigMap != nil:
			if o := findAll(objs, "ConfigMap", v.ConfigMap.Name); len(o) != 1 {
				t.Errorf("volume %s: ConfigMap %s is not in the kustomization", v.Name, v.ConfigMap.Name)
			}
		case v.Secret != nil:
			optional := v.Secret.Optional != nil && *v.Secret.Optional
			secrets[v.Secret.SecretName] = optional
			if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0 {
				t.Errorf("volume %s: Secret files readable by others (defaultMode %v)", v.Name, v.Secret.DefaultMode)
			}
		case v.EmptyDir != nil:
			continue
		default:
			t.Errorf("volume %s: unexpected source", v.Name)
		}
		if !m.ReadOnly {
			t.Errorf("volume %s is mounted writable", v.Name)
		}
	}
	if want := map[string]bool{webhookSecret: false, "remediator-audit-token": false, "remediator-slack": true}; !reflect.DeepEqual(secrets, want) {
		t.Errorf("Secret volumes (name: optional) %v, want %v", secrets, want)
	}
}

func envByName(env []corev1.EnvVar) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range env {
		out[e.Name] = e
	}
	return out
}

func checkNetworkPolicy(t *testing.T, np *networkingv1.NetworkPolicy, podLabels labels.Set) {
	t.Helper()
	if s, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err != nil || s.Empty() || !s.Matches(podLabels) {
		t.Errorf("NetworkPolicy podSelector %v does not select the pods", np.Spec.PodSelector)
	}
	if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("policyTypes %v, want [Ingress]", np.Spec.PolicyTypes)
	}
	if len(np.Spec.Ingress) != 1 {
		t.Fatalf("want one ingress rule, got %d", len(np.Spec.Ingress))
	}
	in := np.Spec.Ingress[0]
	if len(in.Ports) != 1 || in.Ports[0].Port == nil || in.Ports[0].Port.IntValue() != servicePort ||
		in.Ports[0].Protocol == nil || *in.Ports[0].Protocol != corev1.ProtocolTCP || in.Ports[0].EndPort != nil {
		t.Errorf("ingress ports %+v, want TCP %d only", in.Ports, servicePort)
	}
	var apps []string
	for _, p := range in.From {
		// Both selectors in one peer: those pods in that namespace. A peer
		// with only one of them would open the port much wider.
		if p.IPBlock != nil || p.NamespaceSelector == nil || p.PodSelector == nil ||
			len(p.NamespaceSelector.MatchLabels)+len(p.NamespaceSelector.MatchExpressions) == 0 ||
			len(p.PodSelector.MatchLabels)+len(p.PodSelector.MatchExpressions) == 0 {
			t.Errorf("peer %+v must select pods by label within namespaces by label", p)
			continue
		}
		apps = append(apps, p.PodSelector.MatchLabels["app.kubernetes.io/name"])
	}
	slices.Sort(apps)
	if !reflect.DeepEqual(apps, []string{"alertmanager", "prometheus"}) {
		t.Errorf("ingress from %v, want alertmanager and prometheus", apps)
	}
}

// The configuration the pods would run with loads and validates with the
// service's own loader: config.yaml from the generated ConfigMap, then the
// Deployment's environment (as the kubelet would resolve it), and the paths
// it names are the mounts.
func TestManifestConfigLoads(t *testing.T) {
	objs := build(t, overlayDir)
	cfg := loadDeployedConfig(t, objs)
	d := as[appsv1.Deployment](t, find(t, objs, "Deployment", "remediator"))
	c := d.Spec.Template.Spec.Containers[0]

	if config.IsLoopback(cfg.Listen) || !cfg.HasAuth() {
		t.Errorf("listen %s with auth %v: must listen beyond loopback, with authentication", cfg.Listen, cfg.HasAuth())
	}
	if !strings.HasSuffix(cfg.Listen, ":9095") {
		t.Errorf("listen %s, the container port is %d", cfg.Listen, servicePort)
	}
	if cfg.Mode != config.ModeDryRun {
		t.Errorf("mode %q: the kit ships in dry-run", cfg.Mode)
	}
	if !strings.HasPrefix(cfg.Store, "postgres://") {
		t.Errorf("store %q: several replicas need PostgreSQL", cfg.Store)
	}
	if !cfg.HA.LeaderElection || cfg.HA.LeaseNamespace != systemNamespace || cfg.HA.LeaseName == "" || cfg.HA.Identity != fakePodName {
		t.Errorf("ha %+v: want leader election with the Lease in %s and the pod's name as identity", cfg.HA, systemNamespace)
	}
	if cfg.Kubeconfig != "" {
		t.Errorf("kubeconfig %q: in the cluster, the ServiceAccount is the identity", cfg.Kubeconfig)
	}
	// The files the configuration names are where the volumes are mounted.
	volumeAt := func(file string) corev1.Volume {
		t.Helper()
		for _, m := range c.VolumeMounts {
			if path.Dir(file) == m.MountPath {
				for _, v := range d.Spec.Template.Spec.Volumes {
					if v.Name == m.Name {
						return v
					}
				}
			}
		}
		t.Fatalf("%s is on no volume", file)
		return corev1.Volume{}
	}
	if v := volumeAt(cfg.Auth.BearerTokenFile); v.Secret == nil || v.Secret.SecretName != webhookSecret ||
		!slices.Contains(v.Secret.Items, corev1.KeyToPath{Key: webhookSecretKey, Path: path.Base(cfg.Auth.BearerTokenFile)}) {
		t.Errorf("auth.bearer_token_file %s is not key %q of Secret %s: %+v", cfg.Auth.BearerTokenFile, webhookSecretKey, webhookSecret, v)
	}
	if v := volumeAt(cfg.Policies + "/x.yaml"); v.ConfigMap == nil || !strings.HasPrefix(v.ConfigMap.Name, "remediator-policies-") {
		t.Errorf("policies %s is not the policies ConfigMap: %+v", cfg.Policies, v)
	}
	if v := volumeAt(c.Args[2]); v.ConfigMap == nil || !strings.HasPrefix(v.ConfigMap.Name, "remediator-config-") {
		t.Errorf("--config %s is not the config ConfigMap: %+v", c.Args[2], v)
	}

	// The policies in the ConfigMap load.
	cm := as[corev1.ConfigMap](t, generated(t, objs, "ConfigMap", "remediator-policies"))
	dir := t.TempDir()
	for name, data := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := policy.Load(dir, policy.DefaultCatalog())
	if err != nil {
		t.Fatalf("policies in ConfigMap %s: %v", cm.Name, err)
	}
	if len(set.Policies()) != len(cm.Data) {
		t.Errorf("%d policies from %d files", len(set.Policies()), len(cm.Data))
	}
}

const fakePodName = "remediator-7c9d8f6b5-x2k9p"

// loadDeployedConfig loads config.yaml from the generated ConfigMap and
// applies the Deployment's REMEDIATOR_* environment as the kubelet would
// resolve it (a Secret's value stands in as a PostgreSQL DSN), then
// validates, as `remediator serve --config` does.
func loadDeployedConfig(t *testing.T, objs []*unstructured.Unstructured) config.Config {
	t.Helper()
	cm := as[corev1.ConfigMap](t, generated(t, objs, "ConfigMap", "remediator-config"))
	data, ok := cm.Data["config.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no config.yaml", cm.Name)
	}
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	if err := config.LoadFile(&cfg, file); err != nil {
		t.Fatal(err)
	}
	d := as[appsv1.Deployment](t, find(t, objs, "Deployment", "remediator"))
	var environ []string
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		v := e.Value
		switch f := e.ValueFrom; {
		case f == nil:
		case f.SecretKeyRef != nil:
			v = "postgres://remediator@postgres.example:5432/remediator?sslmode=verify-full"
		case f.FieldRef != nil && f.FieldRef.FieldPath == "metadata.name":
			v = fakePodName
		case f.FieldRef != nil && f.FieldRef.FieldPath == "metadata.namespace":
			v = d.Namespace
		case f.ResourceFieldRef != nil:
			v = "536870912"
		default:
			t.Fatalf("env %s: unexpected source %+v", e.Name, f)
		}
		environ = append(environ, e.Name+"="+v)
	}
	if err := config.ApplyEnv(&cfg, environ); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the deployed configuration is invalid: %v", err)
	}
	return cfg
}
