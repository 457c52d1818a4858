package registrator

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/health"
)

// ExternalSource is the Meta["external-source"] value that marks a Consul service as owned by this daemon.
const ExternalSource = "ecs-registrator"

// Meta keys the daemon sets itself; labels cannot override them.
const (
	MetaExternalSource = "external-source"
	MetaContainerID    = "container-id"
	MetaContainerName  = "container-name"

	MetaECSCluster       = "ecs-cluster"
	MetaECSTaskARN       = "ecs-task-arn"
	MetaECSTaskFamily    = "ecs-task-family"
	MetaECSTaskRevision  = "ecs-task-revision"
	MetaECSService       = "ecs-service"
	MetaECSContainer     = "ecs-container"
	MetaAvailabilityZone = "availability-zone"
	MetaEC2InstanceID    = "ec2-instance-id"
	// MetaChecks is a fingerprint of the service's check definitions: the agent's service list does
	// not show checks, and a changed definition must be re-registered.
	MetaChecks = "ecsr-checks"
)

// Consul's limits on service metadata (agent/structs: ValidateServiceMetadata).
const (
	maxMetaPairs    = 64
	maxMetaKeyLen   = 128
	maxMetaValueLen = 512
	maxNameLen      = 255 // longer names and IDs are certainly a templating accident
	maxDNSLabelLen  = 63
)

var (
	metaKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// Names and IDs end up in URL paths (/v1/agent/service/deregister/<id>, /v1/health/service/<name>).
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	dnsLabelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)
	idRE       = regexp.MustCompile(`^[^/?#%\s]+$`)
)

// Container is what the desired-state function needs to know about one container. FromInspect builds it
// from docker inspect; tests build it directly.
type Container struct {
	ID          string
	Name        string // without Docker's leading slash
	Image       string // as the container was created with, e.g. "registry/team/api:1.2"
	Labels      map[string]string
	Env         []string // KEY=VALUE
	Running     bool
	StartedAt   time.Time
	StopSignal  string // Config.StopSignal, may be empty
	NetworkMode string // "bridge", "host", "none", "container:<id>", or a user network name
	IPs         []netip.Addr
	Ports       []Port
	Draining    bool // set by the reconciler when a stop is under way
	// Task is the container's ECS task, nil for a container ECS did not start.
	Task *ecsmeta.Task
	// HasHealthcheck is set when the image or run config defines a Docker HEALTHCHECK; HealthStatus is
	// Docker's view of it ("starting", "healthy", "unhealthy") and HealthOutput the last probe's output.
	HasHealthcheck bool
	HealthStatus   string
	HealthOutput   string
}

// Port is one container port: exposed, and published when HostPort is set.
type Port struct {
	Port     int
	Proto    string // "tcp" or "udp"
	HostIP   string // the binding's host address: "", "0.0.0.0" and "::" mean all addresses
	HostPort int    // 0 when not published
}

// Options are the daemon-wide inputs of the desired-state function.
type Options struct {
	Node        string     // the Consul agent's node name, first part of default service IDs
	AdvertiseIP netip.Addr // the host address other hosts reach published ports on
	Internal    bool       // register container IP and container port instead
	OptIn       bool       // only containers that ask to be registered are
	Host        ecsmeta.Host
	Tags        TagTemplates  // extra tags for every service, rendered per container
	HealthTTL   time.Duration // TTL of the checks that mirror a container's own health
}

// Service is one desired Consul service registration.
type Service struct {
	ID          string
	Name        string
	Tags        []string
	Address     string
	Port        int
	Meta        map[string]string
	ContainerID string
	// Maintenance, when set, is the note of the service's maintenance check: registered but never passing.
	Maintenance string
	// Checks are registered with the service; their fingerprint is Meta[MetaChecks].
	Checks []health.Check
	// Health is the state of the check that mirrors the container's own health, nil without one.
	Health *health.State
}

// Equal reports whether two registrations are the same for Consul's purposes (nil and empty are alike).
func (s Service) Equal(o Service) bool {
	return s.ID == o.ID && s.Name == o.Name && s.Address == o.Address && s.Port == o.Port &&
		s.Maintenance == o.Maintenance && slices.Equal(s.Tags, o.Tags) && maps.Equal(s.Meta, o.Meta)
}

// Addr is the service's address and port, IPv6-safe.
func (s Service) Addr() string { return net.JoinHostPort(s.Address, strconv.Itoa(s.Port)) }

// Severity says whether a problem kept something out of Consul.
type Severity string

const (
	SeverityError   Severity = "error"   // the service or container was kept out
	SeverityWarning Severity = "warning" // registered, but a value was dropped or adjusted
)

// Problem is bad input on one container, reported for that container only.
type Problem struct {
	Severity Severity `json:"severity"`
	Key      string   `json:"key,omitempty"` // the label or env key at fault, when there is one
	Message  string   `json:"message"`
}

func (p Problem) String() string {
	if p.Key == "" {
		return p.Message
	}
	return p.Key + ": " + p.Message
}

// Result is the desired state of one container.
type Result struct {
	Services []Service
	Problems []Problem
	// Skipped says in plain words why the container has no services, when it has none.
	Skipped string
}

// The keys a container-level or per-port SERVICE_ label may use that are not Meta.
var attrKeys = map[string]bool{"NAME": true, "TAGS": true, "ID": true, "IGNORE": true, "REGISTER": true}

// isCheckKey reports keys the health package owns (SERVICE_CHECK_*, SERVICE_<port>_CHECK_*); never Meta.
func isCheckKey(k string) bool { return k == "CHECK" || strings.HasPrefix(k, "CHECK_") }

// Desired computes the services a container should have in Consul. It is a pure function: everything it
// depends on is in its arguments, and bad input becomes a Problem, never a panic.
func Desired(c Container, o Options) Result {
	var r Result
	l := parseLabels(c, &r)

	if v, ok := l.global["IGNORE"]; ok {
		ignore, err := strconv.ParseBool(v)
		if err != nil {
			r.errorf(l.key("IGNORE"), "not a boolean: %q", v)
			r.Skipped = "SERVICE_IGNORE has a bad value"
			return r
		}
		if ignore {
			r.Skipped = "SERVICE_IGNORE=true"
			return r
		}
	}
	register, hasRegister := true, false
	if v, ok := l.global["REGISTER"]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			r.errorf(l.key("REGISTER"), "not a boolean: %q", v)
			r.Skipped = "SERVICE_REGISTER has a bad value"
			return r
		}
		register, hasRegister = b, true
	}
	_, hasName := l.global["NAME"]
	portNamed := false
	for _, attrs := range l.ports {
		if _, ok := attrs["NAME"]; ok {
			portNamed = true
		}
	}
	switch {
	case hasRegister && !register:
		r.Skipped = "SERVICE_REGISTER=false"
		return r
	case o.OptIn && !hasName && !portNamed && !hasRegister:
		r.Skipped = "not opted in: no SERVICE_NAME, SERVICE_<port>_NAME or SERVICE_REGISTER=true"
		return r
	case c.Task != nil && c.Task.Pause():
		r.Skipped = "ECS pause container of an awsvpc task: never registered"
		return r
	case !c.Running:
		r.Skipped = "not running"
		return r
	case c.Draining:
		r.Skipped = "stopping: deregistered until it runs again"
		return r
	}
	// Opting in only through per-port names registers only those ports: a sidecar's metrics port is not
	// published by surprise.
	onlyNamedPorts := o.OptIn && portNamed && !hasName && !(hasRegister && register)

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
	if t := c.Task; t != nil {
		defaultName = cmp.Or(t.Service, t.Family, defaultName)
	}
	extraTags := o.Tags.render(c, o.Host, &r)
	ids := map[string]bool{}
	for _, e := range endpoints {
		attrs := l.ports[e.port]
		if onlyNamedPorts {
			if _, ok := attrs["NAME"]; !ok {
				continue
			}
		}
		if v, ok := attrs["IGNORE"]; ok {
			ignore, err := strconv.ParseBool(v)
			if err != nil {
				r.errorf(l.portKey(e.port, "IGNORE"), "not a boolean: %q; port %d kept out", v, e.port)
				continue
			}
			if ignore {
				continue
			}
		}
		s := Service{Address: e.addr.String(), Port: e.servicePort, ContainerID: c.ID}

		name, nameKey := defaultName, "image"
		if len(endpoints) > 1 {
			name = fmt.Sprintf("%s-%d", defaultName, e.port)
		}
		if v, ok := l.global["NAME"]; ok {
			name, nameKey = v, l.key("NAME")
		}
		if v, ok := attrs["NAME"]; ok {
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
		if v, ok := l.global["ID"]; ok {
			s.ID, idKey = v, l.key("ID")
		}
		if v, ok := attrs["ID"]; ok {
			s.ID, idKey = v, l.portKey(e.port, "ID")
		}
		if err := checkID(s.ID); err != nil {
			r.errorf(idKey, "%v; port %d kept out", err, e.port)
			continue
		}
		if ids[s.ID] {
			r.errorf(idKey, "service ID %q is used by more than one port; give each port its own SERVICE_<port>_ID; port %d kept out", s.ID, e.port)
			continue
		}
		ids[s.ID] = true

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
		s.Meta = buildMeta(c, o.Host, l, e.port, &r)
		if !addChecks(&s, c, o, l, e, &r) {
			continue
		}
		r.Services = append(r.Services, s)
	}
	if len(r.Services) == 0 && r.Skipped == "" {
		r.Skipped = "no port left to register"
	}
	return r
}

func (r *Result) errorf(key, format string, args ...any) {
	r.add(Problem{Severity: SeverityError, Key: key, Message: fmt.Sprintf(format, args...)})
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
	checks, probs := health.FromLabels(keys, label, health.Target{ServiceID: s.ID, Address: s.Address, Port: s.Port, Proto: e.proto})
	failed := false
	for _, p := range probs {
		if p.Error {
			r.errorf(p.Key, "%s; port %d kept out", p.Message, e.port)
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

// labels holds a container's SERVICE_ keys with the prefix removed, split into container-level and
// per-port keys. Labels win over env vars of the same key.
type labels struct {
	global map[string]string         // NAME, TAGS, ..., and Meta keys, upper case as given
	ports  map[int]map[string]string // port -> NAME, TAGS, ...
	origin map[string]string         // key without prefix -> "label" or "env", for messages
}

func (l labels) key(k string) string { return "SERVICE_" + k }

func (l labels) portKey(p int, k string) string { return fmt.Sprintf("SERVICE_%d_%s", p, k) }

func parseLabels(c Container, r *Result) labels {
	l := labels{global: map[string]string{}, ports: map[int]map[string]string{}, origin: map[string]string{}}
	merged := map[string]string{}
	for _, kv := range c.Env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, "SERVICE_") {
			merged[k] = v
		}
	}
	for k, v := range c.Labels {
		if strings.HasPrefix(k, "SERVICE_") {
			merged[k] = v
		}
	}
	for _, k := range slices.Sorted(maps.Keys(merged)) {
		v := merged[k]
		rest := strings.TrimPrefix(k, "SERVICE_")
		if first, attr, ok := strings.Cut(rest, "_"); ok && isDigits(first) {
			p, err := strconv.Atoi(first)
			if err != nil || p < 1 || p > 65535 {
				r.errorf(k, "%s is not a port number (1-65535); key ignored", first)
				continue
			}
			if l.ports[p] == nil {
				l.ports[p] = map[string]string{}
			}
			l.ports[p][attr] = v
			continue
		}
		l.global[rest] = v
	}
	return l
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// buildMeta merges container-level and per-port Meta keys (per-port wins) with the daemon's own keys.
func buildMeta(c Container, host ecsmeta.Host, l labels, port int, r *Result) map[string]string {
	user := map[string]string{}
	keyOf := map[string]string{}
	add := func(attrs map[string]string, label func(string) string) {
		for k, v := range attrs {
			if attrKeys[k] || isCheckKey(k) {
				continue
			}
			user[strings.ToLower(k)] = v
			keyOf[strings.ToLower(k)] = label(k)
		}
	}
	add(l.global, l.key)
	add(l.ports[port], func(k string) string { return l.portKey(port, k) })

	meta := map[string]string{
		MetaExternalSource: ExternalSource,
		MetaContainerID:    c.ID,
		MetaContainerName:  c.Name,
	}
	own := func(k, v string) {
		if v != "" && len(v) <= maxMetaValueLen {
			meta[k] = v
		}
	}
	own(MetaEC2InstanceID, host.InstanceID)
	own(MetaAvailabilityZone, host.AvailabilityZone)
	if t := c.Task; t != nil {
		own(MetaECSCluster, t.Cluster)
		own(MetaECSTaskARN, t.ARN)
		own(MetaECSTaskFamily, t.Family)
		own(MetaECSTaskRevision, t.Revision)
		own(MetaECSService, t.Service)
		own(MetaECSContainer, t.Container)
		own(MetaAvailabilityZone, t.AvailabilityZone)
		// Task tags (allow-listed with -ecs-tag-meta) are defaults; the container's own labels win.
		for k, v := range t.Tags {
			k = strings.ToLower(k)
			if _, set := user[k]; !set {
				user[k] = v
				keyOf[k] = "task tag " + k
			}
		}
	}
	// Keys the daemon sets (or would set once the metadata is known) cannot come from labels.
	reserved := func(k string) bool {
		switch k {
		case MetaECSCluster, MetaECSTaskARN, MetaECSTaskFamily, MetaECSTaskRevision, MetaECSService,
			MetaECSContainer, MetaAvailabilityZone, MetaEC2InstanceID, MetaChecks:
			return true
		}
		return meta[k] != ""
	}
	for _, k := range slices.Sorted(maps.Keys(user)) {
		v, label := user[k], keyOf[k]
		switch {
		case reserved(k):
			r.warnf(label, "meta key %q is set by ecs-registrator itself; label ignored", k)
		case !metaKeyRE.MatchString(k):
			r.warnf(label, "meta key %q may only hold letters, digits, '-' and '_'; dropped", k)
		case len(k) > maxMetaKeyLen:
			r.warnf(label, "meta key is longer than %d characters; dropped", maxMetaKeyLen)
		case strings.HasPrefix(k, "consul-"):
			r.warnf(label, "meta keys starting with \"consul-\" are reserved by Consul; dropped")
		case len(v) > maxMetaValueLen:
			r.warnf(label, "meta value is %d bytes, Consul allows %d; dropped", len(v), maxMetaValueLen)
		case len(meta) >= maxMetaPairs-1: // one is kept for MetaChecks
			r.warnf(label, "Consul allows %d meta pairs per service; dropped", maxMetaPairs)
		default:
			meta[k] = v
		}
	}
	return meta
}

func splitTags(s string) []string {
	var tags []string
	for t := range strings.SplitSeq(s, ",") {
		t = strings.TrimSpace(t)
		if t != "" && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	return tags
}

func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("service name is empty")
	case len(name) > maxNameLen:
		return fmt.Errorf("service name is %d characters long, more than %d", len(name), maxNameLen)
	case !nameRE.MatchString(name):
		return fmt.Errorf("service name %q may only hold letters, digits, '.', '-' and '_', and must start with a letter or digit", name)
	}
	return nil
}

func checkID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("service ID is empty")
	case len(id) > maxNameLen:
		return fmt.Errorf("service ID is %d characters long, more than %d", len(id), maxNameLen)
	case !idRE.MatchString(id):
		return fmt.Errorf("service ID %q must not contain '/', '?', '#', '%%' or white space", id)
	}
	return nil
}

// imageBase turns "registry:5000/team/api:1.2@sha256:..." into "api", gliderlabs/registrator's default name.
func imageBase(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, "/"); i >= 0 {
		image = image[i+1:]
	}
	image, _, _ = strings.Cut(image, ":")
	return image
}

// endpoint is one registrable port of a container: where other hosts reach it.
type endpoint struct {
	port        int // the container port, the key of SERVICE_<port>_ labels
	proto       string
	addr        netip.Addr
	servicePort int
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
		// only the ECS agent knows. The ports are the container ports.
		if c.Task == nil {
			return nil, "shares another container's network (" + mode + "); its address is unknown without ECS task metadata"
		}
		if len(c.Task.Addrs) == 0 {
			return nil, "awsvpc task: waiting for the task's ENI address from the ECS agent"
		}
		for _, p := range taskPorts(c) {
			eps = append(eps, endpoint{port: p.Port, proto: p.Proto, addr: c.Task.Addrs[0], servicePort: p.Port})
		}
		if len(eps) == 0 {
			return nil, "awsvpc task and no container ports in the task definition"
		}
	case mode == "host":
		if !o.AdvertiseIP.IsValid() {
			return nil, "no advertise IP known (set -ip)"
		}
		for _, p := range taskPorts(c) {
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
					continue
				}
				addr = ip
			}
			if !addr.IsValid() {
				return nil, "no advertise IP known (set -ip)"
			}
			eps = append(eps, endpoint{port: p.Port, proto: p.Proto, addr: addr, servicePort: p.HostPort})
		}
		if len(eps) == 0 {
			return nil, "no published ports (publish with -p, or use -internal)"
		}
	}
	return eps, ""
}

// taskPorts is the container's exposed ports joined with the ports its ECS task definition maps, which
// Docker does not show for a container on another container's network.
func taskPorts(c Container) []Port {
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
