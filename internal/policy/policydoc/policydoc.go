// Package policydoc generates the reference part of docs/policies.md from
// the sources the service itself uses: the policy file schema
// (policy.Schema, from the Go types), the probe and action catalog
// (policy.DefaultCatalog), the evidence types of internal/probe (by
// reflection, with their CEL names and types), and the Kubernetes
// permissions each probe and action declares (what `remediator rbac` turns
// into deploy/base/rbac.yaml). Defaults that the schema does not carry and
// one line per evidence field are kept here, in notes.go, and a test keeps
// them complete.
//
// `remediator policy docs` prints the reference; with --write FILE it
// replaces the text between Begin and End in FILE. A test fails while
// docs/policies.md is stale (make docs regenerates it).
package policydoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/invopop/jsonschema"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/probe"
)

// The markers around the generated part of docs/policies.md.
const (
	Begin = "<!-- BEGIN GENERATED policy reference: `make docs` (remediator policy docs --write docs/policies.md); do not edit by hand -->"
	End   = "<!-- END GENERATED policy reference -->"
)

// Field is one field of a policy file.
type Field struct {
	Path     string // e.g. guards.cooldown, diagnosis[].probe
	Type     string // e.g. string, integer ≥ 0, list of objects
	Required bool
	Default  string
	Doc      string
}

// Fields walks the policy JSON Schema in file order.
func Fields() ([]Field, error) {
	b, err := policy.Schema()
	if err != nil {
		return nil, err
	}
	var s jsonschema.Schema
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("policy schema: %w", err)
	}
	goTypes := map[string]reflect.Type{}
	goFields("", reflect.TypeFor[policy.Policy](), goTypes)
	var out []Field
	var walk func(prefix string, s *jsonschema.Schema)
	walk = func(prefix string, s *jsonschema.Schema) {
		if s.Properties == nil {
			return
		}
		req := map[string]bool{}
		for _, r := range s.Required {
			req[r] = true
		}
		for p := s.Properties.Oldest(); p != nil; p = p.Next() {
			path, sub := prefix+p.Key, p.Value
			f := Field{Path: path, Type: typeOf(sub, goTypes[path]), Required: req[p.Key], Doc: sub.Description}
			if f.Doc == "" {
				f.Doc = fieldDocs[path]
			}
			if sub.Default != nil {
				f.Default = fmt.Sprint(sub.Default)
			} else {
				f.Default = fieldDefaults[path]
			}
			out = append(out, f)
			switch {
			case sub.Type == "object":
				walk(path+".", sub)
			case sub.Type == "array" && sub.Items != nil && sub.Items.Type == "object":
				walk(path+"[].", sub.Items)
			}
		}
	}
	walk("", &s)
	return out, nil
}

// goFields maps the yaml paths of a policy file to the Go types of their
// fields, to name the types the schema only knows as strings (durations,
// CEL, matchers).
func goFields(prefix string, t reflect.Type, out map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		out[prefix+name] = f.Type
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
			name += "[]"
		}
		if ft.Kind() == reflect.Struct && ft.PkgPath() == reflect.TypeFor[policy.Policy]().PkgPath() {
			goFields(prefix+name+".", ft, out)
		}
	}
}

func typeOf(s *jsonschema.Schema, gt reflect.Type) string {
	switch gt {
	case reflect.TypeFor[policy.Duration]():
		return "duration (`30s`, `10m`, `1h30m`)"
	case reflect.TypeFor[policy.Expr]():
		return "CEL (bool)"
	case reflect.TypeFor[policy.Params]():
		return "map"
	}
	t := s.Type
	switch t {
	case "array":
		if s.Items != nil {
			var et reflect.Type
			if gt != nil && gt.Kind() == reflect.Slice {
				et = gt.Elem()
			}
			item := typeOf(s.Items, et)
			if et == reflect.TypeFor[policy.Matcher]() {
				item = "matcher"
			}
			if s.Items.Type == "object" {
				item = "objects"
			} else {
				item += "s"
			}
			t = "list of " + item
		}
		if s.MinItems != nil && *s.MinItems > 0 {
			t += fmt.Sprintf(", at least %d", *s.MinItems)
		}
		return t
	case "integer":
		switch {
		case s.Minimum != "" && s.Maximum != "":
			t += " " + string(s.Minimum) + "–" + string(s.Maximum)
		case s.Minimum != "":
			t += " ≥ " + string(s.Minimum)
		case s.Maximum != "":
			t += " ≤ " + string(s.Maximum)
		}
	case "string":
		switch {
		case len(s.Enum) > 0:
			var vs []string
			for _, v := range s.Enum {
				vs = append(vs, fmt.Sprintf("`%v`", v))
			}
			return "one of " + strings.Join(vs, ", ")
		case s.Pattern != "":
			return "string matching `" + s.Pattern + "`"
		}
	}
	return t
}

// ParamRow is one parameter of a probe or action.
type ParamRow struct {
	Name, Type, Doc string
	Required        bool
}

func params(m map[string]policy.ParamSpec) []ParamRow {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		// required first, then by name
		ri, rj := m[names[i]].Required, m[names[j]].Required
		if ri != rj {
			return ri
		}
		return names[i] < names[j]
	})
	var out []ParamRow
	for _, n := range names {
		p := m[n]
		t := string(p.Type)
		switch {
		case p.Min != nil && p.Max != nil:
			t += fmt.Sprintf(" %d–%d", *p.Min, *p.Max)
		case p.Min != nil:
			t += fmt.Sprintf(" ≥ %d", *p.Min)
		case p.Max != nil:
			t += fmt.Sprintf(" ≤ %d", *p.Max)
		}
		out = append(out, ParamRow{Name: n, Type: t, Doc: p.Doc, Required: p.Required})
	}
	return out
}

// EvidenceField is one field of a probe's evidence as CEL sees it.
type EvidenceField struct {
	Path string // CEL path below the step id, e.g. revisions[].image
	Type string // CEL type
	Key  string // notes key: declaring Go type "." CEL name
}

// Evidence lists the CEL-visible fields of an evidence type, nested
// structs (and lists of them) expanded, embedded structs flattened.
func Evidence(t reflect.Type) []EvidenceField {
	var out []EvidenceField
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(prefix, f.Type)
				continue
			}
			name := f.Tag.Get("cel")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			out = append(out, EvidenceField{Path: prefix + name, Type: celType(f.Type), Key: t.Name() + "." + name})
			switch {
			case f.Type.Kind() == reflect.Struct && !isTime(f.Type):
				walk(prefix+name+".", f.Type)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct && !isTime(f.Type.Elem()):
				walk(prefix+name+"[].", f.Type.Elem())
			}
		}
	}
	walk("", t)
	return out
}

func isTime(t reflect.Type) bool {
	return t == reflect.TypeFor[time.Time]() || t == reflect.TypeFor[time.Duration]()
}

func celType(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Time]():
		return "timestamp"
	case t == reflect.TypeFor[time.Duration]():
		return "duration"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "int"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "uint"
	case reflect.Float32, reflect.Float64:
		return "double"
	case reflect.Slice:
		return "list(" + celType(t.Elem()) + ")"
	case reflect.Map:
		return "map(" + celType(t.Key()) + ", " + celType(t.Elem()) + ")"
	case reflect.Struct:
		return "object"
	case reflect.Pointer:
		return celType(t.Elem())
	}
	return t.String()
}

// perms renders declared permissions as "verbs group/resource".
func perms(ps []probe.Permission) string {
	if len(ps) == 0 {
		return ""
	}
	var out []string
	for _, p := range ps {
		g := p.Group
		if g == "" {
			g = "core"
		}
		out = append(out, fmt.Sprintf("`%s` %s/%s", strings.Join(p.Verbs, ", "), g, p.Resource))
	}
	return strings.Join(out, "; ")
}

// Reference renders the generated part of docs/policies.md (without the
// markers), ending in a newline.
func Reference() ([]byte, error) {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	cell := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }
	yes := func(v bool) string {
		if v {
			return "yes"
		}
		return ""
	}
	orDash := func(s string) string {
		if s == "" {
			return "—"
		}
		return s
	}

	fields, err := Fields()
	if err != nil {
		return nil, err
	}
	w("### Fields\n\n")
	w("Every key of a policy file (from the Go types, the same source as\n")
	w("`docs/policy.schema.json`). Unknown keys are load errors. \"Default\" is\n")
	w("what an absent or zero value means.\n\n")
	w("| field | type | required | default | meaning |\n|---|---|---|---|---|\n")
	for _, f := range fields {
		w("| `%s` | %s | %s | %s | %s |\n", f.Path, cell(f.Type), yes(f.Required), cell(orDash(f.Default)), cell(f.Doc))
	}

	cat := policy.DefaultCatalog()
	probes := probe.New(probe.Config{})
	w("\n### Probes\n\n")
	w("A diagnosis step names one of these; its evidence is visible to conditions\n")
	w("under the step's `id` (default: the probe's name). Permissions are what\n")
	w("the probe needs in the target's namespace (granted by\n")
	w("`deploy/base/rbac.yaml`, generated by `remediator rbac`).\n")
	for _, name := range cat.ProbeNames() {
		spec := cat.Probes[name]
		w("\n#### `%s`\n\n%s.\n\n", name, sentence(spec.Doc))
		var needs []probe.Permission
		if n, ok := probes[name].(probe.Needer); ok {
			needs = n.Needs()
		}
		if p := perms(needs); p != "" {
			w("Kubernetes permissions: %s.\n\n", p)
		} else {
			w("Kubernetes permissions: none (it does not read the cluster).\n\n")
		}
		if ps := params(spec.Params); len(ps) > 0 {
			w("| parameter | type | required | meaning |\n|---|---|---|---|\n")
			for _, p := range ps {
				w("| `%s` | %s | %s | %s |\n", p.Name, p.Type, yes(p.Required), cell(p.Doc))
			}
		} else {
			w("Parameters: none.\n")
		}
		w("\nEvidence `%s` (`internal/probe`):\n\n", spec.Result.Name())
		w("| field | CEL type | meaning |\n|---|---|---|\n")
		for _, f := range Evidence(spec.Result) {
			w("| `%s.%s` | %s | %s |\n", name, f.Path, f.Type, cell(evidenceNotes[f.Key]))
		}
	}

	acts := action.New(nil)
	w("\n### Actions\n\n")
	w("A remedy's `action`. Permissions are what the action needs in the\n")
	w("target's namespace; before acting it asks the API server for each\n")
	w("(SelfSubjectAccessReview), so a missing one is a recorded block, never a\n")
	w("half-done change.\n")
	for _, name := range cat.ActionNames() {
		spec := cat.Actions[name]
		w("\n#### `%s`\n\n%s.\n\n", name, sentence(spec.Doc))
		var needs []probe.Permission
		if a, ok := acts[name]; ok {
			needs = a.Needs()
		}
		if p := perms(needs); p != "" {
			w("Kubernetes permissions: %s.\n\n", p)
		} else {
			w("Kubernetes permissions: none (it changes nothing in the cluster).\n\n")
		}
		if ps := params(spec.Params); len(ps) > 0 {
			w("| parameter | type | required | meaning |\n|---|---|---|---|\n")
			for _, p := range ps {
				w("| `%s` | %s | %s | %s |\n", p.Name, p.Type, yes(p.Required), cell(p.Doc))
			}
			if len(spec.OneOf) > 0 {
				var vs []string
				for _, v := range spec.OneOf {
					vs = append(vs, "`"+v+"`")
				}
				w("\nExactly one of %s.\n", strings.Join(vs, ", "))
			}
		} else {
			w("Parameters: none.\n")
		}
	}

	w("\n### Condition variables\n\n")
	w("Besides one variable per diagnosis step (its evidence, above), every\n")
	w("condition sees:\n\n")
	w("| variable | CEL type |\n|---|---|\n")
	for _, f := range Evidence(reflect.TypeFor[policy.Alert]()) {
		w("| `alert.%s` | %s |\n", f.Path, f.Type)
	}
	w("| `labels` | map(string, string): the alert's labels |\n")
	w("| `now` | timestamp: the time of the evaluation |\n")
	return b.Bytes(), nil
}

// sentence capitalizes s and drops a final period.
func sentence(s string) string {
	s = strings.TrimSuffix(s, ".")
	if strings.HasPrefix(s, "kubectl ") {
		return "What `" + s + "` does"
	}
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// Splice returns doc with the text between its Begin and End marker lines
// replaced by ref.
func Splice(doc, ref []byte) ([]byte, error) {
	s := string(doc)
	i := strings.Index(s, Begin)
	j := strings.Index(s, End)
	if i < 0 || j < 0 || j < i {
		return nil, errors.New("policydoc: markers not found: the file needs a line " + Begin + " and, after it, a line " + End)
	}
	if strings.Count(s, Begin) != 1 || strings.Count(s, End) != 1 {
		return nil, errors.New("policydoc: each marker must occur exactly once")
	}
	var b strings.Builder
	b.WriteString(s[:i+len(Begin)])
	b.WriteString("\n\n")
	b.Write(ref)
	b.WriteString("\n")
	b.WriteString(s[j:])
	return []byte(b.String()), nil
}
