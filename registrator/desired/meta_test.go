package desired

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func withEnv(kv ...string) func(*Container) {
	return func(c *Container) {
		for i := 0; i+1 < len(kv); i += 2 {
			c.Env = append(c.Env, kv[i]+"="+kv[i+1])
		}
	}
}

// userMeta is a service's Meta without the daemon's own keys.
func userMeta(s Service) map[string]string {
	m := maps.Clone(s.Meta)
	for _, k := range []string{MetaExternalSource, MetaContainerID, MetaContainerName, MetaChecks} {
		delete(m, k)
	}
	return m
}

// Meta comes from labels only: an environment value may be a secret (ECS task secrets arrive as
// environment variables), and Meta is readable by anyone who may read the catalog. Environment
// variables still route (name, ID, tags, checks, ignore, register, mesh). gliderlabs mode takes Meta
// from the environment, as gliderlabs did. No message repeats an environment value.
func TestMetaFromLabelsOnly(t *testing.T) {
	t.Parallel()
	const secret = "hunter2"
	sidecar := withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 32768}, Port{Port: 21000, Proto: "tcp", HostPort: 32769})
	gliderlabs := func(o *Options) { o.Gliderlabs = true }
	cases := []struct {
		name     string
		c        Container
		opts     func(*Options)
		meta     map[string]string // user Meta of the first service
		problems []string          // "warning:KEY", one per problem
		check    func(t *testing.T, s Service)
	}{
		{name: "an env secret is not Meta", c: web(withEnv("SERVICE_DB_PASSWORD", secret)),
			meta: map[string]string{}, problems: []string{"warning:SERVICE_DB_PASSWORD"}},
		{name: "a per-port env secret is not Meta", c: web(withEnv("SERVICE_8080_API_TOKEN", secret)),
			meta: map[string]string{}, problems: []string{"warning:SERVICE_8080_API_TOKEN"}},
		{name: "the warning names the key as the container spelled it", c: web(withEnv("SERVICE_db_Password", secret)),
			meta: map[string]string{}, problems: []string{"warning:SERVICE_db_Password"}},
		{name: "a label is Meta", c: web(withLabels("SERVICE_REGION", "eu")), meta: map[string]string{"region": "eu"}},
		{name: "a label wins over env, and is Meta", c: web(withEnv("SERVICE_REGION", secret), withLabels("SERVICE_REGION", "eu")),
			meta: map[string]string{"region": "eu"}},
		{name: "a per-port env key does not replace a label's Meta", c: web(withLabels("SERVICE_REGION", "eu"), withEnv("SERVICE_8080_REGION", secret)),
			meta: map[string]string{"region": "eu"}, problems: []string{"warning:SERVICE_8080_REGION"}},
		{name: "env still routes", c: web(func(c *Container) { c.Labels = map[string]string{} },
			withEnv("SERVICE_NAME", "db", "SERVICE_TAGS", "a,b", "SERVICE_ID", "db-1", "SERVICE_CHECK_TCP", "true", "SERVICE_REGISTER", "true")),
			meta: map[string]string{}, check: func(t *testing.T, s Service) {
				if s.Name != "db" || s.ID != "db-1" || !slices.Equal(s.Tags, []string{"a", "b"}) || len(s.Checks) != 1 {
					t.Errorf("routing keys from env not used: %+v", s)
				}
			}},
		{name: "env per-port keys still route", c: web(func(c *Container) { c.Labels = map[string]string{} },
			withEnv("SERVICE_8080_NAME", "api", "SERVICE_8080_CHECK_HTTP", "/h")),
			meta: map[string]string{}, check: func(t *testing.T, s Service) {
				if s.Name != "api" || len(s.Checks) != 1 {
					t.Errorf("per-port routing keys from env not used: %+v", s)
				}
			}},
		{name: "env mesh keys still route", c: web(sidecar, withEnv("SERVICE_CONNECT", "true", "SERVICE_CONNECT_UPSTREAMS", "orders:9191")),
			meta: map[string]string{}, check: func(t *testing.T, s Service) {
				if s.Connect == nil || len(s.Connect.Upstreams) != 1 {
					t.Errorf("mesh keys from env not used: %+v", s.Connect)
				}
			}},
		{name: "a label under another spelling of the port wins, and is Meta", c: web(withEnv("SERVICE_08080_REGION", secret), withLabels("SERVICE_8080_REGION", "eu")),
			meta: map[string]string{"region": "eu"}},
		{name: "env SERVICE_IGNORE still ignores", c: web(withEnv("SERVICE_IGNORE", "true"))},
		{name: "gliderlabs mode: env is Meta, as gliderlabs did", c: web(withEnv("SERVICE_DB_PASSWORD", secret, "SERVICE_8080_TOKEN", secret)),
			opts: gliderlabs, meta: map[string]string{"db_password": secret, "token": secret}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := testOpts
			if tc.opts != nil {
				tc.opts(&o)
			}
			r := Desired(tc.c, o)
			for _, p := range r.Problems {
				if strings.Contains(p.Key+p.Message, secret) {
					t.Errorf("a problem repeats an environment value: %v", p)
				}
			}
			if tc.meta == nil {
				if len(r.Services) != 0 {
					t.Errorf("services %v, want none", r.Services)
				}
				return
			}
			if len(r.Services) == 0 {
				t.Fatalf("no services: %s %v", r.Skipped, r.Problems)
			}
			if got := userMeta(r.Services[0]); !maps.Equal(got, tc.meta) {
				t.Errorf("user Meta %v, want %v", got, tc.meta)
			}
			if tc.check != nil {
				tc.check(t, r.Services[0])
			}
			var got []string
			for _, p := range r.Problems {
				got = append(got, string(p.Severity)+":"+p.Key)
			}
			if !slices.Equal(got, tc.problems) {
				t.Errorf("problems %v, want %v", r.Problems, tc.problems)
			}
			for _, p := range r.Problems {
				if !strings.Contains(p.Message, "not put in Meta") || !strings.Contains(p.Message, "label") {
					t.Errorf("the warning does not say what happened and what to do: %q", p.Message)
				}
			}
		})
	}
}
