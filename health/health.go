package health

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Consul check statuses.
const (
	Passing  = "passing"
	Warning  = "warning"
	Critical = "critical"
)

// Kinds of check.
const (
	KindHTTP   = "http"
	KindHTTPS  = "https"
	KindTCP    = "tcp"
	KindGRPC   = "grpc"
	KindTTL    = "ttl"    // updated by the application itself
	KindMirror = "health" // a TTL check the daemon keeps equal to the container's own health
)

// Defaults of label-defined checks.
const (
	DefaultInterval = 10 * time.Second
	DefaultTimeout  = 5 * time.Second
	minInterval     = time.Second // Consul raises shorter intervals to this
	minDeregister   = time.Minute // Consul's reaper ignores shorter values
)

// Check is one Consul check of a service.
type Check struct {
	ID     string              `json:"id"`
	Name   string              `json:"name"`
	Kind   string              `json:"kind"`
	HTTP   string              `json:"http,omitempty"`
	Method string              `json:"method,omitempty"`
	Header map[string][]string `json:"header,omitempty"`
	// DisableRedirects: the agent reports a redirect as the check's answer (critical) instead of
	// following it, so a container cannot send the host's agent elsewhere. Every HTTP(S) check has it.
	DisableRedirects bool          `json:"disable_redirects,omitempty"`
	TLSSkipVerify    bool          `json:"tls_skip_verify,omitempty"`
	TCP              string        `json:"tcp,omitempty"`
	GRPC             string        `json:"grpc,omitempty"`
	GRPCUseTLS       bool          `json:"grpc_use_tls,omitempty"`
	Interval         time.Duration `json:"interval,omitempty"`
	Timeout          time.Duration `json:"timeout,omitempty"`
	TTL              time.Duration `json:"ttl,omitempty"`
	DeregisterAfter  time.Duration `json:"deregister_after,omitempty"`
	InitialStatus    string        `json:"initial_status,omitempty"`
	Notes            string        `json:"notes,omitempty"`
}

// Problem is a bad check key. Errors keep the service out of Consul (fail closed); warnings do not.
type Problem struct {
	Key     string
	Message string
	Error   bool
	// Target marks an error that refuses where a check is aimed or what it sends (an address of the
	// host's, a UDP port, a writing method, a header that speaks for the host): unlike a malformed
	// value, such a check was registered as asked by gliderlabs/registrator. The pre-flight reads it,
	// so that its report does not depend on the wording of Message.
	Target bool
}

var (
	methodRE = regexp.MustCompile(`^[A-Z]{1,20}$`)
	headerRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// Check keys that existed in gliderlabs/registrator but would run commands on the Consul agent's host.
	scriptKeys = []string{"CHECK_SCRIPT", "CHECK_CMD", "CHECK_DOCKER_SCRIPT", "CHECK_ARGS", "CHECK_SHELL"}
)

// Rules selects label semantics where gliderlabs/registrator's differ from this daemon's.
type Rules struct {
	// Gliderlabs: one check per service at most (the first of HTTP, HTTPS, TTL, TCP, gRPC), any
	// non-empty value turns a switch key on, and no timeout is sent unless one is given.
	Gliderlabs bool
	// LoopbackTargets allows checks of a loopback address: the daemon advertises one itself (see
	// AddressRefusal). Link-local, metadata, unspecified and multicast targets are never allowed.
	LoopbackTargets bool
}

// CheckID is the ID of a service's check of the given kind. The service's primary check is
// service:<service ID>, the name Consul gives a check registered with its service, so an application
// that heartbeats its TTL check finds it where gliderlabs/registrator put it. The others add the kind.
func CheckID(serviceID, kind string, primary bool) string {
	if primary {
		return "service:" + serviceID
	}
	return "service:" + serviceID + ":" + kind
}

// MirrorID is the ID of the check that mirrors a container's own health.
func MirrorID(serviceID string) string { return CheckID(serviceID, KindMirror, false) }

// MirrorService is the service ID of a mirror check's ID.
func MirrorService(checkID string) string {
	return strings.TrimSuffix(strings.TrimPrefix(checkID, "service:"), ":"+KindMirror)
}

// FromLabels builds a service's checks from its CHECK_* keys (SERVICE_ prefix and port removed, upper
// case, the per-port keys already merged over the container-level ones); label names the label a key
// came from, for messages. A service with an error must not be registered: its owner asked for a check
// that cannot be made. Checks come in gliderlabs's order: HTTP, HTTPS, TTL, TCP, gRPC. The primary
// check (ID service:<service ID>) is the TTL check when there is one, so that the ID an application
// heartbeats never moves when a probe is added, else the first; in gliderlabs mode it is the only one.
func FromLabels(keys map[string]string, label func(key string) string, t Target, rules Rules) ([]Check, []Problem) {
	var checks []Check
	var probs []Problem
	bad := func(k, format string, args ...any) {
		probs = append(probs, Problem{Key: label(k), Message: fmt.Sprintf(format, args...), Error: true})
	}
	// refuse is bad for a check whose target or request is refused (see Problem.Target).
	refuse := func(k, format string, args ...any) {
		probs = append(probs, Problem{Key: label(k), Message: fmt.Sprintf(format, args...), Error: true, Target: true})
	}
	warn := func(k, format string, args ...any) {
		probs = append(probs, Problem{Key: label(k), Message: fmt.Sprintf(format, args...)})
	}
	// switchKey reads a key that turns something on. gliderlabs turns it on with any value, even
	// "false"; this daemon reads a boolean and refuses anything else.
	switchKey := func(k string) bool {
		v, ok := keys[k]
		if !ok || v == "" {
			return false
		}
		b, err := strconv.ParseBool(v)
		switch {
		case rules.Gliderlabs && err == nil && !b:
			warn(k, "is on: in gliderlabs mode any value turns it on, as gliderlabs/registrator does; remove the label to turn it off")
			return true
		case rules.Gliderlabs:
			return true
		case err != nil:
			bad(k, "not a boolean: %q (gliderlabs/registrator took any value as true; write true)", v)
		}
		return b
	}
	durKey := func(k string, def time.Duration) time.Duration {
		v, ok := keys[k]
		if !ok || v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			bad(k, "not a positive duration: %q (write e.g. 10s, 1m30s)", v)
			return def
		}
		return d
	}

	for _, k := range slices.Sorted(maps.Keys(keys)) {
		switch {
		case slices.Contains(scriptKeys, k):
			bad(k, "script checks are not supported: they would run commands on the Consul agent's host; use SERVICE_CHECK_HTTP, _TCP or _GRPC, or a Docker HEALTHCHECK, which is mirrored into Consul")
		case !known(k) && rules.Gliderlabs:
			warn(k, "unknown check key; ignored, as gliderlabs/registrator does (outside gliderlabs mode it keeps the service out)")
		case !known(k):
			bad(k, "unknown check key; the check it meant cannot be made, so the service is kept out")
		}
	}

	if v := keys["CHECK_DOCKER"]; v != "" {
		if _, err := strconv.ParseBool(v); err != nil {
			bad("CHECK_DOCKER", "not a boolean: %q", v)
		}
	}
	interval := durKey("CHECK_INTERVAL", DefaultInterval)
	if interval < minInterval {
		warn("CHECK_INTERVAL", "%v is shorter than Consul's minimum; %v is used", interval, minInterval)
		interval = minInterval
	}
	defTimeout := DefaultTimeout
	if rules.Gliderlabs {
		defTimeout = 0 // Consul's default
	}
	timeout := durKey("CHECK_TIMEOUT", defTimeout)
	deregister := durKey("CHECK_DEREGISTER_AFTER", 0)
	if deregister > 0 && deregister < minDeregister {
		warn("CHECK_DEREGISTER_AFTER", "%v is shorter than Consul's minimum; Consul waits %v", deregister, minDeregister)
	}
	initial := ""
	if v := keys["CHECK_INITIAL_STATUS"]; v != "" {
		switch strings.ToLower(v) {
		case Passing, Warning, Critical:
			initial = strings.ToLower(v)
		default:
			bad("CHECK_INITIAL_STATUS", "must be passing, warning or critical, not %q", v)
		}
	}
	probe := func(kind string) Check {
		return Check{Kind: kind, Interval: interval, Timeout: timeout, DeregisterAfter: deregister, InitialStatus: initial}
	}
	// A probe goes to the service's own address; an address that is the host's instead keeps it out.
	targetOK := func(k string) bool {
		if why := t.refusal(rules.LoopbackTargets); why != "" {
			refuse(k, "cannot probe %s: %s", t.hostPort(), why)
			return false
		}
		return true
	}
	network := func(k string) bool {
		if t.Proto == "udp" {
			refuse(k, "a %s check cannot probe UDP port %d", strings.TrimPrefix(k, "CHECK_"), t.Port)
			return false
		}
		return targetOK(k)
	}
	method := func(k string) string {
		m := keys[k]
		switch {
		case m == "":
		case !methodRE.MatchString(m):
			bad(k, "not an HTTP method: %q", m)
		case !slices.Contains(checkMethods, m):
			refuse(k, "method %s is refused: a check may only read (GET, HEAD or OPTIONS); Consul sends it from the host, where a PUT is what fetches an instance metadata token", m)
		}
		return m
	}

	anyMethod := method("CHECK_METHOD")
	header := map[string][]string{}
	// Header values are never repeated in a message: they may be credentials.
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		name, ok := strings.CutPrefix(k, "CHECK_HEADER_")
		if !ok {
			continue
		}
		v := keys[k]
		if !headerRE.MatchString(name) || strings.ContainsAny(v, "\r\n") {
			bad(k, "not a usable header: the name may hold letters, digits, '-' and '_', the value one line")
			continue
		}
		name = http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))
		if why := headerRefusal(name); why != "" {
			refuse(k, "header %s is refused: %s", name, why)
			continue
		}
		if credentialHeader(name) {
			warn(k, "header %s holds a credential, and Consul keeps it in plain text with the check's definition (in the agent's data directory, checks/); give the health endpoint a credential that opens nothing else, or none", name)
		}
		header[name] = []string{v}
	}
	if len(header) == 0 {
		header = nil
	}
	skipVerify := switchKey("CHECK_TLS_SKIP_VERIFY")
	httpChecks := 0
	for _, kind := range []string{KindHTTP, KindHTTPS} {
		k := "CHECK_" + strings.ToUpper(kind)
		m := cmpOr(method(k+"_METHOD"), anyMethod)
		path, ok := keys[k]
		if !ok || path == "" {
			if keys[k+"_METHOD"] != "" {
				warn(k+"_METHOD", "has no effect without %s", label(k))
			}
			continue
		}
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \t\r\n#") {
			bad(k, "must be a path starting with '/', like /health, not %q; the address and port are the service's", path)
			continue
		}
		if !targetOK(k) {
			continue
		}
		c := probe(kind)
		c.HTTP = kind + "://" + t.hostPort() + path
		c.Method, c.Header, c.DisableRedirects = m, header, true
		c.TLSSkipVerify = skipVerify && kind == KindHTTPS
		c.Name = fmt.Sprintf("%s %s %s", strings.ToUpper(kind), cmpOr(m, "GET"), path)
		checks = append(checks, c)
		httpChecks++
	}
	if httpChecks == 0 {
		if keys["CHECK_METHOD"] != "" {
			warn("CHECK_METHOD", "has no effect without SERVICE_CHECK_HTTP or SERVICE_CHECK_HTTPS")
		}
		if header != nil {
			warn("CHECK_HEADER_*", "headers have no effect without SERVICE_CHECK_HTTP or SERVICE_CHECK_HTTPS")
		}
	}
	if keys["CHECK_TTL"] != "" {
		if ttl := durKey("CHECK_TTL", 0); ttl > 0 {
			checks = append(checks, Check{Kind: KindTTL, TTL: ttl, DeregisterAfter: deregister,
				InitialStatus: initial, Name: "TTL " + ttl.String() + " (updated by the application)"})
		}
	}
	if switchKey("CHECK_TCP") && network("CHECK_TCP") {
		c := probe(KindTCP)
		c.TCP = t.hostPort()
		c.Name = "TCP " + c.TCP
		checks = append(checks, c)
	}
	grpcTLS := switchKey("CHECK_GRPC_USE_TLS")
	if switchKey("CHECK_GRPC") && network("CHECK_GRPC") {
		c := probe(KindGRPC)
		c.GRPC, c.GRPCUseTLS = t.hostPort(), grpcTLS
		c.TLSSkipVerify = grpcTLS && skipVerify
		c.Name = "gRPC health " + c.GRPC
		checks = append(checks, c)
	} else if grpcTLS {
		warn("CHECK_GRPC_USE_TLS", "has no effect without SERVICE_CHECK_GRPC")
	}
	if skipVerify && !slices.ContainsFunc(checks, func(c Check) bool { return c.TLSSkipVerify }) {
		warn("CHECK_TLS_SKIP_VERIFY", "has no effect without SERVICE_CHECK_HTTPS or SERVICE_CHECK_GRPC with SERVICE_CHECK_GRPC_USE_TLS")
	}
	if rules.Gliderlabs && len(checks) > 1 {
		for _, c := range checks[1:] {
			warn("CHECK_"+strings.ToUpper(c.Kind), "ignored: in gliderlabs mode a service has one check, the first of HTTP, HTTPS, TTL, TCP and gRPC (%s here); outside gliderlabs mode every check is registered", checks[0].Kind)
		}
		checks = checks[:1]
	}
	primary := max(0, slices.IndexFunc(checks, func(c Check) bool { return c.Kind == KindTTL }))
	for i := range checks {
		c := &checks[i]
		c.ID = CheckID(t.ServiceID, c.Kind, i == primary)
		if c.Kind == KindTTL {
			c.Notes = "the application updates this check: PUT /v1/agent/check/pass/" + c.ID
		}
	}
	intervalChecks := slices.ContainsFunc(checks, func(c Check) bool { return c.Interval > 0 })
	if !intervalChecks {
		for _, k := range []string{"CHECK_INTERVAL", "CHECK_TIMEOUT"} {
			if keys[k] != "" {
				warn(k, "has no effect without an HTTP, TCP or gRPC check")
			}
		}
	}
	if !slices.ContainsFunc(probs, func(p Problem) bool { return p.Error }) {
		return checks, probs
	}
	// A key that is wrong needs no second word about having no effect.
	probs = slices.DeleteFunc(probs, func(p Problem) bool {
		return !p.Error && slices.ContainsFunc(probs, func(q Problem) bool { return q.Error && q.Key == p.Key })
	})
	return nil, probs
}

// MirrorEnabled reports whether the container's own health should be mirrored (SERVICE_CHECK_DOCKER,
// default true); a bad value is reported by FromLabels.
func MirrorEnabled(keys map[string]string) bool {
	v, ok := keys["CHECK_DOCKER"]
	if !ok || v == "" {
		return true
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b
}

func known(k string) bool {
	switch k {
	case "CHECK_HTTP", "CHECK_HTTPS", "CHECK_METHOD", "CHECK_HTTP_METHOD", "CHECK_HTTPS_METHOD", "CHECK_TLS_SKIP_VERIFY", "CHECK_TCP", "CHECK_GRPC",
		"CHECK_GRPC_USE_TLS", "CHECK_TTL", "CHECK_INTERVAL", "CHECK_TIMEOUT", "CHECK_INITIAL_STATUS",
		"CHECK_DEREGISTER_AFTER", "CHECK_DOCKER":
		return true
	}
	return strings.HasPrefix(k, "CHECK_HEADER_")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Source says where a container's own health comes from.
type Source string

const (
	SourceDocker Source = "docker" // the container's HEALTHCHECK, as Docker reports it
	SourceECS    Source = "ecs"    // the task definition's health check, as task metadata reports it
)

// State is a mirrored health: the status and output of the TTL check.
type State struct {
	Status string
	Output string
}

// Mirror returns the TTL check that mirrors a container's own health. The daemon refreshes it well
// within ttl; if the daemon stops, the check goes critical after ttl, so an instance nobody watches
// leaves the passing set.
func Mirror(serviceID string, src Source, ttl time.Duration, initial string) Check {
	name := "Docker HEALTHCHECK"
	if src == SourceECS {
		name = "ECS container health"
	}
	return Check{ID: MirrorID(serviceID), Name: name, Kind: KindMirror, TTL: ttl, InitialStatus: cmpOr(initial, Critical),
		Notes: "kept equal to the container's own health by ecs-registrator; critical if ecs-registrator stops updating it for " + ttl.String()}
}

// FromDocker maps Docker's health status ("starting", "healthy", "unhealthy") to a check state. A
// container still starting is critical (or the configured initial status): it has not proved itself.
func FromDocker(status, lastOutput, initial string) State {
	switch status {
	case "healthy":
		return State{Status: Passing, Output: "Docker: healthy"}
	case "unhealthy":
		return State{Status: Critical, Output: "Docker: unhealthy: " + trimOutput(lastOutput)}
	default:
		return State{Status: cmpOr(initial, Critical), Output: "Docker: " + cmpOr(status, "no status yet")}
	}
}

// FromECS maps ECS container health ("HEALTHY", "UNHEALTHY", "" for unknown) to a check state.
func FromECS(status, output, initial string) State {
	switch status {
	case "HEALTHY":
		return State{Status: Passing, Output: "ECS: HEALTHY"}
	case "UNHEALTHY":
		return State{Status: Critical, Output: "ECS: UNHEALTHY: " + trimOutput(output)}
	default:
		return State{Status: cmpOr(initial, Critical), Output: "ECS: health not known yet"}
	}
}

// trimOutput keeps a probe's output short enough for a check note.
func trimOutput(s string) string {
	s = strings.TrimSpace(s)
	const max = 1024
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// Fingerprint is a short hash of check definitions. The registrator stores it in the service's Meta: the
// agent's service list does not show checks, and a changed definition must cause a re-registration.
func Fingerprint(checks []Check) string {
	if len(checks) == 0 {
		return ""
	}
	b, _ := json.Marshal(checks)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}
