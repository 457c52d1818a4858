package desired

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
)

var fuzzTags = mustTags("{{.Family}}-{{.Revision}},{{.Labels.SERVICE_NAME}},{{with .Service}}svc-{{.}}{{end}}")

// FuzzDesired feeds arbitrary labels and env to the desired-state function: it must never panic, and
// whatever it registers must be something Consul accepts.
func FuzzDesired(f *testing.F) {
	f.Add("SERVICE_NAME", "web", "SERVICE_8080_TAGS", "a,b", "SERVICE_ID=x", 8080, "0.0.0.0")
	f.Add("SERVICE_IGNORE", "maybe", "SERVICE_0_NAME", "", "SERVICE_70000_ID=", 1, "::")
	f.Add("SERVICE_a.b", strings.Repeat("v", 600), "SERVICE_CONSUL-X", "y", "SERVICE_REGISTER=true", 65535, "127.0.0.1")
	f.Add("SERVICE_REGISTER", "true", "ecs", "web_app", "my-service", 9000, "")
	f.Add("~internal~ecs~pause", "x", "ecs-1", "fam,ily", "svc/1", 80, "")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, env string, port int, hostIP string) {
		c := Container{
			ID: "id", Name: "n", Image: v1, Running: true, NetworkMode: "bridge",
			Labels: map[string]string{k1: v1, k2: v2},
			Env:    []string{env},
			Ports:  []Port{{Port: port, Proto: "tcp", HostIP: hostIP, HostPort: port}},
		}
		if strings.HasPrefix(k2, "ecs") {
			// A task container whose ECS facts (family, service, tags) are the fuzzer's.
			c.Task = &ecsmeta.Task{ARN: "arn:aws:ecs:r:1:task/c/" + k2, Family: v2, Service: env, Container: k1,
				Tags: map[string]string{k1: v1}}
		}
		r := Desired(c, Options{Node: "node", AdvertiseIP: netip.MustParseAddr("10.0.0.1"), OptIn: true, Tags: fuzzTags})
		for _, s := range r.Services {
			if checkName(s.Name) != nil || checkID(s.ID) != nil {
				t.Fatalf("registered an invalid name or ID: %q %q", s.Name, s.ID)
			}
			if len(s.Meta) > maxMetaPairs {
				t.Fatalf("%d meta pairs", len(s.Meta))
			}
			for _, tag := range s.Tags {
				if tag == "" || strings.Contains(tag, ",") {
					t.Fatalf("tag %q", tag)
				}
			}
			for k, v := range s.Meta {
				if !metaKeyRE.MatchString(k) || len(k) > maxMetaKeyLen || len(v) > maxMetaValueLen || strings.HasPrefix(k, "consul-") {
					t.Fatalf("meta %q=%q breaks Consul's rules", k, v)
				}
			}
		}
		if len(r.Services) == 0 && r.Skipped == "" {
			t.Fatal("no services and no reason")
		}
	})
}

// FuzzTagTemplates: any -tags value parses or fails cleanly, and a parsed one renders tags Consul
// accepts (or reports the container's failure) for any container.
func FuzzTagTemplates(f *testing.F) {
	f.Add("ecs,az-{{.AvailabilityZone}},{{.Family}}-{{.Revision}}", "team", "payments")
	f.Add("{{.Labels.team}},{{index .Labels \"x\"}}", "x", "a,b")
	f.Add("{{range .Labels}}{{.}}{{end}}", "k", "\n")
	f.Add("{{printf \"%s,%s\" .Name .ID}}", "", "")
	f.Add("{{range $k, $v := .Labels}}{{if eq $k \"x\"}}{{break}}{{end}}{{$v}}{{end}}", "x", "y")
	f.Add("{{with .Service}}{{. | printf \"%q\"}}{{else}}{{len .Family}}{{end}}", "", "abc")
	f.Fuzz(func(t *testing.T, spec, k, v string) {
		// That the evaluator gives what text/template gives is internal/tmpl's FuzzTagTemplate.
		ts, err := ParseTagTemplates(spec)
		if err != nil {
			return
		}
		c := Container{ID: "id", Name: "n", Image: "img", Labels: map[string]string{k: v},
			Task: &ecsmeta.Task{ARN: "arn:aws:ecs:r:1:task/c/t", Family: v, Service: k}}
		var r Result
		for _, tag := range ts.render(c, ecsmeta.Host{AvailabilityZone: v}, &r) {
			if tag == "" || strings.ContainsAny(tag, ",\n") || len(tag) > maxNameLen {
				t.Fatalf("tag %q from %q", tag, spec)
			}
		}
		for _, p := range r.Problems {
			if p.Severity != SeverityWarning {
				t.Fatalf("a tag template failure kept something out: %v", p)
			}
		}
	})
}

// FuzzParsePolicy feeds arbitrary bytes to the policy parser: it never panics; what it accepts is
// valid JSON and parses the same again; what it refuses is a *PolicyError at a line and column of the
// input; and a parsed policy judges containers without panicking.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(testPolicy))
	f.Add([]byte(`{"default": "allow"}`))
	f.Add([]byte(`{"default": "deny", "rules": [{"image": "*", "names": [], "ids": [], "connect": true, "comment": ""}]}`))
	f.Add([]byte("{\"default\": \"ecs-identity\",\n\"rules\": [{\"family\": \"é*\", \"names\": [\"*\"]}]} "))
	f.Add([]byte(`{"default": "allow", "rules": [{"names": ["a"], "names": []}]}`))
	f.Add([]byte(`{"default": "allow"`))
	f.Add([]byte(`{"default": 1e999}`))
	f.Add([]byte("\xff{}"))
	containers := []Container{
		web(withLabels("SERVICE_ID", "x:y")),
		web(ecsTask(func(tk *ecsmeta.Task) { tk.Cluster, tk.Service = "arn:aws:ecs:r:1:cluster/prod-eu", "svc" }), withLabels("SERVICE_CONNECT", "true")),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data, "fuzz.json")
		if err != nil {
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("%q: %T %v, want a *PolicyError", data, err, err)
			}
			if pe.Line < 1 || pe.Column < 1 || pe.Line > bytes.Count(data, []byte("\n"))+1 || pe.Reason == "" {
				t.Fatalf("%q: error at %d:%d: %q", data, pe.Line, pe.Column, pe.Reason)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		switch p.Default() {
		case DefaultAllow, DefaultDeny, DefaultECSIdentity:
		default:
			t.Fatalf("default %q", p.Default())
		}
		again, err := ParsePolicy(data, "fuzz.json")
		if err != nil || !reflect.DeepEqual(p, again) {
			t.Fatalf("parsed twice: %+v, then %+v (%v)", p, again, err)
		}
		for _, c := range containers {
			r := Desired(c, Options{Node: "n", AdvertiseIP: netip.MustParseAddr("10.0.0.1"), OptIn: true, Policy: p})
			for _, pr := range r.Problems {
				if pr.Refused != "" && !slices.Contains(Refusals, pr.Refused) {
					t.Fatalf("refusal kind %q", pr.Refused)
				}
			}
		}
	})
}

// FuzzGlobMatch compares the glob matcher with the regular expression it stands for.
func FuzzGlobMatch(f *testing.F) {
	f.Add("payments-*", "payments-edge")
	f.Add("*/payments/*", "reg.example/payments/api:1")
	f.Add("a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab")
	f.Add("*.*", "\xff.x")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 64 || len(s) > 256 {
			return
		}
		var re strings.Builder
		re.WriteString(`(?s)\A`)
		for i, part := range strings.Split(pattern, "*") {
			if i > 0 {
				re.WriteString(".*")
			}
			re.WriteString(regexp.QuoteMeta(part))
		}
		re.WriteString(`\z`)
		// Byte-wise: the pattern and the string as Latin-1, so that invalid UTF-8 compares too.
		latin := func(b string) string {
			r := make([]rune, len(b))
			for i := range len(b) {
				r[i] = rune(b[i])
			}
			return string(r)
		}
		want := regexp.MustCompile(latin(re.String())).MatchString(latin(s))
		if got := globMatch(pattern, s); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, the regexp %s says %v", pattern, s, got, re.String(), want)
		}
	})
}
