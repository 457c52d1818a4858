package desired

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// maxPolicySize bounds a policy file: a policy is a few rules, never megabytes.
const maxPolicySize = 1 << 20

// maxPattern bounds one glob: names and IDs are at most maxNameLen long, and so are ECS names.
const maxPattern = 1024

// PolicyError is a policy that does not parse: where (1-based line and column, in bytes of the line
// counted as characters) and why.
type PolicyError struct {
	Source string // the file, or "inline"
	Line   int
	Column int
	Reason string
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.Source, e.Line, e.Column, e.Reason)
}

// LoadPolicy reads the registration policy -policy names: a file, or, when the value starts with
// '{', the policy's JSON itself (an ECS task definition passes it in an environment variable
// without a volume for a file).
func LoadPolicy(value string) (*Policy, error) {
	if strings.HasPrefix(strings.TrimSpace(value), "{") {
		return ParsePolicy([]byte(value), "inline")
	}
	f, err := os.Open(value)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPolicySize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPolicySize {
		return nil, fmt.Errorf("%s: more than %d bytes; a policy is a few rules", value, maxPolicySize)
	}
	return ParsePolicy(b, value)
}

// ParsePolicy parses a registration policy (README, "Registration policy"):
//
//	{"default": "ecs-identity", "rules": [{"family": "edge", "names": ["payments-*"], "connect": false}]}
//
// Unknown fields, a key given twice, values of the wrong type, an unknown default and a rule without
// names are errors, each a *PolicyError naming the line and column; source names the input in them.
func ParsePolicy(data []byte, source string) (*Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // a number is a type error, never a range error
	p := &policyParser{data: data, dec: dec, source: source}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, p.errAt(0, "the policy is empty")
	}
	pol, err := p.policy()
	var pe *PolicyError
	var se *json.SyntaxError
	switch {
	case err == nil:
		return pol, nil
	case errors.As(err, &pe):
		return nil, err
	case errors.As(err, &se):
		return nil, p.errAt(se.Offset, "%s", strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return nil, p.errAt(int64(len(data)), "the policy ends early")
	}
	return nil, p.errAt(dec.InputOffset(), "%s", strings.TrimPrefix(err.Error(), "json: "))
}

type policyParser struct {
	data   []byte
	dec    *json.Decoder
	source string
}

// errAt is a PolicyError at byte offset off of the input.
func (p *policyParser) errAt(off int64, format string, args ...any) error {
	off = max(0, min(off, int64(len(p.data))))
	before := p.data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return &PolicyError{Source: p.source, Line: line, Column: col, Reason: fmt.Sprintf(format, args...)}
}

// token reads the next token and where it starts (the decoder's offset is past the separator
// before it, which is not where an operator looks).
func (p *policyParser) token() (json.Token, int64, error) {
	at := p.dec.InputOffset()
	for at < int64(len(p.data)) && strings.IndexByte(" \t\r\n,:", p.data[at]) >= 0 {
		at++
	}
	tok, err := p.dec.Token()
	return tok, at, err
}

// object reads an object, calling field for each key with the key's offset; a key given twice is
// an error. what names the object in messages.
func (p *policyParser) object(what string, field func(key string, at int64) error) error {
	tok, at, err := p.token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return p.errAt(at, "%s must be a JSON object, not %s", what, kind(tok))
	}
	seen := map[string]bool{}
	for p.dec.More() {
		tok, at, err := p.token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if seen[key] {
			return p.errAt(at, "%s: %q is given twice", what, key)
		}
		seen[key] = true
		if err := field(key, at); err != nil {
			return err
		}
	}
	_, _, err = p.token() // the closing brace
	return err
}

func (p *policyParser) str(what string) (string, int64, error) {
	tok, at, err := p.token()
	if err != nil {
		return "", at, err
	}
	s, ok := tok.(string)
	if !ok {
		return "", at, p.errAt(at, "%s must be a string, not %s", what, kind(tok))
	}
	return s, at, nil
}

// pattern reads one glob.
func (p *policyParser) pattern(what string) (string, error) {
	s, at, err := p.str(what)
	switch {
	case err != nil:
		return "", err
	case s == "":
		return "", p.errAt(at, "%s is empty; use \"*\" for anything", what)
	case len(s) > maxPattern:
		return "", p.errAt(at, "%s is longer than %d characters", what, maxPattern)
	}
	return s, nil
}

func (p *policyParser) patterns(what string) ([]string, error) {
	tok, at, err := p.token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('[') {
		return nil, p.errAt(at, "%s must be a list of strings, not %s", what, kind(tok))
	}
	out := []string{}
	for i := 0; p.dec.More(); i++ {
		s, err := p.pattern(fmt.Sprintf("%s[%d]", what, i))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	_, _, err = p.token() // the closing bracket
	return out, err
}

func (p *policyParser) policy() (*Policy, error) {
	pol := &Policy{source: p.source}
	defaultAt := int64(-1)
	err := p.object("the policy", func(key string, at int64) error {
		switch key {
		case "default":
			v, vat, err := p.str(`"default"`)
			if err != nil {
				return err
			}
			switch Default(v) {
			case DefaultAllow, DefaultDeny, DefaultECSIdentity:
			default:
				return p.errAt(vat, "unknown default %q: it is allow, deny or ecs-identity", v)
			}
			pol.def, defaultAt = Default(v), at
			return nil
		case "rules":
			return p.rules(pol)
		case "comment":
			_, _, err := p.str(`"comment"`)
			return err
		}
		return p.errAt(at, "unknown field %q: the policy's fields are default, rules and comment", key)
	})
	if err != nil {
		return nil, err
	}
	if tok, at, err := p.token(); err != io.EOF {
		what := "data"
		if err == nil {
			what = kind(tok)
		}
		return nil, p.errAt(at, "%s after the policy's closing brace", what)
	}
	if defaultAt < 0 {
		return nil, p.errAt(0, `the policy has no "default": write "default": "allow", "deny" or "ecs-identity"`)
	}
	return pol, nil
}

func (p *policyParser) rules(pol *Policy) error {
	tok, at, err := p.token()
	if err != nil {
		return err
	}
	if tok != json.Delim('[') {
		return p.errAt(at, `"rules" must be a list of objects, not %s`, kind(tok))
	}
	for p.dec.More() {
		if err := p.rule(pol); err != nil {
			return err
		}
	}
	_, _, err = p.token()
	return err
}

func (p *policyParser) rule(pol *Policy) error {
	r := rule{n: len(pol.rules) + 1}
	what := fmt.Sprintf("rule %d", r.n)
	start := p.dec.InputOffset()
	hasNames := false
	err := p.object(what, func(key string, at int64) error {
		field := what + ": " + key
		var err error
		switch key {
		case "cluster", "family", "service", "image":
			var g string
			if g, err = p.pattern(field); err == nil {
				r.match = append(r.match, matcher{field: key, glob: g})
			}
		case "names":
			r.names, err = p.patterns(field)
			hasNames = true
		case "ids":
			r.ids, err = p.patterns(field)
			r.idsGiven = true
		case "connect":
			tok, vat, terr := p.token()
			b, ok := tok.(bool)
			switch {
			case terr != nil:
				err = terr
			case !ok:
				err = p.errAt(vat, "%s must be true or false, not %s", field, kind(tok))
			}
			r.connect = b
		case "comment":
			_, _, err = p.str(field)
		default:
			err = p.errAt(at, "%s: unknown field %q: a rule's fields are cluster, family, service, image (what it matches), names, ids, connect (what it allows) and comment", what, key)
		}
		return err
	})
	if err != nil {
		return err
	}
	if !hasNames {
		for start < int64(len(p.data)) && p.data[start] != '{' {
			start++
		}
		return p.errAt(start, `%s has no "names": list the names it allows ([] allows none)`, what)
	}
	pol.rules = append(pol.rules, r)
	return nil
}

// kind names a JSON token in an error.
func kind(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{', '}':
			return "an object"
		}
		return "a list"
	case string:
		return fmt.Sprintf("the string %q", v)
	case json.Number:
		return "a number"
	case bool:
		return fmt.Sprintf("%v", v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}
