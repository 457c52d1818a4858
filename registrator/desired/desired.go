package desired

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ecs-registrator/ecs-registrator/health"
)

// The keys a container-level or per-port SERVICE_ label may use that are not Meta. They, the check keys
// and the mesh keys route: they come from labels or environment variables alike (labels win); Meta
// comes from labels only (buildMeta).
var attrKeys = map[string]bool{"NAME": true, "TAGS": true, "ID": true, "IGNORE": true, "REGISTER": true}

// isCheckKey reports keys the health package owns (SERVICE_CHECK_*, SERVICE_<port>_CHECK_*); never Meta.
func isCheckKey(k string) bool { return k == "CHECK" || strings.HasPrefix(k, "CHECK_") }

// Wanted reports whether a container's labels ask for it to be registered, whatever its state and
// ports: only such a container's ECS task is worth an ECS API call.
func Wanted(c Container, o Options) bool {
	var r Result
	skip, _ := optedIn(parseLabels(c, &r), o, &r)
	return skip == ""
}

// optedIn reads the keys that decide whether a container is registered at all (SERVICE_IGNORE,
// SERVICE_REGISTER, the names under -opt-in): why it is not, or whether only its named ports are.
func optedIn(l labels, o Options, r *Result) (skip string, onlyNamedPorts bool) {
	if v, set := l.global["IGNORE"]; set {
		if ignore, why := ignored(v, l.key("IGNORE"), o, r); ignore || why != "" {
			return cmp.Or(why, "SERVICE_IGNORE is set"), false
		}
	}
	register, hasRegister := true, false
	if v, ok := l.global["REGISTER"]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			r.errorf(l.key("REGISTER"), "not a boolean: %q", v)
			return "SERVICE_REGISTER has a bad value", false
		}
		register, hasRegister = b, true
	}
	_, hasName := l.value(l.global, "NAME", o)
	portNamed := false
	for _, attrs := range l.ports {
		if _, ok := l.value(attrs, "NAME", o); ok {
			portNamed = true
		}
	}
	switch {
	case hasRegister && !register:
		return "SERVICE_REGISTER=false", false
	case o.OptIn && !hasName && !portNamed && !hasRegister:
		return "not opted in: no SERVICE_NAME, SERVICE_<port>_NAME or SERVICE_REGISTER=true", false
	}
	// Opting in only through per-port names registers only those ports: a sidecar's metrics port is not
	// published by surprise.
	return "", o.OptIn && portNamed && !hasName && !(hasRegister && register)
}

// Desired computes the services a container should have in Consul. It is a pure function: everything it
// depends on is in its arguments, and bad input becomes a Problem, never a panic.
func Desired(c Container, o Options) Result {
	var r Result
	if c.Task != nil && c.Task.Pause() { // whatever its labels: the agent sets them from its own config
		r.Skipped = "ECS pause container: never registered"
		return r
	}
	l := parseLabels(c, &r)
	skip, onlyNamedPorts := optedIn(l, o, &r)
	switch {
	case skip != "":
		r.Skipped = skip
		return r
	case !c.Running:
		r.Skipped = "not running"
		return r
	}

	endpoints, why := endpointsOf(c, o, &r)
	if len(endpoints) == 0 {
		r.Skipped = why
		return r
	}
	for p := range l.ports {
		if !slices.ContainsFunc(endpoints, func(e endpoint) bool { return e.port == p }) {
			r.warnf(fmt.Sprintf("SERVICE_%d_*", p), "the container has no usable port %d; these keys have no effect", p)
		}
	}

	defaultName := imageBase(c.Image)
	if t := c.Task; t != nil && !o.Gliderlabs {
		defaultName = cmp.Or(t.Service, t.Family, defaultName)
	}
	extraTags := o.Tags.render(c, o.Host, &r)
	if c.InspectTagsErr != nil {
		r.warnf("-tags", "%v", c.InspectTagsErr)
	}
	extraTags = append(extraTags, c.InspectTags...)
	ipFromLabel, skip := addressFromLabel(c, o, &r)
	if skip != "" {
		r.Skipped = skip
		return r
	}
	var registrable []endpoint
	for _, e := range endpoints {
		if _, named := l.value(l.ports[e.port], "NAME", o); e.unreachable || onlyNamedPorts && !named {
			continue
		}
		if v, set := l.ports[e.port]["IGNORE"]; set {
			if ignore, why := ignored(v, l.portKey(e.port, "IGNORE"), o, &r); ignore || why != "" {
				continue
			}
		}
		registrable = append(registrable, e)
	}
	// A meshed port's sidecar listens in the container's network namespace: its port belongs to the
	// sidecar registration, not to a service of its own (unless it is itself a meshed application
	// port, which addConnect refuses).
	// A port named as another's sidecar is the sidecar's; if the container configured it as a port of
	// its own (SERVICE_<port>_ keys), that is said.
	sidecarPorts := map[int]bool{}
	mesh := l.anyConnect()
	for _, e := range endpoints {
		if !mesh {
			break
		}
		if sp := sidecarPortOf(l, e.port); !e.unreachable && sp != 0 && sp != e.port && !sidecarPorts[sp] {
			sidecarPorts[sp] = true
			if len(l.ports[sp]) > 0 {
				r.warnf(fmt.Sprintf("SERVICE_%d_*", sp), "port %d is the sidecar's port of port %d: not registered as a service of its own; these keys have no effect", sp, e.port)
			}
		}
	}
	registrable = slices.DeleteFunc(registrable, func(e endpoint) bool { return sidecarPorts[e.port] })
	// Every listener in the container's network namespace: the application's ports, and the sidecars'
	// as addConnect gives them out.
	listeners := map[int]string{}
	for _, e := range endpoints {
		if mesh && !sidecarPorts[e.port] {
			listeners[e.port] = fmt.Sprintf("the application's port %d", e.port)
		}
	}
	// Several ports under one name would be one service whose instances speak different protocols:
	// each gets -<port>, unless SERVICE_<port>_NAME names it. gliderlabs counts every published port,
	// ignored or not; this daemon the ports it registers, so ignoring one does not rename the other.
	several := len(registrable) > 1
	if o.Gliderlabs {
		several = len(endpoints) > 1
	}
	ids := map[string]bool{}
	g, refused := o.Policy.grant(c), 0
	for _, e := range registrable {
		attrs := l.ports[e.port]
		s := Service{Address: e.addr.String(), Port: e.servicePort, ContainerID: c.ID}
		if ipFromLabel != "" {
			s.Address = ipFromLabel
		}

		name, nameKey := defaultName, "image"
		if v, ok := l.value(l.global, "NAME", o); ok {
			name, nameKey = v, l.key("NAME")
		}
		if several {
			name = fmt.Sprintf("%s-%d", name, e.port)
		}
		if v, ok := l.value(attrs, "NAME", o); ok {
			name, nameKey = v, l.portKey(e.port, "NAME")
		}
		if err := checkName(name); err != nil {
			r.errorf(nameKey, "%v; port %d kept out", err, e.port)
			continue
		}
		if !dnsLabelRE.MatchString(name) || len(name) > maxDNSLabelLen {
			r.warnf(nameKey, "service name %q is not a valid DNS label; %s.service.consul will not resolve", name, name)
		}
		s.Name = name

		s.ID = fmt.Sprintf("%s:%s:%d", o.Node, c.Name, e.port)
		if e.proto == "udp" {
			s.ID += ":udp"
		}
		idKey := ""
		if v, ok := l.value(l.global, "ID", o); ok {
			s.ID, idKey = v, l.key("ID")
		}
		if v, ok := l.value(attrs, "ID", o); ok {
			s.ID, idKey = v, l.portKey(e.port, "ID")
		}
		if err := checkID(s.ID); err != nil {
			r.errorf(idKey, "%v; port %d kept out", err, e.port)
			continue
		}
		if ids[s.ID] {
			r.diffErrorf(DiffIDSeveralPorts, idKey, "service ID %q is used by more than one port; give each port its own SERVICE_<port>_ID; port %d kept out", s.ID, e.port)
			continue
		}
		ids[s.ID] = true
		if idKey != "" && strings.HasSuffix(strings.ToLower(s.ID), SidecarSuffix) {
			r.errorf(idKey, "service ID %q ends in %q, as the ID Consul gives a service's sidecar proxy does: no container may claim one; port %d kept out",
				s.ID, SidecarSuffix, e.port)
			continue
		}
		if !allowed(g, &r, s, nameKey, idKey, l, e, mesh) {
			refused++
			continue
		}

		tags := l.global["TAGS"]
		if v, ok := attrs["TAGS"]; ok {
			tags = v
		}
		s.Tags = splitTags(tags)
		for _, t := range extraTags {
			if !slices.Contains(s.Tags, t) {
				s.Tags = append(s.Tags, t)
			}
		}
		if e.proto == "udp" && !slices.Contains(s.Tags, "udp") {
			s.Tags = append(s.Tags, "udp")
		}
		s.Meta = buildMeta(c, o, l, e.port, &r)
		if !addChecks(&s, c, o, l, e, &r) || mesh && !addConnect(&s, c, l, e, endpoints, listeners, &r) {
			continue
		}
		r.Services = append(r.Services, s)
	}
	switch {
	case len(r.Services) > 0 || r.Skipped != "":
	case refused > 0:
		r.Skipped = "refused by the registration policy: " + g.by
	default:
		r.Skipped = "no port left to register"
	}
	return r
}

// allowed carries out the registration policy's grant for one service: its name, its ID when the
// container gave one (the daemon's own <node>:<container>:<port> is always fine), and its place in
// the mesh. A refusal is an error Problem that names the rule or default and what it allows.
func allowed(g grant, r *Result, s Service, nameKey, idKey string, l labels, e endpoint, mesh bool) bool {
	switch {
	case !g.name(s.Name, e.port):
		g.refuse(r, nameKey, fmt.Sprintf("service name %q", s.Name), RefusedName, e.port)
	case idKey != "" && !g.id(s.ID, e.port):
		g.refuse(r, idKey, fmt.Sprintf("service ID %q", s.ID), RefusedID, e.port)
	case mesh && !g.all && !g.mesh && sidecarPortOf(l, e.port) != 0:
		_, label := connectKeys(l, e.port)
		g.refuse(r, label[keyConnect], fmt.Sprintf("the service mesh (a sidecar) for %q", s.Name), RefusedMesh, e.port)
	default:
		return true
	}
	return false
}

// ignored reads the value of SERVICE_IGNORE or SERVICE_<port>_IGNORE, given under label. In gliderlabs
// mode any non-empty value ignores, even "false"; otherwise it is a boolean, and a bad value keeps the
// container or port out with why set.
func ignored(v, label string, o Options, r *Result) (ignore bool, why string) {
	switch {
	case o.Gliderlabs && v == "":
		return false, ""
	case o.Gliderlabs:
		if b, err := strconv.ParseBool(v); err == nil && !b {
			r.warnf(label, "%q ignores the container in gliderlabs mode, as gliderlabs/registrator does (any value does); remove the label to register it", v)
		}
		return true, ""
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.errorf(label, "not a boolean: %q (gliderlabs/registrator ignored on any value; write true)", v)
		return false, label + " has a bad value"
	}
	return b, ""
}

// addressFromLabel is the address -useIpFromLabel gives the container: the label's IP, the address
// part of a CIDR, or a host name (gliderlabs takes the value as it is); "" when the label is not set.
// A value that is none of these, or an address that is the host's rather than the container's
// (health.AddressRefusal: link-local, instance metadata, unspecified, multicast, loopback), keeps the
// container out with why: its owner asked for an address this daemon cannot give, and every service
// and check of the container would be there. The pre-flight lists either as DiffCheckTarget:
// gliderlabs registers the address as it is.
func addressFromLabel(c Container, o Options, r *Result) (addr, skip string) {
	if o.IPFromLabel == "" {
		return "", ""
	}
	v := strings.TrimSpace(c.Labels[o.IPFromLabel])
	if v == "" {
		return "", ""
	}
	a, _, _ := strings.Cut(v, "/")
	if ip, err := netip.ParseAddr(a); err == nil {
		if why := health.AddressRefusal(ip, o.AdvertiseIP.IsLoopback()); why != "" {
			r.diffErrorf(DiffCheckTarget, o.IPFromLabel, "-useIpFromLabel: %s; the container is kept out", why)
			return "", "the -useIpFromLabel address is refused"
		}
		return ip.Unmap().String(), ""
	}
	if !strings.Contains(v, "/") && hostnameRE.MatchString(v) && len(v) <= maxNameLen {
		return v, ""
	}
	r.diffErrorf(DiffCheckTarget, o.IPFromLabel, "-useIpFromLabel: %q is not an IP address, CIDR or host name; the container is kept out", v)
	return "", "the -useIpFromLabel label has a bad value"
}

func (r *Result) errorf(key, format string, args ...any) {
	r.diffErrorf("", key, format, args...)
}

// diffErrorf is errorf for a problem the pre-flight lists as diff (Problem.Diff).
func (r *Result) diffErrorf(diff, key, format string, args ...any) {
	r.add(Problem{Severity: SeverityError, Key: key, Message: fmt.Sprintf(format, args...), Diff: diff})
}

func (r *Result) warnf(key, format string, args ...any) {
	r.add(Problem{Severity: SeverityWarning, Key: key, Message: fmt.Sprintf(format, args...)})
}

// add records a problem once: a container-level key is read for every port.
func (r *Result) add(p Problem) {
	if !slices.Contains(r.Problems, p) {
		r.Problems = append(r.Problems, p)
	}
}

// addChecks gives a service the checks its labels define and the one mirroring the container's own
// health. An invalid check definition keeps the service out (it reports false): registering it without
// the check its owner asked for would send traffic to an instance nobody verifies.
func addChecks(s *Service, c Container, o Options, l labels, e endpoint, r *Result) bool {
	keys := map[string]string{}
	origin := map[string]string{}
	for k, v := range l.global {
		if isCheckKey(k) {
			keys[k], origin[k] = v, l.key(k)
		}
	}
	for k, v := range l.ports[e.port] {
		if isCheckKey(k) {
			keys[k], origin[k] = v, l.portKey(e.port, k)
		}
	}
	label := func(k string) string { return cmp.Or(origin[k], "SERVICE_"+k) }
	target := health.Target{ServiceID: s.ID, Address: s.Address, Port: s.Port, Proto: e.proto}
	// Loopback targets only where the daemon itself advertises loopback (a single-host setup); a
	// container cannot aim the host's agent at the host's own services.
	rules := health.Rules{Gliderlabs: o.Gliderlabs, LoopbackTargets: o.AdvertiseIP.IsLoopback()}
	checks, probs := health.FromLabels(keys, label, target, rules)
	failed := false
	for _, p := range probs {
		if p.Error {
			diff := ""
			if p.Target {
				diff = DiffCheckTarget
			}
			r.diffErrorf(diff, p.Key, "%s; port %d kept out", p.Message, e.port)
			failed = true
		} else {
			r.warnf(p.Key, "%s", p.Message)
		}
	}
	if failed {
		return false
	}
	if health.MirrorEnabled(keys) {
		initial := strings.ToLower(keys["CHECK_INITIAL_STATUS"])
		switch {
		case c.HasHealthcheck:
			checks = append(checks, health.Mirror(s.ID, health.SourceDocker, o.HealthTTL, initial))
			st := health.FromDocker(c.HealthStatus, c.HealthOutput, initial)
			s.Health = &st
		case c.Task != nil && c.Task.Health.Defined:
			checks = append(checks, health.Mirror(s.ID, health.SourceECS, o.HealthTTL, initial))
			st := health.FromECS(c.Task.Health.Status, c.Task.Health.Output, initial)
			s.Health = &st
		}
	}
	if len(checks) > 0 {
		s.Checks = checks
		s.Meta[MetaChecks] = health.Fingerprint(checks)
	}
	return true
}
