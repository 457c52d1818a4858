package health

import (
	"strings"
	"testing"
	"time"
)

var target = Target{ServiceID: "node:web:8080", Address: "10.0.0.5", Port: 32768, Proto: "tcp"}

func label(k string) string { return "SERVICE_" + k }

func TestFromLabelsDefaults(t *testing.T) {
	t.Parallel()
	checks, probs := FromLabels(map[string]string{"CHECK_HTTP": "/health"}, label, target, Rules{})
	if len(probs) != 0 || len(checks) != 1 {
		t.Fatalf("checks %v problems %v", checks, probs)
	}
	c := checks[0]
	if c.ID != "service:node:web:8080" || c.HTTP != "http://10.0.0.5:32768/health" || c.Interval != DefaultInterval ||
		c.Timeout != DefaultTimeout || c.InitialStatus != "" || c.Name != "HTTP GET /health" {
		t.Errorf("check = %+v", c)
	}
}

func TestFromLabelsOrderAndIDs(t *testing.T) {
	t.Parallel()
	keys := map[string]string{"CHECK_TCP": "true", "CHECK_TTL": "30s", "CHECK_HTTPS": "/h", "CHECK_HTTPS_METHOD": "HEAD",
		"CHECK_METHOD": "OPTIONS", "CHECK_HTTP": "/x", "CHECK_TLS_SKIP_VERIFY": "true"}
	checks, probs := FromLabels(keys, label, target, Rules{})
	if len(probs) != 0 {
		t.Fatalf("problems %v", probs)
	}
	var got []string
	for _, c := range checks {
		got = append(got, c.ID+" "+c.Method)
	}
	want := []string{"service:node:web:8080:http OPTIONS", "service:node:web:8080:https HEAD", "service:node:web:8080 ", "service:node:web:8080:tcp "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("checks %q, want %q", got, want)
	}
	if !checks[1].TLSSkipVerify || checks[0].TLSSkipVerify {
		t.Errorf("skip verify on %+v", checks[:2])
	}
	if !strings.HasSuffix(checks[2].Notes, "/v1/agent/check/pass/service:node:web:8080") {
		t.Errorf("ttl notes %q", checks[2].Notes)
	}
	probes, _ := FromLabels(map[string]string{"CHECK_TCP": "true", "CHECK_GRPC": "true"}, label, target, Rules{})
	if len(probes) != 2 || probes[0].ID != "service:node:web:8080" || probes[1].ID != "service:node:web:8080:grpc" {
		t.Errorf("without a TTL check the first probe is primary: %+v", probes)
	}
}

func TestFromLabelsGliderlabsRules(t *testing.T) {
	t.Parallel()
	gl := Rules{Gliderlabs: true}
	// One check, the first in gliderlabs's order; the rest are reported as ignored.
	checks, probs := FromLabels(map[string]string{"CHECK_TCP": "x", "CHECK_TTL": "30s"}, label, target, gl)
	if len(checks) != 1 || checks[0].Kind != KindTTL || checks[0].ID != "service:node:web:8080" {
		t.Errorf("checks %+v", checks)
	}
	if len(probs) != 1 || probs[0].Key != "SERVICE_CHECK_TCP" || probs[0].Error {
		t.Errorf("problems %v, want a warning that the TCP check is ignored", probs)
	}
	// Any value switches on, "false" with a warning; no timeout unless given.
	checks, probs = FromLabels(map[string]string{"CHECK_GRPC": "false", "CHECK_GRPC_USE_TLS": "yes", "CHECK_TLS_SKIP_VERIFY": "on"}, label, target, gl)
	if len(checks) != 1 || !checks[0].GRPCUseTLS || !checks[0].TLSSkipVerify || checks[0].Timeout != 0 || checks[0].Interval != DefaultInterval {
		t.Errorf("checks %+v", checks)
	}
	if len(probs) != 1 || probs[0].Key != "SERVICE_CHECK_GRPC" || probs[0].Error {
		t.Errorf("problems %v, want one warning on SERVICE_CHECK_GRPC=false", probs)
	}
	// Outside gliderlabs mode the same labels are refused, naming what to write.
	_, probs = FromLabels(map[string]string{"CHECK_GRPC": "yes"}, label, target, Rules{})
	if len(probs) != 1 || !probs[0].Error || !strings.Contains(probs[0].Message, "write true") {
		t.Errorf("problems %v", probs)
	}
	// An unknown check key is Meta to gliderlabs: a warning, not a service kept out.
	checks, probs = FromLabels(map[string]string{"CHECK_TCP": "1", "CHECK_HTTP_PORT": "9"}, label, target, gl)
	if len(checks) != 1 || len(probs) != 1 || probs[0].Error || probs[0].Key != "SERVICE_CHECK_HTTP_PORT" {
		t.Errorf("unknown key in gliderlabs mode: checks %+v problems %v", checks, probs)
	}
	checks, _ = FromLabels(map[string]string{"CHECK_HTTP": "/h", "CHECK_HTTP_METHOD": "HEAD", "CHECK_TIMEOUT": "2s"}, label, target, gl)
	if len(checks) != 1 || checks[0].Method != "HEAD" || checks[0].Timeout != 2*time.Second {
		t.Errorf("checks %+v", checks)
	}
}

func TestFromLabelsFailsClosed(t *testing.T) {
	t.Parallel()
	for keys, wantKey := range map[string]string{
		"CHECK_HTTP=/h CHECK_INTERVAL=soon":  "SERVICE_CHECK_INTERVAL",
		"CHECK_TCP=true CHECK_SCRIPT=/x":     "SERVICE_CHECK_SCRIPT",
		"CHECK_TTL=0s":                       "SERVICE_CHECK_TTL",
		"CHECK_GRPC=maybe":                   "SERVICE_CHECK_GRPC",
		"CHECK_TCP=1 CHECK_INITIAL_STATUS=?": "SERVICE_CHECK_INITIAL_STATUS",
	} {
		m := map[string]string{}
		for kv := range strings.FieldsSeq(keys) {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		checks, probs := FromLabels(m, label, target, Rules{})
		if checks != nil {
			t.Errorf("%s: checks %v despite an error", keys, checks)
		}
		found := false
		for _, p := range probs {
			found = found || p.Error && p.Key == wantKey
		}
		if !found {
			t.Errorf("%s: problems %v, want an error on %s", keys, probs, wantKey)
		}
	}
}

func TestMirrorStates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		got  State
		want string
	}{
		{FromDocker("healthy", "", ""), Passing},
		{FromDocker("unhealthy", "curl: (7)", ""), Critical},
		{FromDocker("starting", "", ""), Critical},
		{FromDocker("starting", "", Warning), Warning},
		{FromDocker("", "", ""), Critical},
		{FromECS("HEALTHY", "", ""), Passing},
		{FromECS("UNHEALTHY", "exit 1", Passing), Critical},
		{FromECS("", "", ""), Critical},
	} {
		if tc.got.Status != tc.want {
			t.Errorf("%+v, want %s", tc.got, tc.want)
		}
	}
	if s := FromDocker("unhealthy", strings.Repeat("x", 5000), ""); len(s.Output) > 1100 || !strings.Contains(s.Output, "unhealthy") {
		t.Errorf("long output kept as %d bytes", len(s.Output))
	}
	m := Mirror("svc", SourceDocker, 90*time.Second, "")
	if m.ID != "service:svc:health" || MirrorService(m.ID) != "svc" || m.TTL != 90*time.Second || m.InitialStatus != Critical || m.Kind != KindMirror {
		t.Errorf("mirror = %+v", m)
	}
}

// FuzzFromLabels: any label values give checks Consul accepts, or errors and no checks.
func FuzzFromLabels(f *testing.F) {
	f.Add("CHECK_HTTP", "/health", "CHECK_INTERVAL", "5s", "CHECK_HEADER_X_ID", "1")
	f.Add("CHECK_HTTPS", "/h?x=1", "CHECK_TLS_SKIP_VERIFY", "true", "CHECK_METHOD", "HEAD")
	f.Add("CHECK_TTL", "30s", "CHECK_DEREGISTER_AFTER", "1m", "CHECK_INITIAL_STATUS", "Warning")
	f.Add("CHECK_SCRIPT", "x", "CHECK_GRPC", "true", "CHECK_DOCKER", "false")
	f.Add("CHECK_GRPC", "false", "CHECK_GRPC_USE_TLS", "yes", "CHECK_TLS_SKIP_VERIFY", "1")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		rules := Rules{Gliderlabs: len(v1)%2 == 1}
		checks, probs := FromLabels(map[string]string{k1: v1, k2: v2, k3: v3}, label, target, rules)
		hasErr := false
		for _, p := range probs {
			hasErr = hasErr || p.Error
			if p.Key == "" || p.Message == "" {
				t.Fatalf("problem without key or message: %+v", p)
			}
		}
		if hasErr && checks != nil {
			t.Fatal("checks despite an error")
		}
		for _, c := range checks {
			if !strings.HasPrefix(c.ID, "service:"+target.ServiceID) || c.Name == "" {
				t.Fatalf("check %+v", c)
			}
			if c.Kind == KindHTTP || c.Kind == KindHTTPS {
				if !strings.HasPrefix(c.HTTP, c.Kind+"://10.0.0.5:32768/") || strings.ContainsAny(c.HTTP, " \r\n") {
					t.Fatalf("http target %q", c.HTTP)
				}
			}
			if c.Interval < 0 || c.TTL < 0 || (c.Kind != KindTTL && c.Interval < minInterval) {
				t.Fatalf("durations %+v", c)
			}
			switch c.InitialStatus {
			case "", Passing, Warning, Critical:
			default:
				t.Fatalf("initial status %q", c.InitialStatus)
			}
		}
	})
}
