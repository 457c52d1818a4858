package desired

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
)

// mesh is the compact form the Connect cases compare: "id -> sidecar addr bind=port local=port [upstreams]".
func mesh(s Service) string {
	if s.Connect == nil {
		return s.ID + " -> no sidecar"
	}
	c := s.Connect
	return fmt.Sprintf("%s -> %s bind=%d local=%d %v", s.ID, c.Addr(), c.BindPort, c.LocalPort, c.Upstreams)
}

// TestDesiredConnect covers the service mesh labels: where the sidecar is reached, its upstreams, and
// fail-closed validation of every key.
func TestDesiredConnect(t *testing.T) {
	t.Parallel()
	// The application on 8080 (host port 32768) and its sidecar's 21000 published on 32769.
	published := withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 32768}, Port{Port: 21000, Proto: "tcp", HostPort: 32769})
	two := withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 32768}, Port{Port: 9090, Proto: "tcp", HostPort: 32770},
		Port{Port: 21000, Proto: "tcp", HostPort: 32769}, Port{Port: 21001, Proto: "tcp", HostPort: 32771})
	on := withLabels("SERVICE_CONNECT", "true")
	cases := []struct {
		name     string
		c        Container
		want     []string // mesh() of each service, in order
		problems []string // "error:KEY" or "warning:KEY" substrings, one per problem
		skipped  string
	}{
		{name: "bridge: the published sidecar port, and no service of its own", c: web(published, on,
			withLabels("SERVICE_CONNECT_UPSTREAMS", "orders:9191, payments:9192")),
			want: []string{"node1:web-1:8080 -> 10.0.0.5:32769 bind=21000 local=8080 [{orders 9191} {payments 9192}]"}},
		{name: "keys are case-insensitive after SERVICE_", c: web(published, withLabels("SERVICE_connect", "1", "SERVICE_Connect_Sidecar_Port", "21000")),
			want: []string{"node1:web-1:8080 -> 10.0.0.5:32769 bind=21000 local=8080 []"}},
		{name: "not in the mesh", c: web(published),
			want: []string{"node1:web-1:21000 -> no sidecar", "node1:web-1:8080 -> no sidecar"}},
		{name: "connect=false", c: web(withLabels("SERVICE_CONNECT", "false")), want: []string{"node1:web-1:8080 -> no sidecar"}},
		{name: "awsvpc: the ENI and the sidecar port, declared or not", c: web(awsvpc, on, ecsTask(func(tk *ecsmeta.Task) {
			tk.Addrs = []netip.Addr{netip.MustParseAddr("10.0.12.34")}
			tk.Ports = []ecsmeta.Port{{ContainerPort: 9000, Protocol: "tcp"}}
		})), want: []string{"node1:web-1:9000 -> 10.0.12.34:21000 bind=21000 local=9000 []"}},
		{name: "host network: the advertise IP", c: web(func(c *Container) { c.NetworkMode = "host"; c.Ports = []Port{{Port: 8080, Proto: "tcp"}} },
			withLabels("SERVICE_CONNECT", "true", "SERVICE_CONNECT_SIDECAR_PORT", "21500")),
			want: []string{"node1:web-1:8080 -> 10.0.0.5:21500 bind=21500 local=8080 []"}},
		{name: "per port: one port meshed, the other not renamed by the sidecar's", c: web(two,
			withLabels("SERVICE_8080_CONNECT", "true", "SERVICE_8080_NAME", "web")),
			want: []string{"node1:web-1:21001 -> no sidecar", "node1:web-1:8080 -> 10.0.0.5:32769 bind=21000 local=8080 []", "node1:web-1:9090 -> no sidecar"}},
		{name: "two meshed ports, each with its own sidecar port", c: web(two, on, withLabels("SERVICE_9090_CONNECT_SIDECAR_PORT", "21001")),
			want: []string{"node1:web-1:8080 -> 10.0.0.5:32769 bind=21000 local=8080 []", "node1:web-1:9090 -> 10.0.0.5:32771 bind=21001 local=9090 []"}},

		// Fail closed: a definition that cannot be made keeps the service out, with the key at fault.
		{name: "only the sidecar's port published: no application port to mesh", c: web(on, withPorts(Port{Port: 21000, Proto: "tcp", HostPort: 32769})),
			problems: []string{"error:SERVICE_CONNECT_SIDECAR_PORT"}, skipped: "no port left"},
		{name: "a port configured as a service of its own but named as a sidecar's port is said", c: web(two, on,
			withLabels("SERVICE_9090_CONNECT_SIDECAR_PORT", "8080", "SERVICE_8080_NAME", "web")),
			want:     []string{"node1:web-1:21001 -> 10.0.0.5:32769 bind=21000 local=21001 []", "node1:web-1:9090 -> 10.0.0.5:32768 bind=8080 local=9090 []"},
			problems: []string{"warning:SERVICE_8080_*"}},
		{name: "two sidecars cannot listen on one upstream port", c: web(two, on,
			withLabels("SERVICE_9090_CONNECT_SIDECAR_PORT", "21001", "SERVICE_CONNECT_UPSTREAMS", "orders:9191")),
			want:     []string{"node1:web-1:8080 -> 10.0.0.5:32769 bind=21000 local=8080 [{orders 9191}]"},
			problems: []string{"error:SERVICE_CONNECT_UPSTREAMS"}},
		{name: "an upstream listed twice", c: web(published, on, withLabels("SERVICE_CONNECT_UPSTREAMS", "orders:9191,orders:9192")),
			problems: []string{"error:SERVICE_CONNECT_UPSTREAMS"}, skipped: "no port left"},
		{name: "an upstream on the application's port", c: web(published, on, withLabels("SERVICE_CONNECT_UPSTREAMS", "orders:8080")),
			problems: []string{"error:SERVICE_CONNECT_UPSTREAMS"}, skipped: "no port left"},
		{name: "host network: no default sidecar port", c: web(func(c *Container) { c.NetworkMode = "host"; c.Ports = []Port{{Port: 8080, Proto: "tcp"}} }, on),
			problems: []string{"error:SERVICE_CONNECT_SIDECAR_PORT"}, skipped: "no port left"},
		{name: "bridge: sidecar port not published", c: web(on), problems: []string{"error:SERVICE_CONNECT_SIDECAR_PORT"}, skipped: "no port left"},
		{name: "upstream without a port", c: web(published, on, withLabels("SERVICE_CONNECT_UPSTREAMS", "orders")),
			problems: []string{"error:SERVICE_CONNECT_UPSTREAMS"}, skipped: "no port left"},
		{name: "upstream port out of range", c: web(published, on, withLabels("SERVICE_CONNECT_UPSTREAMS", "orders:99999")),
			problems: []string{"error:SERVICE_CONNECT_UPSTREAMS"}, skipped: "no port left"},
		{name: "upstream name Consul cannot use", c: web(published, on, withLabels("SERVICE_CONNECT_UPSTREAMS", "ord/ers:9191")),
			problems: []string{"error:SERVICE_CONNECT_UPSTREAMS"}, skipped: "no port left"},
		{name: "two upstreams on one local port", c: web(published, on, withLabels("SERVICE_CONNECT_UPSTREAMS", "orders:9191,payments:9191")),
			problems: []string{"error:SERVICE_CONNECT_UPSTREAMS"}, skipped: "no port left"},
		{name: "an upstream on the application's port", c: web(published, on, withLabels("SERVICE_CONNECT_UPSTREAMS", "orders:8080")),
			problems: []string{"error:SERVICE_CONNECT_UPSTREAMS"}, skipped: "no port left"},
		{name: "connect not a boolean", c: web(withLabels("SERVICE_CONNECT", "yes please")),
			problems: []string{"error:SERVICE_CONNECT"}, skipped: "no port left"},
		{name: "sidecar port not a port", c: web(on, withLabels("SERVICE_CONNECT_SIDECAR_PORT", "21k")),
			problems: []string{"error:SERVICE_CONNECT_SIDECAR_PORT"}, skipped: "no port left"},
		{name: "sidecar port is the application's", c: web(on, withLabels("SERVICE_CONNECT_SIDECAR_PORT", "8080")),
			problems: []string{"error:SERVICE_CONNECT_SIDECAR_PORT"}, skipped: "no port left"},
		{name: "misspelt mesh key", c: web(published, on, withLabels("SERVICE_CONNECT_UPSTREAM", "orders:9191")),
			problems: []string{"error:SERVICE_CONNECT_UPSTREAM"}, skipped: "no port left"},
		{name: "UDP is not meshed", c: web(withPorts(Port{Port: 53, Proto: "udp", HostPort: 5353}), on),
			problems: []string{"error:SERVICE_CONNECT"}, skipped: "no port left"},
		{name: "two meshed ports on one sidecar port: the second is kept out", c: web(on, withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 32768},
			Port{Port: 9090, Proto: "tcp", HostPort: 32770}, Port{Port: 21000, Proto: "tcp", HostPort: 32769})),
			want:     []string{"node1:web-1:8080 -> 10.0.0.5:32769 bind=21000 local=8080 []"},
			problems: []string{"error:SERVICE_CONNECT_SIDECAR_PORT"}},
		{name: "upstreams without connect: a warning", c: web(withLabels("SERVICE_CONNECT_UPSTREAMS", "orders:9191")),
			want: []string{"node1:web-1:8080 -> no sidecar"}, problems: []string{"warning:SERVICE_CONNECT_UPSTREAMS"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := Desired(tc.c, testOpts)
			var got []string
			for _, s := range r.Services {
				got = append(got, mesh(s))
				for k := range s.Meta {
					if strings.Contains(k, "connect") {
						t.Errorf("%s: mesh key in Meta: %q", s.ID, k)
					}
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("services:\n got %q\nwant %q", got, tc.want)
			}
			if len(r.Problems) != len(tc.problems) {
				t.Errorf("problems: got %v, want %v", r.Problems, tc.problems)
			}
			for _, want := range tc.problems {
				sev, key, _ := strings.Cut(want, ":")
				if !slices.ContainsFunc(r.Problems, func(p Problem) bool {
					return string(p.Severity) == sev && strings.Contains(p.Key, key)
				}) {
					t.Errorf("no %s problem for %s in %v", sev, key, r.Problems)
				}
			}
			for _, p := range r.Problems {
				if p.Severity == SeverityError && !strings.Contains(p.Message, "kept out") {
					t.Errorf("an error must say what it kept out: %v", p)
				}
			}
			if tc.skipped != "" && !strings.Contains(r.Skipped, tc.skipped) {
				t.Errorf("skipped = %q, want %q", r.Skipped, tc.skipped)
			}
		})
	}
}

// TestConnectIsPartOfTheRegistration: a changed sidecar is a changed registration, so the planner
// registers it again; the same one is not written twice.
func TestConnectIsPartOfTheRegistration(t *testing.T) {
	t.Parallel()
	published := withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 32768}, Port{Port: 21000, Proto: "tcp", HostPort: 32769})
	a := Desired(web(published, withLabels("SERVICE_CONNECT", "true", "SERVICE_CONNECT_UPSTREAMS", "orders:9191")), testOpts).Services[0]
	b := Desired(web(published, withLabels("SERVICE_CONNECT", "true", "SERVICE_CONNECT_UPSTREAMS", "orders:9192")), testOpts).Services[0]
	plain := Desired(web(published, withLabels("SERVICE_21000_IGNORE", "true")), testOpts).Services[0]
	again := Desired(web(published, withLabels("SERVICE_CONNECT", "true", "SERVICE_CONNECT_UPSTREAMS", "orders:9191")), testOpts).Services[0]
	switch {
	case !a.Equal(again):
		t.Error("the same sidecar compares unequal")
	case a.Equal(b):
		t.Error("another upstream port compares equal")
	case a.Equal(plain) || plain.Equal(a):
		t.Error("a service with a sidecar compares equal to one without")
	}
}
