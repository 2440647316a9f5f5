package policy

import (
	"fmt"
	"regexp"
	"strings"
)

// Target is the workload an incident is about. For a podLabel target, Name
// is empty and Pod is set: a probe resolves the pod's owner Deployment.
type Target struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name,omitempty"`
	Pod       string `json:"pod,omitempty"`
}

func (t Target) String() string {
	if t.Name == "" {
		return fmt.Sprintf("%s owning pod %s/%s", t.Kind, t.Namespace, t.Pod)
	}
	return fmt.Sprintf("%s %s/%s", t.Kind, t.Namespace, t.Name)
}

var (
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// ResolveTarget finds the target from an alert's labels. It refuses, with
// the reason, a missing or empty label, a wildcard-like value ("*", ".*",
// anything with regexp or glob characters) and anything that is not a valid
// Kubernetes name: automation must never widen an empty selector to "all".
func (t TargetSpec) ResolveTarget(lbls map[string]string) (Target, error) {
	nsLabel := t.NamespaceLabel
	if nsLabel == "" {
		nsLabel = "namespace"
	}
	ns, err := nameFrom(lbls, nsLabel, "namespace", dns1123Label, 63)
	if err != nil {
		return Target{}, err
	}
	out := Target{Kind: t.Kind, Namespace: ns}
	if t.PodLabel != "" {
		out.Pod, err = nameFrom(lbls, t.PodLabel, "pod name", dns1123Subdomain, 253)
	} else {
		out.Name, err = nameFrom(lbls, t.NameLabel, strings.ToLower(t.Kind)+" name", dns1123Subdomain, 253)
	}
	if err != nil {
		return Target{}, err
	}
	return out, nil
}

// ResolveTarget resolves the policy's target from labels.
func (p *Policy) ResolveTarget(lbls map[string]string) (Target, error) {
	return p.Target.ResolveTarget(lbls)
}

func nameFrom(lbls map[string]string, label, what string, re *regexp.Regexp, maxLen int) (string, error) {
	if label == "" {
		return "", fmt.Errorf("target refused: the policy names no label for the %s", what)
	}
	v, ok := lbls[label]
	switch {
	case !ok:
		return "", fmt.Errorf("target refused: label %q (the %s) is missing", label, what)
	case strings.TrimSpace(v) == "":
		return "", fmt.Errorf("target refused: label %q (the %s) is empty", label, what)
	case strings.ContainsAny(v, "*?[]|^$+(){}\\"):
		return "", fmt.Errorf("target refused: label %q (the %s) is a wildcard or pattern %q, not one name", label, what, v)
	case len(v) > maxLen || !re.MatchString(v):
		return "", fmt.Errorf("target refused: label %q (the %s) value %q is not a valid Kubernetes name", label, what, v)
	}
	return v, nil
}
