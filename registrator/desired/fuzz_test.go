package desired

import (
	"net/netip"
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
