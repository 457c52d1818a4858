package desired

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// DefaultSidecarPort is the container port a meshed service's sidecar proxy listens on when
// SERVICE_CONNECT_SIDECAR_PORT does not say.
const DefaultSidecarPort = 21000

// The service mesh keys, after SERVICE_ or SERVICE_<port>_.
const (
	keyConnect     = "CONNECT"
	keyUpstreams   = "CONNECT_UPSTREAMS"
	keySidecarPort = "CONNECT_SIDECAR_PORT"
)

// isConnectKey reports the service mesh keys (SERVICE_CONNECT, SERVICE_CONNECT_*); never Meta.
func isConnectKey(k string) bool { return k == keyConnect || strings.HasPrefix(k, keyConnect+"_") }

// anyConnect reports whether the container has a service mesh key at all: most have none, and need
// none of the mesh's work.
func (l labels) anyConnect() bool {
	for k := range l.global {
		if isConnectKey(k) {
			return true
		}
	}
	for _, attrs := range l.ports {
		for k := range attrs {
			if isConnectKey(k) {
				return true
			}
		}
	}
	return false
}

// connectKeys are the mesh keys of one port, the per-port ones over the container-level ones, and the
// label each came from.
func connectKeys(l labels, port int) (keys, label map[string]string) {
	keys, label = map[string]string{}, map[string]string{}
	for k, v := range l.global {
		if isConnectKey(k) {
			keys[k], label[k] = v, l.key(k)
		}
	}
	for k, v := range l.ports[port] {
		if isConnectKey(k) {
			keys[k], label[k] = v, l.portKey(port, k)
		}
	}
	return keys, label
}

// sidecarPortOf is the container port the sidecar of a meshed port listens on, 0 when the port is not
// in the mesh or its keys are bad (addConnect reports them). That port is the sidecar's, never a
// service of its own.
func sidecarPortOf(l labels, port int) int {
	keys, _ := connectKeys(l, port)
	if on, err := strconv.ParseBool(keys[keyConnect]); err != nil || !on {
		return 0
	}
	v, ok := keys[keySidecarPort]
	if !ok {
		return DefaultSidecarPort
	}
	p, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || p < 1 || p > 65535 {
		return 0
	}
	return p
}

// addConnect gives a service the sidecar its SERVICE_CONNECT keys ask for. A definition that cannot
// be made keeps the service out (it reports false): its owner put it in the mesh, and registering it
// without the sidecar would leave every meshed client unable to reach it with no word why. sidecars
// listeners holds every port already listened on in the container's network namespace (the
// application's, and the sidecars' and upstreams' given out so far), with what listens there.
func addConnect(s *Service, c Container, l labels, e endpoint, eps []endpoint, listeners map[int]string, r *Result) bool {
	keys, label := connectKeys(l, e.port)
	if len(keys) == 0 {
		return true
	}
	ok := true
	bad := func(k, format string, args ...any) {
		r.errorf(cmp.Or(label[k], "SERVICE_"+k), format+"; port %d kept out", append(args, e.port)...)
		ok = false
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if k != keyConnect && k != keyUpstreams && k != keySidecarPort {
			bad(k, "unknown service mesh key (the keys are SERVICE_CONNECT, SERVICE_CONNECT_UPSTREAMS and SERVICE_CONNECT_SIDECAR_PORT, also per port)")
		}
	}
	on := false
	if v, set := keys[keyConnect]; set {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad(keyConnect, "not a boolean: %q (write true)", v)
		}
		on = b
	}
	if !on {
		for _, k := range []string{keyUpstreams, keySidecarPort} {
			if _, set := keys[k]; set && ok {
				r.warnf(label[k], "has no effect without SERVICE_CONNECT=true")
			}
		}
		return ok
	}
	if e.proto != "tcp" {
		bad(keyConnect, "the service mesh carries TCP only, and port %d is %s", e.port, e.proto)
		return false
	}
	bind := DefaultSidecarPort
	v, set := keys[keySidecarPort]
	if set {
		p, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || p < 1 || p > 65535 {
			bad(keySidecarPort, "not a port number (1-65535): %q (write e.g. 21000)", v)
		}
		bind = p
	} else if c.NetworkMode == "host" {
		// Every container on the host shares its ports: a default would put two tasks' sidecars on
		// one port, and the second registration would name the first task's proxy.
		bad(keySidecarPort, "in host network mode every sidecar shares the host's ports: set SERVICE_CONNECT_SIDECAR_PORT to a port of its own")
	}
	switch what, taken := listeners[bind]; {
	case !ok:
	case bind == e.port:
		bad(keySidecarPort, "%d is the sidecar's port (SERVICE_CONNECT_SIDECAR_PORT, default %d), not an application port: the application's port must be published (or reachable) too", bind, DefaultSidecarPort)
	case taken:
		bad(keySidecarPort, "the sidecar's port %d is already %s in the container's network namespace; give the sidecar a port of its own", bind, what)
	}
	ups, upOK := parseUpstreams(keys[keyUpstreams])
	if !upOK {
		bad(keyUpstreams, "%q is not a comma list of <service>:<local port> (write e.g. orders:9191,payments:9192)", keys[keyUpstreams])
	}
	mine := map[int]string{bind: "the sidecar's port"}
	names := map[string]bool{}
	for _, u := range ups {
		if err := checkName(u.Name); err != nil {
			bad(keyUpstreams, "upstream %q: %v", u.Name, err)
		}
		if names[u.Name] {
			bad(keyUpstreams, "upstream %s is listed twice", u.Name)
		}
		names[u.Name] = true
		what, dup := mine[u.LocalPort]
		if !dup {
			what, dup = listeners[u.LocalPort]
		}
		if dup {
			bad(keyUpstreams, "upstream %s: local port %d is already %s in the container's network namespace", u.Name, u.LocalPort, what)
		}
		mine[u.LocalPort] = "upstream " + u.Name + "'s local port"
	}
	// Other hosts' proxies reach the sidecar where Docker publishes its port; a port Docker does not
	// translate (host, awsvpc, -internal) is reached where the service is.
	sc := &Connect{BindPort: bind, LocalPort: e.port, Upstreams: ups}
	if i := slices.IndexFunc(eps, func(p endpoint) bool { return p.port == bind && p.proto == "tcp" && !p.unreachable }); i >= 0 {
		sc.Address, sc.Port = eps[i].addr.String(), eps[i].servicePort
	} else if e.servicePort == e.port {
		sc.Address, sc.Port = e.addr.String(), bind
	} else if ok {
		bad(keySidecarPort, "the sidecar's port %d is not published; publish it on this container (-p %d, or a port mapping), whose network namespace the sidecar shares, so that other hosts' proxies reach it", bind, bind)
	}
	if !ok {
		return false
	}
	for p, what := range mine {
		listeners[p] = fmt.Sprintf("%s (of port %d)", what, e.port)
	}
	s.Connect = sc
	return true
}

// parseUpstreams reads SERVICE_CONNECT_UPSTREAMS: "orders:9191,payments:9192". Names are checked
// by the caller; false when an item is not <name>:<port>.
func parseUpstreams(v string) ([]Upstream, bool) {
	var ups []Upstream
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, port, found := strings.Cut(item, ":")
		p, err := strconv.Atoi(port)
		if !found || err != nil || p < 1 || p > 65535 || strings.TrimSpace(name) != name {
			return nil, false
		}
		ups = append(ups, Upstream{Name: name, LocalPort: p})
	}
	return ups, true
}
