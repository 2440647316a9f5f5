package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"go.yaml.in/yaml/v3"
)

// DefaultProbeTimeout is a step's timeout when the policy gives none;
// MaxProbeTimeout bounds what a policy may give.
const (
	DefaultProbeTimeout = 10 * time.Second
	MaxProbeTimeout     = 5 * time.Minute
)

var (
	nameRe      = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	labelNameRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	identRe     = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	yamlLineRe  = regexp.MustCompile(`line (\d+)`)
)

// Load reads every *.yaml and *.yml file of dir (not recursively), decodes
// and checks each policy against the catalog, and compiles its
// conditions. It returns all problems of all files as Errors, sorted; the
// set is returned only when there are none.
func Load(dir string, cat Catalog) (*Set, error) {
	l, err := NewLoader(cat)
	if err != nil {
		return nil, err
	}
	return l.Load(dir)
}

// Loader loads policy directories against one catalog; it builds the CEL
// environment once, so reloading is cheap. It is safe for concurrent use.
type Loader struct {
	cat  Catalog
	base *cel.Env
}

// NewLoader prepares a loader for the catalog.
func NewLoader(cat Catalog) (*Loader, error) {
	base, err := baseEnv(cat)
	if err != nil {
		return nil, fmt.Errorf("policy: CEL environment: %w", err)
	}
	return &Loader{cat: cat, base: base}, nil
}

// Load is Load with the loader's catalog.
func (l *Loader) Load(dir string) (*Set, error) {
	cat, base := l.cat, l.base
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(files)
	var errs Errors
	var all []*Policy
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, Error{File: f, Pos: Pos{1, 1}, Msg: err.Error()})
			continue
		}
		all = append(all, loadFile(f, data, cat, base, &errs)...)
	}
	first := map[string]*Policy{}
	for _, p := range all {
		if prev, ok := first[p.Name]; ok {
			errs = append(errs, Error{File: p.File, Pos: p.keyPos("name"), Msg: fmt.Sprintf("duplicate policy name %q (first defined at %s:%d:%d)", p.Name, prev.File, prev.keyPos("name").Line, prev.keyPos("name").Column)})
			continue
		}
		first[p.Name] = p
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return newSet(all), nil
}

func (p *Policy) keyPos(k string) Pos {
	if at, ok := p.Keys[k]; ok {
		return at
	}
	return p.Pos
}

func keyPos(keys map[string]Pos, k string, def Pos) Pos {
	if at, ok := keys[k]; ok {
		return at
	}
	return def
}

// loadFile decodes the documents of one file; policies with errors are
// not returned.
func loadFile(file string, data []byte, cat Catalog, base *cel.Env, errs *Errors) []*Policy {
	lines := strings.Split(string(data), "\n")
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*Policy
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line, msg := 1, strings.TrimPrefix(err.Error(), "yaml: ")
			if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
				line, _ = strconv.Atoi(m[1])
				msg = strings.Replace(msg, m[0]+": ", "", 1)
			}
			*errs = append(*errs, Error{File: file, Pos: Pos{line, 1}, Msg: "YAML: " + msg})
			break
		}
		n := &doc
		if n.Kind == yaml.DocumentNode {
			if len(n.Content) == 0 {
				continue
			}
			n = n.Content[0]
		}
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			continue // empty document
		}
		before := len(*errs)
		p := &Policy{File: file}
		d := decoder{file: file, errs: errs}
		d.decodeStruct(n, reflect.ValueOf(p).Elem(), "")
		if len(*errs) > before {
			continue // the checks below would only repeat the damage
		}
		p.check(cat, base, lines, errs)
		if len(*errs) == before {
			out = append(out, p)
		}
	}
	return out
}

func (p *Policy) errorf(at Pos, format string, args ...any) Error {
	return Error{File: p.File, Pos: at, Msg: fmt.Sprintf(format, args...)}
}

// check validates a decoded policy and compiles its conditions.
func (p *Policy) check(cat Catalog, base *cel.Env, lines []string, errs *Errors) {
	add := func(e Error) { *errs = append(*errs, e) }
	if p.APIVersion != APIVersion {
		add(p.errorf(p.keyPos("apiVersion"), "apiVersion must be %q, got %q", APIVersion, p.APIVersion))
	}
	if p.Kind != Kind {
		add(p.errorf(p.keyPos("kind"), "kind must be %q, got %q", Kind, p.Kind))
	}
	if !nameRe.MatchString(p.Name) {
		add(p.errorf(p.keyPos("name"), "name %q must be lower-case letters, digits and dashes", p.Name))
	}
	if len(p.Match) == 0 {
		add(p.errorf(p.keyPos("match"), "match must list at least one matcher (a policy never matches every alert)"))
	}

	t := &p.Target
	tpos := p.keyPos("target")
	if t.Kind != "Deployment" {
		add(p.errorf(keyPos(t.Keys, "kind", tpos), "target.kind must be \"Deployment\", got %q", t.Kind))
	}
	if t.NamespaceLabel == "" {
		t.NamespaceLabel = "namespace"
	}
	if (t.NameLabel == "") == (t.PodLabel == "") {
		add(p.errorf(tpos, "target must give exactly one of nameLabel and podLabel"))
	}
	for _, k := range []string{"namespaceLabel", "nameLabel", "podLabel"} {
		v := map[string]string{"namespaceLabel": t.NamespaceLabel, "nameLabel": t.NameLabel, "podLabel": t.PodLabel}[k]
		if v != "" && !labelNameRe.MatchString(v) {
			add(p.errorf(keyPos(t.Keys, k, tpos), "target.%s %q is not a label name", k, v))
		}
	}

	env := base
	ids := map[string]Pos{}
	for i := range p.Diagnosis {
		s := &p.Diagnosis[i]
		spec, ok := cat.Probes[s.Probe]
		if !ok {
			add(p.errorf(keyPos(s.Keys, "probe", s.Pos), "diagnosis[%d]: unknown probe %q (known: %s)", i, s.Probe, strings.Join(cat.ProbeNames(), ", ")))
			continue
		}
		if s.ID == "" {
			s.ID = s.Probe
		}
		idPos := keyPos(s.Keys, "id", s.Pos)
		switch {
		case !identRe.MatchString(s.ID):
			add(p.errorf(idPos, "diagnosis[%d]: id %q must be an identifier (letters, digits, _)", i, s.ID))
			continue
		case reserved[s.ID]:
			add(p.errorf(idPos, "diagnosis[%d]: id %q is reserved", i, s.ID))
			continue
		}
		if prev, dup := ids[s.ID]; dup {
			add(p.errorf(idPos, "diagnosis[%d]: duplicate id %q (first at line %d); give the step an id of its own", i, s.ID, prev.Line))
			continue
		}
		ids[s.ID] = idPos
		s.result = spec.Result
		if s.Timeout == 0 {
			s.Timeout = Duration(DefaultProbeTimeout)
		} else if time.Duration(s.Timeout) > MaxProbeTimeout {
			add(p.errorf(keyPos(s.Keys, "timeout", s.Pos), "diagnosis[%d]: timeout %s is above the maximum %s", i, time.Duration(s.Timeout), MaxProbeTimeout))
		}
		s.Values = p.checkParams(s.Params, spec.Params, nil, fmt.Sprintf("diagnosis[%d] (probe %s)", i, s.Probe), keyPos(s.Keys, "params", s.Pos), errs)
		var err error
		env, err = env.Extend(cel.Variable(s.ID, cel.ObjectType(celTypeName(spec.Result))))
		if err != nil {
			add(p.errorf(idPos, "diagnosis[%d]: %v", i, err))
		}
	}

	if len(p.Remedies) == 0 {
		add(p.errorf(p.keyPos("remedies"), "remedies must list at least one remedy (use action: escalate for diagnosis-only policies)"))
	}
	names := map[string]bool{}
	for i := range p.Remedies {
		r := &p.Remedies[i]
		if r.Name == "" {
			add(p.errorf(r.Pos, "remedies[%d]: name is required", i))
		} else if names[r.Name] {
			add(p.errorf(keyPos(r.Keys, "name", r.Pos), "remedies[%d]: duplicate remedy name %q", i, r.Name))
		}
		names[r.Name] = true
		spec, ok := cat.Actions[r.Action]
		if !ok {
			add(p.errorf(keyPos(r.Keys, "action", r.Pos), "remedies[%d]: unknown action %q (known: %s)", i, r.Action, strings.Join(cat.ActionNames(), ", ")))
		} else {
			r.Values = p.checkParams(r.Params, spec.Params, spec.OneOf, fmt.Sprintf("remedies[%d] (action %s)", i, r.Action), keyPos(r.Keys, "params", r.Pos), errs)
		}
		if r.When.Text != "" {
			r.When.lines = lines
			*errs = append(*errs, compile(env, &r.When, p.File)...)
		}
	}

	if p.Priority.Default == "" {
		p.Priority.Default = P3
	}
	for i := range p.Priority.Rules {
		pr := &p.Priority.Rules[i]
		if pr.When.Text == "" {
			add(p.errorf(pr.Pos, "priority.rules[%d]: when is required", i))
			continue
		}
		if pr.Priority == "" {
			add(p.errorf(pr.Pos, "priority.rules[%d]: priority is required", i))
		}
		pr.When.lines = lines
		*errs = append(*errs, compile(env, &pr.When, p.File)...)
	}

	g := &p.Guards
	gpos := p.keyPos("guards")
	if g.Mode != "" && g.Mode != "dry-run" && g.Mode != "enforce" {
		add(p.errorf(keyPos(g.Keys, "mode", gpos), "guards.mode must be dry-run or enforce, got %q", g.Mode))
	}
	if g.Approval != "" && g.Approval != "required" && g.Approval != "none" {
		add(p.errorf(keyPos(g.Keys, "approval", gpos), "guards.approval must be required or none, got %q", g.Approval))
	}
	for k, v := range map[string]int{"maxActionsPerHour": g.MaxActionsPerHour, "maxReplicas": g.MaxReplicas, "circuitBreaker": g.CircuitBreaker} {
		if v < 0 {
			add(p.errorf(keyPos(g.Keys, k, gpos), "guards.%s must not be negative, got %d", k, v))
		}
	}
	if g.MinHealthyPercent < 0 || g.MinHealthyPercent > 100 {
		add(p.errorf(keyPos(g.Keys, "minHealthyPercent", gpos), "guards.minHealthyPercent must be between 0 and 100, got %d", g.MinHealthyPercent))
	}
	p.env = env
}

// checkParams validates params against specs and returns their Go values.
func (p *Policy) checkParams(params Params, specs map[string]ParamSpec, oneOf []string, what string, at Pos, errs *Errors) map[string]any {
	add := func(e Error) { *errs = append(*errs, e) }
	vals := map[string]any{}
	for _, k := range sortedKeys(params) {
		n := params[k]
		spec, ok := specs[k]
		if !ok {
			known := "none"
			if len(specs) > 0 {
				known = strings.Join(sortedKeys(specs), ", ")
			}
			add(p.errorf(posOf(n), "%s: unknown parameter %q (known: %s)", what, k, known))
			continue
		}
		v, err := paramValue(n, spec)
		if err != nil {
			add(p.errorf(posOf(n), "%s: parameter %q: %v", what, k, err))
			continue
		}
		vals[k] = v
	}
	for _, k := range sortedKeys(specs) {
		if _, given := params[k]; specs[k].Required && !given {
			add(p.errorf(at, "%s: missing required parameter %q", what, k))
		}
	}
	if len(oneOf) > 0 {
		given := 0
		for _, k := range oneOf {
			if _, ok := params[k]; ok {
				given++
			}
		}
		if given != 1 {
			add(p.errorf(at, "%s: give exactly one of %s", what, strings.Join(oneOf, ", ")))
		}
	}
	return vals
}

func paramValue(n *yaml.Node, spec ParamSpec) (any, error) {
	scalar := func(tag string) bool { return n.Kind == yaml.ScalarNode && n.Tag == tag }
	switch spec.Type {
	case String:
		if !scalar("!!str") {
			return nil, fmt.Errorf("want a string, got %s", describe(n))
		}
		return n.Value, nil
	case Int:
		if !scalar("!!int") {
			return nil, fmt.Errorf("want an integer, got %s", describe(n))
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil {
			return nil, fmt.Errorf("bad integer %q", n.Value)
		}
		if spec.Min != nil && i < *spec.Min {
			return nil, fmt.Errorf("%d is below the minimum %d", i, *spec.Min)
		}
		if spec.Max != nil && i > *spec.Max {
			return nil, fmt.Errorf("%d is above the maximum %d", i, *spec.Max)
		}
		return i, nil
	case DurationP:
		var d Duration
		if err := d.decodeYAML(n); err != nil {
			return nil, err
		}
		return time.Duration(d), nil
	case Bool:
		if !scalar("!!bool") {
			return nil, fmt.Errorf("want true or false, got %s", describe(n))
		}
		return strings.EqualFold(n.Value, "true"), nil
	case StringList:
		if n.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("want a list of strings, got %s", describe(n))
		}
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Tag != "!!str" {
				return nil, fmt.Errorf("want a list of strings, got %s in it", describe(c))
			}
			out = append(out, c.Value)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported parameter type %q", spec.Type)
}
