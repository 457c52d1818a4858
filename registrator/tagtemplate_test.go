package registrator

import (
	"strings"
	"testing"
	"text/template"
)

// reference renders src with text/template as the daemon did before it evaluated tag templates
// itself: the tests hold the two to the same output and the same errors.
func reference(src string, d TagData) (string, bool, error) {
	t, err := template.New("tag").Option("missingkey=error").Parse(src)
	if err != nil {
		return "", false, err
	}
	var b strings.Builder
	err = t.Execute(&b, d)
	return b.String(), err == nil, nil
}

func ours(src string, d TagData) (string, bool, error) {
	t, err := parseTagTemplate("tag", src)
	if err != nil {
		return "", false, err
	}
	var b strings.Builder
	err = t.Execute(&b, d)
	return b.String(), err == nil, nil
}

var tagData = TagData{ID: "c0ffee", Name: "web-1", Image: "img:1", Labels: map[string]string{"team": "payments", "tier": "", "a": "1"},
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
	} {
		want, wantOK, wantErr := reference(src, tagData)
		got, gotOK, gotErr := ours(src, tagData)
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
