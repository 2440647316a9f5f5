package slack

import (
	"sort"

	"github.com/remediator/remediator/internal/notify"
)

// Routes choose the channels of a notification (channel names such as
// "#incidents" or ids such as "C0123"):
//
//   - the namespace's channel (ByNamespace, by the target's namespace, else
//     the alert's) and every label route that matches the alert's labels
//     (ByLabel: label → value → channel);
//   - DefaultChannel when none of those matched;
//   - plus the priority's channel (ByPriority) once the priority is known:
//     that channel gets the incident from its plan on, its root message then
//     showing the incident as it stands.
//
// So an incident's base channels never change over its life, and each
// channel gets one root message.
type Routes struct {
	Default     string
	ByPriority  map[string]string
	ByNamespace map[string]string
	ByLabel     map[string]map[string]string
}

// Channels returns the channels of n, without duplicates, in a stable
// order; nil when nothing is configured for it.
func (r Routes) Channels(n notify.Notification) []string {
	var out []string
	seen := map[string]bool{}
	add := func(ch string) {
		if ch != "" && !seen[ch] {
			seen[ch] = true
			out = append(out, ch)
		}
	}
	ns := n.Namespace
	if ns == "" {
		ns = n.Alert.Labels["namespace"]
	}
	if ns != "" {
		add(r.ByNamespace[ns])
	}
	labels := make([]string, 0, len(r.ByLabel))
	for l := range r.ByLabel {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		if v, ok := n.Alert.Labels[l]; ok {
			add(r.ByLabel[l][v])
		}
	}
	if len(out) == 0 {
		add(r.Default)
	}
	if n.Priority != "" {
		add(r.ByPriority[n.Priority])
	}
	return out
}
