package tmpl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// GliderlabsFuncs returns gliderlabs/registrator's -tags functions (its bridge/bridge.go) by name, a
// new map, the caller's to add to: strSlice, sIndex, mIndex, toUpper, toLower, replace, join, split,
// splitIndex, matchFirstElement, matchAllElements and jsonParse, but not httpGet (a template must not
// make network calls). They take gliderlabs's signatures, so that arguments are checked as
// text/template checked them there, and give its results, including where gliderlabs's code panicked
// (text/template made that an error; so does this). jsonParse also takes a string.
func GliderlabsFuncs() map[string]*Func {
	return maps.Clone(gliderlabsFuncs)
}

var (
	intType     = reflect.TypeFor[int]()
	stringsType = reflect.TypeFor[[]string]()
	mapType     = reflect.TypeFor[map[string]string]()
)

var gliderlabsFuncs = map[string]*Func{
	// strSlice s i [j]: s[i:], or s[i:j]; indexes past the end give s, j < i gives s[i:].
	"strSlice": {params: []reflect.Type{stringType, intType}, variadic: true, fn: func(a []reflect.Value) (reflect.Value, error) {
		s := a[0].String()
		i := make([]int, len(a)-1)
		for k := range i {
			i[k] = int(a[k+1].Int())
		}
		r, err := strSlice(s, i)
		return reflect.ValueOf(r), err
	}},
	// sIndex i list: list[i]; negative counts from the end, past either end gives the element there.
	"sIndex": {params: []reflect.Type{intType, stringsType}, fn: func(a []reflect.Value) (reflect.Value, error) {
		r, err := sIndex(int(a[0].Int()), asStrings(a[1]))
		return reflect.ValueOf(r), err
	}},
	// mIndex key map: map[key], "" when missing.
	"mIndex": {params: []reflect.Type{stringType, mapType}, fn: func(a []reflect.Value) (reflect.Value, error) {
		if v := a[1].MapIndex(a[0]); v.IsValid() {
			return reflect.ValueOf(v.String()), nil
		}
		return reflect.ValueOf(""), nil
	}},
	"toUpper": {params: []reflect.Type{stringType}, fn: func(a []reflect.Value) (reflect.Value, error) {
		return reflect.ValueOf(strings.ToUpper(a[0].String())), nil
	}},
	"toLower": {params: []reflect.Type{stringType}, fn: func(a []reflect.Value) (reflect.Value, error) {
		return reflect.ValueOf(strings.ToLower(a[0].String())), nil
	}},
	// replace n old new s: the first n olds in s replaced (n < 0: all).
	"replace": {params: []reflect.Type{intType, stringType, stringType, stringType}, fn: func(a []reflect.Value) (reflect.Value, error) {
		return reflect.ValueOf(strings.Replace(a[3].String(), a[1].String(), a[2].String(), int(a[0].Int()))), nil
	}},
	// join sep list.
	"join": {params: []reflect.Type{stringType, stringsType}, fn: func(a []reflect.Value) (reflect.Value, error) {
		return reflect.ValueOf(strings.Join(asStrings(a[1]), a[0].String())), nil
	}},
	// split sep s: a list.
	"split": {params: []reflect.Type{stringType, stringType}, fn: func(a []reflect.Value) (reflect.Value, error) {
		return reflect.ValueOf(strings.Split(a[1].String(), a[0].String())), nil
	}},
	// splitIndex i sep s: sIndex i (split sep s).
	"splitIndex": {params: []reflect.Type{intType, stringType, stringType}, fn: func(a []reflect.Value) (reflect.Value, error) {
		r, err := sIndex(int(a[0].Int()), strings.Split(a[2].String(), a[1].String()))
		return reflect.ValueOf(r), err
	}},
	// matchFirstElement re list: the first element re matches, or "".
	"matchFirstElement": {params: []reflect.Type{stringType, stringsType}, fn: func(a []reflect.Value) (reflect.Value, error) {
		m, err := matchElements(a[0].String(), asStrings(a[1]), true)
		if len(m) == 0 {
			return reflect.ValueOf(""), err
		}
		return reflect.ValueOf(m[0]), err
	}},
	// matchAllElements re list: the elements re matches.
	"matchAllElements": {params: []reflect.Type{stringType, stringsType}, fn: func(a []reflect.Value) (reflect.Value, error) {
		m, err := matchElements(a[0].String(), asStrings(a[1]), false)
		return reflect.ValueOf(m), err
	}},
	// jsonParse doc "key1::key2::[0]": the value there, "" when there is none.
	"jsonParse": {params: []reflect.Type{anyType, stringType}, fn: func(a []reflect.Value) (reflect.Value, error) {
		doc, err := jsonDocument(a[0])
		if err != nil {
			return reflect.Value{}, err
		}
		return reflect.ValueOf(jsonPath(doc, strings.Split(a[1].String(), "::"))), nil
	}},
}

// asStrings is a []string, or a value of a type like strslice.StrSlice whose values can be one.
func asStrings(v reflect.Value) []string {
	return v.Convert(stringsType).Interface().([]string)
}

func strSlice(s string, i []int) (string, error) {
	sub := func(from, to int) (string, error) {
		if from < 0 || to < from || to > len(s) {
			return "", fmt.Errorf("slice bounds out of range [%d:%d] of a string of length %d", from, to, len(s))
		}
		return s[from:to], nil
	}
	switch {
	case len(i) == 1 && i[0] <= len(s):
		return sub(i[0], len(s))
	case len(i) == 2 && i[0] <= len(s) && i[1] <= len(s):
		switch {
		case i[0] == 0:
			return sub(0, i[1])
		case i[1] < i[0]:
			return sub(i[0], len(s))
		}
		return sub(i[0], i[1])
	}
	return s, nil
}

func sIndex(i int, list []string) (string, error) {
	k := i
	switch {
	case i < 0 && -i >= len(list) && -i > 0:
		k = 0
	case i < 0:
		k = len(list) + i
	case i >= len(list):
		k = len(list) - 1
	}
	if k < 0 || k >= len(list) {
		return "", fmt.Errorf("index %d out of range of a list of %d", i, len(list))
	}
	return list[k], nil
}

func matchElements(expr string, list []string, first bool) ([]string, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	var m []string
	for _, e := range list {
		if re.MatchString(e) {
			if m = append(m, e); first {
				break
			}
		}
	}
	return m, nil
}

// jsonDocument is jsonParse's first argument: bytes, as gliderlabs took them, or a string.
func jsonDocument(v reflect.Value) ([]byte, error) {
	switch {
	case !v.IsValid() || (v.Kind() == reflect.Interface && v.IsNil()):
		return nil, nil
	case v.Kind() == reflect.String:
		return []byte(v.String()), nil
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
		return v.Bytes(), nil
	}
	return nil, fmt.Errorf("wrong type for value; expected []uint8 or string; got %s", v.Type())
}

// jsonPath is the value at the path of object keys (and "[n]" array indexes) in doc, as
// github.com/buger/jsonparser's Get gave it to gliderlabs: JSON text, a string without its quotes
// (its escapes kept), "" when the path is not there or doc is not JSON. Of duplicate keys, the first counts.
func jsonPath(doc []byte, keys []string) string {
	cur := json.RawMessage(bytes.TrimSpace(doc))
	for _, k := range keys {
		next, ok := jsonChild(cur, k)
		if !ok {
			return ""
		}
		cur = next
	}
	if len(cur) >= 2 && cur[0] == '"' {
		return string(cur[1 : len(cur)-1])
	}
	return string(cur)
}

func jsonChild(v json.RawMessage, key string) (json.RawMessage, bool) {
	d := json.NewDecoder(bytes.NewReader(v))
	tok, err := d.Token()
	if err != nil {
		return nil, false
	}
	switch tok {
	case json.Delim('{'):
		for d.More() {
			name, err := d.Token()
			if err != nil {
				return nil, false
			}
			var val json.RawMessage
			if err := d.Decode(&val); err != nil {
				return nil, false
			}
			if name == key {
				return val, true
			}
		}
	case json.Delim('['):
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(key, "["), "]"))
		if err != nil || !strings.HasPrefix(key, "[") || !strings.HasSuffix(key, "]") {
			return nil, false
		}
		for i := 0; d.More(); i++ {
			var val json.RawMessage
			if err := d.Decode(&val); err != nil {
				return nil, false
			}
			if i == n {
				return val, true
			}
		}
	}
	return nil, false
}
