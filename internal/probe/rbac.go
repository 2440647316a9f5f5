package probe

import (
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// Permission is one Kubernetes permission a probe needs in the target's
// namespace. Resource may name a subresource ("pods/log").
type Permission struct {
	Group    string
	Resource string
	Verbs    []string
}

// PolicyRule is p as an RBAC rule.
func (p Permission) PolicyRule() rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{p.Group}, Resources: []string{p.Resource}, Verbs: append([]string(nil), p.Verbs...)}
}

// Needer is implemented by probes that read the Kubernetes API.
type Needer interface {
	Needs() []Permission
}

// Rules merges the permissions of probes (those implementing Needer) into
// RBAC rules, one per group and resource, sorted, for generating deploy RBAC.
func Rules(probes ...Probe) []rbacv1.PolicyRule {
	var rules []rbacv1.PolicyRule
	for _, p := range probes {
		if n, ok := p.(Needer); ok {
			for _, perm := range n.Needs() {
				rules = append(rules, perm.PolicyRule())
			}
		}
	}
	return MergeRules(rules...)
}

// MergeRules merges rules into one rule per API group and resource, with
// the union of their verbs, sorted by group, resource and verb.
func MergeRules(rules ...rbacv1.PolicyRule) []rbacv1.PolicyRule {
	type key struct{ g, r string }
	verbs := map[key]map[string]bool{}
	for _, rule := range rules {
		for _, g := range rule.APIGroups {
			for _, r := range rule.Resources {
				k := key{g, r}
				if verbs[k] == nil {
					verbs[k] = map[string]bool{}
				}
				for _, v := range rule.Verbs {
					verbs[k][v] = true
				}
			}
		}
	}
	keys := make([]key, 0, len(verbs))
	for k := range verbs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].g != keys[j].g {
			return keys[i].g < keys[j].g
		}
		return keys[i].r < keys[j].r
	})
	out := make([]rbacv1.PolicyRule, 0, len(keys))
	for _, k := range keys {
		vs := make([]string, 0, len(verbs[k]))
		for v := range verbs[k] {
			vs = append(vs, v)
		}
		sort.Strings(vs)
		out = append(out, rbacv1.PolicyRule{APIGroups: []string{k.g}, Resources: []string{k.r}, Verbs: vs})
	}
	return out
}

func (p Permission) String() string {
	g := p.Group
	if g == "" {
		g = "core"
	}
	return strings.Join(p.Verbs, ",") + " " + g + "/" + p.Resource
}

var (
	permDeployGet  = Permission{Group: "apps", Resource: "deployments", Verbs: []string{"get"}}
	permRSList     = Permission{Group: "apps", Resource: "replicasets", Verbs: []string{"list"}}
	permPodsList   = Permission{Group: "", Resource: "pods", Verbs: []string{"list"}}
	permPodLogsGet = Permission{Group: "", Resource: "pods/log", Verbs: []string{"get"}}
	permPodMetrics = Permission{Group: "metrics.k8s.io", Resource: "pods", Verbs: []string{"list"}}
)
