package registrator

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/template/parse"
)

// tagTemplate is one -tags template: Go template syntax, evaluated here rather than by text/template.
// Linking text/template's executor (its field lookup calls reflect.Value.MethodByName) makes the
// linker keep every exported method of every type the daemon can reach: 4 MB of binary and 3.7 MB
// of resident memory on every host, for templates that only ever read TagData's strings and labels.
//
// What a tag template can use: text, {{.Field}}, {{.Labels.key}} (an error when the label is
// missing), comments, variables, pipelines, parentheses, if/else, with/else, range over .Labels
// (sorted by key) with break and continue, and the functions and, or, not, eq, ne, lt, le, gt, ge,
// len, index, print, printf and println. Anything else fails at parse time, so at the daemon's start.
type tagTemplate struct {
	Root *parse.ListNode
}

// tagFuncs names the functions a tag template may call, for the parser (call implements them).
var tagFuncs = map[string]any{}

func init() {
	for _, name := range []string{"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "print", "printf", "println"} {
		tagFuncs[name] = name
	}
}

func parseTagTemplate(name, src string) (*tagTemplate, error) {
	trees, err := parse.Parse(name, src, "{{", "}}", tagFuncs)
	if err != nil {
		return nil, err
	}
	if len(trees) != 1 || trees[name] == nil {
		return nil, errors.New("{{define}} and {{block}} are not supported in tag templates")
	}
	t := &tagTemplate{Root: trees[name].Root}
	if err := check(t.Root); err != nil {
		return nil, err
	}
	return t, nil
}

// check rejects what the evaluator does not support, and fields TagData does not have where dot is
// still the TagData (inside with and range, dot is something else: that is checked when it runs).
func check(n parse.Node) error {
	var err error
	fail := func(e error) {
		if err == nil {
			err = e
		}
	}
	var visit func(n parse.Node, root bool)
	visit = func(n parse.Node, root bool) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					visit(c, root)
				}
			}
		case *parse.ActionNode:
			visit(n.Pipe, root)
		case *parse.PipeNode:
			if n != nil {
				for _, c := range n.Cmds {
					visit(c, root)
				}
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				visit(a, root)
			}
		case *parse.ChainNode:
			visit(n.Node, root)
		case *parse.IfNode:
			visit(n.Pipe, root)
			visit(n.List, root)
			visit(n.ElseList, root)
		case *parse.WithNode:
			visit(n.Pipe, root)
			visit(n.List, false)
			visit(n.ElseList, root)
		case *parse.RangeNode:
			visit(n.Pipe, root)
			visit(n.List, false)
			visit(n.ElseList, root)
		case *parse.TemplateNode:
			fail(errors.New("{{template}} is not supported in tag templates"))
		case *parse.NilNode:
			fail(errors.New("nil is not supported in tag templates"))
		case *parse.NumberNode:
			if _, e := number(n); e != nil {
				fail(e)
			}
		case *parse.FieldNode:
			if _, ok := (TagData{}).field(n.Ident[0]); root && !ok {
				fail(fmt.Errorf("can't evaluate field %s in type registrator.TagData", n.Ident[0]))
			}
		}
	}
	visit(n, true)
	return err
}

// field is a TagData field by name.
func (d TagData) field(name string) (any, bool) {
	switch name {
	case "ID":
		return d.ID, true
	case "Name":
		return d.Name, true
	case "Image":
		return d.Image, true
	case "Labels":
		return d.Labels, true
	case "Cluster":
		return d.Cluster, true
	case "TaskARN":
		return d.TaskARN, true
	case "TaskID":
		return d.TaskID, true
	case "Family":
		return d.Family, true
	case "Revision":
		return d.Revision, true
	case "Service":
		return d.Service, true
	case "Container":
		return d.Container, true
	case "AvailabilityZone":
		return d.AvailabilityZone, true
	case "InstanceID":
		return d.InstanceID, true
	case "Region":
		return d.Region, true
	}
	return nil, false
}

// Execute writes the template's output for d.
func (t *tagTemplate) Execute(w io.Writer, d TagData) error {
	s := &state{w: w, vars: []variable{{"$", d}}}
	err := s.list(t.Root, d)
	if errors.Is(err, errBreak) || errors.Is(err, errContinue) {
		return nil
	}
	return err
}

type variable struct {
	name  string
	value any
}

type state struct {
	w    io.Writer
	vars []variable
}

var (
	errBreak    = errors.New("break")
	errContinue = errors.New("continue")
)

func (s *state) list(l *parse.ListNode, dot any) error {
	if l == nil {
		return nil
	}
	for _, n := range l.Nodes {
		if err := s.node(n, dot); err != nil {
			return err
		}
	}
	return nil
}

func (s *state) node(n parse.Node, dot any) error {
	switch n := n.(type) {
	case *parse.TextNode:
		_, err := s.w.Write(n.Text)
		return err
	case *parse.CommentNode:
		return nil
	case *parse.ActionNode:
		v, err := s.pipe(n.Pipe, dot)
		if err != nil || len(n.Pipe.Decl) > 0 {
			return err
		}
		_, err = fmt.Fprint(s.w, printable(v))
		return err
	case *parse.IfNode, *parse.WithNode:
		b := branch(n)
		mark := len(s.vars)
		defer func() { s.vars = s.vars[:mark] }()
		v, err := s.pipe(b.Pipe, dot)
		if err != nil {
			return err
		}
		if !truth(v) {
			return s.list(b.ElseList, dot)
		}
		if _, with := n.(*parse.WithNode); with {
			dot = v
		}
		return s.list(b.List, dot)
	case *parse.RangeNode:
		return s.rangeLabels(n, dot)
	case *parse.BreakNode:
		return errBreak
	case *parse.ContinueNode:
		return errContinue
	}
	return fmt.Errorf("%s is not supported in tag templates", n)
}

func branch(n parse.Node) *parse.BranchNode {
	if i, ok := n.(*parse.IfNode); ok {
		return &i.BranchNode
	}
	return &n.(*parse.WithNode).BranchNode
}

// rangeLabels ranges over labels in key order (or over an integer, 0 to n-1), with text/template's
// variables: declared ones hold the map in {{else}}, then each key and value; assigned ones keep the
// last key and value after the loop.
func (s *state) rangeLabels(n *parse.RangeNode, dot any) error {
	outer := len(s.vars)
	defer func() { s.vars = s.vars[:outer] }()
	v, err := s.pipe(n.Pipe, dot)
	if err != nil {
		return err
	}
	mark := len(s.vars)
	one := func(index, elem any) error {
		defer func() { s.vars = s.vars[:mark] }()
		decl := n.Pipe.Decl
		switch {
		case n.Pipe.IsAssign && len(decl) == 1:
			s.set(decl[0].Ident[0], elem)
		case n.Pipe.IsAssign && len(decl) == 2:
			s.set(decl[0].Ident[0], index)
			s.set(decl[1].Ident[0], elem)
		case len(decl) == 1:
			s.vars[mark-1].value = elem
		case len(decl) == 2:
			s.vars[mark-1].value, s.vars[mark-2].value = elem, index
		}
		return s.list(n.List, elem)
	}
	var keys []any
	var elems []any
	switch x := v.(type) {
	case map[string]string:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			keys, elems = append(keys, k), append(elems, x[k])
		}
	case int:
		if len(n.Pipe.Decl) > 1 {
			return fmt.Errorf("can't use %d to iterate over more than one variable", x)
		}
		for i := range x {
			keys, elems = append(keys, i), append(elems, i)
		}
	default:
		return fmt.Errorf("range can't iterate over %v", printable(v))
	}
	for i := range keys {
		err := one(keys[i], elems[i])
		switch {
		case errors.Is(err, errBreak):
			return nil
		case errors.Is(err, errContinue):
		case err != nil:
			return err
		}
	}
	if len(keys) == 0 {
		return s.list(n.ElseList, dot)
	}
	return nil
}

// set assigns to the innermost variable of that name.
func (s *state) set(name string, v any) {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			s.vars[i].value = v
			return
		}
	}
}

func (s *state) pipe(p *parse.PipeNode, dot any) (any, error) {
	if p == nil {
		return nil, errors.New("missing value")
	}
	var v any
	for i, c := range p.Cmds {
		var final []any
		if i > 0 {
			final = []any{v}
		}
		var err error
		if v, err = s.command(c, dot, final); err != nil {
			return nil, err
		}
	}
	for _, d := range p.Decl {
		if p.IsAssign {
			s.set(d.Ident[0], v)
			continue
		}
		s.vars = append(s.vars, variable{d.Ident[0], v})
	}
	return v, nil
}

// command evaluates one command of a pipeline; final is the previous command's result, passed as
// the last argument.
func (s *state) command(c *parse.CommandNode, dot any, final []any) (any, error) {
	if id, ok := c.Args[0].(*parse.IdentifierNode); ok {
		if id.Ident == "and" || id.Ident == "or" {
			return s.andOr(id.Ident == "or", c.Args[1:], dot, final)
		}
		var args []any
		for _, a := range c.Args[1:] {
			v, err := s.arg(a, dot)
			if err != nil {
				return nil, err
			}
			args = append(args, v)
		}
		return call(id.Ident, append(args, final...))
	}
	if len(c.Args) > 1 || len(final) > 0 {
		return nil, fmt.Errorf("can't give argument to non-function %s", c.Args[0])
	}
	return s.arg(c.Args[0], dot)
}

// andOr evaluates and's or or's arguments in order and stops at the first that decides, as
// text/template does: a later argument is never evaluated, so it cannot fail.
func (s *state) andOr(or bool, args []parse.Node, dot any, final []any) (any, error) {
	if len(args)+len(final) == 0 {
		return nil, fmt.Errorf("wrong number of args for and/or: want at least 1 got 0")
	}
	var v any
	for _, a := range args {
		var err error
		if v, err = s.arg(a, dot); err != nil {
			return nil, err
		}
		if truth(v) == or {
			return v, nil
		}
	}
	if len(final) > 0 {
		return final[0], nil
	}
	return v, nil
}

func (s *state) arg(n parse.Node, dot any) (any, error) {
	switch n := n.(type) {
	case *parse.DotNode:
		return dot, nil
	case *parse.FieldNode:
		return fields(dot, n.Ident)
	case *parse.VariableNode:
		v, err := s.variable(n.Ident[0])
		if err != nil {
			return nil, err
		}
		return fields(v, n.Ident[1:])
	case *parse.ChainNode:
		v, err := s.arg(n.Node, dot)
		if err != nil {
			return nil, err
		}
		return fields(v, n.Field)
	case *parse.PipeNode:
		return s.pipe(n, dot)
	case *parse.StringNode:
		return n.Text, nil
	case *parse.BoolNode:
		return n.True, nil
	case *parse.NumberNode:
		return number(n)
	case *parse.NilNode:
		return nil, errors.New("nil is not a command")
	case *parse.IdentifierNode:
		return call(n.Ident, nil)
	}
	return nil, fmt.Errorf("can't evaluate %s", n)
}

// number is a constant as text/template types it: a float when written like one, else an int.
func number(n *parse.NumberNode) (any, error) {
	switch {
	case n.IsComplex:
		return nil, fmt.Errorf("complex number %s is not supported in tag templates", n.Text)
	case n.IsFloat && strings.ContainsAny(n.Text, ".eEpP") && !(len(n.Text) > 2 && n.Text[0] == '0' && strings.ContainsAny(n.Text[1:2], "xX") && !strings.ContainsAny(n.Text, "pP")):
		return n.Float64, nil
	case n.IsInt:
		return int(n.Int64), nil
	}
	return nil, fmt.Errorf("%s overflows int", n.Text)
}

func (s *state) variable(name string) (any, error) {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			return s.vars[i].value, nil
		}
	}
	return nil, fmt.Errorf("undefined variable: %s", name)
}

// fields follows .A.B from v: TagData fields, then label keys (missing ones are an error, as with
// text/template's missingkey=error).
func fields(v any, idents []string) (any, error) {
	for _, id := range idents {
		switch x := v.(type) {
		case TagData:
			f, ok := x.field(id)
			if !ok {
				return nil, fmt.Errorf("can't evaluate field %s in type registrator.TagData", id)
			}
			v = f
		case map[string]string:
			val, ok := x[id]
			if !ok {
				return nil, fmt.Errorf("map has no entry for key %q", id)
			}
			v = val
		default:
			return nil, fmt.Errorf("can't evaluate field %s in type %T", id, v)
		}
	}
	return v, nil
}
