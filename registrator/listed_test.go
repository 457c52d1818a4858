package registrator

import (
	"net/netip"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// A periodic resync inspects again only the containers whose list entry disagrees with their record.
func TestListedAsKnown(t *testing.T) {
	started := time.Unix(1700000000, 0)
	known := func(f func(c *desired.Container)) *record {
		c := desired.Container{ID: "c1", Running: true, StartedAt: started, HasHealthcheck: true, HealthStatus: "healthy",
			Ports: []desired.Port{{Port: 8080, Proto: "tcp", HostIP: "0.0.0.0", HostPort: 32768}, {Port: 9090, Proto: "tcp"}},
			IPs:   []netip.Addr{netip.MustParseAddr("172.17.0.2")}}
		if f != nil {
			f(&c)
		}
		return &record{id: "c1", container: &c}
	}
	listed := func(f func(s *container.Summary)) container.Summary {
		s := container.Summary{ID: "c1", State: container.StateRunning, Status: "Up 3 minutes (healthy)",
			Ports: []container.Port{{IP: "0.0.0.0", PrivatePort: 8080, PublicPort: 32768, Type: "tcp"},
				{IP: "::", PrivatePort: 8080, PublicPort: 32768, Type: "tcp"}, {PrivatePort: 9090, Type: "tcp"}},
			NetworkSettings: &container.NetworkSettingsSummary{Networks: map[string]*network.EndpointSettings{
				"bridge": {IPAddress: "172.17.0.2"}}}}
		if f != nil {
			f(&s)
		}
		return s
	}
	for _, tc := range []struct {
		name string
		rec  *record
		s    container.Summary
		want bool
	}{
		{"the same", known(nil), listed(nil), true},
		{"unknown", nil, listed(nil), false},
		{"never inspected", &record{id: "c1"}, listed(nil), false},
		{"stale", func() *record { r := known(nil); r.stale = true; return r }(), listed(nil), false},
		{"stopped, missed", known(nil), listed(func(s *container.Summary) { s.State = container.StateExited; s.Status = "Exited (0) 1 second ago" }), false},
		{"started, missed", known(func(c *desired.Container) { c.Running = false }), listed(nil), false},
		{"died per event, listed stopped", func() *record { r := known(nil); r.diedAt = started.Add(time.Second); return r }(),
			listed(func(s *container.Summary) { s.State = container.StateExited; s.Status = "Exited (0) 1 second ago" }), true},
		{"paused", known(nil), listed(func(s *container.Summary) { s.State = container.StatePaused }), false},
		{"health changed", known(nil), listed(func(s *container.Summary) { s.Status = "Up 3 minutes (unhealthy)" }), false},
		{"health starting", known(func(c *desired.Container) { c.HealthStatus = "starting" }),
			listed(func(s *container.Summary) { s.Status = "Up 1 second (health: starting)" }), true},
		{"no health check: status ignored", known(func(c *desired.Container) { c.HasHealthcheck, c.HealthStatus = false, "" }),
			listed(func(s *container.Summary) { s.Status = "Up 3 minutes" }), true},
		{"host port changed", known(nil), listed(func(s *container.Summary) { s.Ports[0].PublicPort, s.Ports[1].PublicPort = 32769, 32769 }), false},
		{"a port published since", known(nil), listed(func(s *container.Summary) { s.Ports[2].PublicPort = 32770 }), false},
		{"address changed", known(nil), listed(func(s *container.Summary) { s.NetworkSettings.Networks["bridge"].IPAddress = "172.17.0.3" }), false},
		{"a network joined", known(nil), listed(func(s *container.Summary) {
			s.NetworkSettings.Networks["user"] = &network.EndpointSettings{IPAddress: "10.1.0.2", GlobalIPv6Address: "fd00::2"}
		}), false},
		{"another's namespace shows no addresses", known(func(c *desired.Container) { c.NetworkMode = "container:pause" }),
			listed(func(s *container.Summary) { s.NetworkSettings = nil }), false},
	} {
		if got := listedAsKnown(tc.rec, tc.s); got != tc.want {
			t.Errorf("%s: listedAsKnown = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestListedHealth(t *testing.T) {
	for status, want := range map[string]string{
		"Up 2 hours (healthy)": "healthy", "Up 5 seconds (unhealthy)": "unhealthy", "Up 1 second (health: starting)": "starting",
		"Up 2 hours": "", "Exited (1) 3 seconds ago": "", "": "",
	} {
		if got := listedHealth(status); got != want {
			t.Errorf("listedHealth(%q) = %q, want %q", status, got, want)
		}
	}
}
