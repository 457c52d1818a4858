package desired

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/health"
)

// TestDesiredChecks covers the checks a service gets from its labels and its container's own health.
func TestDesiredChecks(t *testing.T) {
	t.Parallel()
	o := testOpts
	o.HealthTTL = 90 * time.Second
	two := withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 32768}, Port{Port: 9090, Proto: "tcp", HostPort: 32769})
	cases := []struct {
		name     string
		c        Container
		checks   map[string][]string // service ID -> "kind target" of each check, in order
		health   map[string]string   // service ID -> mirrored status
		problems []string            // "error:KEY" or "warning:KEY", and words the message holds
		skipped  string
		opts     func(*Options)
	}{
		{name: "no checks", c: web(), checks: map[string][]string{"node1:web-1:8080": nil}},
		{name: "http and tcp", c: web(withLabels("SERVICE_CHECK_HTTP", "/health", "SERVICE_CHECK_TCP", "true")),
			checks: map[string][]string{"node1:web-1:8080": {"http http://10.0.0.5:32768/health", "tcp 10.0.0.5:32768"}}},
		{name: "https with method, headers and skip-verify", c: web(withLabels("SERVICE_CHECK_HTTPS", "/ready?full=1", "SERVICE_CHECK_METHOD", "HEAD",
			"SERVICE_CHECK_HEADER_X_API_KEY", "k", "SERVICE_CHECK_TLS_SKIP_VERIFY", "true")),
			checks: map[string][]string{"node1:web-1:8080": {"https https://10.0.0.5:32768/ready?full=1 HEAD X-Api-Key skip-verify"}}},
		{name: "grpc with tls and ttl", c: web(withLabels("SERVICE_CHECK_GRPC", "true", "SERVICE_CHECK_GRPC_USE_TLS", "true", "SERVICE_CHECK_TTL", "30s")),
			checks: map[string][]string{"node1:web-1:8080": {"ttl 30s", "grpc 10.0.0.5:32768 tls"}}},
		{name: "per-port checks override and add", c: web(two, withLabels("SERVICE_CHECK_HTTP", "/health", "SERVICE_9090_CHECK_HTTP", "", "SERVICE_9090_CHECK_TCP", "true")),
			checks: map[string][]string{"node1:web-1:8080": {"http http://10.0.0.5:32768/health"}, "node1:web-1:9090": {"tcp 10.0.0.5:32769"}}},
		{name: "IPv6 target", c: web(func(c *Container) { c.NetworkMode = "host"; c.Ports = []Port{{Port: 8080, Proto: "tcp"}} }, withLabels("SERVICE_CHECK_HTTP", "/h")),
			checks:   map[string][]string{},
			problems: nil},
		{name: "awsvpc target is the ENI", c: web(awsvpc, ecsTask(func(tk *ecsmeta.Task) {
			tk.Addrs = []netip.Addr{netip.MustParseAddr("10.0.12.34")}
			tk.Ports = []ecsmeta.Port{{ContainerPort: 9000, Protocol: "tcp"}}
		}), withLabels("SERVICE_CHECK_TCP", "true")),
			checks: map[string][]string{"node1:web-1:9000": {"tcp 10.0.12.34:9000"}}},
		{name: "docker healthcheck mirrored", c: web(func(c *Container) { c.HasHealthcheck, c.HealthStatus = true, "healthy" }),
			checks: map[string][]string{"node1:web-1:8080": {"health 1m30s"}}, health: map[string]string{"node1:web-1:8080": health.Passing}},
		{name: "docker starting is critical", c: web(func(c *Container) { c.HasHealthcheck, c.HealthStatus = true, "starting" }),
			checks: map[string][]string{"node1:web-1:8080": {"health 1m30s"}}, health: map[string]string{"node1:web-1:8080": health.Critical}},
		{name: "docker starting with an initial status", c: web(func(c *Container) { c.HasHealthcheck, c.HealthStatus = true, "starting" },
			withLabels("SERVICE_CHECK_INITIAL_STATUS", "warning")),
			checks: map[string][]string{"node1:web-1:8080": {"health 1m30s"}}, health: map[string]string{"node1:web-1:8080": health.Warning}},
		{name: "docker mirror turned off", c: web(func(c *Container) { c.HasHealthcheck, c.HealthStatus = true, "healthy" }, withLabels("SERVICE_CHECK_DOCKER", "false")),
			checks: map[string][]string{"node1:web-1:8080": nil}},
		{name: "ecs health mirrored when docker has none", c: web(ecsTask(func(tk *ecsmeta.Task) {
			tk.Health = ecsmeta.Health{Defined: true, Status: "UNHEALTHY", Output: "exit 1"}
		})), checks: map[string][]string{"node1:web-1:8080": {"health 1m30s"}}, health: map[string]string{"node1:web-1:8080": health.Critical}},
		{name: "label checks and the mirror together", c: web(func(c *Container) { c.HasHealthcheck, c.HealthStatus = true, "unhealthy" },
			withLabels("SERVICE_CHECK_HTTP", "/health")),
			checks: map[string][]string{"node1:web-1:8080": {"http http://10.0.0.5:32768/health", "health 1m30s"}},
			health: map[string]string{"node1:web-1:8080": health.Critical}},

		// Fail closed: a bad definition keeps the service out, with the reason.
		{name: "bad interval", c: web(withLabels("SERVICE_CHECK_HTTP", "/h", "SERVICE_CHECK_INTERVAL", "10")),
			problems: []string{"error:SERVICE_CHECK_INTERVAL"}, skipped: "no port left"},
		{name: "bad timeout", c: web(withLabels("SERVICE_CHECK_TCP", "true", "SERVICE_CHECK_TIMEOUT", "-1s")),
			problems: []string{"error:SERVICE_CHECK_TIMEOUT"}, skipped: "no port left"},
		{name: "unknown initial status", c: web(withLabels("SERVICE_CHECK_TCP", "true", "SERVICE_CHECK_INITIAL_STATUS", "ok")),
			problems: []string{"error:SERVICE_CHECK_INITIAL_STATUS"}, skipped: "no port left"},
		{name: "path without a slash", c: web(withLabels("SERVICE_CHECK_HTTP", "health")), problems: []string{"error:SERVICE_CHECK_HTTP"}, skipped: "no port left"},
		{name: "full URL instead of a path", c: web(withLabels("SERVICE_CHECK_HTTP", "http://other:80/health")), problems: []string{"error:SERVICE_CHECK_HTTP"}, skipped: "no port left"},
		{name: "script checks unsupported", c: web(withLabels("SERVICE_CHECK_SCRIPT", "curl localhost")), problems: []string{"error:not supported"}, skipped: "no port left"},
		{name: "typo in a check key", c: web(withLabels("SERVICE_CHECK_HTPP", "/health")), problems: []string{"error:unknown check key"}, skipped: "no port left"},
		{name: "bad boolean", c: web(withLabels("SERVICE_CHECK_TCP", "yes please")), problems: []string{"error:SERVICE_CHECK_TCP"}, skipped: "no port left"},
		{name: "bad docker flag", c: web(withLabels("SERVICE_CHECK_DOCKER", "nah")), problems: []string{"error:SERVICE_CHECK_DOCKER"}, skipped: "no port left"},
		{name: "bad header", c: web(withLabels("SERVICE_CHECK_HTTP", "/h", "SERVICE_CHECK_HEADER_X.Y", "v")), problems: []string{"error:SERVICE_CHECK_HEADER_X.Y"}, skipped: "no port left"},
		{name: "bad method", c: web(withLabels("SERVICE_CHECK_HTTP", "/h", "SERVICE_CHECK_METHOD", "get it")), problems: []string{"error:SERVICE_CHECK_METHOD"}, skipped: "no port left"},
		{name: "tcp check on a udp port", c: web(withPorts(Port{Port: 53, Proto: "udp", HostPort: 5353}), withLabels("SERVICE_CHECK_TCP", "true")),
			problems: []string{"error:UDP"}, skipped: "no port left"},
		{name: "a bad per-port check keeps only that port out", c: web(two, withLabels("SERVICE_9090_CHECK_HTTP", "nope")),
			checks: map[string][]string{"node1:web-1:8080": nil}, problems: []string{"error:SERVICE_9090_CHECK_HTTP"}},
		{name: "bad ttl", c: web(withLabels("SERVICE_CHECK_TTL", "forever")), problems: []string{"error:SERVICE_CHECK_TTL"}, skipped: "no port left"},

		// Warnings: registered, the odd value reported.
		{name: "interval below a second", c: web(withLabels("SERVICE_CHECK_TCP", "true", "SERVICE_CHECK_INTERVAL", "100ms")),
			checks: map[string][]string{"node1:web-1:8080": {"tcp 10.0.0.5:32768"}}, problems: []string{"warning:SERVICE_CHECK_INTERVAL"}},
		{name: "method without an http check", c: web(withLabels("SERVICE_CHECK_TCP", "true", "SERVICE_CHECK_METHOD", "HEAD")),
			checks: map[string][]string{"node1:web-1:8080": {"tcp 10.0.0.5:32768"}}, problems: []string{"warning:SERVICE_CHECK_METHOD"}},
		// Checks stay on the service: the host's addresses, writing methods and headers that speak for
		// the host keep the service out (gliderlabs mode too: TestGliderlabsCorpus).
		{name: "-useIpFromLabel at instance metadata keeps the container out", c: web(withLabels("ip", "169.254.169.254", "SERVICE_CHECK_HTTP", "/latest/meta-data/")),
			opts: ipFromLabel, problems: []string{"error:ip link-local"}, skipped: "-useIpFromLabel address is refused"},
		{name: "-useIpFromLabel at the task credentials endpoint, without checks", c: web(withLabels("ip", "169.254.170.2/32")),
			opts: ipFromLabel, problems: []string{"error:ip link-local"}, skipped: "-useIpFromLabel address is refused"},
		{name: "-useIpFromLabel at IPv6 instance metadata", c: web(withLabels("ip", "fd00:ec2::254")),
			opts: ipFromLabel, problems: []string{"error:ip fd00:ec2::/32"}, skipped: "refused"},
		{name: "-useIpFromLabel on loopback", c: web(withLabels("ip", "127.0.0.1")),
			opts: ipFromLabel, problems: []string{"error:ip loopback"}, skipped: "refused"},
		{name: "-useIpFromLabel unspecified", c: web(withLabels("ip", "0.0.0.0/0")),
			opts: ipFromLabel, problems: []string{"error:ip unspecified"}, skipped: "refused"},
		{name: "-useIpFromLabel multicast", c: web(withLabels("ip", "ff02::fb")),
			opts: ipFromLabel, problems: []string{"error:ip multicast"}, skipped: "refused"},
		{name: "-useIpFromLabel on loopback where the daemon advertises loopback", c: web(withLabels("ip", "127.0.0.2", "SERVICE_CHECK_TCP", "true")),
			opts:   func(o *Options) { ipFromLabel(o); o.AdvertiseIP = netip.MustParseAddr("127.0.0.1") },
			checks: map[string][]string{"node1:web-1:8080": {"tcp 127.0.0.2:32768"}}},
		{name: "-useIpFromLabel host name: registered, but not probed by name", c: web(withLabels("ip", "instance-data.ec2.internal", "SERVICE_CHECK_HTTP", "/")),
			opts: ipFromLabel, problems: []string{"error:SERVICE_CHECK_HTTP not an IP address"}, skipped: "no port left"},
		{name: "a loopback advertise IP is probed", c: web(withLabels("SERVICE_CHECK_HTTP", "/health")),
			opts:   func(o *Options) { o.AdvertiseIP = netip.MustParseAddr("127.0.0.1") },
			checks: map[string][]string{"node1:web-1:8080": {"http http://127.0.0.1:32768/health"}}},
		{name: "published on a link-local host address: not probed", c: web(withPorts(Port{Port: 8080, Proto: "tcp", HostIP: "169.254.170.2", HostPort: 80}),
			withLabels("SERVICE_CHECK_TCP", "true")), problems: []string{"error:SERVICE_CHECK_TCP link-local"}, skipped: "no port left"},
		{name: "a writing method", c: web(withLabels("SERVICE_CHECK_HTTP", "/h", "SERVICE_CHECK_METHOD", "PUT")),
			problems: []string{"error:SERVICE_CHECK_METHOD GET, HEAD or OPTIONS"}, skipped: "no port left"},
		{name: "a writing method for HTTPS only", c: web(withLabels("SERVICE_CHECK_HTTPS", "/h", "SERVICE_CHECK_HTTPS_METHOD", "POST")),
			problems: []string{"error:SERVICE_CHECK_HTTPS_METHOD"}, skipped: "no port left"},
		{name: "a Host header", c: web(withLabels("SERVICE_CHECK_HTTP", "/h", "SERVICE_CHECK_HEADER_host", "metadata")),
			problems: []string{"error:SERVICE_CHECK_HEADER_host refused"}, skipped: "no port left"},
		{name: "an instance metadata header", c: web(withLabels("SERVICE_CHECK_HTTP", "/h", "SERVICE_CHECK_HEADER_X_aws_EC2_metadata_token_ttl_seconds", "21600")),
			problems: []string{"error:SERVICE_CHECK_HEADER_X_aws_EC2_metadata_token_ttl_seconds refused"}, skipped: "no port left"},
		{name: "a credential header is registered with a warning", c: web(withLabels("SERVICE_CHECK_HTTP", "/h", "SERVICE_CHECK_HEADER_Authorization", "Bearer x")),
			checks:   map[string][]string{"node1:web-1:8080": {"http http://10.0.0.5:32768/h Authorization"}},
			problems: []string{"warning:SERVICE_CHECK_HEADER_Authorization plain text"}},
		{name: "a per-port credential header", c: web(two, withLabels("SERVICE_9090_CHECK_HTTP", "/h", "SERVICE_9090_CHECK_HEADER_COOKIE", "session=x")),
			checks:   map[string][]string{"node1:web-1:8080": nil, "node1:web-1:9090": {"http http://10.0.0.5:32769/h Cookie"}},
			problems: []string{"warning:SERVICE_9090_CHECK_HEADER_COOKIE plain text"}},

		{name: "deregister after below a minute", c: web(withLabels("SERVICE_CHECK_TCP", "true", "SERVICE_CHECK_DEREGISTER_AFTER", "10s")),
			checks: map[string][]string{"node1:web-1:8080": {"tcp 10.0.0.5:32768"}}, problems: []string{"warning:SERVICE_CHECK_DEREGISTER_AFTER"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			oo := o
			if tc.opts != nil {
				tc.opts(&oo)
			}
			if tc.name == "IPv6 target" {
				oo.AdvertiseIP = netip.MustParseAddr("2001:db8::5")
				tc.checks = map[string][]string{"node1:web-1:8080": {"http http://[2001:db8::5]:8080/h"}}
			}
			r := Desired(tc.c, oo)
			got := map[string][]string{}
			for _, s := range r.Services {
				var cs []string
				for _, c := range s.Checks {
					cs = append(cs, describe(c))
					if c.ID != "service:"+s.ID && !strings.HasPrefix(c.ID, "service:"+s.ID+":") {
						t.Errorf("check ID %q is not in service %q's namespace", c.ID, s.ID)
					}
				}
				got[s.ID] = cs
				if fp := s.Meta[MetaChecks]; (fp != "") != (len(s.Checks) > 0) || fp != health.Fingerprint(s.Checks) {
					t.Errorf("%s: fingerprint %q for %d checks", s.ID, fp, len(s.Checks))
				}
				want, mirrored := tc.health[s.ID]
				if mirrored != (s.Health != nil) || mirrored && s.Health.Status != want {
					t.Errorf("%s: mirrored health %+v, want %q", s.ID, s.Health, want)
				}
			}
			if tc.checks != nil && !equalChecks(got, tc.checks) {
				t.Errorf("checks:\n got %q\nwant %q", got, tc.checks)
			}
			if tc.skipped != "" && !strings.Contains(r.Skipped, tc.skipped) {
				t.Errorf("skipped = %q, want %q", r.Skipped, tc.skipped)
			}
			if len(r.Problems) != len(tc.problems) {
				t.Errorf("problems = %v, want %v", r.Problems, tc.problems)
			}
			for _, want := range tc.problems {
				sev, text, _ := strings.Cut(want, ":")
				if !slices.ContainsFunc(r.Problems, func(p Problem) bool {
					return string(p.Severity) == sev && !slices.ContainsFunc(strings.Fields(text), func(w string) bool {
						return !strings.Contains(p.Key+" "+p.Message, w)
					})
				}) {
					t.Errorf("no %s problem mentioning %q in %v", sev, text, r.Problems)
				}
			}
		})
	}
}

func ipFromLabel(o *Options) { o.IPFromLabel = "ip" }

func describe(c health.Check) string {
	parts := []string{c.Kind}
	switch c.Kind {
	case health.KindHTTP, health.KindHTTPS:
		parts = append(parts, c.HTTP)
		if c.Method != "" {
			parts = append(parts, c.Method)
		}
		for h := range c.Header {
			parts = append(parts, h)
		}
		if c.TLSSkipVerify {
			parts = append(parts, "skip-verify")
		}
	case health.KindTCP:
		parts = append(parts, c.TCP)
	case health.KindGRPC:
		parts = append(parts, c.GRPC)
		if c.GRPCUseTLS {
			parts = append(parts, "tls")
		}
	default:
		parts = append(parts, c.TTL.String())
	}
	return strings.Join(parts, " ")
}

func equalChecks(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}

// A changed check definition changes the fingerprint, so the service is registered again; the same
// definition keeps it, so a resync writes nothing.
func TestCheckFingerprint(t *testing.T) {
	t.Parallel()
	a := Desired(web(withLabels("SERVICE_CHECK_HTTP", "/health")), testOpts).Services[0]
	b := Desired(web(withLabels("SERVICE_CHECK_HTTP", "/health")), testOpts).Services[0]
	c := Desired(web(withLabels("SERVICE_CHECK_HTTP", "/healthz")), testOpts).Services[0]
	if !a.Equal(b) || a.Equal(c) {
		t.Errorf("fingerprints: same %q %q, changed %q", a.Meta[MetaChecks], b.Meta[MetaChecks], c.Meta[MetaChecks])
	}
	// The mirrored status is not part of the definition: a health flip is a TTL update, not a registration.
	h1 := Desired(web(func(c *Container) { c.HasHealthcheck, c.HealthStatus = true, "healthy" }), testOpts).Services[0]
	h2 := Desired(web(func(c *Container) { c.HasHealthcheck, c.HealthStatus = true, "unhealthy" }), testOpts).Services[0]
	if !h1.Equal(h2) || *h1.Health == *h2.Health {
		t.Errorf("health flip: equal %v, states %+v %+v", h1.Equal(h2), h1.Health, h2.Health)
	}
}
