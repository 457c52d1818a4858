package desired

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
	"golang.org/x/sys/unix"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
)

// FromInspect turns docker inspect output into the Container the desired-state function reads.
func FromInspect(in container.InspectResponse) Container {
	c := Container{ID: in.ID, Name: strings.TrimPrefix(in.Name, "/")}
	if in.Config != nil {
		c.Image = in.Config.Image
		c.Labels = in.Config.Labels
		c.Env = in.Config.Env
		c.StopSignal = in.Config.StopSignal
		// Docker merges the image's HEALTHCHECK into the run config; ["NONE"] turns an image's off.
		if hc := in.Config.Healthcheck; hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
			c.HasHealthcheck = true
		}
	}
	if in.State != nil {
		c.Running = in.State.Running && !in.State.Paused && !in.State.Restarting
		c.StartedAt, _ = time.Parse(time.RFC3339Nano, in.State.StartedAt)
		c.ExitCode = in.State.ExitCode
		if h := in.State.Health; h != nil {
			c.HealthStatus = h.Status
			if n := len(h.Log); n > 0 && h.Log[n-1] != nil {
				c.HealthOutput = h.Log[n-1].Output
			}
		}
	}
	if in.HostConfig != nil {
		c.NetworkMode = string(in.HostConfig.NetworkMode)
	}
	if c.NetworkMode == "default" {
		c.NetworkMode = "bridge"
	}

	ports := map[Port]bool{}
	if in.Config != nil {
		for p := range in.Config.ExposedPorts {
			if n, err := strconv.Atoi(p.Port()); err == nil {
				ports[Port{Port: n, Proto: p.Proto()}] = true
			}
		}
	}
	if ns := in.NetworkSettings; ns != nil {
		for p, bindings := range ns.Ports {
			n, err := strconv.Atoi(p.Port())
			if err != nil {
				continue
			}
			key := Port{Port: n, Proto: p.Proto()}
			ports[key] = true
			if b, ok := pickBinding(bindings); ok {
				delete(ports, key)
				key.HostIP, key.HostPort = b.HostIP, b.port
				ports[key] = true
			}
		}
		// Sorted network names keep the chosen address stable across inspects.
		for _, name := range slices.Sorted(maps.Keys(ns.Networks)) {
			ep := ns.Networks[name]
			if ep == nil {
				continue
			}
			for _, s := range []string{ep.IPAddress, ep.GlobalIPv6Address} {
				if ip, err := netip.ParseAddr(s); err == nil {
					c.IPs = append(c.IPs, ip)
				}
			}
		}
	}
	for p := range ports {
		c.Ports = append(c.Ports, p)
	}
	slices.SortFunc(c.Ports, func(a, b Port) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto))
	})
	return c
}

// JoinNetwork takes from owner, the container whose network c runs on (NetworkMode
// "container:<owner>"), where c is reached. Its address is the owner's (a sidecar, a pod), as gliderlabs has it. A Service Connect task in bridge
// mode runs each container on a pause container of its own, which is on the bridge and publishes the
// container's ports: c is then reached as a bridge container at those published ports.
func (c *Container) JoinNetwork(owner Container) {
	c.IPs = owner.IPs
	if ecsmeta.ServiceConnectPause(owner.Labels[ecsmeta.LabelContainerName]) &&
		owner.Labels[ecsmeta.LabelTaskARN] == c.Labels[ecsmeta.LabelTaskARN] && !strings.HasPrefix(owner.NetworkMode, "container:") {
		c.NetworkMode, c.Ports = owner.NetworkMode, owner.Ports
	}
}

type binding struct {
	HostIP string
	port   int
}

// pickBinding chooses one of a port's bindings. Docker >= 20.10 binds a published port twice (0.0.0.0 and
// ::) with the same host port; a wildcard binding is preferred because it answers on the advertise IP.
func pickBinding(bindings []nat.PortBinding) (binding, bool) {
	var first *binding
	for _, b := range bindings {
		n, err := strconv.Atoi(b.HostPort)
		if err != nil || n < 1 || n > 65535 {
			continue
		}
		cand := binding{HostIP: b.HostIP, port: n}
		if ip, err := netip.ParseAddr(b.HostIP); b.HostIP == "" || (err == nil && ip.IsUnspecified()) {
			return cand, true
		}
		if first == nil {
			first = &cand
		}
	}
	if first == nil {
		return binding{}, false
	}
	return *first, true
}

// Terminating reports whether a Docker kill event's signal means the container is being stopped: SIGTERM,
// SIGINT, SIGKILL, or the container's own stop signal. SIGHUP, SIGUSR1 and friends are not stops.
func Terminating(signal, stopSignal string) bool {
	sig, ok := parseSignal(signal)
	if !ok {
		return false
	}
	switch sig {
	case unix.SIGTERM, unix.SIGINT, unix.SIGKILL:
		return true
	}
	stop, ok := parseSignal(stopSignal)
	return ok && sig == stop
}

// parseSignal accepts what Docker accepts for a stop signal: "15", "TERM", "SIGTERM", "SIGRTMIN+3".
func parseSignal(s string) (syscall.Signal, bool) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(s); err == nil {
		return syscall.Signal(n), n > 0
	}
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	if base, off, ok := strings.Cut(s, "+"); ok && base == "SIGRTMIN" {
		n, err := strconv.Atoi(off)
		if err != nil {
			return 0, false
		}
		return syscall.Signal(34 + n), true // glibc's SIGRTMIN, as Docker's signal table has it
	}
	sig := unix.SignalNum(s)
	return sig, sig != 0
}
