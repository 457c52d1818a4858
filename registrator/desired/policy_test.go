package desired

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
)

func mustPolicy(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(src), "test.json")
	if err != nil {
		t.Fatalf("parse %s: %v", src, err)
	}
	return p
}

func TestGlobMatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything/at:all", true},
		{"payments-*", "payments-edge", true},
		{"payments-*", "payments-", true},
		{"payments-*", "payments", false},
		{"payments-*", "xpayments-edge", false},
		{"*-edge", "payments-edge", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"a*a*a", "aaaa", true},
		{"a*a*a", "aa", false},
		{"edge", "edge", true},
		{"edge", "edge2", false},
		{"", "", true},
		{"", "x", false},
		// '*' crosses '/', unlike path.Match: an image's registry host and path.
		{"*/payments/*", "111122223333.dkr.ecr.eu-west-1.amazonaws.com/payments/api:1.2", true},
		{"*.amazonaws.com/payments/*", "evil.example/payments/api:1", false},
		{"registry.example:5000/team/*", "registry.example:5000/team/web:1.2@sha256:abc", true},
		// No other character is special.
		{"a?c", "abc", false},
		{"a?c", "a?c", true},
		{"[ab]", "a", false},
		{`a\*`, `a\xyz`, true},
	}
	for _, tc := range cases {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
	// Where path.Match says otherwise, it is about '/': the reason for a matcher of our own.
	if ok, _ := path.Match("*/payments/*", "reg/payments/api/v2"); ok || !globMatch("*/payments/*", "reg/payments/api/v2") {
		t.Error("'*' must match across '/'")
	}
}

// The policy, with more rules: rule 1 is the issue's, word for word.
const testPolicy = `{
  "default": "ecs-identity",
  "rules": [
    {"cluster": "prod-*", "family": "edge", "service": "*", "image": "*", "names": ["payments-*"], "ids": ["payments-*"], "connect": false},
    {"family": "edge", "names": ["*"], "comment": "never reached for prod-* clusters: rule 1 matched first"},
    {"image": "*/team/legacy:*", "names": ["legacy"], "connect": true},
    {"cluster": "arn:aws:ecs:*:cluster/billing", "service": "invoices", "names": ["invoices", "billing-*"]},
    {"family": "locked", "names": ["locked"], "ids": []},
    {"family": "nothing", "names": []}
  ]
}`

// TestPolicy covers the rule matching through Desired: globs, the first match, each default, the IDs
// a container may give, the mesh, and that a refusal keeps out that service only.
func TestPolicy(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, testPolicy)
	task := func(cluster, family, service string) func(*Container) {
		return ecsTask(func(tk *ecsmeta.Task) { tk.Cluster, tk.Family, tk.Service = cluster, family, service })
	}
	image := func(i string) func(*Container) { return func(c *Container) { c.Image = i } }
	name := func(n string) func(*Container) { return withLabels("SERVICE_NAME", n) }
	meshed := func(c *Container) {
		c.Labels["SERVICE_CONNECT"] = "true"
		c.Ports = append(c.Ports, Port{Port: 21000, Proto: "tcp", HostPort: 32769})
	}
	twoPorts := withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 32768}, Port{Port: 9090, Proto: "tcp", HostPort: 32770})
	opts := func(p *Policy) *Options { o := testOpts; o.Policy = p; return &o }
	policy := func(src string) *Options { return opts(mustPolicy(t, src)) }
	cases := []struct {
		name     string
		c        Container
		opts     *Options // default: the test policy
		want     []string // svc() of each service, in order
		mesh     bool     // the (first) service has a sidecar
		problems []string // "KEY|refused kind|message substring", one per problem
		skipped  string
	}{
		// Rule 1: family edge in a prod-* cluster, any service and image.
		{name: "rule 1 allows its names", c: web(task("prod-eu", "edge", ""), name("payments-edge")),
			want: []string{"node1:web-1:8080 payments-edge 10.0.0.5:32768 []"}},
		{name: "names are matched without regard to case, as Consul and DNS see them", c: web(task("prod-eu", "edge", "e"), name("Payments-Edge")),
			want: []string{"node1:web-1:8080 Payments-Edge 10.0.0.5:32768 []"}},
		{name: "rule 1 refuses other names, naming itself and what it allows", c: web(task("prod-eu", "edge", ""), name("orders")),
			problems: []string{`SERVICE_NAME|name|service name "orders" refused by policy rule 1 (cluster prod-*, family edge, service *, image *), which allows the names payments-* (each also as <name>-<port>), the IDs payments-*, not the mesh`},
			skipped:  "refused by the registration policy: policy rule 1"},
		{name: "rule 1 allows its IDs", c: web(task("prod-eu", "edge", ""), name("payments-edge"), withLabels("SERVICE_ID", "payments-edge-1")),
			want: []string{"payments-edge-1 payments-edge 10.0.0.5:32768 []"}},
		{name: "rule 1 refuses other IDs", c: web(task("prod-eu", "edge", ""), name("payments-edge"), withLabels("SERVICE_ID", "node1:orders:8080")),
			problems: []string{`SERVICE_ID|id|service ID "node1:orders:8080" refused by policy rule 1`}, skipped: "policy rule 1"},
		{name: "rule 1 keeps a meshed service out, sidecar and all", c: web(task("prod-eu", "edge", ""), name("payments-api"), meshed),
			problems: []string{`SERVICE_CONNECT|mesh|the service mesh (a sidecar) for "payments-api" refused by policy rule 1`}, skipped: "policy rule 1"},
		{name: "the cluster label may hold an ARN: its name is matched", c: web(task("arn:aws:ecs:eu-west-1:111122223333:cluster/prod-eu", "edge", ""), name("payments-x")),
			want: []string{"node1:web-1:8080 payments-x 10.0.0.5:32768 []"}},
		// The first matching rule decides: rule 2 would allow anything, but rule 1 matched first.
		{name: "first match: rule 1 before rule 2", c: web(task("prod-us", "edge", ""), name("orders")),
			problems: []string{"SERVICE_NAME|name|policy rule 1"}, skipped: "policy rule 1"},
		{name: "rule 2 for edge outside prod-*", c: web(task("staging", "edge", ""), name("orders")),
			want: []string{"node1:web-1:8080 orders 10.0.0.5:32768 []"}},
		// Rule 3 matches on the image only, so plain containers too; '*' crosses '/'.
		{name: "an image rule matches a container without ECS labels", c: web(image("registry.example:5000/team/legacy:3"), name("legacy"), meshed),
			want: []string{"node1:web-1:8080 legacy 10.0.0.5:32768 []"}, mesh: true},
		{name: "an image rule: another image does not match", c: web(image("registry.example:5000/other/legacy:3"), name("legacy")),
			problems: []string{"SERVICE_NAME|name|the policy's default (ecs-identity), which allows nothing to a container without ECS labels"},
			skipped:  "the policy's default"},
		// Rule 4: a cluster glob against the full ARN, and an ECS service (task metadata) that must be known.
		{name: "a cluster ARN glob and the ECS service", c: web(task("arn:aws:ecs:us-east-1:1:cluster/billing", "inv", "invoices"), name("billing-api")),
			want: []string{"node1:web-1:8080 billing-api 10.0.0.5:32768 []"}},
		{name: "a cluster ARN glob does not match a bare name", c: web(task("billing", "inv", "invoices"), name("billing-api")),
			problems: []string{"SERVICE_NAME|name|the policy's default (ecs-identity)"}, skipped: "default"},
		{name: "until task metadata names the service, a service rule does not match", c: web(task("arn:aws:ecs:us-east-1:1:cluster/billing", "inv", ""), name("billing-api")),
			problems: []string{"SERVICE_NAME|name|its ECS service is not known yet, or it has none"}, skipped: "default"},
		// Rule 5: "ids": [] allows no explicit ID; the daemon's own IDs are always fine.
		{name: "ids [] refuses an explicit ID", c: web(task("c", "locked", ""), name("locked"), withLabels("SERVICE_ID", "locked")),
			problems: []string{"SERVICE_ID|id|the IDs none"}, skipped: "policy rule 5"},
		{name: "ids []: the daemon's own ID", c: web(task("c", "locked", ""), name("locked")),
			want: []string{"node1:web-1:8080 locked 10.0.0.5:32768 []"}},
		// Rule 6 allows nothing.
		{name: "names [] allows nothing", c: web(task("c", "nothing", ""), name("nothing")),
			problems: []string{"SERVICE_NAME|name|policy rule 6 (family nothing), which allows the names none"}, skipped: "policy rule 6"},

		// The default ecs-identity: the task's ECS service name or family, their -<port> forms, IDs
		// that begin with those, and the mesh.
		{name: "ecs-identity: the family", c: web(task("c", "orders", ""), name("orders")),
			want: []string{"node1:web-1:8080 orders 10.0.0.5:32768 []"}},
		{name: "ecs-identity: the ECS service", c: web(task("c", "orders-td", "orders"), name("orders")),
			want: []string{"node1:web-1:8080 orders 10.0.0.5:32768 []"}},
		{name: "ecs-identity: the default name needs no label", c: web(task("c", "orders-td", "orders"), withLabels("SERVICE_NAME", ""),
			func(c *Container) { c.Labels = map[string]string{"SERVICE_REGISTER": "true"} }),
			want: []string{"node1:web-1:8080 orders 10.0.0.5:32768 []"}},
		{name: "ecs-identity: another name", c: web(task("c", "rogue", "rogue-svc"), name("payments")),
			problems: []string{`SERVICE_NAME|name|service name "payments" refused by the policy's default (ecs-identity), which allows this task the names rogue-svc (its ECS service) and rogue (its task family), each also as <name>-<port>, the IDs that are one of those or begin with one and ':', and the mesh for them; port 8080 kept out`},
			skipped:  "default (ecs-identity)"},
		{name: "ecs-identity: <name>-<port> for each of several ports", c: web(task("c", "orders", ""), name("orders"), twoPorts),
			want: []string{"node1:web-1:8080 orders-8080 10.0.0.5:32768 []", "node1:web-1:9090 orders-9090 10.0.0.5:32770 []"}},
		{name: "ecs-identity: -<port> only for the service's own port; the rest stays", c: web(task("c", "orders", ""), name("orders"), twoPorts,
			withLabels("SERVICE_9090_NAME", "orders-8080")),
			want:     []string{"node1:web-1:8080 orders-8080 10.0.0.5:32768 []"},
			problems: []string{`SERVICE_9090_NAME|name|service name "orders-8080" refused`}},
		{name: "ecs-identity: an ID that is the name", c: web(task("c", "orders", ""), name("orders"), withLabels("SERVICE_ID", "orders")),
			want: []string{"orders orders 10.0.0.5:32768 []"}},
		{name: "ecs-identity: an ID that begins with the name and ':'", c: web(task("c", "orders", ""), name("orders"), withLabels("SERVICE_ID", "ORDERS:host-1:8080")),
			want: []string{"ORDERS:host-1:8080 orders 10.0.0.5:32768 []"}},
		{name: "ecs-identity: '-' is no separator: orders-v2 is another service's", c: web(task("c", "orders", ""), name("orders"), withLabels("SERVICE_ID", "orders-v2")),
			problems: []string{`SERVICE_ID|id|service ID "orders-v2" refused by the policy's default (ecs-identity)`}, skipped: "default"},
		{name: "ecs-identity: another service's ID shape", c: web(task("c", "rogue", ""), name("rogue"), withLabels("SERVICE_ID", "node1:orders:8080")),
			problems: []string{`SERVICE_ID|id|service ID "node1:orders:8080" refused`}, skipped: "default"},
		{name: "ecs-identity: the mesh for its own names", c: web(task("c", "orders", ""), name("orders"), meshed),
			want: []string{"node1:web-1:8080 orders 10.0.0.5:32768 []"}, mesh: true},
		{name: "ecs-identity: nothing without ECS labels", c: web(name("payments")),
			problems: []string{"SERVICE_NAME|name|nothing to a container without ECS labels"}, skipped: "default"},
		{name: "ecs-identity in gliderlabs mode: the image's name is not the task's", c: web(task("c", "orders", ""), name("")),
			opts:     &Options{Node: "node1", AdvertiseIP: testOpts.AdvertiseIP, Gliderlabs: true, Policy: pol},
			problems: []string{`image|name|service name "web" refused`}, skipped: "default"},
		{name: "ecs-identity in gliderlabs mode: SERVICE_NAME of the family", c: web(task("c", "orders", ""), name("orders")),
			opts: &Options{Node: "node1", AdvertiseIP: testOpts.AdvertiseIP, Gliderlabs: true, Policy: pol},
			want: []string{"node1:web-1:8080 orders 10.0.0.5:32768 []"}},

		// The other defaults.
		{name: "default allow: anything", c: web(name("payments"), withLabels("SERVICE_ID", "node1:orders:8080"), meshed),
			opts: policy(`{"default": "allow"}`), want: []string{"node1:orders:8080 payments 10.0.0.5:32768 []"}, mesh: true},
		{name: "default deny: nothing", c: web(task("c", "orders", "orders"), name("orders")),
			opts:     policy(`{"default": "deny", "rules": [{"family": "edge", "names": ["*"]}]}`),
			problems: []string{`SERVICE_NAME|name|service name "orders" refused by the policy's default (deny), which allows nothing`}, skipped: "default (deny)"},
		{name: "no policy: anything", c: web(name("payments"), withLabels("SERVICE_ID", "node1:orders:8080"), meshed),
			opts: opts(nil), want: []string{"node1:orders:8080 payments 10.0.0.5:32768 []"}, mesh: true},

		// Never, policy or not: Consul's sidecar IDs.
		{name: "a sidecar's ID is never taken from labels", c: web(name("payments"), withLabels("SERVICE_ID", "payments-sidecar-proxy")),
			opts: opts(nil), problems: []string{`SERVICE_ID||ends in "-sidecar-proxy"`}, skipped: "no port left"},
		{name: "nor in another case", c: web(task("c", "orders", ""), name("orders"), withLabels("SERVICE_ID", "orders:x-Sidecar-Proxy")),
			problems: []string{`SERVICE_ID||ends in "-sidecar-proxy"`}, skipped: "no port left"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := opts(pol)
			if tc.opts != nil {
				o = tc.opts
			}
			r := Desired(tc.c, *o)
			var got []string
			for _, s := range r.Services {
				got = append(got, svc(s))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("services:\n got %q\nwant %q", got, tc.want)
			}
			if len(r.Services) > 0 && (r.Services[0].Connect != nil) != tc.mesh {
				t.Errorf("sidecar %+v, want one: %v", r.Services[0].Connect, tc.mesh)
			}
			if len(tc.want) == 0 && !strings.Contains(r.Skipped, tc.skipped) {
				t.Errorf("skipped = %q, want it to mention %q", r.Skipped, tc.skipped)
			}
			var errs []Problem
			for _, p := range r.Problems {
				if p.Severity == SeverityError {
					errs = append(errs, p)
				}
			}
			if len(errs) != len(tc.problems) {
				t.Fatalf("problems = %v, want %d: %q", r.Problems, len(tc.problems), tc.problems)
			}
			for i, want := range tc.problems {
				parts := strings.SplitN(want, "|", 3)
				if p := errs[i]; p.Key != parts[0] || p.Refused != parts[1] || !strings.Contains(p.Message, parts[2]) {
					t.Errorf("problem %d = %+v, want key %q, refused %q, message with %q", i, p, parts[0], parts[1], parts[2])
				}
			}
		})
	}
}

// A refusal is a problem of the container with the refused port named; the container's other
// services are registered.
func TestPolicyKeepsOutOnlyTheRefusedService(t *testing.T) {
	t.Parallel()
	pol := mustPolicy(t, `{"default": "ecs-identity"}`)
	c := web(ecsTask(func(tk *ecsmeta.Task) { tk.Family = "orders" }), withLabels("SERVICE_NAME", "orders", "SERVICE_9090_NAME", "payments"),
		withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 1}, Port{Port: 9090, Proto: "tcp", HostPort: 2}))
	o := testOpts
	o.Policy = pol
	r := Desired(c, o)
	if len(r.Services) != 1 || r.Services[0].Name != "orders-8080" || r.Skipped != "" {
		t.Fatalf("services %v, skipped %q", r.Services, r.Skipped)
	}
	if len(r.Problems) != 1 || !strings.HasSuffix(r.Problems[0].Message, "port 9090 kept out") || r.Problems[0].Refused != RefusedName {
		t.Fatalf("problems %+v", r.Problems)
	}
}

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, testPolicy)
	if p.Default() != DefaultECSIdentity || p.Rules() != 6 || p.Source() != "test.json" {
		t.Errorf("default %q, %d rules, from %q", p.Default(), p.Rules(), p.Source())
	}
	for _, ok := range []string{
		`{"default": "allow"}`,
		`{"default": "deny", "rules": []}`,
		`{"rules": [{"names": ["*"]}], "default": "ecs-identity", "comment": "order does not matter"}`,
		" {\"default\":\"allow\"}  \n",
	} {
		if _, err := ParsePolicy([]byte(ok), "ok.json"); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	cases := []struct{ src, at, reason string }{
		{``, "1:1", "the policy is empty"},
		{`{"default": "ecs-identity",}`, "1:28", "invalid character '}'"},
		{"{\n  \"default\": \"allow\"\n", "3:1", "ends early"},
		{`[]`, "1:1", "the policy must be a JSON object, not a list"},
		{`{}`, "1:1", `no "default"`},
		{`{"default": "permit"}`, "1:13", `unknown default "permit": it is allow, deny or ecs-identity`},
		{`{"default": "ALLOW"}`, "1:13", `unknown default "ALLOW"`},
		{`{"default": null}`, "1:13", `"default" must be a string, not null`},
		{`{"default": "allow", "default": "deny"}`, "1:22", `"default" is given twice`},
		{`{"default": "allow", "rule": []}`, "1:22", `unknown field "rule"`},
		{`{"default": "allow"} {}`, "1:22", "an object after the policy's closing brace"},
		{`{"default": "allow"} x`, "1:22", "after the policy's closing brace"},
		{`{"default": "allow", "rules": {}}`, "1:31", `"rules" must be a list of objects, not an object`},
		{`{"default": "allow", "rules": [[]]}`, "1:32", "rule 1 must be a JSON object, not a list"},
		{"{\"default\": \"allow\",\n \"rules\": [\n  {\"names\": []},\n  {\"family\": \"edge\"}\n ]}", "4:3", `rule 2 has no "names"`},
		{"{\"default\": \"allow\",\n \"rules\": [\n  {\"famly\": \"edge\", \"names\": []}]}", "3:4", `rule 1: unknown field "famly"`},
		{`{"default": "allow", "rules": [{"names": "web"}]}`, "1:42", `rule 1: names must be a list of strings, not the string "web"`},
		{`{"default": "allow", "rules": [{"names": ["web", 7]}]}`, "1:50", "rule 1: names[1] must be a string, not a number"},
		{`{"default": "allow", "rules": [{"names": [""]}]}`, "1:43", `rule 1: names[0] is empty; use "*" for anything`},
		{`{"default": "allow", "rules": [{"names": [], "ids": null}]}`, "1:53", "rule 1: ids must be a list of strings, not null"},
		{`{"default": "allow", "rules": [{"names": [], "connect": "true"}]}`, "1:57", `rule 1: connect must be true or false, not the string "true"`},
		{`{"default": "allow", "rules": [{"names": [], "family": 1e999}]}`, "1:56", "rule 1: family must be a string, not a number"},
		{`{"default": "allow", "rules": [{"names": [], "family": ""}]}`, "1:56", "rule 1: family is empty"},
		{`{"default": "allow", "rules": [{"names": [], "names": []}]}`, "1:46", `rule 1: "names" is given twice`},
		{"{\"default\": \"é\", \"x\": 1}", "1:13", `unknown default "é"`},
		{"{\"comment\": \"é\", \"x\": 1}", "1:18", `unknown field "x"`},
	}
	for _, tc := range cases {
		_, err := ParsePolicy([]byte(tc.src), "policy.json")
		var pe *PolicyError
		if !errors.As(err, &pe) {
			t.Errorf("%s: err = %v, want a *PolicyError", tc.src, err)
			continue
		}
		if at := fmt.Sprintf("%d:%d", pe.Line, pe.Column); at != tc.at || !strings.Contains(pe.Reason, tc.reason) ||
			!strings.HasPrefix(err.Error(), "policy.json:"+at+": ") {
			t.Errorf("%s:\n got %v\nwant policy.json:%s: ...%s...", tc.src, err, tc.at, tc.reason)
		}
	}
}

func TestLoadPolicy(t *testing.T) {
	t.Parallel()
	if p, err := LoadPolicy(` {"default": "ecs-identity"}`); err != nil || p.Source() != "inline" {
		t.Errorf("inline: %v %v", p, err)
	}
	if _, err := LoadPolicy(t.TempDir() + "/missing.json"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadPolicy(`{"default": "sometimes"}`); err == nil || !strings.HasPrefix(err.Error(), "inline:1:13: ") {
		t.Errorf("inline error: %v", err)
	}
}

// BenchmarkPolicyGrant: what the policy adds to evaluating one container.
func BenchmarkPolicyGrant(b *testing.B) {
	pol := mustPolicy(b, testPolicy)
	c := web(ecsTask(func(tk *ecsmeta.Task) { tk.Cluster, tk.Family = "prod-eu", "edge" }), withLabels("SERVICE_NAME", "payments-edge"))
	o := Options{Node: "n", AdvertiseIP: netip.MustParseAddr("10.0.0.5"), OptIn: true, Policy: pol}
	for b.Loop() {
		if r := Desired(c, o); len(r.Services) != 1 {
			b.Fatal(r.Problems)
		}
	}
}
