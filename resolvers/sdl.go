package resolvers

import (
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
)

// sdlWriter prints schema definitions in the style of schema/*.graphqls:
// one-line descriptions as strings, longer ones as block strings, field
// arguments on their own lines when they have descriptions, a blank line
// between definitions.
type sdlWriter struct {
	b strings.Builder
}

var quoter = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

func (w *sdlWriter) String() string { return w.b.String() }

func (w *sdlWriter) description(indent, s string) {
	if s == "" {
		return
	}
	if !strings.Contains(s, "\n") {
		w.b.WriteString(indent + `"` + quoter.Replace(s) + `"` + "\n")
		return
	}
	w.b.WriteString(indent + `"""` + "\n")
	for line := range strings.SplitSeq(strings.ReplaceAll(s, `"""`, `\"""`), "\n") {
		if line == "" {
			w.b.WriteString("\n")
			continue
		}
		w.b.WriteString(indent + line + "\n")
	}
	w.b.WriteString(indent + `"""` + "\n")
}

func directives(list ast.DirectiveList) string {
	var b strings.Builder
	for _, d := range list {
		b.WriteString(" @" + d.Name)
		if len(d.Arguments) > 0 {
			b.WriteString("(")
			for i, a := range d.Arguments {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(a.Name + ": " + a.Value.String())
			}
			b.WriteString(")")
		}
	}
	return b.String()
}

// schemaExtension prints extend schema with one directive, its arguments
// one per line.
func (w *sdlWriter) schemaExtension(d *ast.Directive) {
	w.b.WriteString("extend schema\n  @" + d.Name + "(\n")
	for _, a := range d.Arguments {
		w.b.WriteString("    " + a.Name + ": " + a.Value.String() + "\n")
	}
	w.b.WriteString("  )\n\n")
}

func (w *sdlWriter) definition(def *ast.Definition, extend bool) {
	if !extend {
		w.description("", def.Description)
	}
	if extend {
		w.b.WriteString("extend ")
	}
	switch def.Kind {
	case ast.Object:
		w.b.WriteString("type ")
	case ast.InputObject:
		w.b.WriteString("input ")
	case ast.Enum:
		w.b.WriteString("enum ")
	case ast.Interface:
		w.b.WriteString("interface ")
	case ast.Union:
		w.b.WriteString("union ")
	case ast.Scalar:
		w.b.WriteString("scalar ")
	}
	w.b.WriteString(def.Name)
	if len(def.Interfaces) > 0 {
		w.b.WriteString(" implements " + strings.Join(def.Interfaces, " & "))
	}
	w.b.WriteString(directives(def.Directives))
	switch def.Kind {
	case ast.Union:
		w.b.WriteString(" = " + strings.Join(def.Types, " | ") + "\n\n")
		return
	case ast.Scalar:
		w.b.WriteString("\n\n")
		return
	case ast.Enum:
		w.b.WriteString(" {\n")
		for _, v := range def.EnumValues {
			w.description("  ", v.Description)
			w.b.WriteString("  " + v.Name + directives(v.Directives) + "\n")
		}
		w.b.WriteString("}\n\n")
		return
	}
	w.b.WriteString(" {\n")
	for _, f := range def.Fields {
		w.description("  ", f.Description)
		w.b.WriteString("  " + f.Name)
		if len(f.Arguments) > 0 {
			w.arguments(f.Arguments)
		}
		w.b.WriteString(": " + f.Type.String())
		if f.DefaultValue != nil {
			w.b.WriteString(" = " + f.DefaultValue.String())
		}
		w.b.WriteString(directives(f.Directives) + "\n")
	}
	w.b.WriteString("}\n\n")
}

func (w *sdlWriter) arguments(args ast.ArgumentDefinitionList) {
	described := false
	for _, a := range args {
		described = described || a.Description != ""
	}
	arg := func(a *ast.ArgumentDefinition) string {
		s := a.Name + ": " + a.Type.String()
		if a.DefaultValue != nil {
			s += " = " + a.DefaultValue.String()
		}
		return s + directives(a.Directives)
	}
	if !described {
		parts := make([]string, len(args))
		for i, a := range args {
			parts[i] = arg(a)
		}
		w.b.WriteString("(" + strings.Join(parts, ", ") + ")")
		return
	}
	w.b.WriteString("(\n")
	for _, a := range args {
		w.description("    ", a.Description)
		w.b.WriteString("    " + arg(a) + "\n")
	}
	w.b.WriteString("  )")
}
