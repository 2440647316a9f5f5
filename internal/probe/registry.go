package probe

import (
	"net/http"

	rbacv1 "k8s.io/api/rbac/v1"
	"sort"

	"k8s.io/client-go/kubernetes"
)

// Config is what the probes need to reach their sources.
type Config struct {
	Kube                kubernetes.Interface // the remediator's (least-privilege) client
	PrometheusURL       string
	PrometheusTransport http.RoundTripper // optional
}

// New returns every probe, by name, wired to c.
func New(c Config) map[string]Probe {
	ps := []Probe{
		RolloutHistory{Client: c.Kube},
		PodStatus{Client: c.Kube},
		Resources{Client: c.Kube},
		ErrorDistribution{Client: c.Kube},
		SlowEndpoints{Client: c.Kube},
		Prometheus{URL: c.PrometheusURL, RoundTripper: c.PrometheusTransport},
		Dependencies{},
	}
	m := make(map[string]Probe, len(ps))
	for _, p := range ps {
		m[p.Name()] = p
	}
	return m
}

// Names are the probe names, sorted.
func Names() []string {
	var ns []string
	for n := range New(Config{}) {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// AllRules are the RBAC rules every probe together needs in a target
// namespace (plus OwnerNeeds for resolving a pod's Deployment).
func AllRules() []rbacv1.PolicyRule {
	var ps []Probe
	for _, p := range New(Config{}) {
		ps = append(ps, p)
	}
	ps = append(ps, ownerNeeder{})
	return Rules(ps...)
}
