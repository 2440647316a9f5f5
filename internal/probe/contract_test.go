package probe

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// evidenceTypes are the evidence struct types by probe name: the contract
// shared with the policy engine (policy.DefaultCatalog declares the same).
var evidenceTypes = map[string]reflect.Type{
	"rolloutHistory":    reflect.TypeFor[RolloutHistoryEvidence](),
	"podStatus":         reflect.TypeFor[PodStatusEvidence](),
	"resources":         reflect.TypeFor[ResourcesEvidence](),
	"errorDistribution": reflect.TypeFor[ErrorDistributionEvidence](),
	"slowEndpoints":     reflect.TypeFor[SlowEndpointsEvidence](),
	"prometheus":        reflect.TypeFor[PrometheusEvidence](),
	"dependencies":      reflect.TypeFor[DependenciesEvidence](),
}

// TestEvidenceCELTags: every exported field of every evidence struct (and of
// the structs it contains) has a `cel` tag equal to its JSON name, and a type
// cel-go native types support. An embedded struct without a JSON name is
// flattened by both, so its own fields are checked instead.
func TestEvidenceCELTags(t *testing.T) {
	var names []string
	for n := range evidenceTypes {
		names = append(names, n)
	}
	sort.Strings(names)
	if got, want := strings.Join(names, " "), strings.Join(Names(), " "); got != want {
		t.Errorf("evidence types for %s, probes are %s", got, want)
	}
	seen := map[reflect.Type]bool{}
	for _, n := range names {
		checkCELTags(t, evidenceTypes[n], evidenceTypes[n].Name(), seen)
		if _, err := json.Marshal(reflect.New(evidenceTypes[n]).Elem().Interface()); err != nil {
			t.Errorf("%s: json: %v", n, err)
		}
	}
}

func checkCELTags(t *testing.T, st reflect.Type, path string, seen map[reflect.Type]bool) {
	t.Helper()
	if seen[st] {
		return
	}
	seen[st] = true
	for i := range st.NumField() {
		f := st.Field(i)
		if !f.IsExported() {
			continue
		}
		jsonName, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && jsonName == "" && f.Type.Kind() == reflect.Struct {
			if _, tagged := f.Tag.Lookup("cel"); tagged {
				t.Errorf("%s.%s: embedded struct has a cel tag; it is flattened", path, f.Name)
			}
			checkCELTags(t, f.Type, path+"."+f.Name, seen)
			continue
		}
		cel, ok := f.Tag.Lookup("cel")
		if !ok || cel == "" || cel != jsonName {
			t.Errorf("%s.%s: cel tag %q, json name %q: want both, equal", path, f.Name, cel, jsonName)
		}
		checkCELType(t, f.Type, path+"."+f.Name, seen)
	}
}

func checkCELType(t *testing.T, ft reflect.Type, path string, seen map[reflect.Type]bool) {
	t.Helper()
	switch ft {
	case reflect.TypeFor[time.Time](), reflect.TypeFor[time.Duration]():
		return
	}
	switch ft.Kind() {
	case reflect.Bool, reflect.Int64, reflect.Float64, reflect.String:
	case reflect.Slice:
		checkCELType(t, ft.Elem(), path+"[]", seen)
	case reflect.Struct:
		checkCELTags(t, ft, path, seen)
	default:
		t.Errorf("%s: type %s is not one the policy engine supports (int64, float64, bool, string, time.Time, time.Duration, slices, structs)", path, ft)
	}
}

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
