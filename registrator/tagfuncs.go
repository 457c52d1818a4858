package registrator

import (
	"cmp"
	"errors"
	"fmt"
)

// call runs one of a tag template's functions (tagFuncs) on its arguments.
func call(name string, args []any) (any, error) {
	want := func(n int) error {
		if len(args) != n {
			return fmt.Errorf("wrong number of args for %s: want %d got %d", name, n, len(args))
		}
		return nil
	}
	switch name {
	case "not":
		if err := want(1); err != nil {
			return nil, err
		}
		return !truth(args[0]), nil
	case "eq", "ne", "lt", "le", "gt", "ge":
		if len(args) < 2 || (name != "eq" && len(args) != 2) {
			return nil, fmt.Errorf("wrong number of args for %s", name)
		}
		return compare(name, args[0], args[1:])
	case "len":
		if err := want(1); err != nil {
			return nil, err
		}
		switch x := args[0].(type) {
		case string:
			return len(x), nil
		case map[string]string:
			return len(x), nil
		}
		return nil, fmt.Errorf("len of %T", args[0])
	case "index":
		if len(args) == 0 {
			return nil, errors.New("wrong number of args for index: want at least 1 got 0")
		}
		return index(args[0], args[1:])
	case "print":
		return fmt.Sprint(printables(args)...), nil
	case "println":
		return fmt.Sprintln(printables(args)...), nil
	case "printf":
		if len(args) == 0 {
			return nil, errors.New("wrong number of args for printf: want at least 1 got 0")
		}
		format, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("printf format is %T, not a string", args[0])
		}
		return fmt.Sprintf(format, printables(args[1:])...), nil
	}
	return nil, fmt.Errorf("function %q not defined", name)
}

// index is text/template's index over what a tag template has: labels by name (a missing one is
// empty), a string's byte by position; with no index, the value itself.
func index(v any, keys []any) (any, error) {
	for _, k := range keys {
		switch x := v.(type) {
		case map[string]string:
			name, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("can't index labels with %T", k)
			}
			v = x[name]
		case string:
			i, ok := k.(int)
			if !ok {
				return nil, fmt.Errorf("can't index a string with %T", k)
			}
			if i < 0 || i >= len(x) {
				return nil, fmt.Errorf("index out of range: %d", i)
			}
			v = x[i]
		default:
			return nil, fmt.Errorf("can't index item of type %T", v)
		}
	}
	return v, nil
}

// compare is eq (a equals any of bs), ne, lt, le, gt and ge for strings, integers, floats and
// booleans (booleans only for eq and ne).
func compare(op string, a any, bs []any) (bool, error) {
	for _, b := range bs {
		var c int
		switch x := a.(type) {
		case string:
			y, ok := b.(string)
			if !ok {
				return false, errIncomparable
			}
			c = cmp.Compare(x, y)
		case int:
			y, ok := b.(int)
			if !ok {
				return false, errIncomparable
			}
			c = cmp.Compare(x, y)
		case float64:
			y, ok := b.(float64)
			if !ok {
				return false, errIncomparable
			}
			c = cmp.Compare(x, y)
		case bool:
			y, ok := b.(bool)
			if !ok || (op != "eq" && op != "ne") {
				return false, errIncomparable
			}
			if x != y {
				c = 1
			}
		default:
			return false, fmt.Errorf("can't compare %T", a)
		}
		switch op {
		case "eq":
			if c == 0 {
				return true, nil
			}
			continue
		case "ne":
			return c != 0, nil
		case "lt":
			return c < 0, nil
		case "le":
			return c <= 0, nil
		case "gt":
			return c > 0, nil
		case "ge":
			return c >= 0, nil
		}
	}
	return false, nil
}

var errIncomparable = errors.New("incompatible types for comparison")

// truth is text/template's: empty strings, maps, zero numbers, false and nil are false.
func truth(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case bool:
		return x
	case int:
		return x != 0
	case float64:
		return x != 0
	case uint8:
		return x != 0
	case map[string]string:
		return len(x) > 0
	}
	return true
}

// printable is how a value prints, as text/template prints it.
func printable(v any) any {
	if v == nil {
		return "<no value>"
	}
	return v
}

func printables(vs []any) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = printable(v)
	}
	return out
}
