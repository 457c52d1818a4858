package tmpl

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"text/template/parse"
)

// Template is a compiled template over data of type T.
type Template[T any] struct {
	c *compiled
}

// Options are what a template may call, and how it treats a missing map key.
type Options struct {
	// Funcs are the functions the template may call, by name (see Builtins and GliderlabsFuncs).
	Funcs map[string]*Func
	// Refuse names functions the template may not call, with why: Compile fails saying so.
	Refuse map[string]string
	// MissingKeyError is text/template's missingkey=error: .Map.key with no such key is an error
	// rather than an invalid value (printed "<no value>").
	MissingKeyError bool
}

// Compile parses src and checks it against T, the type dot has at the top: a field T does not have
// fails now, so a misspelt field fails at the daemon's start rather than for every container.
// {{template}}, {{define}}, {{block}} and the functions in o.Refuse fail too.
func Compile[T any](name, src string, o Options) (*Template[T], error) {
	c, err := compile(name, src, reflect.TypeFor[T](), o)
	if err != nil {
		return nil, err
	}
	return &Template[T]{c}, nil
}

// Execute writes the template's output for data. A panic while executing is an error wrapping
// ErrInternal; one execution gives up after a bounded number of steps.
func (t *Template[T]) Execute(w io.Writer, data T) error {
	return t.c.execute(w, reflect.ValueOf(data))
}

// String is the template as parsed, for messages.
func (t *Template[T]) String() string {
	return t.c.tree.Root.String()
}

// compiled is a parsed template, what it may call and how it treats a missing map key.
type compiled struct {
	tree  *parse.Tree
	funcs map[string]*Func
	// missingKeyError is Options.MissingKeyError.
	missingKeyError bool
}

// compile is Compile for data of type data.
func compile(name, src string, data reflect.Type, o Options) (*compiled, error) {
	known := make(map[string]any, len(o.Funcs)+len(o.Refuse))
	for n := range o.Funcs {
		known[n] = n
	}
	for n := range o.Refuse {
		known[n] = n
	}
	tree := parse.New(name)
	set := map[string]*parse.Tree{}
	if _, err := tree.Parse(src, "{{", "}}", set, known); err != nil {
		return nil, err
	}
	// {{define}} and {{block}} add trees; a {{define}} of the template's own name replaces it.
	if len(set) != 1 || set[name] != tree {
		return nil, errors.New("{{define}} and {{block}} are not supported in tag templates")
	}
	if err := checkTemplate(tree.Root, data, o.Refuse); err != nil {
		return nil, err
	}
	return &compiled{tree: tree, funcs: o.Funcs, missingKeyError: o.MissingKeyError}, nil
}

// checkTemplate rejects {{template}}, refused functions, and fields data does not have where dot is
// still data (inside with and range, dot is something else: that is checked when it runs).
func checkTemplate(root parse.Node, data reflect.Type, refuse map[string]string) error {
	var err error
	fail := func(e error) {
		if err == nil {
			err = e
		}
	}
	var visit func(n parse.Node, top bool)
	visit = func(n parse.Node, top bool) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					visit(c, top)
				}
			}
		case *parse.ActionNode:
			visit(n.Pipe, top)
		case *parse.PipeNode:
			if n != nil {
				for _, c := range n.Cmds {
					visit(c, top)
				}
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				visit(a, top)
			}
		case *parse.ChainNode:
			visit(n.Node, top)
		case *parse.IfNode:
			visit(n.Pipe, top)
			visit(n.List, top)
			visit(n.ElseList, top)
		case *parse.WithNode:
			visit(n.Pipe, top)
			visit(n.List, false)
			visit(n.ElseList, top)
		case *parse.RangeNode:
			visit(n.Pipe, top)
			visit(n.List, false)
			visit(n.ElseList, top)
		case *parse.TemplateNode:
			fail(errors.New("{{template}} is not supported in tag templates"))
		case *parse.IdentifierNode:
			if why, ok := refuse[n.Ident]; ok {
				fail(fmt.Errorf("%s is not supported in tag templates: %s", n.Ident, why))
			}
		case *parse.FieldNode:
			if top {
				fail(checkFields(data, n.Ident))
			}
		case *parse.VariableNode:
			if n.Ident[0] == "$" {
				fail(checkFields(data, n.Ident[1:]))
			}
		}
	}
	visit(root, true)
	return err
}

// checkFields is field lookup on types: what evalField does on values, short of the values.
func checkFields(t reflect.Type, idents []string) error {
	for _, id := range idents {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Interface:
			return nil // known when it runs
		case reflect.Struct:
			if f, ok := t.FieldByName(id); ok {
				if !f.IsExported() {
					return fmt.Errorf("%s is an unexported field of struct type %s", id, t)
				}
				t = f.Type
				continue
			}
		case reflect.Map:
			if stringType.AssignableTo(t.Key()) {
				t = t.Elem()
				continue
			}
		}
		return fmt.Errorf("can't evaluate field %s in type %s%s", id, t, methodHint(t))
	}
	return nil
}

// methodHint explains a failed field lookup on a type that has methods: text/template would have
// called one of that name, this evaluator does not.
func methodHint(t reflect.Type) string {
	if t.Kind() != reflect.Interface && t.NumMethod() == 0 && reflect.PointerTo(t).NumMethod() == 0 {
		return ""
	}
	return " (tag templates read fields and map keys; they do not call methods)"
}

// maxSteps bounds the work of one execution: a {{range}} over a huge number must not stall the
// container's registration. Real templates take a few hundred steps.
const maxSteps = 1 << 20
