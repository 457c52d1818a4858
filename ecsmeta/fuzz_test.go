package ecsmeta

import (
	"strings"
	"testing"
)

// The decoders read what another process on the host sends: any input gives a value or an error.
func FuzzDecoders(f *testing.F) {
	for _, name := range []string{"agent-metadata.json", "agent-task-awsvpc.json", "agent-task-bridge.json", "agent-tasks.json",
		"agent-error.json", "agent-unknown-path.json", "tmds-task-bridge.json", "tmds-task-awsvpc.json", "tmds-task-host.json",
		"tmds-task-minimal.json", "tmds-404.json", "tmds-429.txt", "garbage.html"} {
		f.Add(fixture(f, name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := DecodeAgentMetadata(b); err == nil && m.Cluster == "" {
			t.Error("metadata without a cluster accepted")
		}
		if at, err := DecodeAgentTask(b); err == nil {
			if at.Arn == "" {
				t.Error("task without an ARN accepted")
			}
			for _, c := range at.Containers {
				for _, p := range ports(c.Ports) {
					if p.ContainerPort < 1 || p.ContainerPort > 65535 || (p.Protocol != "tcp" && p.Protocol != "udp") {
						t.Errorf("bad port %+v", p)
					}
				}
				for _, a := range addrs(c.Networks) {
					if !a.IsValid() || a.IsUnspecified() {
						t.Errorf("bad address %v", a)
					}
				}
			}
		}
		if ts, err := DecodeAgentTasks(b); err == nil {
			for _, at := range ts {
				if at.Arn == "" {
					t.Error("task without an ARN kept")
				}
			}
		}
		if tt, err := DecodeTMDSTask(b); err == nil && tt.TaskARN == "" {
			t.Error("task metadata without an ARN accepted")
		}
	})
}

func FuzzMetadataPath(f *testing.F) {
	f.Add("http://169.254.170.2/v4/0f1e2d3c-aaaa")
	f.Add("http://169.254.170.2/v4/a/../b")
	f.Add("https://x/v4/y")
	f.Fuzz(func(t *testing.T, v string) {
		p := metadataPath([]string{EnvMetadataV4 + "=" + v})
		if p == "" {
			return
		}
		if !strings.HasPrefix(p, "/v4/") || strings.ContainsAny(p[4:], "/?#%") {
			t.Errorf("%q gave path %q", v, p)
		}
	})
}

// FuzzHostFromValues: instance metadata values from anywhere give a plausible Host or an error. The
// address is local-ipv4, or ipv6 on an IPv6-only instance (ipv6only).
func FuzzHostFromValues(f *testing.F) {
	f.Add("i-0abc1234def567890", "eu-west-1b", "eu-west-1", "10.0.1.23", false)
	f.Add("i-0abc1234def567890", "eu-west-1b", "eu-west-1", "2001:db8:1234:1a00:9691:9503:25ad:1761", true)
	f.Add("i-1", "<html>", "eu", "::1", false)
	f.Add("i-1", "eu-west-1a", "eu-west-1", "fe80::1%eth0", true)
	f.Add("i-1", "eu-west-1a", "eu-west-1", "::ffff:10.0.1.23", true)
	f.Add("", "us-east-1a", "us-east-1", "300.1.1.1", false)
	f.Fuzz(func(t *testing.T, id, az, region, ip string, ipv6only bool) {
		v := map[string]string{"instance-id": id, "placement/availability-zone": az, "placement/region": region}
		if ipv6only {
			v["ipv6"] = ip
		} else {
			v["local-ipv4"] = ip
		}
		h, err := hostFromValues(v)
		if err != nil {
			return
		}
		addrOK := h.LocalIPv4.Is4() && !h.IPv6.IsValid() && h.Addr() == h.LocalIPv4
		if ipv6only {
			addrOK = !h.LocalIPv4.IsValid() && h.IPv6.Is6() && !h.IPv6.Is4In6() && h.IPv6.Zone() == "" &&
				h.IPv6.IsGlobalUnicast() && h.Addr() == h.IPv6
		}
		if !addrOK || !strings.HasPrefix(h.InstanceID, "i-") ||
			!strings.HasPrefix(h.AvailabilityZone, h.Region) || strings.ContainsAny(h.InstanceID+h.AvailabilityZone+h.Region, " \n<>") {
			t.Fatalf("accepted %+v", h)
		}
	})
}
