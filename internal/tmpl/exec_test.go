package tmpl

import (
	"errors"
	"strings"
	"testing"
	"text/template"
)

// tagData has the shape of the data of this daemon's own -tags (desired.TagData): strings and
// the container's labels.
type tagData struct {
	ID, Name, Image  string
	Labels           map[string]string
	Cluster, TaskARN string
	TaskID, Family   string
	Revision         string
	Service          string
	Container        string
	AvailabilityZone string
	InstanceID       string
	Region           string
}

// reference renders src with text/template as the daemon did before it evaluated tag templates
// itself: the tests hold the two to the same output and the same errors.
func reference(src string, d tagData) (string, bool, error) {
	t, err := template.New("tag").Option("missingkey=error").Parse(src)
	if err != nil {
		return "", false, err
	}
	var b strings.Builder
	err = t.Execute(&b, d)
	return b.String(), err == nil, nil
}

// ours renders src as the daemon's own -tags do: text/template's builtins, missingkey=error.
func ours(src string, d tagData) (string, error, error) {
	t, err := Compile[tagData]("tag", src, Options{Funcs: Builtins(), MissingKeyError: true})
	if err != nil {
		return "", nil, err
	}
	var b strings.Builder
	err = t.Execute(&b, d)
	return b.String(), err, nil
}

var tagDataFixture = tagData{ID: "c0ffee", Name: "web-1", Image: "img:1", Labels: map[string]string{"team": "payments", "tier": "", "a": "1"},
	Cluster: "prod", TaskARN: "arn:aws:ecs:eu-west-1:1:task/prod/abc", TaskID: "abc", Family: "web", Revision: "7",
	AvailabilityZone: "eu-west-1a", Region: "eu-west-1"}

func TestTagTemplateMatchesTextTemplate(t *testing.T) {
	for _, src := range []string{
		"plain", "az-{{.AvailabilityZone}}", "{{.Family}}-{{.Revision}}", "{{.Labels.team}}", "{{.Labels.nope}}",
		`{{index .Labels "team"}}`, `{{index .Labels "nope"}}`, "{{with .Service}}svc-{{.}}{{end}}",
		"{{with .Cluster}}c-{{.}}{{else}}none{{end}}", "{{if .Service}}s{{else if .Cluster}}c{{else}}n{{end}}",
		`{{if eq .Cluster "prod" "staging"}}live{{end}}`, `{{if ne .Family "web"}}x{{else}}y{{end}}`,
		`{{if and .Cluster (not .Service)}}both{{end}}`, `{{or .Service .Family}}`, `{{and .Family .Service}}`,
		`{{printf "%s,%s" .Family .Revision}}`, `{{printf "%s-%d" .Name (len .Labels)}}`, `{{print .Name 1 true}}`,
		`{{println .Name}}`, `{{.Name | printf "n=%s"}}`, `{{.Labels.team | len}}`, `{{len .Name | printf "%d"}}`,
		"{{range .Labels}}{{.}};{{end}}", "{{range $k, $v := .Labels}}{{$k}}={{$v}},{{end}}",
		"{{range $v := .Labels}}{{if not $v}}{{continue}}{{end}}{{$v}}{{end}}", "{{range .Labels}}{{break}}{{end}}x",
		"{{range .Labels}}{{else}}empty{{end}}", "{{$x := .Family}}{{$x}}-{{$.Name}}", "{{$x := 1}}{{$x = 2}}{{$x}}",
		`{{if lt .Revision "8"}}old{{end}}{{if ge (len .Name) 5}}long{{end}}`, `{{if gt 3 2}}gt{{end}}{{if le 2 2}}le{{end}}`,
		"{{/* a comment */}}c", "{{- .Name -}} ", "{{.Labels}}", "{{.}}", `{{eq .Name 1}}`, `{{index .Name "x"}}`,
		"{{.Name.Nope}}", "{{.Nope}}", "{{nope}}", `{{template "x"}}`, `{{define "x"}}y{{end}}`, "{{.Family 1}}",
		`{{printf}}`, "{{1.5}}", "{{nil}}", "{{range .Name}}{{end}}", `{{lt true false}}`,
		// and and or stop at the argument that decides: a later one is never evaluated.
		"{{or .Family .Labels.nope}}", "{{and false .Labels.nope}}", `{{if and (index .Labels "nope") (eq .Labels.nope "x")}}y{{end}}`,
		"{{.Family | or .Service}}", "{{.Family | and .Service}}", "{{and}}",
		// range variables: assigned ones keep the last key and value; declared ones hold the map in else.
		`{{$k := ""}}{{$v := ""}}{{range $k, $v = .Labels}}{{end}}{{$k}}={{$v}}`, `{{$v := "x"}}{{range $v = .Labels}}{{$v}}{{end}}{{$v}}`,
		"{{range $v := .Service}}{{else}}{{$v}}{{end}}", "{{range $i, $e := 3}}{{$i}}{{$e}}{{end}}", "{{range 3}}{{.}}{{end}}",
		"{{range $k, $v := .Labels}}{{$x := $k}}{{$x}}{{end}}",
		// dot inside with and range is not the TagData.
		"{{with .Labels}}{{.team}}{{end}}", "{{with .Labels}}{{.nope}}{{end}}", "{{range .Labels}}{{.X}}{{end}}",
		// numbers and comparisons as text/template types them.
		`{{printf "%.2f" 1.0}}`, "{{eq 1.0 1}}", "{{1 | eq 1.0}}", "{{lt 1.5 2.5}}", "{{1i}}", "{{18446744073709551615}}",
		"{{0x1F}}", "{{0x1p4}}", "{{1e3}}", "{{'a'}}", "{{lt -9223372036854775808 1}}", "{{gt 9223372036854775807 -1}}",
		"{{index .Labels}}", "{{index .Name}}", "{{index .Name 0}}", "{{index .Name 99}}", `{{index .Labels "team" 0}}`,
		"{{print nil}}", "{{not nil}}", "{{if 0.0}}t{{else}}f{{end}}",
	} {
		want, wantOK, wantErr := reference(src, tagDataFixture)
		got, execErr, gotErr := ours(src, tagDataFixture)
		gotOK := gotErr == nil && execErr == nil
		if errors.Is(execErr, ErrInternal) {
			t.Errorf("%q: %v", src, execErr)
		}
		switch {
		case (wantErr == nil) != (gotErr == nil):
			// Parse errors may differ where the evaluator refuses more ({{template}}, {{define}},
			// floats), never the other way round.
			if wantErr != nil {
				t.Errorf("%q: text/template refuses it (%v), the evaluator parses it", src, wantErr)
			}
		case wantOK != gotOK:
			t.Errorf("%q: text/template ok=%v %q, evaluator ok=%v %q", src, wantOK, want, gotOK, got)
		case wantOK && want != got:
			t.Errorf("%q: text/template %q, evaluator %q", src, want, got)
		}
	}
}

// FuzzTagTemplate: the evaluator gives what text/template gives for every template both accept, over
// data shaped like the daemon's own -tags data, and never panics.
func FuzzTagTemplate(f *testing.F) {
	f.Add("ecs,az-{{.AvailabilityZone}},{{.Family}}-{{.Revision}}", "team", "payments")
	f.Add("{{.Labels.team}},{{index .Labels \"x\"}}", "x", "a,b")
	f.Add("{{range .Labels}}{{.}}{{end}}", "k", "\n")
	f.Add("{{printf \"%s,%s\" .Name .ID}}", "", "")
	f.Add("{{range $k, $v := .Labels}}{{if eq $k \"x\"}}{{break}}{{end}}{{$v}}{{end}}", "x", "y")
	f.Add("{{with .Service}}{{. | printf \"%q\"}}{{else}}{{len .Family}}{{end}}", "", "abc")
	f.Fuzz(func(t *testing.T, src, k, v string) {
		d := tagData{Name: "n", Labels: map[string]string{k: v}, Family: v, Service: k}
		got, execErr, err := ours(src, d)
		if err != nil {
			return
		}
		if errors.Is(execErr, ErrInternal) {
			t.Fatalf("%q: %v", src, execErr)
		}
		if execErr != nil && strings.Contains(execErr.Error(), "gave up after") {
			return // a bound text/template does not have
		}
		if want, wantOK, err := reference(src, d); err == nil && (wantOK != (execErr == nil) || got != want) {
			t.Fatalf("%q: text/template ok=%v %q, evaluator %q, %v", src, wantOK, want, got, execErr)
		}
	})
}
