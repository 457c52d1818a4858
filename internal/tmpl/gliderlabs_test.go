package tmpl

import (
	"errors"
	"maps"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"text/template"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/strslice"
	"github.com/docker/go-connections/nat"
)

// gliderlabsFuncMap is gliderlabs/registrator's -tags functions written as plainly as gliderlabs
// wrote them, panics included (text/template turns a panic into an error), for text/template: the
// reference the evaluator is held to. httpGet is left out: the evaluator refuses it.
var gliderlabsFuncMap = template.FuncMap{
	"strSlice": func(v string, i ...int) string {
		switch {
		case len(i) == 1 && len(v) >= i[0]:
			return v[i[0]:]
		case len(i) == 2 && len(v) >= i[0] && len(v) >= i[1] && i[0] == 0:
			return v[:i[1]]
		case len(i) == 2 && len(v) >= i[0] && len(v) >= i[1] && i[1] < i[0]:
			return v[i[0]:]
		case len(i) == 2 && len(v) >= i[0] && len(v) >= i[1]:
			return v[i[0]:i[1]]
		}
		return v
	},
	"sIndex":     refSIndex,
	"mIndex":     func(k string, m map[string]string) string { return m[k] },
	"toUpper":    strings.ToUpper,
	"toLower":    strings.ToLower,
	"replace":    func(n int, old, new, v string) string { return strings.Replace(v, old, new, n) },
	"join":       func(sep string, s []string) string { return strings.Join(s, sep) },
	"split":      func(sep, v string) []string { return strings.Split(v, sep) },
	"splitIndex": func(i int, sep, v string) string { return refSIndex(i, strings.Split(v, sep)) },
	"matchFirstElement": func(r string, s []string) string {
		re := regexp.MustCompile(r)
		for _, e := range s {
			if re.MatchString(e) {
				return e
			}
		}
		return ""
	},
	"matchAllElements": func(r string, s []string) []string {
		var m []string
		re := regexp.MustCompile(r)
		for _, e := range s {
			if re.MatchString(e) {
				m = append(m, e)
			}
		}
		return m
	},
	// The JSON lookup itself is TestJSONPath's; here, the argument checks around it.
	"jsonParse": func(b []byte, k string) string { return jsonPath(b, strings.Split(k, "::")) },
}

func refSIndex(i int, s []string) string {
	if i < 0 {
		i = -i
		if i >= len(s) {
			return s[0]
		}
		return s[len(s)-i]
	}
	if i >= len(s) {
		return s[len(s)-1]
	}
	return s[i]
}

// referenceInspect renders src with text/template as gliderlabs/registrator did.
func referenceInspect(src string, in container.InspectResponse) (out string, ok bool, parseErr error) {
	t, err := template.New("tags").Funcs(gliderlabsFuncMap).Parse(src)
	if err != nil {
		return "", false, err
	}
	var b strings.Builder
	err = t.Execute(&b, in)
	return b.String(), err == nil, nil
}

// oursInspect renders src as gliderlabs-mode -tags do: text/template's builtins and gliderlabs's
// functions, output bounded as the daemon bounds it.
func oursInspect(src string, in container.InspectResponse) (out string, execErr, parseErr error) {
	funcs := Builtins()
	maps.Copy(funcs, GliderlabsFuncs())
	t, err := Compile[container.InspectResponse]("tags", src, Options{Funcs: funcs})
	if err != nil {
		return "", nil, err
	}
	w := &boundedWriter{max: 64 << 10}
	if err := t.Execute(w, in); err != nil {
		return "", err, nil
	}
	return w.String(), nil, nil
}

// boundedWriter fails a write past max bytes, as the daemon's writer does: a {{range}} gone wild
// in the fuzz target stops early.
type boundedWriter struct {
	strings.Builder
	max int
}

func (w *boundedWriter) Write(p []byte) (int, error) {
	if w.Len()+len(p) > w.max {
		return 0, errors.New("output longer than the bound")
	}
	return w.Builder.Write(p)
}

// inspectFixture is a docker inspect document as an ECS task container's looks.
func inspectFixture() container.InspectResponse {
	stop := 10
	in := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID:      "e20f9c1a76565d62ae24a3bb877b17b862b6eab94f4e95a0e07ccf25087aaf4f",
			Created: "2024-05-01T10:00:00.000000000Z",
			Path:    "/app/server",
			Args:    []string{"-port", "8080"},
			State: &container.State{Status: container.StateRunning, Running: true, Pid: 4242,
				StartedAt: "2024-05-01T10:00:01Z"},
			Image:        "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741",
			Name:         "/ecs-web-7-web-c2e4a1",
			RestartCount: 1,
			Driver:       "overlay2",
			Platform:     "linux",
			HostConfig: &container.HostConfig{NetworkMode: "bridge", ConsoleSize: [2]uint{24, 3},
				PortBindings: nat.PortMap{"8080/tcp": {{HostIP: "0.0.0.0", HostPort: "32768"}}},
				LogConfig:    container.LogConfig{Type: "awslogs", Config: map[string]string{"awslogs-group": "/ecs/web"}}},
		},
		Mounts: []container.MountPoint{{Type: "bind", Source: "/var/log", Destination: "/logs", RW: true}},
		Config: &container.Config{
			Hostname:     "web-7f9c",
			Domainname:   "",
			User:         "app",
			ExposedPorts: nat.PortSet{"8080/tcp": {}, "9404/tcp": {}, "53/udp": {}},
			Env: []string{"ENVIRONMENT=test", "SERVICE_8080_NAME=web", "HOME=/home/app", "SERVICE_9404_NAME=metrics",
				`META={"team":{"name":"payments","oncall":["ann","bob"]},"tier":2}`},
			Cmd:         strslice.StrSlice{"/app/server", "-port", "8080"},
			Image:       "registry.example.com/team/web:1.4.2",
			WorkingDir:  "/app",
			Entrypoint:  strslice.StrSlice{"/sbin/tini", "--"},
			StopTimeout: &stop,
			Labels: map[string]string{
				"team":                             "payments",
				"tier":                             "",
				"com.example.x":                    "x-value",
				"com.amazonaws.ecs.task-arn":       "arn:aws:ecs:eu-west-1:123456789012:task/prod/368f44030ee44f4cb7a5be50c57db5cf",
				"com.amazonaws.ecs.container-name": "web",
				"com.amazonaws.ecs.task-definition-family": "web",
				"json": `{"a":{"b":"c,d"},"n":[1,2]}`,
			},
		},
		NetworkSettings: &container.NetworkSettings{
			Networks: map[string]*network.EndpointSettings{
				"bridge": {NetworkID: "b1", EndpointID: "e1", Gateway: "172.17.0.1", IPAddress: "172.17.0.5", IPPrefixLen: 16,
					Aliases: []string{"web", "web-7f9c"}},
				"backend": {NetworkID: "b2", IPAddress: "10.1.0.9", IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: "10.1.0.9"}},
			},
		},
	}
	in.NetworkSettings.SandboxID = "9c1d"
	in.NetworkSettings.Ports = nat.PortMap{
		"8080/tcp": {{HostIP: "0.0.0.0", HostPort: "32768"}, {HostIP: "::", HostPort: "32768"}},
		"9404/tcp": nil,
		"53/udp":   {{HostIP: "0.0.0.0", HostPort: "5353"}},
	}
	// gliderlabs templates read the default network's fields ({{.NetworkSettings.IPAddress}}), which
	// Docker deprecates but still fills: set by name, so that the fixture need not name what is deprecated.
	ns := reflect.ValueOf(in.NetworkSettings).Elem()
	ns.FieldByName("IPAddress").SetString("172.17.0.5")
	ns.FieldByName("Gateway").SetString("172.17.0.1")
	ns.FieldByName("IPPrefixLen").SetInt(16)
	// The manifest descriptor's Data is the document's one []byte, jsonParse's argument in gliderlabs.
	d := reflect.ValueOf(&in).Elem().FieldByName("ImageManifestDescriptor")
	d.Set(reflect.New(d.Type().Elem()))
	d.Elem().FieldByName("MediaType").SetString("application/vnd.oci.image.manifest.v1+json")
	d.Elem().FieldByName("Data").SetBytes([]byte(`{"config":{"size":7023,"digest":"sha256:b5b2"},"layers":[{"size":32654},{"size":16724}]}`))
	return in
}

// inspectTemplates cover every construct and function, and errors: the evaluator must give what
// text/template gave gliderlabs, or fail where it failed.
var inspectTemplates = []string{
	// Fields, through the embedded *ContainerJSONBase and embedded NetworkSettings structs, and map keys.
	"{{.Config.Hostname}}", "{{.ID}}", "{{.Name}}", "{{.Image}},{{.Config.Image}}", "{{.Created}}", "{{.RestartCount}}",
	"{{.Config.Labels.team}}", "{{.Config.Labels.nope}}", "{{.Config.Labels.tier}}", `{{index .Config.Labels "com.example.x"}}`,
	`{{index .Config.Labels "nope"}}|`, "{{.NetworkSettings.IPAddress}}", "{{.NetworkSettings.Networks.bridge.IPAddress}}",
	"{{.NetworkSettings.Networks.nope.IPAddress}}", "{{.NetworkSettings.Networks.bridge.Aliases}}",
	"{{.NetworkSettings.Networks.backend.IPAMConfig.IPv4Address}}", "{{.NetworkSettings.Networks.bridge.IPAMConfig.IPv4Address}}",
	"{{.NetworkSettings.Ports}}", "{{.Config.ExposedPorts}}", "{{.State.Running}},{{.State.Status}},{{.State.Pid}}",
	"{{.State.Health}}", "{{.State.Health.Status}}", "{{.HostConfig.NetworkMode}}", "{{.HostConfig.LogConfig.Config}}",
	"{{.HostConfig.PortBindings}}", "{{.Config.Env}}", "{{.Config.Cmd}}", "{{.Config.StopTimeout}}", "{{.Config.Healthcheck}}",
	"{{.SizeRw}}", "{{.Mounts}}", "{{.Args}}", "{{.State}}", "{{.Config.Labels}}", "{{.}}", "{{$.Config.Hostname}}",
	"{{.ImageManifestDescriptor.MediaType}}", "{{.ImageManifestDescriptor.Size}}",
	// Fields that are not there, arguments to fields, unexported fields, methods.
	"{{.Config.Nope}}", "{{$.Nope}}", "{{.Config.Hostname 1}}", "{{.Config.Labels.team 1}}", "{{.Config.Labels.team.X}}",
	"{{.NetworkSettings.Ports.Something}}", "{{with .Config}}{{.Nope}}{{end}}", "{{with .NetworkSettings}}{{.Ports.x}}{{end}}",
	"{{.config}}", "{{with .HostConfig}}{{.NetworkMode.Nope}}{{end}}",
	// Text, comments, trimming, variables, pipelines, parentheses, constants.
	"plain text", "{{/* a comment */}}c", "a {{- .Config.User -}} b", "{{$h := .Config.Hostname}}{{$h}}-{{$.Name}}",
	"{{$x := 1}}{{$x = 2}}{{$x}}", "{{.Config.Hostname | printf \"h-%s\"}}", "{{(.Config.Hostname)}}", "{{(index .Config.Env 1)}}",
	"{{printf \"%v\" (len .Config.Env)}}", "{{1}} {{1.5}} {{1e3}} {{0x1F}} {{'a'}} {{true}} {{\"s\"}} {{`raw`}} {{1i}}",
	"{{nil}}", "{{18446744073709551615}}", "{{(.NetworkSettings.Networks).bridge.Gateway}}", "{{.Config.Hostname | .Config.User}}",
	"{{$n := .NetworkSettings.Networks}}{{$n.bridge.Gateway}}{{$n.nope.Gateway}}", "{{$}}x",
	// if, else if, with, else with.
	"{{if .State.Running}}up{{else}}down{{end}}", "{{if .Config.Labels.tier}}t{{else if .Config.Labels.team}}team{{else}}n{{end}}",
	"{{if .State.Health}}h{{else}}no-health{{end}}", "{{with .Config.Labels.team}}team-{{.}}{{end}}",
	"{{with .Config.Labels.nope}}x{{else}}none{{end}}", "{{with .Config.Labels.nope}}a{{else with .Config.Hostname}}{{.}}{{end}}",
	"{{with $n := .NetworkSettings.Networks.bridge}}{{$n.Gateway}} {{.IPPrefixLen}}{{end}}", "{{with .Config}}{{$.Name}} {{.Hostname}}{{end}}",
	"{{if .Mounts}}m{{end}}{{if .Config.OnBuild}}o{{end}}{{if .Config.ExposedPorts}}p{{end}}{{if .Config.StopTimeout}}s{{end}}",
	// range over slices, arrays, maps (sorted), integers; variables; break and continue; else.
	"{{range .Config.Env}}{{.}};{{end}}", "{{range $i, $e := .Config.Env}}{{$i}}:{{$e}};{{end}}",
	"{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
	"{{range $p, $b := .NetworkSettings.Ports}}{{$p}}={{range $b}}{{.HostIP}}:{{.HostPort}} {{else}}none{{end}};{{end}}",
	"{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}", "{{range .Config.ExposedPorts}}{{.}}{{end}}",
	"{{range .Config.Env}}{{if eq . \"HOME=/home/app\"}}{{break}}{{end}}{{.}},{{end}}",
	"{{range .Config.Env}}{{if not (matchFirstElement \"^SERVICE_\" (split \"\\n\" .))}}{{continue}}{{end}}{{.}},{{end}}",
	"{{range .Config.OnBuild}}x{{else}}empty{{end}}", "{{range .Config.Labels.nope}}x{{else}}missing{{end}}",
	"{{range $v := .Config.OnBuild}}{{else}}{{$v}}{{end}}", "{{range 3}}{{.}}{{end}}", "{{range $i := 2}}{{$i}}{{end}}",
	"{{range $i, $e := 3}}{{end}}", "{{$k := \"\"}}{{range $k = .Config.Labels}}{{end}}{{$k}}", "{{range .Config.Hostname}}{{end}}",
	"{{range .State}}{{end}}", "{{range .State.Health}}x{{else}}nil{{end}}", "{{range .Mounts}}{{.Source}}->{{.Destination}}{{end}}",
	"{{range $i, $b := index .NetworkSettings.Networks.bridge.Aliases}}{{$i}}{{$b}}{{end}}",
	"{{range .Config.Env}}{{with .}}{{if eq . \"HOME=/home/app\"}}{{break}}{{end}}{{end}}{{.}};{{end}}",
	"{{range $i, $e := .Config.Env}}{{if lt $i 2}}{{continue}}{{else}}{{$i}}{{end}}{{end}}",
	"{{$x := 0}}{{range .Config.Env}}{{$x = .}}{{end}}{{$x}}", "{{$i := 0}}{{$e := 0}}{{range $i, $e = .Config.Args}}{{end}}{{$i}}={{$e}}",
	"{{range $k, $v := .Config.Labels}}{{$y := $k}}{{end}}{{range $k, $v := .Config.Labels}}{{break}}{{$k}}{{else}}e{{end}}x",
	"{{.HostConfig.ConsoleSize}} {{index .HostConfig.ConsoleSize 1}} {{slice .HostConfig.ConsoleSize 1}} {{len .HostConfig.ConsoleSize}}",
	"{{range $i, $c := .HostConfig.ConsoleSize}}{{$i}}:{{$c}} {{end}}{{range (index .HostConfig.ConsoleSize 1)}}{{.}}{{end}}",
	"{{eq (index .HostConfig.ConsoleSize 0) 24}} {{lt -1 (index .HostConfig.ConsoleSize 0)}} {{gt (index .HostConfig.ConsoleSize 1) 100}}",
	"{{index .HostConfig.ConsoleSize (index .HostConfig.ConsoleSize 2)}}", "{{sIndex (index .HostConfig.ConsoleSize 0) .Config.Env}}",
	// Builtins.
	"{{and .Config.Hostname .Config.User}}", "{{and .Config.Labels.tier .Config.Labels.nope}}", "{{or .Config.Labels.tier \"dflt\"}}",
	"{{or .Config.Labels.nope}}", "{{and}}", "{{.Config.Hostname | and .State.Running}}", "{{.Config.Hostname | or .Config.Labels.tier}}",
	"{{not .State.Running}} {{not .Config.Labels.nope}} {{not nil}}", `{{eq .State.Status "running" "paused"}}`, `{{ne .Config.User "root"}}`,
	"{{eq .State.Pid 4242}} {{lt .State.Pid 5}} {{le .RestartCount 1}} {{gt .State.Pid 1}} {{ge .RestartCount 2}}",
	"{{lt .Config.Hostname \"x\"}} {{eq 1.5 1.5}} {{eq true true}}", "{{eq .State.Health nil}} {{eq .Config.Healthcheck nil}}",
	"{{eq .Config.Labels \"x\"}}", "{{lt true false}}", "{{eq .Config.Env .Config.Env}}", "{{eq .State .State}}",
	"{{eq .HostConfig.NetworkMode \"bridge\"}}", "{{eq}}", "{{ne 1}}",
	"{{len .Config.Env}} {{len .Config.Labels}} {{len .Config.Hostname}} {{len .NetworkSettings.Ports}}", "{{len .State}}",
	"{{len .Config.Labels.nope}}", "{{len .State.Health}}", "{{len .Config.OnBuild}}",
	"{{index .Config.Env 1}}", "{{index .Config.Env 5}}", "{{index .Config.Env -1}}", "{{index .Config.Hostname 0}}",
	"{{index .NetworkSettings.Networks \"bridge\" }}", `{{(index .NetworkSettings.Networks "bridge").Gateway}}`,
	`{{index .NetworkSettings.Ports "8080/tcp"}}`, "{{index .Config.Labels}}", "{{index nil 1}}", "{{index .State 1}}",
	`{{index .NetworkSettings.Networks.bridge.Aliases 1}}`, `{{index .Config.Labels "team" 0}}`,
	"{{slice .Config.Hostname 1 3}} {{slice .Config.Env 3}} {{slice .Config.Env 1 2 3}}", "{{slice .Config.Hostname 3 1}}",
	"{{slice .Config.Hostname 1 2 3}}", "{{slice .State}}", "{{slice .Config.Env 9}}",
	"{{print .Config.Hostname 1 true nil}}", "{{print .Config.Labels.nope}}", "{{println .Config.Hostname .State.Pid}}",
	`{{printf "%s-%d-%v-%q" .Name .State.Pid .State.Running .Config.Labels.team}}`, "{{printf}}", "{{printf 1}}",
	`{{printf "%v" .State}}`, `{{printf "%v %v" .Config.StopTimeout .SizeRw}}`, "{{nope}}",
	// gliderlabs's functions, their argument checks, and where gliderlabs's code panicked.
	"{{strSlice .ID 0 12}}", "{{strSlice .ID 60}}", "{{strSlice .ID 10 5}}", "{{strSlice .ID 5 10}}", "{{strSlice .ID 100}}",
	"{{strSlice .ID}}", "{{strSlice .ID 1 2 3}}", "{{strSlice .ID -1}}", "{{strSlice .ID 0 -1}}", "{{strSlice .ID -3 -1}}",
	"{{strSlice .ID \"1\"}}", "{{.ID | strSlice 0 12}}", "{{strSlice .ID 1.0 3}}",
	"{{sIndex 0 .Config.Env}}", "{{sIndex -1 .Config.Env}}", "{{sIndex -9 .Config.Env}}", "{{sIndex 99 .Config.Env}}",
	"{{sIndex 1 .Config.Cmd}}", "{{sIndex 0 .Config.OnBuild}}", "{{sIndex 0 .Config.Labels}}", "{{sIndex \"0\" .Config.Env}}",
	"{{sIndex .State.Pid .Config.Env}}", "{{sIndex .Config.Hostname .Config.Env}}", "{{.Config.Env | sIndex 2}}",
	`{{mIndex "com.amazonaws.ecs.task-arn" .Config.Labels}}`, `{{mIndex "nope" .Config.Labels}}|`,
	`{{mIndex "8080/tcp" .Config.ExposedPorts}}`, `{{mIndex "a" .HostConfig.LogConfig.Config}}`, `{{mIndex .Config.User .Config.Labels}}|`,
	"{{toUpper .Config.Hostname}} {{toLower \"FoO\"}}", "{{toUpper .Config.Labels.nope}}", "{{toUpper .State.Pid}}",
	"{{toUpper .HostConfig.NetworkMode}}", `{{replace -1 "=" "" "=foo="}} {{replace 1 "-" "_" .Name}}`, `{{replace "1" "a" "b" "c"}}`,
	`{{join "," .Config.Env}}`, `{{join " " .Config.Cmd}}`, `{{join "," .Config.Labels}}`, `{{join "," .Config.OnBuild}}|`,
	`{{split "," "a,b,c"}}`, `{{split "," .Config.Hostname | join ";"}}`, `{{index (split "-" .Config.Hostname) 1}}`,
	`{{range split "-" .Name}}[{{.}}]{{end}}`, `{{split "" ""}}`,
	`{{splitIndex -1 "/" (index .Config.Labels "com.amazonaws.ecs.task-arn")}}`, `{{splitIndex 0 ":" .Config.Image}}`,
	`{{splitIndex 9 ":" .Config.Image}}`, `{{splitIndex -9 ":" .Config.Image}}`, `{{splitIndex 0 "" ""}}`,
	`{{matchFirstElement "^SERVICE_" .Config.Env}}`, `{{matchFirstElement "^NOPE" .Config.Env}}|`, `{{matchFirstElement "(" .Config.Env}}`,
	`{{matchAllElements "^SERVICE_" .Config.Env}}`, `{{matchAllElements "^NOPE" .Config.Env}}`,
	`{{join "," (matchAllElements "_NAME=" .Config.Env)}}`, `{{range matchAllElements "^SERVICE_" .Config.Env}}{{splitIndex 1 "=" .}},{{end}}`,
	`{{jsonParse .ImageManifestDescriptor.Data "config::size"}}`, `{{jsonParse .ImageManifestDescriptor.Data "config"}}`,
	`{{jsonParse .ImageManifestDescriptor.Data "layers::[1]::size"}}`, `{{jsonParse .ImageManifestDescriptor.Data "nope"}}|`,
	`{{jsonParse .ImageManifestDescriptor.Data}}`, `{{jsonParse .ImageManifestDescriptor.Data 1}}`,
	// A -tags value as operators write them.
	`env-{{splitIndex 1 "=" (index .Config.Env 0) | toLower}},{{with .Config.Labels.team}}team-{{.}}{{end}},host-{{strSlice .Config.Hostname 0 3}},ip-{{.NetworkSettings.IPAddress}}`,
	`{{range $k, $v := .Config.Labels}}{{if matchFirstElement "^com\\.amazonaws" (split "," $k)}}{{else}}{{$k}}\,{{$v}},{{end}}{{end}}`,
}

// inspectTemplatesDifferent are the deliberate differences: text/template renders them, the
// evaluator refuses them at parse time (parse) or fails (exec) with an error saying why, or (works)
// renders what text/template refused.
var inspectTemplatesDifferent = []struct {
	src, how, why string
}{
	{`{{define "x"}}y{{end}}{{template "x"}}`, "parse", "{{define}}"},
	{`{{define "tags"}}y{{end}}`, "parse", "{{define}}"},
	{`{{block "x" .}}y{{end}}`, "parse", "{{define}} and {{block}}"},
	{`{{.Config.Labels.nope.X}}`, "parse", "can't evaluate field X in type string"},
	{`{{if false}}{{.Config.Nope}}{{end}}`, "parse", "can't evaluate field Nope"},
	{`{{.HostConfig.NetworkMode.IsHost}}`, "parse", "they do not call methods"},
	{`{{range $p, $_ := .NetworkSettings.Ports}}{{$p.Port}}/{{$p.Proto}} {{end}}`, "exec", "they do not call methods"},
	{`{{jsonParse .Config.Labels.json "a::b"}}`, "works", "c,d"},
	{`{{jsonParse (mIndex "META" (dict)) "x"}}`, "parse", `function "dict" not defined`},
}

func TestInspectTagTemplateMatchesTextTemplate(t *testing.T) {
	in := inspectFixture()
	if len(inspectTemplates) < 30 {
		t.Fatalf("only %d templates", len(inspectTemplates))
	}
	for _, src := range inspectTemplates {
		want, wantOK, wantParseErr := referenceInspect(src, in)
		got, execErr, parseErr := oursInspect(src, in)
		switch {
		case wantParseErr != nil:
			if parseErr == nil {
				t.Errorf("%q: text/template refuses it (%v), the evaluator parses it", src, wantParseErr)
			}
		case !wantOK:
			if parseErr == nil && execErr == nil {
				t.Errorf("%q: text/template fails, the evaluator renders %q", src, got)
			}
		case parseErr != nil:
			t.Errorf("%q: text/template renders %q, the evaluator refuses it: %v", src, want, parseErr)
		case execErr != nil:
			t.Errorf("%q: text/template renders %q, the evaluator fails: %v", src, want, execErr)
		case got != want:
			t.Errorf("%q:\ntext/template %q\nevaluator     %q", src, want, got)
		}
		if errors.Is(execErr, ErrInternal) {
			t.Errorf("%q: %v", src, execErr)
		}
	}
}

func TestInspectTagTemplateDifferences(t *testing.T) {
	in := inspectFixture()
	for _, c := range inspectTemplatesDifferent {
		got, execErr, parseErr := oursInspect(c.src, in)
		var err error
		switch c.how {
		case "parse":
			err = parseErr
		case "exec":
			if parseErr != nil {
				t.Errorf("%q: refused at parse time: %v", c.src, parseErr)
			}
			err = execErr
		case "works":
			if parseErr != nil || execErr != nil || got != c.why {
				t.Errorf("%q: %q, %v, %v; want %q", c.src, got, parseErr, execErr, c.why)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%q: error %v, want one saying %q", c.src, err, c.why)
		}
	}
}

// A container whose inspect document lacks parts (no State, no NetworkSettings, no embedded base)
// gives errors or <no value>, never a panic.
func TestInspectTagTemplateSparseDocument(t *testing.T) {
	for _, src := range []string{"{{.ID}}", "{{.State.Running}}", "{{.NetworkSettings.IPAddress}}", "{{.Config.Labels.x}}",
		"{{range .Config.Env}}{{.}}{{end}}", "{{len .Mounts}}", "{{.}}"} {
		for _, in := range []container.InspectResponse{{}, {Config: &container.Config{}}} {
			want, wantOK, _ := referenceInspect(src, in)
			got, execErr, parseErr := oursInspect(src, in)
			if parseErr != nil || (execErr == nil) != wantOK || (wantOK && got != want) || errors.Is(execErr, ErrInternal) {
				t.Errorf("%q on %+v: text/template ok=%v %q; evaluator %q, %v, %v", src, in, wantOK, want, got, execErr, parseErr)
			}
		}
	}
}

// TestJSONPath: jsonParse's lookup gives what github.com/buger/jsonparser's Get gave gliderlabs.
func TestJSONPath(t *testing.T) {
	doc := []byte(` {"a":{"b":"c","n":1.5,"t":true,"z":null,"o":{"x":[1, 2]},"e":"q\"uote"},"arr":[{"k":"v0"},{"k":"v1"}],"a":"dup"} `)
	for _, c := range []struct{ path, want string }{
		{"a::b", "c"}, {"a::n", "1.5"}, {"a::t", "true"}, {"a::z", "null"}, {"a::o", `{"x":[1, 2]}`}, {"a::o::x", "[1, 2]"},
		{"a::o::x::[1]", "2"}, {"arr::[1]::k", "v1"}, {"arr::[2]::k", ""}, {"arr::x", ""}, {"a::e", `q\"uote`},
		{"nope", ""}, {"a::b::c", ""}, {"", ""},
	} {
		if got := jsonPath(doc, strings.Split(c.path, "::")); got != c.want {
			t.Errorf("%q: %q, want %q", c.path, got, c.want)
		}
	}
	if got := jsonPath([]byte("not json"), []string{"a"}); got != "" {
		t.Errorf("not json: %q", got)
	}
}

// FuzzInspectTagTemplate: any template parses or fails cleanly; one that parses renders what
// text/template renders over the docker inspect document (or fails where it fails).
func FuzzInspectTagTemplate(f *testing.F) {
	for _, src := range inspectTemplates[:40] {
		f.Add(src, "payments", "A=1")
	}
	f.Add(`{{range $k, $v := .Config.Labels}}{{$k}}\,{{$v}},{{end}}`, "a,b", "X=\n")
	f.Add(`{{splitIndex -1 "=" (sIndex 0 .Config.Env)}},{{strSlice .Config.Labels.team 1 3}}`, "ab", "K=V")
	f.Add(`{{matchAllElements .Config.Labels.team .Config.Env}}`, "(", "")
	f.Fuzz(func(t *testing.T, src, label, env string) {
		in := inspectFixture()
		in.Config.Labels["team"] = label
		in.Config.Env = append(in.Config.Env, env)
		got, execErr, parseErr := oursInspect(src, in)
		if parseErr != nil {
			return
		}
		if errors.Is(execErr, ErrInternal) {
			t.Fatalf("%q: %v", src, execErr)
		}
		if execErr != nil && (strings.Contains(execErr.Error(), "gave up after") || strings.Contains(execErr.Error(), "output longer than")) ||
			strings.Contains(src, "jsonParse") {
			return // bounds text/template does not have; jsonParse takes strings here
		}
		want, wantOK, wantParseErr := referenceInspect(src, in)
		switch {
		case wantParseErr != nil:
			t.Fatalf("%q: text/template refuses it (%v), the evaluator parses it", src, wantParseErr)
		case wantOK != (execErr == nil):
			if !wantOK || !strings.Contains(execErr.Error(), "do not call methods") {
				t.Fatalf("%q: text/template ok=%v %q, evaluator %q, %v", src, wantOK, want, got, execErr)
			}
		case wantOK && got != want:
			t.Fatalf("%q: text/template %q, evaluator %q", src, want, got)
		}
	})
}
