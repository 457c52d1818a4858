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
	// registration over it, no gap), when its ID has this host's prefix or it names the same address
	// and port. Without Adopt such an ID is foreign and left alone.
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

// adopts reports whether want takes over the unmarked registration g of the same ID: one with
// gliderlabs's ID shape and this host's prefix, or one naming the same address and port (a
// gliderlabs SERVICE_ID).
func (m Migration) adopts(g desired.Service, want *desired.Service) bool {
	if !m.Adopt {
		return false
	}
	if id, ok := parseGliderlabsID(g.ID); ok && m.Hostname != "" && id.host == m.Hostname {
		return true
	}
	return g.Address == want.Address && g.Port == want.Port
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
	wanted := map[string]*desired.Service{}
	for _, rec := range records {
		if !rec.evaluated() {
			return nil
		}
		byName[rec.container.Name] = rec
		for i, s := range rec.services {
			if _, ok := unmarked[s.ID]; ok {
				wanted[s.ID] = &rec.services[i]
			}
		}
	}
	out := map[string]string{}
	for sid, g := range unmarked {
		if _, taken := won[sid]; taken {
			continue
		}
		if w := wanted[sid]; w != nil && m.adopts(g, w) {
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
