package policy

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
)

// Alert is what conditions see as `alert`.
type Alert struct {
	Status      string            `cel:"status" json:"status"`
	Labels      map[string]string `cel:"labels" json:"labels"`
	Annotations map[string]string `cel:"annotations" json:"annotations"`
	StartsAt    time.Time         `cel:"startsAt" json:"startsAt"`
}

// costLimit bounds the work of one condition at run time. The shipped
// conditions cost well under 100; comprehensions over probe lists stay far
// below this.
const costLimit = 100_000

// reserved are the names a diagnosis id may not take.
var reserved = map[string]bool{
	"alert": true, "labels": true, "now": true,
	// CEL reserved words and literals
	"as": true, "break": true, "const": true, "continue": true, "else": true, "false": true,
	"for": true, "function": true, "if": true, "import": true, "in": true, "let": true,
	"loop": true, "package": true, "namespace": true, "null": true, "return": true,
	"true": true, "var": true, "void": true, "while": true,
}

func celTypeName(t reflect.Type) string { return t.String() }

// baseEnv is the environment shared by all policies of a catalog: the
// native types and the alert variables. Each policy extends it with one
// variable per diagnosis step.
func baseEnv(cat Catalog) (*cel.Env, error) {
	args := []any{reflect.TypeFor[Alert]()}
	for _, name := range cat.ProbeNames() {
		args = append(args, cat.Probes[name].Result)
	}
	args = append(args, ext.ParseStructTags(true))
	return cel.NewEnv(
		ext.NativeTypes(args...),
		ext.Strings(),
		cel.Variable("alert", cel.ObjectType(celTypeName(reflect.TypeFor[Alert]()))),
		cel.Variable("labels", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("now", cel.TimestampType),
	)
}

// compile type-checks e in env and prepares its program; errors are
// returned with their positions in the file.
func compile(env *cel.Env, e *Expr, file string) []Error {
	ast, iss := env.Compile(e.Text)
	if iss != nil && iss.Err() != nil {
		var errs []Error
		for _, ce := range iss.Errors() {
			msg := ce.Message
			errs = append(errs, Error{File: file, Pos: e.filePos(ce.Location.Line(), ce.Location.Column()), Msg: "CEL: " + msg})
		}
		return errs
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return []Error{{File: file, Pos: e.Pos, Msg: fmt.Sprintf("CEL: condition must be a bool, but %q is %s", e.Text, ast.OutputType())}}
	}
	prg, err := env.Program(ast, cel.CostLimit(costLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return []Error{{File: file, Pos: e.Pos, Msg: "CEL: " + err.Error()}}
	}
	e.prg = prg
	return nil
}

// filePos maps a position inside the expression (line 1-based, column
// 0-based as CEL gives them) to the file.
func (e *Expr) filePos(line, col int) Pos {
	if line < 1 {
		return e.Pos
	}
	switch e.style {
	case 0: // plain
		if line == 1 {
			return Pos{Line: e.Pos.Line, Column: e.Pos.Column + col}
		}
	case yamlDoubleQuoted, yamlSingleQuoted:
		if line == 1 && !strings.Contains(e.Text, "\\") {
			return Pos{Line: e.Pos.Line, Column: e.Pos.Column + 1 + col}
		}
	case yamlFolded:
		// Folded lines are joined with single spaces: walk them.
		if line == 1 {
			consumed := 0
			for fl := e.Pos.Line + 1; fl-1 < len(e.lines); fl++ {
				text := e.lines[fl-1]
				trimmed := strings.TrimLeft(text, " ")
				indent := len(text) - len(trimmed)
				trimmed = strings.TrimRight(trimmed, " \r")
				if col < consumed+len(trimmed) || fl == len(e.lines) {
					return Pos{Line: fl, Column: indent + 1 + col - consumed}
				}
				consumed += len(trimmed) + 1
			}
		}
	case yamlLiteral:
		// The expression's line n is the file's line Pos.Line+n, indented.
		fl := e.Pos.Line + line
		if fl-1 < len(e.lines) {
			text := e.lines[fl-1]
			indent := len(text) - len(strings.TrimLeft(text, " "))
			return Pos{Line: fl, Column: indent + 1 + col}
		}
	}
	return e.Pos
}
