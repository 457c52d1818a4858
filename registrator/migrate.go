package registrator

import (
	"slices"
	"strconv"
	"strings"
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

// looksGliderlabs reports whether a foreign service may be a gliderlabs registration: no
// external-source (gliderlabs sets none; other tools that register do) and gliderlabs's ID shape.
func looksGliderlabs(id string, meta map[string]string) bool {
	if _, set := meta[MetaExternalSource]; set {
		return false
	}
	_, ok := parseGliderlabsID(id)
	return ok
}

// adopts reports whether the want registration takes over the gliderlabs registration g with its ID.
func (m Migration) adopts(g Service, want *Service) bool {
	if !m.Adopt {
		return false
	}
	if id, _ := parseGliderlabsID(g.ID); id.host == m.Hostname && m.Hostname != "" {
		return true
	}
	return g.Address == want.Address && g.Port == want.Port
}

// leftovers are the gliderlabs registrations of this host that no running container accounts for
// and nobody takes over: what Cleanup removes. Nothing is removed while a container is not yet
// inspected, since it may be the one that accounts for a registration.
func (m Migration) leftovers(gl map[string]Service, won map[string]*Service, records map[string]*record) []string {
	if !m.Cleanup || m.Hostname == "" || len(gl) == 0 {
		return nil
	}
	running := map[string]*Container{}
	for _, rec := range records {
		if !rec.evaluated() {
			return nil
		}
		if rec.running() || rec.keptWhy() != "" {
			running[rec.container.Name] = rec.container
		}
	}
	var out []string
	for sid := range gl {
		id, _ := parseGliderlabsID(sid)
		if _, taken := won[sid]; taken || id.host != m.Hostname {
			continue
		}
		if c := running[id.container]; c != nil && slices.ContainsFunc(taskPorts(*c), func(p Port) bool {
			return p.Port == id.port && p.Proto == id.proto
		}) {
			continue
		}
		out = append(out, sid)
	}
	return out
}
