package ecsmeta

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// mergeLocked combines the labels with what the host, the agent, task metadata and the ECS API said.
func (s *Source) mergeLocked(t Task, ts *taskState, id string) Task {
	return merge(t, s.host, ts, id, s.cfg.TagMeta)
}

// merge is mergeLocked's pure part: the labels' task t of container id, with the host's zone, and
// what ts knows (nil: nothing yet). The agent wins for status, ports and addresses (it is polled);
// task metadata fills what it lacks and gives the service, zone and health; the ECS API the service
// and tags task metadata could not. Only the tagMeta tags are kept.
func merge(t Task, host Host, ts *taskState, id string, tagMeta []string) Task {
	t.AvailabilityZone = host.AvailabilityZone
	if ts == nil {
		return t
	}
	if at := ts.agent; at != nil {
		t.DesiredStatus, t.KnownStatus = at.DesiredStatus, at.KnownStatus
		for _, c := range at.Containers {
			if c.DockerId == id {
				t.Ports = ports(c.Ports)
				t.Addrs = addrs(c.Networks)
			}
		}
	}
	if tt := ts.tmds; tt != nil {
		t.Service = tt.ServiceName
		t.AvailabilityZone = cmp.Or(tt.AvailabilityZone, t.AvailabilityZone)
		if ts.agent == nil {
			t.DesiredStatus, t.KnownStatus = tt.DesiredStatus, tt.KnownStatus
		}
		for _, c := range tt.Containers {
			if c.DockerId != id {
				continue
			}
			if c.Health != nil {
				t.Health = Health{Defined: true, Status: c.Health.Status, Output: c.Health.Output}
			}
			if len(t.Addrs) == 0 {
				t.Addrs = addrs(c.Networks)
			}
			if len(t.Ports) == 0 {
				t.Ports = ports(c.Ports)
			}
		}
	}
	tags := ts.tags
	if a := ts.api; a != nil {
		t.Service = cmp.Or(t.Service, a.service)
		if tags == nil {
			tags = a.tags
		}
	}
	if tags != nil && len(tagMeta) > 0 {
		t.TagsRead = tagMeta
		for _, k := range tagMeta {
			if v, ok := tags[k]; ok {
				if t.Tags == nil {
					t.Tags = map[string]string{}
				}
				t.Tags[k] = v
			}
		}
	}
	return t
}

// addrs returns the awsvpc ENI addresses of a container's networks, IPv4 first.
func addrs(networks []WireNetwork) []netip.Addr {
	var v4, v6 []netip.Addr
	for _, n := range networks {
		if n.NetworkMode != "awsvpc" {
			continue
		}
		for _, s := range n.IPv4Addresses {
			if ip, err := netip.ParseAddr(s); err == nil && ip.Is4() && !ip.IsUnspecified() {
				v4 = append(v4, ip)
			}
		}
		for _, s := range n.IPv6Addresses {
			if ip, err := netip.ParseAddr(s); err == nil && ip.Is6() && !ip.IsUnspecified() {
				v6 = append(v6, ip)
			}
		}
	}
	return append(v4, v6...)
}

// ports returns a container's ports once each: the agent reports a dynamic bridge port twice (IPv4 and
// IPv6 bindings).
func ports(wire []WirePort) []Port {
	var out []Port
	for _, p := range wire {
		proto := strings.ToLower(cmp.Or(p.Protocol, "tcp"))
		if p.ContainerPort < 1 || p.ContainerPort > 65535 || (proto != "tcp" && proto != "udp") {
			continue
		}
		q := Port{ContainerPort: p.ContainerPort, Protocol: proto, HostPort: p.HostPort}
		if !slices.Contains(out, q) {
			out = append(out, q)
		}
	}
	return out
}
