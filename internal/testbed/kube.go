package testbed

import (
	"context"
	"fmt"
	"os"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

func writeKubeconfig(path, server, caFile, user, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["testbed"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: caFile}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["testbed"] = &clientcmdapi.Context{Cluster: "testbed", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "testbed"
	return clientcmd.WriteToFile(*cfg, path)
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installKwokLogsCRD creates kwok's Logs CRD (read from bin/) and waits until
// it is Established, so kwok can watch Logs objects.
func installKwokLogsCRD(ctx context.Context, cfg *rest.Config, file string, timeout time.Duration) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &obj.Object); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crds := dyn.Resource(crdGVR)
	if _, err := crds.Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return pollUntil(ctx, timeout, nil, func(ctx context.Context) (bool, error) {
		got, err := crds.Get(ctx, obj.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
}

// writeKwokLogsConfig writes a ClusterLogs object serving logFile for every
// pod that has no Logs object of its own.
func writeKwokLogsConfig(path, logFile string) error {
	doc := map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "ClusterLogs",
		"metadata":   map[string]any{"name": "testbed-default-logs"},
		"spec": map[string]any{
			"logs": []any{map[string]any{"logsFile": logFile, "follow": false}},
		},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func createNode(ctx context.Context, c kubernetes.Interface, name string) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"type":                   "kwok",
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"kubernetes.io/role":     "agent",
			},
		},
		Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
	_, err := c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func nodeReady(ctx context.Context, c kubernetes.Interface, name string) (bool, error) {
	n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue, nil
		}
	}
	return false, nil
}

// removeNotReadyTaint drops the taints the API server put on the new node
// (the node-lifecycle controller, which would do it, is off).
func removeNotReadyTaint(ctx context.Context, c kubernetes.Interface, name string) error {
	for range 10 {
		n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var keep []corev1.Taint
		for _, t := range n.Spec.Taints {
			if t.Key != corev1.TaintNodeNotReady && t.Key != corev1.TaintNodeUnreachable {
				keep = append(keep, t)
			}
		}
		if len(keep) == len(n.Spec.Taints) {
			return nil
		}
		n.Spec.Taints = keep
		_, err = c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("testbed: removing taints from node %s: too many conflicts", name)
}

func serviceAccountExists(ctx context.Context, c kubernetes.Interface, ns, name string) (bool, error) {
	_, err := c.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// setupRemediatorIdentity creates the remediator's namespace and
// ServiceAccount and returns a token for it from the TokenRequest API.
func setupRemediatorIdentity(ctx context.Context, c kubernetes.Interface, timeout time.Duration) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: RemediatorNamespace}}
	if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: RemediatorServiceAccount}}
	if _, err := c.CoreV1().ServiceAccounts(RemediatorNamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	expiry := int64((30 * 24 * time.Hour).Seconds())
	var token string
	err := pollUntil(ctx, timeout, nil, func(ctx context.Context) (bool, error) {
		tr, err := c.CoreV1().ServiceAccounts(RemediatorNamespace).CreateToken(ctx, RemediatorServiceAccount,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}},
			metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		token = tr.Status.Token
		return token != "", nil
	})
	if err != nil {
		return "", fmt.Errorf("token for %s/%s: %w", RemediatorNamespace, RemediatorServiceAccount, err)
	}
	return token, nil
}

// RemediatorSubject is the RBAC subject of the remediator's identity.
func RemediatorSubject() rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: RemediatorServiceAccount, Namespace: RemediatorNamespace}
}

// GrantRemediator creates (or replaces) the Role `name` in namespace with
// rules and binds it to the remediator's ServiceAccount, then waits until
// the API server's authorizer sees the grant (checked with a
// SelfSubjectAccessReview as the remediator for the first verb and resource
// of every rule).
func (b *Bed) GrantRemediator(ctx context.Context, namespace, name string, rules ...rbacv1.PolicyRule) error {
	admin, err := b.AdminClient()
	if err != nil {
		return err
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Rules: rules}
	if err := createOrReplace(ctx, func() error {
		_, err := admin.RbacV1().Roles(namespace).Create(ctx, role, metav1.CreateOptions{})
		return err
	}, func() error {
		cur, err := admin.RbacV1().Roles(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Rules = rules
		_, err = admin.RbacV1().Roles(namespace).Update(ctx, cur, metav1.UpdateOptions{})
		return err
	}); err != nil {
		return fmt.Errorf("testbed: role %s/%s: %w", namespace, name, err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{RemediatorSubject()},
	}
	if _, err := admin.RbacV1().RoleBindings(namespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("testbed: rolebinding %s/%s: %w", namespace, name, err)
	}
	return b.waitRemediatorAllowed(ctx, namespace, rules)
}

// GrantRemediatorCluster creates (or replaces) the ClusterRole `name` and a
// ClusterRoleBinding to the remediator's ServiceAccount. Delete both with
// RevokeRemediatorCluster.
func (b *Bed) GrantRemediatorCluster(ctx context.Context, name string, rules ...rbacv1.PolicyRule) error {
	admin, err := b.AdminClient()
	if err != nil {
		return err
	}
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	if err := createOrReplace(ctx, func() error {
		_, err := admin.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{})
		return err
	}, func() error {
		cur, err := admin.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Rules = rules
		_, err = admin.RbacV1().ClusterRoles().Update(ctx, cur, metav1.UpdateOptions{})
		return err
	}); err != nil {
		return fmt.Errorf("testbed: clusterrole %s: %w", name, err)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{RemediatorSubject()},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("testbed: clusterrolebinding %s: %w", name, err)
	}
	return b.waitRemediatorAllowed(ctx, "", rules)
}

// RevokeRemediatorCluster deletes what GrantRemediatorCluster created.
func (b *Bed) RevokeRemediatorCluster(ctx context.Context, name string) error {
	admin, err := b.AdminClient()
	if err != nil {
		return err
	}
	if err := admin.RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err := admin.RbacV1().ClusterRoles().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

func createOrReplace(ctx context.Context, create, replace func() error) error {
	err := create()
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	for range 5 {
		if err = replace(); !apierrors.IsConflict(err) {
			return err
		}
	}
	return err
}

func (b *Bed) waitRemediatorAllowed(ctx context.Context, namespace string, rules []rbacv1.PolicyRule) error {
	rc, err := b.RemediatorClient()
	if err != nil {
		return err
	}
	for _, r := range rules {
		if len(r.Verbs) == 0 || len(r.Resources) == 0 || len(r.NonResourceURLs) > 0 {
			continue
		}
		group := ""
		if len(r.APIGroups) > 0 && r.APIGroups[0] != "*" {
			group = r.APIGroups[0]
		}
		ra := &authorizationv1.ResourceAttributes{Namespace: namespace, Verb: r.Verbs[0], Group: group, Resource: r.Resources[0]}
		if len(r.ResourceNames) > 0 {
			ra.Name = r.ResourceNames[0]
		}
		err := pollUntil(ctx, 30*time.Second, nil, func(ctx context.Context) (bool, error) {
			res, err := rc.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
				&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: ra}},
				metav1.CreateOptions{})
			if err != nil {
				return false, err
			}
			return res.Status.Allowed, nil
		})
		if err != nil {
			return fmt.Errorf("testbed: grant %+v not effective for the remediator: %w", *ra, err)
		}
	}
	return nil
}

// CreateNamespace creates a namespace named from prefix plus a random
// suffix, waits for its default ServiceAccount (so pods can be created at
// once) and returns its name.
func (b *Bed) CreateNamespace(ctx context.Context, prefix string) (string, error) {
	admin, err := b.AdminClient()
	if err != nil {
		return "", err
	}
	ns, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: prefix,
		Labels:       map[string]string{"remediator.testbed/owned": "true"},
	}}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	err = pollUntil(ctx, 30*time.Second, nil, func(ctx context.Context) (bool, error) {
		return serviceAccountExists(ctx, admin, ns.Name, "default")
	})
	if err != nil {
		return ns.Name, fmt.Errorf("testbed: namespace %s has no default ServiceAccount: %w", ns.Name, err)
	}
	return ns.Name, nil
}

// DeleteNamespace deletes a namespace without waiting for finalization.
func (b *Bed) DeleteNamespace(ctx context.Context, name string) error {
	admin, err := b.AdminClient()
	if err != nil {
		return err
	}
	err = admin.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
