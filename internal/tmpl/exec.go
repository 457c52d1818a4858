// adapted from Go 1.26.8 text/template/exec.go
//
// Copyright 2011 The Go Authors. All rights reserved. Use of this source code is governed by a
// BSD-style license that can be found at https://go.dev/LICENSE.
//
// The evaluator of templates compiled by Compile (compile.go). It follows upstream's walk, range,
// evalPipeline, evalCommand, evalField, evalCall, validateType, evalArg and printValue, with their
// error messages, and differs where doc.go says: fields and map keys only (no method calls, so no
// reflect.Value.MethodByName), a bound on the steps of one execution, no {{template}}, no range over
// channels or functions. To follow a fix upstream, diff this file against exec.go of the release
// named above.

package tmpl

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"text/template/parse"
)

var (
	stringType       = reflect.TypeFor[string]()
	anyType          = reflect.TypeFor[any]()
	reflectValueType = reflect.TypeFor[reflect.Value]() // a parameter that takes any value as it is, as text/template's builtins do
	errorType        = reflect.TypeFor[error]()
	stringerType     = reflect.TypeFor[fmt.Stringer]()
)

// missing is a pipeline's "no previous command": the final argument of its first command.
type missing struct{}

var missingVal = reflect.ValueOf(missing{})

func isMissing(v reflect.Value) bool {
	return v.IsValid() && v.Type() == missingVal.Type()
}

// ErrInternal marks a panic of the evaluator itself, turned into an error: a template must not take
// the daemon down. Such an error is a bug in this package.
var ErrInternal = errors.New("internal error in the tag template evaluator")

// execError carries an evaluation error up through the evaluator's recursion to execute.
type execError struct{ err error }

type execVar struct {
	name  string
	value reflect.Value
}

type execState struct {
	t     *compiled
	w     io.Writer
	vars  []execVar
	node  parse.Node // where evaluation is, for errors
	steps int
}

type control int

const (
	ctlNone control = iota
	ctlBreak
	ctlContinue
)

// execute writes the template's output for data.
func (t *compiled) execute(w io.Writer, data reflect.Value) (err error) {
	s := &execState{t: t, w: w, vars: []execVar{{"$", data}}, node: t.tree.Root}
	defer func() {
		switch r := recover().(type) {
		case nil:
		case execError:
			err = r.err
		default:
			err = fmt.Errorf("%w: %v", ErrInternal, r)
		}
	}()
	s.walk(data, t.tree.Root)
	return nil
}

func (s *execState) at(n parse.Node) {
	s.node = n
}

// errorf stops the evaluation with text/template's kind of error: where, then what.
func (s *execState) errorf(format string, args ...any) {
	err := fmt.Errorf(format, args...)
	location, context := s.t.tree.ErrorContext(s.node)
	panic(execError{fmt.Errorf("template: %s: executing %q at <%s>: %w", location, s.t.tree.Name, context, err)})
}

func (s *execState) step() {
	if s.steps++; s.steps > maxSteps {
		s.errorf("gave up after %d steps: is a {{range}} running away?", maxSteps)
	}
}

func (s *execState) mark() int {
	return len(s.vars)
}

func (s *execState) pop(mark int) {
	s.vars = s.vars[:mark]
}

func (s *execState) setVar(name string, v reflect.Value) {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			s.vars[i].value = v
			return
		}
	}
	s.errorf("undefined variable: %s", name)
}

func (s *execState) varValue(name string) reflect.Value {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			return s.vars[i].value
		}
	}
	s.errorf("undefined variable: %s", name)
	return reflect.Value{}
}

func (s *execState) walk(dot reflect.Value, n parse.Node) control {
	s.at(n)
	s.step()
	switch n := n.(type) {
	case *parse.ActionNode:
		// Variables declared here live until the end of the enclosing block; a declaration prints nothing.
		v := s.evalPipeline(dot, n.Pipe)
		if len(n.Pipe.Decl) == 0 {
			s.printValue(n, v)
		}
	case *parse.BreakNode:
		return ctlBreak
	case *parse.ContinueNode:
		return ctlContinue
	case *parse.CommentNode:
	case *parse.IfNode:
		return s.walkIfOrWith(false, dot, &n.BranchNode)
	case *parse.WithNode:
		return s.walkIfOrWith(true, dot, &n.BranchNode)
	case *parse.ListNode:
		for _, c := range n.Nodes {
			if ctl := s.walk(dot, c); ctl != ctlNone {
				return ctl
			}
		}
	case *parse.RangeNode:
		s.walkRange(dot, n)
	case *parse.TextNode:
		s.write(n.Text)
	default:
		s.errorf("%s is not supported in tag templates", n)
	}
	return ctlNone
}

func (s *execState) write(p []byte) {
	if _, err := s.w.Write(p); err != nil {
		s.errorf("%w", err)
	}
}

func (s *execState) walkIfOrWith(with bool, dot reflect.Value, b *parse.BranchNode) control {
	defer s.pop(s.mark())
	v := s.evalPipeline(dot, b.Pipe)
	isTrue := truth(v)
	switch {
	case isTrue && with:
		return s.walk(v, b.List)
	case isTrue:
		return s.walk(dot, b.List)
	case b.ElseList != nil:
		return s.walk(dot, b.ElseList)
	}
	return ctlNone
}

// walkRange ranges as text/template does: slices and arrays in order, maps in sorted key order,
// integers from 0; declared variables hold the collection in {{else}}, assigned ones keep the last
// index and element after the loop.
func (s *execState) walkRange(dot reflect.Value, r *parse.RangeNode) {
	defer s.pop(s.mark())
	val, _ := indirect(s.evalPipeline(dot, r.Pipe))
	mark := s.mark()
	decl := r.Pipe.Decl
	one := func(index, elem reflect.Value) control {
		switch {
		case len(decl) == 0:
		case r.Pipe.IsAssign && len(decl) > 1:
			s.setVar(decl[0].Ident[0], index)
			s.setVar(decl[1].Ident[0], elem)
		case r.Pipe.IsAssign:
			s.setVar(decl[0].Ident[0], elem)
		case len(decl) > 1:
			s.vars[mark-1].value, s.vars[mark-2].value = elem, index
		default:
			s.vars[mark-1].value = elem
		}
		defer s.pop(mark)
		return s.walk(elem, r.List)
	}
	ran := false
	switch val.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if len(decl) > 1 {
			s.errorf("can't use %v to iterate over more than one variable", val)
		}
		for i := range rangeCount(val) {
			ran = true
			e := reflect.New(val.Type()).Elem()
			if val.CanInt() {
				e.SetInt(int64(i))
			} else {
				e.SetUint(i)
			}
			if one(reflect.Value{}, e) == ctlBreak {
				break
			}
		}
	case reflect.Array, reflect.Slice:
		for i := range val.Len() {
			ran = true
			if one(reflect.ValueOf(i), val.Index(i)) == ctlBreak {
				break
			}
		}
	case reflect.Map:
		for _, k := range sortedKeys(val) {
			ran = true
			if one(k, val.MapIndex(k)) == ctlBreak {
				break
			}
		}
	case reflect.Invalid: // a missing value ranges like an empty map
	default:
		s.errorf("range can't iterate over %v", val)
	}
	if !ran && r.ElseList != nil {
		s.walk(dot, r.ElseList)
	}
}

func rangeCount(v reflect.Value) uint64 {
	if v.CanInt() {
		return uint64(max(v.Int(), 0))
	}
	return v.Uint()
}

// sortedKeys is a map's keys in the order text/template ranges over them (internal/fmtsort's).
func sortedKeys(m reflect.Value) []reflect.Value {
	keys := m.MapKeys()
	sort.Slice(keys, func(i, j int) bool { return compareKeys(keys[i], keys[j]) < 0 })
	return keys
}

func compareKeys(a, b reflect.Value) int {
	switch a.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return cmp.Compare(a.Int(), b.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return cmp.Compare(a.Uint(), b.Uint())
	case reflect.String:
		return cmp.Compare(a.String(), b.String())
	case reflect.Float32, reflect.Float64:
		return cmp.Compare(a.Float(), b.Float())
	case reflect.Complex64, reflect.Complex128:
		return cmp.Or(cmp.Compare(real(a.Complex()), real(b.Complex())), cmp.Compare(imag(a.Complex()), imag(b.Complex())))
	case reflect.Bool:
		switch {
		case a.Bool() == b.Bool():
			return 0
		case a.Bool():
			return 1
		}
		return -1
	case reflect.Pointer, reflect.UnsafePointer, reflect.Chan:
		return cmp.Compare(a.Pointer(), b.Pointer())
	case reflect.Struct:
		for i := range a.NumField() {
			if c := compareKeys(a.Field(i), b.Field(i)); c != 0 {
				return c
			}
		}
	case reflect.Array:
		for i := range a.Len() {
			if c := compareKeys(a.Index(i), b.Index(i)); c != 0 {
				return c
			}
		}
	case reflect.Interface:
		switch {
		case a.IsNil() || b.IsNil():
			return cmp.Compare(btoi(!a.IsNil()), btoi(!b.IsNil()))
		case a.Elem().Type() != b.Elem().Type():
			return cmp.Compare(a.Elem().Type().String(), b.Elem().Type().String())
		}
		return compareKeys(a.Elem(), b.Elem())
	}
	return 0
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *execState) evalPipeline(dot reflect.Value, pipe *parse.PipeNode) reflect.Value {
	if pipe == nil {
		return reflect.Value{}
	}
	s.at(pipe)
	v := missingVal
	for _, c := range pipe.Cmds {
		v = s.evalCommand(dot, c, v) // the previous command's value is this one's last argument
		if v.Kind() == reflect.Interface && v.Type().NumMethod() == 0 {
			v = v.Elem()
		}
	}
	for _, d := range pipe.Decl {
		if pipe.IsAssign {
			s.setVar(d.Ident[0], v)
		} else {
			s.vars = append(s.vars, execVar{d.Ident[0], v})
		}
	}
	return v
}

func (s *execState) notAFunction(args []parse.Node, final reflect.Value) {
	if len(args) > 1 || !isMissing(final) {
		s.errorf("can't give argument to non-function %s", args[0])
	}
}

func (s *execState) evalCommand(dot reflect.Value, c *parse.CommandNode, final reflect.Value) reflect.Value {
	s.step()
	first := c.Args[0]
	switch n := first.(type) {
	case *parse.FieldNode:
		s.at(n)
		return s.evalFieldChain(dot, dot, n.Ident, c.Args, final)
	case *parse.ChainNode:
		return s.evalChain(dot, n, c.Args, final)
	case *parse.IdentifierNode:
		return s.evalFunction(dot, n, c, c.Args, final)
	case *parse.PipeNode:
		s.notAFunction(c.Args, final)
		return s.evalPipeline(dot, n)
	case *parse.VariableNode:
		return s.evalVariable(dot, n, c.Args, final)
	}
	s.at(first)
	s.notAFunction(c.Args, final)
	switch n := first.(type) {
	case *parse.BoolNode:
		return reflect.ValueOf(n.True)
	case *parse.DotNode:
		return dot
	case *parse.NilNode:
		s.errorf("nil is not a command")
	case *parse.NumberNode:
		return s.idealConstant(n)
	case *parse.StringNode:
		return reflect.ValueOf(n.Text)
	}
	s.errorf("can't evaluate command %q", first)
	return reflect.Value{}
}

// idealConstant types a number written in the template as Go would with no other context.
func (s *execState) idealConstant(n *parse.NumberNode) reflect.Value {
	s.at(n)
	hexInt := len(n.Text) > 2 && n.Text[0] == '0' && (n.Text[1] == 'x' || n.Text[1] == 'X') && !strings.ContainsAny(n.Text, "pP")
	runeInt := strings.HasPrefix(n.Text, "'")
	switch {
	case n.IsComplex:
		return reflect.ValueOf(n.Complex128)
	case n.IsFloat && !hexInt && !runeInt && strings.ContainsAny(n.Text, ".eEpP"):
		return reflect.ValueOf(n.Float64)
	case n.IsInt:
		i := int(n.Int64)
		if int64(i) != n.Int64 {
			s.errorf("%s overflows int", n.Text)
		}
		return reflect.ValueOf(i)
	case n.IsUint:
		s.errorf("%s overflows int", n.Text)
	}
	return reflect.Value{}
}

func (s *execState) evalChain(dot reflect.Value, chain *parse.ChainNode, args []parse.Node, final reflect.Value) reflect.Value {
	s.at(chain)
	if chain.Node.Type() == parse.NodeNil {
		s.errorf("indirection through explicit nil in %s", chain)
	}
	v := s.evalArg(dot, nil, chain.Node)
	return s.evalFieldChain(dot, v, chain.Field, args, final)
}

func (s *execState) evalVariable(dot reflect.Value, n *parse.VariableNode, args []parse.Node, final reflect.Value) reflect.Value {
	s.at(n)
	v := s.varValue(n.Ident[0])
	if len(n.Ident) == 1 {
		s.notAFunction(args, final)
		return v
	}
	return s.evalFieldChain(dot, v, n.Ident[1:], args, final)
}

// evalFieldChain follows .X.Y.Z from receiver; only the last may be given arguments (an error).
func (s *execState) evalFieldChain(dot, receiver reflect.Value, idents []string, args []parse.Node, final reflect.Value) reflect.Value {
	for _, id := range idents[:len(idents)-1] {
		receiver = s.evalField(id, nil, missingVal, receiver)
	}
	return s.evalField(idents[len(idents)-1], args, final, receiver)
}

// evalField is text/template's field lookup without its first step, the method call: a struct
// field (through embedded structs and pointers) or a map entry by the field's name.
func (s *execState) evalField(name string, args []parse.Node, final, receiver reflect.Value) reflect.Value {
	if !receiver.IsValid() {
		if s.t.missingKeyError {
			s.errorf("nil data; no entry for key %q", name)
		}
		return reflect.Value{}
	}
	typ := receiver.Type()
	receiver, isNil := indirect(receiver)
	if receiver.Kind() == reflect.Interface && isNil {
		s.errorf("nil pointer evaluating %s.%s", typ, name)
	}
	hasArgs := len(args) > 1 || !isMissing(final)
	switch receiver.Kind() {
	case reflect.Struct:
		if f, ok := receiver.Type().FieldByName(name); ok {
			v, err := receiver.FieldByIndexErr(f.Index)
			if !f.IsExported() {
				s.errorf("%s is an unexported field of struct type %s", name, typ)
			}
			if err != nil {
				s.errorf("%v", err)
			}
			if hasArgs {
				s.errorf("%s has arguments but cannot be invoked as function", name)
			}
			return v
		}
	case reflect.Map:
		key := reflect.ValueOf(name)
		if key.Type().AssignableTo(receiver.Type().Key()) {
			if hasArgs {
				s.errorf("%s is not a method but has arguments", name)
			}
			v := receiver.MapIndex(key)
			if !v.IsValid() && s.t.missingKeyError {
				s.errorf("map has no entry for key %q", name)
			}
			return v
		}
	case reflect.Pointer: // a nil one: indirect stops there
		if et := receiver.Type().Elem(); et.Kind() != reflect.Struct || hasField(et, name) {
			s.errorf("nil pointer evaluating %s.%s", typ, name)
		}
	}
	s.errorf("can't evaluate field %s in type %s%s", name, typ, methodHint(typ))
	return reflect.Value{}
}

func hasField(t reflect.Type, name string) bool {
	_, ok := t.FieldByName(name)
	return ok
}

func (s *execState) evalFunction(dot reflect.Value, n *parse.IdentifierNode, cmd parse.Node, args []parse.Node, final reflect.Value) reflect.Value {
	s.at(n)
	f := s.t.funcs[n.Ident]
	if f == nil {
		s.errorf("%q is not a defined function", n.Ident)
	}
	return s.evalCall(dot, f, n.Ident, cmd, args, final)
}

// Func is a function a template may call (see Builtins and GliderlabsFuncs), with its Go signature,
// so that its arguments are evaluated, checked and converted as text/template does for a Go function
// of that signature.
type Func struct {
	// params are the parameters' types; when variadic, the last is the type of each ... argument.
	// reflectValueType takes any value as it is.
	params   []reflect.Type
	variadic bool
	// andOr marks and and or: they evaluate their arguments one at a time, and stop at the one
	// that decides.
	andOr bool
	fn    func(args []reflect.Value) (reflect.Value, error)
}

// evalCall calls f; args, when not nil, are the command's words, the function's name first.
func (s *execState) evalCall(dot reflect.Value, f *Func, name string, node parse.Node, args []parse.Node, final reflect.Value) reflect.Value {
	if args != nil {
		args = args[1:]
	}
	numIn := len(args)
	if !isMissing(final) {
		numIn++
	}
	numFixed := len(args)
	if f.variadic {
		numFixed = len(f.params) - 1
		if numIn < numFixed {
			s.errorf("wrong number of args for %s: want at least %d got %d", name, numFixed, len(args))
		}
	} else if numIn != len(f.params) {
		s.errorf("wrong number of args for %s: want %d got %d", name, len(f.params), numIn)
	}
	if f.andOr {
		var v reflect.Value
		for _, a := range args {
			if v = s.evalArg(dot, reflectValueType, a); truth(v) == (name == "or") {
				return v
			}
		}
		if !isMissing(final) {
			v = final
		}
		return v
	}
	argv := make([]reflect.Value, numIn)
	i := 0
	for ; i < numFixed && i < len(args); i++ {
		argv[i] = s.evalArg(dot, f.params[i], args[i])
	}
	if f.variadic {
		for ; i < len(args); i++ {
			argv[i] = s.evalArg(dot, f.params[len(f.params)-1], args[i])
		}
	}
	if !isMissing(final) {
		t := f.params[len(f.params)-1]
		if f.variadic && numIn-1 < numFixed {
			t = f.params[numIn-1]
		}
		argv[i] = s.validateType(final, t)
	}
	v, err := f.call(argv)
	if err != nil {
		s.at(node)
		s.errorf("error calling %s: %w", name, err)
	}
	return v
}

// call runs the function; a panic in it is its error, as with text/template.
func (f *Func) call(argv []reflect.Value) (v reflect.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("%v", r)
			}
		}
	}()
	return f.fn(argv)
}

// canBeNil reports whether an untyped nil can be a value of the type.
func canBeNil(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice:
		return true
	}
	return t == reflectValueType
}

// validateType makes v a value of type t, as text/template does for a function's argument: as it
// is when assignable, else the value in an interface, through one pointer, or its address.
func (s *execState) validateType(v reflect.Value, t reflect.Type) reflect.Value {
	if t == reflectValueType {
		return v
	}
	if !v.IsValid() {
		if t == nil {
			return reflect.Value{}
		}
		if canBeNil(t) {
			return reflect.Zero(t)
		}
		s.errorf("invalid value; expected %s", t)
	}
	if t == nil || v.Type().AssignableTo(t) {
		return v
	}
	if v.Kind() == reflect.Interface && !v.IsNil() {
		if v = v.Elem(); v.Type().AssignableTo(t) {
			return v
		}
	}
	switch {
	case v.Kind() == reflect.Pointer && v.Type().Elem().AssignableTo(t):
		if v = v.Elem(); !v.IsValid() {
			s.errorf("dereference of nil pointer of type %s", t)
		}
	case reflect.PointerTo(v.Type()).AssignableTo(t) && v.CanAddr():
		v = v.Addr()
	default:
		s.errorf("wrong type for value; expected %s; got %s", t, v.Type())
	}
	return v
}

// evalArg evaluates one argument for a parameter of type t (nil: any, unchecked).
func (s *execState) evalArg(dot reflect.Value, t reflect.Type, n parse.Node) reflect.Value {
	s.at(n)
	switch n := n.(type) {
	case *parse.DotNode:
		return s.validateType(dot, t)
	case *parse.NilNode:
		if t == nil || !canBeNil(t) {
			s.errorf("cannot assign nil to %s", t)
		}
		if t == reflectValueType {
			return reflect.Value{}
		}
		return reflect.Zero(t)
	case *parse.FieldNode:
		return s.validateType(s.evalFieldChain(dot, dot, n.Ident, []parse.Node{n}, missingVal), t)
	case *parse.VariableNode:
		return s.validateType(s.evalVariable(dot, n, nil, missingVal), t)
	case *parse.PipeNode:
		return s.validateType(s.evalPipeline(dot, n), t)
	case *parse.IdentifierNode:
		return s.validateType(s.evalFunction(dot, n, n, nil, missingVal), t)
	case *parse.ChainNode:
		return s.validateType(s.evalChain(dot, n, nil, missingVal), t)
	}
	// A constant: typed by the parameter.
	switch {
	case t == nil:
	case t == reflectValueType || (t.Kind() == reflect.Interface && t.NumMethod() == 0):
		switch n := n.(type) {
		case *parse.BoolNode:
			return reflect.ValueOf(n.True)
		case *parse.NumberNode:
			return s.idealConstant(n)
		case *parse.StringNode:
			return reflect.ValueOf(n.Text)
		}
	case t.Kind() == reflect.String:
		if n, ok := n.(*parse.StringNode); ok {
			v := reflect.New(t).Elem()
			v.SetString(n.Text)
			return v
		}
		s.errorf("expected string; found %s", n)
	case t.Kind() == reflect.Int:
		if n, ok := n.(*parse.NumberNode); ok && n.IsInt {
			v := reflect.New(t).Elem()
			v.SetInt(n.Int64)
			return v
		}
		s.errorf("expected integer; found %s", n)
	}
	s.errorf("can't handle %s for arg of type %s", n, t)
	return reflect.Value{}
}

// indirect follows pointers and interfaces to a value, stopping at a nil one (then isNil).
func indirect(v reflect.Value) (rv reflect.Value, isNil bool) {
	for ; v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface; v = v.Elem() {
		if v.IsNil() {
			return v, true
		}
	}
	return v, false
}

// indirectInterface is the value in an interface, or the zero Value for a nil one.
func indirectInterface(v reflect.Value) reflect.Value {
	if v.Kind() != reflect.Interface {
		return v
	}
	if v.IsNil() {
		return reflect.Value{}
	}
	return v.Elem()
}

func (s *execState) printValue(n parse.Node, v reflect.Value) {
	s.at(n)
	p, ok := printable(v)
	if !ok {
		s.errorf("can't print %s of type %s", n, v.Type())
	}
	if _, err := fmt.Fprint(s.w, p); err != nil {
		s.errorf("%w", err)
	}
}

// printable is what fmt is given to print v, as text/template gives it: through pointers, with the
// address of a value whose pointer type has String or Error.
func printable(v reflect.Value) (any, bool) {
	if v.Kind() == reflect.Pointer {
		v, _ = indirect(v)
	}
	if !v.IsValid() {
		return "<no value>", true
	}
	if !v.Type().Implements(errorType) && !v.Type().Implements(stringerType) {
		pt := reflect.PointerTo(v.Type())
		switch {
		case v.CanAddr() && (pt.Implements(errorType) || pt.Implements(stringerType)):
			v = v.Addr()
		case v.Kind() == reflect.Chan || v.Kind() == reflect.Func:
			return nil, false
		}
	}
	if !v.CanInterface() {
		return nil, false
	}
	return v.Interface(), true
}
