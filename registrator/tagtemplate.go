package registrator

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"text/template/parse"
)

// Tag templates are Go templates evaluated here rather than by text/template. Linking
// text/template's executor (its field lookup calls reflect.Value.MethodByName with a name only known
// at run time) makes the linker keep every exported method of every type the daemon can reach: 4 MB
// of binary and 3.7 MB of resident memory on every host. This evaluator follows text/template's
// rules for everything it supports (fields, map keys, variables, pipelines, if, with, range, break,
// continue, its builtins and their argument checks, its printing) and differs where that keeps the
// daemon safe or fails sooner: it reads struct fields and map entries and never calls a method; a
// field the data's type does not have fails at parse time where dot is still the data; one
// execution gives up after maxSteps; a panic is an error, never a crash.
//
// Its execution (tagexec.go) is adapted from Go's text/template/exec.go, Copyright 2011 The Go
// Authors, under Go's BSD-style license (https://go.dev/LICENSE), so that results and errors match.
//
// Two kinds of template use it: -tags in this daemon's own mode (tagTemplate, over TagData, one
// template per tag, a missing label is an error) and in gliderlabs mode (InspectTagTemplate, over
// the docker inspect document).

// tagTemplate is one -tags template of this daemon's own mode.
//
// What it can use: text, {{.Field}}, {{.Labels.key}} (an error when the label is missing), comments,
// variables, pipelines, parentheses, if/else, with/else, range with break and continue, and the
// functions and, or, not, eq, ne, lt, le, gt, ge, len, index, print, printf and println. Anything
// else, and a field TagData does not have, fails at parse time, so at the daemon's start.
type tagTemplate struct {
	*compiledTemplate
}

// tagBuiltins names the functions a tag template of this daemon's own mode may call.
var tagBuiltins = []string{"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "print", "printf", "println"}

var tagDataType = reflect.TypeFor[TagData]()

func parseTagTemplate(name, src string) (*tagTemplate, error) {
	funcs := make(map[string]*tmplFunc, len(tagBuiltins))
	for _, n := range tagBuiltins {
		funcs[n] = builtinFuncs[n]
	}
	t, err := compileTemplate(name, src, tagDataType, funcs, nil)
	if err != nil {
		return nil, err
	}
	t.missingKeyError = true
	return &tagTemplate{t}, nil
}

// Execute writes the template's output for d.
func (t *tagTemplate) Execute(w io.Writer, d TagData) error {
	return t.execute(w, reflect.ValueOf(d))
}

// compiledTemplate is a parsed template, what it may call and how it treats a missing map key.
type compiledTemplate struct {
	tree  *parse.Tree
	funcs map[string]*tmplFunc
	// missingKeyError is text/template's missingkey=error: .Map.key with no such key is an error
	// rather than an invalid value (printed "<no value>").
	missingKeyError bool
}

// compileTemplate parses src. data is the type dot has at the top: fields read from it are checked
// now, so a misspelt field fails at the daemon's start rather than for every container. refuse
// explains why a function the parser knows may not be used (nil: none refused).
func compileTemplate(name, src string, data reflect.Type, funcs map[string]*tmplFunc, refuse map[string]string) (*compiledTemplate, error) {
	known := make(map[string]any, len(funcs)+len(refuse))
	for n := range funcs {
		known[n] = n
	}
	for n := range refuse {
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
	if err := checkTemplate(tree.Root, data, refuse); err != nil {
		return nil, err
	}
	return &compiledTemplate{tree: tree, funcs: funcs}, nil
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
