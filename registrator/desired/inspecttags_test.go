package desired

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/ecs-registrator/ecs-registrator/internal/tmpl"
)

// The evaluator itself is held to text/template over the docker inspect document by internal/tmpl's
// tests (TestInspectTagTemplateMatchesTextTemplate, FuzzInspectTagTemplate); these are the glue: the
// functions refused, the error's prefix, the splitting into tags and the bounds.

// renderFixture is a docker inspect document with what the Render tests read.
func renderFixture() container.InspectResponse {
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID:    "e20f9c1a76565d62ae24a3bb877b17b862b6eab94f4e95a0e07ccf25087aaf4f",
			State: &container.State{Status: container.StateRunning, Running: true, Pid: 4242},
		},
		Config: &container.Config{
			Hostname: "web-7f9c",
			Env:      []string{"ENVIRONMENT=test", "SERVICE_8080_NAME=web", "HOME=/home/app", "SERVICE_9404_NAME=metrics"},
			Labels:   map[string]string{"team": "payments", "tier": "", "com.example.x": "x-value"},
		},
	}
}

func TestParseInspectTagTemplateRefuses(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{`{{httpGet "http://169.254.169.254/latest/meta-data/"}}`, "SSRF"},
		{`{{jsonParse (httpGet .Config.Labels.url) "a"}}`, "put the value into a label"},
		{`{{template "x"}}`, "{{template}} is not supported"},
		{`{{define "x"}}y{{end}}`, "{{define}} and {{block}} are not supported"},
		{`{{call .Config.Hostname}}`, "call is not supported"},
		{`{{html .Config.Hostname}}`, "html is not supported"},
		{`{{.Config.Hostnme}}`, "can't evaluate field Hostnme in type container.Config"},
		{`{{$.State.Nope}}`, "can't evaluate field Nope"},
		{`{{.Config.Hostname`, "unclosed action"},
		{`{{nope .Config.Hostname}}`, `function "nope" not defined`},
		{`{{range .Config.Env}}{{end}}{{break}}`, "{{break}} outside {{range}}"},
	} {
		_, err := ParseInspectTagTemplate(c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "-tags template: ") {
			t.Errorf("%q: error %v, want one saying %q", c.src, err, c.want)
		}
	}
}

func TestInspectTagTemplateRender(t *testing.T) {
	in := renderFixture()
	long := strings.Repeat("x", maxNameLen+1)
	for _, c := range []struct {
		name, src string
		want      []string
		err       string
	}{
		{name: "split and unescaped", src: `{{.Config.Labels.team}}, a\,b ,,{{.Config.Hostname}},payments`, want: []string{"payments", "a,b", "web-7f9c"}},
		{name: "range into a list", src: `{{range $i, $e := .Config.Env}}{{if lt $i 3}}{{splitIndex 0 "=" $e}},{{end}}{{end}}`,
			want: []string{"ENVIRONMENT", "SERVICE_8080_NAME", "HOME"}},
		{name: "empty", src: `{{with .Config.Labels.nope}}{{.}}{{end}}`},
		{name: "missing label renders as text/template prints it", src: `t-{{.Config.Labels.nope}}`, want: []string{"t-<no value>"}},
		{name: "bad tags left out, good ones kept", src: "ok," + long + ",a{{print \"\\n\"}}b,ok2", want: []string{"ok", "ok2"},
			err: "2 tags longer than 255 bytes or holding a newline"},
		{name: "failure gives no tags", src: `ok,{{toUpper .Config.Labels.nope}}`, err: "invalid value; expected string"},
		{name: "nil pointer", src: `ok,{{.State.Health.Status}}`, err: "nil pointer evaluating *container.Health.Status"},
		{name: "output bounded", src: `{{range 100000}}{{$.ID}},{{end}}`, err: "output longer than"},
		{name: "work bounded", src: `{{range 100000000}}{{end}}`, err: "gave up after"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tt, err := ParseInspectTagTemplate(c.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tt.Render(in)
			if !slices.Equal(got, c.want) {
				t.Errorf("tags %q, want %q", got, c.want)
			}
			if (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
				t.Errorf("error %v, want %q", err, c.err)
			}
		})
	}
}

func TestSplitEscapedTags(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{`foo\,bar,baz`, []string{"foo,bar", "baz"}},
		{"", nil},
		{" , ,", nil},
		{" a , b ,a,b, c", []string{"a", "b", "c"}},
		{`a\,`, []string{"a,"}},
		{`\,`, []string{","}},
		{`a\\,b`, []string{`a\,b`}},
		{`a\b,c\`, []string{`a\b`, `c\`}},
		{"a\nb,c", []string{"a\nb", "c"}},
		{"\tx\n,y", []string{"x", "y"}},
	} {
		if got := splitTags(c.in); !slices.Equal(got, c.want) {
			t.Errorf("splitTags(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzInspectTagTemplateRender: any -tags value parses or fails cleanly, a parsed one never panics,
// and Render's tags are ones Consul takes.
func FuzzInspectTagTemplateRender(f *testing.F) {
	for _, src := range []string{
		"{{.Config.Hostname}}", "{{.Config.Labels.team}}", `{{index .Config.Labels "com.example.x"}}`, "{{.State.Health.Status}}",
		"{{range .Config.Env}}{{.}};{{end}}", `{{range $k, $v := .Config.Labels}}{{$k}}\,{{$v}},{{end}}`, "{{range 100000}}{{$.ID}},{{end}}",
		`{{splitIndex -1 "=" (sIndex 0 .Config.Env)}},{{strSlice .Config.Labels.team 1 3}}`, `{{httpGet "http://x"}}`,
		`{{matchAllElements .Config.Labels.team .Config.Env}}`, `{{jsonParse .Config.Labels.team "a::[0]"}}`,
	} {
		f.Add(src, "payments", "A=1")
	}
	f.Add(`{{.Config.Labels.team}},{{index .Config.Env 4}}`, "a,b", "X=\n")
	f.Fuzz(func(t *testing.T, src, label, env string) {
		in := renderFixture()
		in.Config.Labels["team"] = label
		in.Config.Env = append(in.Config.Env, env)
		tt, err := ParseInspectTagTemplate(src)
		if err != nil {
			return
		}
		tags, err := tt.Render(in)
		if errors.Is(err, tmpl.ErrInternal) {
			t.Fatalf("%q: %v", src, err)
		}
		for _, tag := range tags {
			if tag == "" || len(tag) > maxNameLen || strings.Contains(tag, "\n") {
				t.Fatalf("%q: tag %q", src, tag)
			}
		}
	})
}
