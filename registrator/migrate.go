package registrator

import (
	"slices"
	"strconv"
	"strings"

	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// Migration says what the daemon does with the services gliderlabs/registrator left on the agent
// when a host swaps it for this daemon. gliderlabs neither marks its registrations nor removes them
// when it stops; they look like <hostname>:<container name>:<container port>[:udp] and carry no
// external-source.
type Migration struct {
	// Adopt: a gliderlabs registration of an ID this daemon would register is taken over in place (one
	// registration over it, no gap) when the ID is gliderlabs's default for the container that wants
	// it: <Hostname>:<its name>:<its port>[:udp] (see adopts). Any other unmarked registration is
	// foreign and left alone, whatever it names; so is every one without Adopt.
	Adopt bool
	// Cleanup (gliderlabs's -cleanup): a gliderlabs registration with this host's prefix that no
	// running container accounts for is removed, once every container is inspected.
	Cleanup bool
	// Hostname is gliderlabs's ID prefix on this host: its os.Hostname().
	Hostname string
}

// gliderlabsID is a service ID in gliderlabs's default shape.
type gliderlabsID struct {
	host, container string
	port            int
	proto           string
}

// parseGliderlabsID reads <host>:<container>:<port>[:udp]; ok is false for any other shape.
func parseGliderlabsID(id string) (g gliderlabsID, ok bool) {
	parts := strings.Split(id, ":")
	g.proto = "tcp"
	switch {
	case len(parts) == 4 && parts[3] == "udp":
		g.proto = "udp"
	case len(parts) != 3:
		return g, false
	}
	port, err := strconv.Atoi(parts[2])
	if err != nil || port < 1 || port > 65535 || parts[0] == "" || parts[1] == "" {
		return g, false
	}
	g.host, g.container, g.port = parts[0], parts[1], port
	return g, true
}

// adopts reports whether container c, wanting service want, takes over the unmarked registration of
// the same ID. Only what gliderlabs left for this container is: an ID of gliderlabs's default shape
// with this host's prefix and c's name, whose port (and protocol) is one of c's and the one want is
// registered for (the container port, or the host port it is published on). An unmarked service's
// address and port prove nothing: a hand-registered "vault" at the address of a container that asks
// for SERVICE_ID=vault is someone else's, and taking it over would deregister it when the container
// goes. A custom gliderlabs SERVICE_ID is therefore foreign too (the README says what to do).
func (m Migration) adopts(c *desired.Container, want *desired.Service) bool {
	return m.Adopt && m.leftFor(c, want)
}

// leftFor reports whether want's ID is the one gliderlabs gives c's port on this host (adopts,
// without asking whether adopting is on).
func (m Migration) leftFor(c *desired.Container, want *desired.Service) bool {
	id, ok := parseGliderlabsID(want.ID)
	if !ok || c == nil || m.Hostname == "" || id.host != m.Hostname || id.container != c.Name {
		return false
	}
	return slices.ContainsFunc(c.TaskPorts(), func(p desired.Port) bool {
		return p.Port == id.port && p.Proto == id.proto && (want.Port == p.Port || want.Port == p.HostPort)
	})
}

// released are the unmarked registrations to deregister, with why; nothing while a container is not
// yet inspected, since it may be the one that accounts for a registration. With Adopt: one this daemon
// would take over but does not advertise now (its container is stopping or has stopped), and a
// duplicate of one it holds for the same container and port (its IDs use another prefix). With
// Cleanup: one of this host's that no running container accounts for.
// It reads the containers' records, what the agent holds unmarked and held for this daemon, and won:
// the IDs this round registers. keepFailed and hostDrain are the planner's (-deregister on-success
// keeps a failed container's services, unless the host is going away).
func (m Migration) released(records map[string]*record, unmarked, held map[string]desired.Service, won map[string]*desired.Service,
	keepFailed bool, hostDrain string) map[string]string {
	if (!m.Adopt && !m.Cleanup) || len(unmarked) == 0 {
		return nil
	}
	byName := make(map[string]*record, len(records))
	wanted := map[string]bool{} // unmarked IDs a container would take over
	for _, rec := range records {
		if !rec.evaluated() {
			return nil
		}
		byName[rec.container.Name] = rec
		for i, s := range rec.services {
			if _, ok := unmarked[s.ID]; ok && m.adopts(rec.container, &rec.services[i]) {
				wanted[s.ID] = true
			}
		}
	}
	out := map[string]string{}
	for sid, g := range unmarked {
		if _, taken := won[sid]; taken {
			continue
		}
		if wanted[sid] {
			out[sid] = "its container is not running or is stopping"
			continue
		}
		id, ok := parseGliderlabsID(sid)
		if !ok || id.host != m.Hostname || m.Hostname == "" {
			continue
		}
		rec := byName[id.container]
		switch {
		case m.Adopt && rec != nil && holdsSame(held, rec.id, g):
			out[sid] = "a duplicate of this daemon's registration of the same container and port"
		case !m.Cleanup:
		case rec == nil:
			out[sid] = "no such container"
		case !rec.running() && !(keepFailed && hostDrain == "" && rec.keptWhy() != ""):
			out[sid] = "its container is not running"
		case !slices.ContainsFunc(rec.container.TaskPorts(), func(p desired.Port) bool { return p.Port == id.port && p.Proto == id.proto }):
			out[sid] = "its container has no such port"
		}
	}
	return out
}

// holdsSame reports whether the agent holds a registration of this daemon for the container at g's
// address and port.
func holdsSame(held map[string]desired.Service, containerID string, g desired.Service) bool {
	for _, h := range held {
		if h.ContainerID == containerID && h.Address == g.Address && h.Port == g.Port {
			return true
		}
	}
	return false
}
