package probe

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestFieldsContract pins the CEL-facing names and types shared with the
// policy engine.
func TestFieldsContract(t *testing.T) {
	now := time.Now()
	tests := []struct {
		ev   Evidence
		want map[string]string // field → Go type
	}{
		{RolloutHistoryEvidence{Revisions: []Revision{{Revision: 1, CreatedAt: now}}}, map[string]string{
			"revisions": "[]interface {}", "currentRevision": "int64", "newestRolloutAge": "time.Duration", "inProgress": "bool"}},
		{PodStatusEvidence{Pods: []PodInfo{{}}}, map[string]string{
			"ready": "int64", "total": "int64", "restarts": "int64", "oomKilled": "int64", "crashLooping": "int64", "pods": "[]interface {}"}},
		{ResourcesEvidence{}, map[string]string{
			"available": "bool", "reason": "string", "cpuNearLimitPercent": "int64", "memoryNearLimitPercent": "int64", "containers": "[]interface {}"}},
		{ErrorDistributionEvidence{}, map[string]string{"total": "int64", "top": "[]interface {}"}},
		{SlowEndpointsEvidence{}, map[string]string{"top": "[]interface {}"}},
		{PrometheusEvidence{}, map[string]string{
			"value": "float64", "available": "bool", "samples": "int64", "first": "float64", "last": "float64", "slopePerMinute": "float64"}},
		{DependenciesEvidence{}, map[string]string{"allReachable": "bool", "unreachable": "[]interface {}", "checks": "[]interface {}"}},
	}
	for _, tt := range tests {
		f := tt.ev.Fields()
		var bad []string
		for k, typ := range tt.want {
			v, ok := f[k]
			if got := typeName(v); !ok || got != typ {
				bad = append(bad, k+": "+got+" want "+typ)
			}
		}
		sort.Strings(bad)
		if len(bad) > 0 {
			t.Errorf("%T: %s", tt.ev, strings.Join(bad, "; "))
		}
		if _, err := json.Marshal(tt.ev); err != nil {
			t.Errorf("%T: json: %v", tt.ev, err)
		}
	}
	f := RolloutHistoryEvidence{Revisions: []Revision{{Revision: 1, CreatedAt: now}}}.Fields()
	rev := f["revisions"].([]any)[0].(map[string]any)
	if _, ok := rev["createdAt"].(time.Time); !ok || rev["revision"] != int64(1) {
		t.Errorf("revision fields: %v", rev)
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

func TestRegistry(t *testing.T) {
	want := "dependencies errorDistribution podStatus prometheus resources rolloutHistory slowEndpoints"
	if got := strings.Join(Names(), " "); got != want {
		t.Errorf("Names() = %s", got)
	}
	var got []string
	for _, r := range AllRules() {
		got = append(got, r.APIGroups[0]+"/"+r.Resources[0]+":"+strings.Join(r.Verbs, ","))
	}
	wantRules := "/pods:get,list /pods/log:get apps/deployments:get apps/replicasets:get,list metrics.k8s.io/pods:list"
	if strings.Join(got, " ") != wantRules {
		t.Errorf("AllRules:\n got %s\nwant %s", strings.Join(got, " "), wantRules)
	}
}
