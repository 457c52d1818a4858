package desired

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// endpoint is one registrable port of a container: where other hosts reach it.
type endpoint struct {
	port        int // the container port, the key of SERVICE_<port>_ labels
	proto       string
	addr        netip.Addr
	servicePort int
	// unreachable: published on loopback only. Never registered, but gliderlabs counts it among a
	// container's ports.
	unreachable bool
}

// endpointsOf works out the reachable address and port of each container port for the network mode, or
// says why there are none.
func endpointsOf(c Container, o Options, r *Result) ([]endpoint, string) {
	mode := c.NetworkMode
	var eps []endpoint
	switch {
	case mode == "none":
		return nil, "network mode none: no reachable ports"
	case strings.HasPrefix(mode, "container:"):
		// An awsvpc task: the app containers share the pause container's network, whose ENI address
		// only the ECS agent knows. Otherwise (a sidecar, a pod) the other container's address, which
		// the core looked up (Container.JoinNetwork). The ports are the container ports.
		var addr netip.Addr
		switch {
		case c.Task != nil && len(c.Task.Addrs) > 0:
			addr = c.Task.Addrs[0]
		case c.Task != nil: // ECS puts a task's containers on another's network only in awsvpc mode
			return nil, "awsvpc task: waiting for the task's ENI address from the ECS agent"
		case len(c.IPs) > 0:
			addr = c.IPs[0]
		default:
			return nil, "shares another container's network (" + mode + "), which has no IP address"
		}
		for _, p := range c.TaskPorts() {
			eps = append(eps, endpoint{port: p.Port, proto: p.Proto, addr: addr, servicePort: p.Port})
		}
		if len(eps) == 0 {
			return nil, "shares another container's network and exposes no ports"
		}
	case mode == "host":
		if !o.AdvertiseIP.IsValid() {
			return nil, "no advertise IP known (set -ip)"
		}
		for _, p := range c.TaskPorts() {
			eps = append(eps, endpoint{port: p.Port, proto: p.Proto, addr: o.AdvertiseIP, servicePort: p.Port})
		}
		if len(eps) == 0 {
			return nil, "host network mode and no exposed ports"
		}
	case o.Internal:
		if len(c.IPs) == 0 {
			return nil, "-internal is set but the container has no IP address"
		}
		for _, p := range c.Ports {
			eps = append(eps, endpoint{port: p.Port, proto: p.Proto, addr: c.IPs[0], servicePort: p.Port})
		}
		if len(eps) == 0 {
			return nil, "no exposed ports"
		}
	default:
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			addr := o.AdvertiseIP
			if ip, err := netip.ParseAddr(p.HostIP); err == nil && !ip.IsUnspecified() {
				if ip.IsLoopback() && !o.AdvertiseIP.IsLoopback() {
					r.warnf("", "port %d/%s is published on %s only, which other hosts cannot reach; not registered", p.Port, p.Proto, ip)
					eps = append(eps, endpoint{port: p.Port, proto: p.Proto, unreachable: true})
					continue
				}
				addr = ip
			}
			if !addr.IsValid() {
				return nil, "no advertise IP known (set -ip)"
			}
			eps = append(eps, endpoint{port: p.Port, proto: p.Proto, addr: addr, servicePort: p.HostPort})
		}
		if !slices.ContainsFunc(eps, func(e endpoint) bool { return !e.unreachable }) {
			return nil, "no published ports (publish with -p, or use -internal)"
		}
	}
	return eps, ""
}

// TaskPorts is the container's exposed ports joined with the ports its ECS task definition maps, which
// Docker does not show for a container on another container's network; sorted by port and protocol.
func (c Container) TaskPorts() []Port {
	out := slices.Clone(c.Ports)
	if c.Task != nil {
		for _, p := range c.Task.Ports {
			if !slices.ContainsFunc(out, func(q Port) bool { return q.Port == p.ContainerPort && q.Proto == p.Protocol }) {
				out = append(out, Port{Port: p.ContainerPort, Proto: p.Protocol})
			}
		}
	}
	slices.SortFunc(out, func(a, b Port) int { return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto)) })
	return out
}
