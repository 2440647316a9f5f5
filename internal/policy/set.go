package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/prometheus/alertmanager/pkg/labels"
)

// Set is a loaded, checked policy set. It is immutable and safe for
// concurrent use.
type Set struct {
	policies []*Policy // sorted by name
}

func newSet(ps []*Policy) *Set {
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	return &Set{policies: ps}
}

// Policies are the set's policies, sorted by name.
func (s *Set) Policies() []*Policy { return s.policies }

// Get returns the named policy or nil.
func (s *Set) Get(name string) *Policy {
	for _, p := range s.policies {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Matches reports whether all of the policy's matchers match the labels.
// A label that is absent matches as the empty string, as in Alertmanager.
func (p *Policy) Matches(lbls map[string]string) bool {
	for _, m := range p.Match {
		if !m.Matches(lbls[m.Name]) {
			return false
		}
	}
	return true
}

// Match finds the policy governing an alert with these labels. When several
// match, the most specific wins: the one with the most matchers, then the
// one with the most equality (=) matchers, then the first by name; the
// others are named in why.
func (s *Set) Match(lbls map[string]string) (*Policy, bool, string) {
	var hits []*Policy
	for _, p := range s.policies {
		if p.Matches(lbls) {
			hits = append(hits, p)
		}
	}
	if len(hits) == 0 {
		return nil, false, fmt.Sprintf("no policy matches alertname=%q (%d policies loaded)", lbls["alertname"], len(s.policies))
	}
	sort.SliceStable(hits, func(i, j int) bool {
		a, b := hits[i], hits[j]
		if len(a.Match) != len(b.Match) {
			return len(a.Match) > len(b.Match)
		}
		if ea, eb := a.equalities(), b.equalities(); ea != eb {
			return ea > eb
		}
		return a.Name < b.Name
	})
	win := hits[0]
	why := fmt.Sprintf("policy %s matches (%d matchers)", win.Name, len(win.Match))
	if len(hits) > 1 {
		var others []string
		for _, o := range hits[1:] {
			others = append(others, fmt.Sprintf("%s (%d matchers)", o.Name, len(o.Match)))
		}
		why += "; also matched, less specific: " + strings.Join(others, ", ")
	}
	return win, true, why
}

func (p *Policy) equalities() int {
	n := 0
	for _, m := range p.Match {
		if m.Type == labels.MatchEqual {
			n++
		}
	}
	return n
}
