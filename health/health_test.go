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
	checks, probs := FromLabels(map[string]string{"CHECK_HTTP": "/health"}, label, target)
	if len(probs) != 0 || len(checks) != 1 {
		t.Fatalf("checks %v problems %v", checks, probs)
	}
	c := checks[0]
	if c.ID != "node:web:8080:http" || c.HTTP != "http://10.0.0.5:32768/health" || c.Interval != DefaultInterval ||
		c.Timeout != DefaultTimeout || c.InitialStatus != "" || c.Name != "HTTP GET /health" {
		t.Errorf("check = %+v", c)
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
		checks, probs := FromLabels(m, label, target)
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
	if m.ID != "svc:health" || m.TTL != 90*time.Second || m.InitialStatus != Critical || m.Kind != KindMirror {
		t.Errorf("mirror = %+v", m)
	}
}

// FuzzFromLabels: any label values give checks Consul accepts, or errors and no checks.
func FuzzFromLabels(f *testing.F) {
	f.Add("CHECK_HTTP", "/health", "CHECK_INTERVAL", "5s", "CHECK_HEADER_X_ID", "1")
	f.Add("CHECK_HTTPS", "/h?x=1", "CHECK_TLS_SKIP_VERIFY", "true", "CHECK_METHOD", "HEAD")
	f.Add("CHECK_TTL", "30s", "CHECK_DEREGISTER_AFTER", "1m", "CHECK_INITIAL_STATUS", "Warning")
	f.Add("CHECK_SCRIPT", "x", "CHECK_GRPC", "true", "CHECK_DOCKER", "false")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		checks, probs := FromLabels(map[string]string{k1: v1, k2: v2, k3: v3}, label, target)
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
			if !strings.HasPrefix(c.ID, target.ServiceID+":") || c.Name == "" {
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
