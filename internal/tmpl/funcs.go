// adapted from Go 1.26.8 text/template/funcs.go
//
// Copyright 2011 The Go Authors. All rights reserved. Use of this source code is governed by a
// BSD-style license that can be found at https://go.dev/LICENSE.
//
// The builtins, written against this package's Func rather than called through reflect.Value.Call,
// with upstream's argument checks, results and error messages.

package tmpl

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
)

// Builtins returns text/template's builtins that templates may call, with text/template's
// signatures and behaviour, by name: a new map, the caller's to pick from. Not here: call (a
// template has no functions to call), html, js and urlquery (escapers for other languages than tags).
func Builtins() map[string]*Func {
	return maps.Clone(builtinFuncs)
}

var builtinFuncs = map[string]*Func{
	"and": {params: values(2), variadic: true, andOr: true},
	"or":  {params: values(2), variadic: true, andOr: true},
	"not": {params: values(1), fn: func(a []reflect.Value) (reflect.Value, error) {
		return reflect.ValueOf(!truth(a[0])), nil
	}},
	"len":   {params: values(1), fn: length},
	"index": {params: values(2), variadic: true, fn: index},
	"slice": {params: values(2), variadic: true, fn: slice},
	"eq": {params: values(2), variadic: true, fn: func(a []reflect.Value) (reflect.Value, error) {
		return boolResult(eq(a[0], a[1:]...))
	}},
	"ne": {params: values(2), fn: func(a []reflect.Value) (reflect.Value, error) {
		equal, err := eq(a[0], a[1])
		return boolResult(!equal, err)
	}},
	"lt": {params: values(2), fn: func(a []reflect.Value) (reflect.Value, error) {
		return boolResult(lt(a[0], a[1]))
	}},
	"le": {params: values(2), fn: func(a []reflect.Value) (reflect.Value, error) {
		return boolResult(le(a[0], a[1]))
	}},
	"gt": {params: values(2), fn: func(a []reflect.Value) (reflect.Value, error) {
		lessOrEqual, err := le(a[0], a[1])
		return boolResult(!lessOrEqual && err == nil, err)
	}},
	"ge": {params: values(2), fn: func(a []reflect.Value) (reflect.Value, error) {
		less, err := lt(a[0], a[1])
		return boolResult(!less && err == nil, err)
	}},
	"print": {params: []reflect.Type{anyType}, variadic: true, fn: func(a []reflect.Value) (reflect.Value, error) {
		return reflect.ValueOf(fmt.Sprint(interfaces(a)...)), nil
	}},
	"println": {params: []reflect.Type{anyType}, variadic: true, fn: func(a []reflect.Value) (reflect.Value, error) {
		return reflect.ValueOf(fmt.Sprintln(interfaces(a)...)), nil
	}},
	"printf": {params: []reflect.Type{stringType, anyType}, variadic: true, fn: func(a []reflect.Value) (reflect.Value, error) {
		return reflect.ValueOf(fmt.Sprintf(a[0].String(), interfaces(a[1:])...)), nil
	}},
}

// values is n parameters that take any value as it is.
func values(n int) []reflect.Type {
	t := make([]reflect.Type, n)
	for i := range t {
		t[i] = reflectValueType
	}
	return t
}

func boolResult(b bool, err error) (reflect.Value, error) {
	return reflect.ValueOf(b), err
}

// interfaces is the arguments of a ...any parameter as a Go call would receive them.
func interfaces(vs []reflect.Value) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		if v.IsValid() && !(v.Kind() == reflect.Interface && v.IsNil()) {
			out[i] = v.Interface()
		}
	}
	return out
}

// truth is text/template's: the zero value of a type, an empty collection and nil are false,
// structs are true.
func truth(v reflect.Value) bool {
	v = indirectInterface(v)
	if !v.IsValid() {
		return false
	}
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() > 0
	case reflect.Bool:
		return v.Bool()
	case reflect.Complex64, reflect.Complex128:
		return v.Complex() != 0
	case reflect.Chan, reflect.Func, reflect.Pointer, reflect.UnsafePointer, reflect.Interface:
		return !v.IsNil()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() != 0
	case reflect.Float32, reflect.Float64:
		return v.Float() != 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() != 0
	}
	return true
}

func length(a []reflect.Value) (reflect.Value, error) {
	v, isNil := indirect(a[0])
	switch {
	case isNil:
		return reflect.Value{}, errors.New("len of nil pointer")
	case !v.IsValid():
		return reflect.Value{}, errors.New("len of missing value")
	}
	switch v.Kind() {
	case reflect.Array, reflect.Chan, reflect.Map, reflect.Slice, reflect.String:
		return reflect.ValueOf(v.Len()), nil
	}
	return reflect.Value{}, fmt.Errorf("len of type %s", v.Type())
}

// index is x[i][j]... over maps (a missing key gives the element type's zero value), slices,
// arrays and strings.
func index(a []reflect.Value) (reflect.Value, error) {
	item := indirectInterface(a[0])
	if !item.IsValid() {
		return reflect.Value{}, errors.New("index of untyped nil")
	}
	for _, i := range a[1:] {
		i = indirectInterface(i)
		var isNil bool
		if item, isNil = indirect(item); isNil {
			return reflect.Value{}, errors.New("index of nil pointer")
		}
		switch item.Kind() {
		case reflect.Array, reflect.Slice, reflect.String:
			x, err := indexArg(i, item.Len())
			if err != nil {
				return reflect.Value{}, err
			}
			if x == item.Len() {
				return reflect.Value{}, fmt.Errorf("index out of range: %d", x)
			}
			item = item.Index(x)
		case reflect.Map:
			key, err := mapKey(i, item.Type().Key())
			if err != nil {
				return reflect.Value{}, err
			}
			if x := item.MapIndex(key); x.IsValid() {
				item = x
			} else {
				item = reflect.Zero(item.Type().Elem())
			}
		default:
			return reflect.Value{}, fmt.Errorf("can't index item of type %s", item.Type())
		}
	}
	return item, nil
}

// slice is x[i:j:k] over strings, slices and arrays.
func slice(a []reflect.Value) (reflect.Value, error) {
	item := indirectInterface(a[0])
	if !item.IsValid() {
		return reflect.Value{}, errors.New("slice of untyped nil")
	}
	item, isNil := indirect(item)
	if isNil {
		return reflect.Value{}, errors.New("slice of nil pointer")
	}
	indexes := a[1:]
	if len(indexes) > 3 {
		return reflect.Value{}, fmt.Errorf("too many slice indexes: %d", len(indexes))
	}
	var capacity int
	switch item.Kind() {
	case reflect.String:
		if len(indexes) == 3 {
			return reflect.Value{}, errors.New("cannot 3-index slice a string")
		}
		capacity = item.Len()
	case reflect.Array, reflect.Slice:
		if item.Kind() == reflect.Array && !item.CanAddr() {
			// reflect slices only addressable arrays; text/template would panic here.
			return reflect.Value{}, fmt.Errorf("can't slice an unaddressable array of type %s", item.Type())
		}
		capacity = item.Cap()
	default:
		return reflect.Value{}, fmt.Errorf("can't slice item of type %s", item.Type())
	}
	idx := [3]int{0, item.Len()}
	for i, x := range indexes {
		n, err := indexArg(indirectInterface(x), capacity)
		if err != nil {
			return reflect.Value{}, err
		}
		idx[i] = n
	}
	if idx[0] > idx[1] {
		return reflect.Value{}, fmt.Errorf("invalid slice index: %d > %d", idx[0], idx[1])
	}
	if len(indexes) < 3 {
		return item.Slice(idx[0], idx[1]), nil
	}
	if idx[1] > idx[2] {
		return reflect.Value{}, fmt.Errorf("invalid slice index: %d > %d", idx[1], idx[2])
	}
	return item.Slice3(idx[0], idx[1], idx[2]), nil
}

// indexArg is an integer index in [0, limit].
func indexArg(v reflect.Value, limit int) (int, error) {
	var x int64
	switch {
	case !v.IsValid():
		return 0, errors.New("cannot index slice/array with nil")
	case v.CanInt():
		x = v.Int()
	case v.CanUint():
		x = int64(v.Uint())
	default:
		return 0, fmt.Errorf("cannot index slice/array with type %s", v.Type())
	}
	if x < 0 || int(x) < 0 || int(x) > limit {
		return 0, fmt.Errorf("index out of range: %d", x)
	}
	return int(x), nil
}

// mapKey makes v a key of type t: assignable, or an integer converted to another integer type.
func mapKey(v reflect.Value, t reflect.Type) (reflect.Value, error) {
	if !v.IsValid() {
		if !canBeNil(t) {
			return reflect.Value{}, fmt.Errorf("value is nil; should be of type %s", t)
		}
		v = reflect.Zero(t)
	}
	switch {
	case v.Type().AssignableTo(t):
		return v, nil
	case (v.CanInt() || v.CanUint()) && isInteger(t.Kind()) && v.Type().ConvertibleTo(t):
		return v.Convert(t), nil
	}
	return reflect.Value{}, fmt.Errorf("value has type %s; should be %s", v.Type(), t)
}

func isInteger(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

type basicKind int

const (
	otherKind basicKind = iota
	boolKind
	complexKind
	intKind
	floatKind
	stringKind
	uintKind
)

func kindOf(v reflect.Value) basicKind {
	switch v.Kind() {
	case reflect.Bool:
		return boolKind
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return intKind
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return uintKind
	case reflect.Float32, reflect.Float64:
		return floatKind
	case reflect.Complex64, reflect.Complex128:
		return complexKind
	case reflect.String:
		return stringKind
	}
	return otherKind
}

var errBadComparisonType = errors.New("invalid type for comparison")

// isNilValue is whether v is missing, or the nil of its type.
func isNilValue(v reflect.Value) bool {
	if !v.IsValid() {
		return true
	}
	switch v.Kind() {
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice:
		return v.IsNil()
	}
	return false
}

// eq is a == b || a == c || ...: basic values by value (signed and unsigned integers together),
// others by Go's == when comparable, and nil against nil.
func eq(a reflect.Value, bs ...reflect.Value) (bool, error) {
	a = indirectInterface(a)
	if len(bs) == 0 {
		return false, errors.New("missing argument for comparison")
	}
	ka := kindOf(a)
	for _, b := range bs {
		b = indirectInterface(b)
		kb := kindOf(b)
		equal := false
		switch {
		case ka == intKind && kb == uintKind:
			equal = a.Int() >= 0 && uint64(a.Int()) == b.Uint()
		case ka == uintKind && kb == intKind:
			equal = b.Int() >= 0 && a.Uint() == uint64(b.Int())
		case ka != kb:
			if a.IsValid() && b.IsValid() {
				return false, fmt.Errorf("incompatible types for comparison: %v and %v", a.Type(), b.Type())
			}
		case ka == boolKind:
			equal = a.Bool() == b.Bool()
		case ka == complexKind:
			equal = a.Complex() == b.Complex()
		case ka == floatKind:
			equal = a.Float() == b.Float()
		case ka == intKind:
			equal = a.Int() == b.Int()
		case ka == stringKind:
			equal = a.String() == b.String()
		case ka == uintKind:
			equal = a.Uint() == b.Uint()
		case a.Kind() != b.Kind() && a.IsValid() && b.IsValid():
			return false, fmt.Errorf("non-comparable types %s: %v, %s: %v", a, a.Type(), b.Type(), b)
		case isNilValue(a) || isNilValue(b):
			equal = isNilValue(a) == isNilValue(b)
		case !b.Type().Comparable():
			return false, fmt.Errorf("non-comparable type %s: %v", b, b.Type())
		default:
			equal = a.Interface() == b.Interface()
		}
		if equal {
			return true, nil
		}
	}
	return false, nil
}

// lt is a < b for integers (signed and unsigned together), floats and strings.
func lt(a, b reflect.Value) (bool, error) {
	a, b = indirectInterface(a), indirectInterface(b)
	ka, kb := kindOf(a), kindOf(b)
	if ka == otherKind || kb == otherKind {
		return false, errBadComparisonType
	}
	switch {
	case ka == intKind && kb == uintKind:
		return a.Int() < 0 || uint64(a.Int()) < b.Uint(), nil
	case ka == uintKind && kb == intKind:
		return b.Int() >= 0 && a.Uint() < uint64(b.Int()), nil
	case ka != kb:
		return false, fmt.Errorf("incompatible types for comparison: %v and %v", a.Type(), b.Type())
	}
	switch ka {
	case floatKind:
		return a.Float() < b.Float(), nil
	case intKind:
		return a.Int() < b.Int(), nil
	case stringKind:
		return a.String() < b.String(), nil
	case uintKind:
		return a.Uint() < b.Uint(), nil
	}
	return false, errBadComparisonType
}

func le(a, b reflect.Value) (bool, error) {
	less, err := lt(a, b)
	if less || err != nil {
		return less, err
	}
	return eq(a, b)
}
