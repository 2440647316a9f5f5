package policy

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A strict decoder over yaml.v3 nodes. yaml.v3's own strict mode reports
// only lines and stops at the first document error of some kinds; this one
// reports line:column for every error and keeps going.

// nodeDecoder is implemented by the types that decode themselves.
type nodeDecoder interface{ decodeYAML(n *yaml.Node) error }

// Error is one problem in a policy file.
type Error struct {
	File string
	Pos  Pos
	Msg  string
}

func (e Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Pos.Line, e.Pos.Column, e.Msg)
}

// Errors are all problems found by Load, sorted by file and position.
type Errors []Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		if a.Pos.Column != b.Pos.Column {
			return a.Pos.Column < b.Pos.Column
		}
		return a.Msg < b.Msg
	})
}

type decoder struct {
	file string
	errs *Errors
}

func (d *decoder) errorf(p Pos, format string, args ...any) {
	*d.errs = append(*d.errs, Error{File: d.file, Pos: p, Msg: fmt.Sprintf(format, args...)})
}

var (
	nodeDecoderType = reflect.TypeFor[nodeDecoder]()
	posType         = reflect.TypeFor[Pos]()
	keysType        = reflect.TypeFor[map[string]Pos]()
	nodePtrType     = reflect.TypeFor[*yaml.Node]()
)

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		t := strings.TrimPrefix(n.Tag, "!!")
		switch t {
		case "str":
			t = "string"
		case "int":
			t = "integer"
		case "bool":
			t = "boolean"
		case "float":
			t = "number"
		}
		return fmt.Sprintf("%s %q", t, n.Value)
	}
	return "nothing"
}

// decode fills v from n, recording every error and going on.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, what string) {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.errorf(posOf(n), "%s: YAML anchors and aliases are not supported in policy files", what)
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(nodeDecoderType) {
		if err := v.Addr().Interface().(nodeDecoder).decodeYAML(n); err != nil {
			d.errorf(posOf(n), "%s: %v", what, err)
		}
		return
	}
	if v.Type() == nodePtrType {
		v.Set(reflect.ValueOf(n))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, what)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(posOf(n), "%s: want a list, got %s", what, describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", what, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(posOf(n), "%s: want a mapping, got %s", what, describe(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				d.errorf(posOf(k), "%s: keys must be strings, got %s", what, describe(k))
				continue
			}
			if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				d.errorf(posOf(k), "%s: duplicate key %q", what, k.Value)
				continue
			}
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, e, what+"."+k.Value)
			m.SetMapIndex(reflect.ValueOf(k.Value), e)
		}
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			d.errorf(posOf(n), "%s: want a string, got %s (quote it if it is meant as a string)", what, describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			d.errorf(posOf(n), "%s: want an integer, got %s", what, describe(n))
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil {
			d.errorf(posOf(n), "%s: bad integer %q", what, n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.errorf(posOf(n), "%s: want true or false, got %s", what, describe(n))
			return
		}
		v.SetBool(n.Value == "true" || n.Value == "True" || n.Value == "TRUE")
	default:
		d.errorf(posOf(n), "%s: cannot decode into %s", what, v.Type())
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, what string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(posOf(n), "%s: want a mapping, got %s", or(what, "policy"), describe(n))
		return
	}
	t := v.Type()
	fields := map[string]int{}
	var known []string
	var keys map[string]Pos
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type == posType && f.Name == "Pos" {
			v.Field(i).Set(reflect.ValueOf(posOf(n)))
			continue
		}
		if f.Type == keysType && f.Name == "Keys" {
			keys = map[string]Pos{}
			v.Field(i).Set(reflect.ValueOf(keys))
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		fields[tag] = i
		known = append(known, tag)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(posOf(k), "%s: keys must be strings, got %s", or(what, "policy"), describe(k))
			continue
		}
		idx, ok := fields[k.Value]
		if !ok {
			d.errorf(posOf(k), "%s: unknown field %q (known fields: %s)", or(what, "policy"), k.Value, strings.Join(known, ", "))
			continue
		}
		if seen[k.Value] {
			d.errorf(posOf(k), "%s: duplicate field %q", or(what, "policy"), k.Value)
			continue
		}
		seen[k.Value] = true
		if keys != nil {
			keys[k.Value] = posOf(val)
		}
		if val.Kind == yaml.ScalarNode && val.Tag == "!!null" {
			continue // "field:" with nothing is the zero value
		}
		d.decode(val, v.Field(idx), join(what, k.Value))
	}
}

func join(what, field string) string {
	if what == "" {
		return field
	}
	return what + "." + field
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
