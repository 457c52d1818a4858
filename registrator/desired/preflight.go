package desired

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/ecs-registrator/ecs-registrator/health"
)

// Kinds of Difference: each is a row of README's "Deliberate differences" table that one container can
// show (its "pre-flight" column). The other rows (the kill event, an outage of Docker or Consul,
// -retry-*, a removed container) apply to every container alike.
const (
	DiffScriptCheck    = "script-check"     // a script check: the service is kept out
	DiffCheckTarget    = "check-target"     // a check method, header or address refused
	DiffCheckMeta      = "check-meta"       // check_* keys are not copied into Meta
	DiffHealthcheck    = "healthcheck"      // a Docker HEALTHCHECK gates the passing set
	DiffIDSeveralPorts = "id-several-ports" // one SERVICE_ID on several ports: the first keeps it
	DiffBadValue       = "bad-value"        // a bad value keeps the service out here, as Consul refused it there
	DiffHostBinding    = "host-binding"     // a port published on one host address
	DiffRegisterLabel  = "register-label"   // SERVICE_REGISTER opts in or out, not Meta
	DiffCustomID       = "custom-id"        // a custom SERVICE_ID is not taken over from gliderlabs
)

// DiffKinds are every kind of Difference, in the README table's order.
var DiffKinds = []string{DiffScriptCheck, DiffCheckTarget, DiffCheckMeta, DiffHealthcheck, DiffIDSeveralPorts, DiffBadValue,
	DiffHostBinding, DiffRegisterLabel, DiffCustomID}

// Difference is one way this daemon's registration of a container differs from gliderlabs/registrator's.
type Difference struct {
	Kind   string `json:"kind"`
	Key    string `json:"key,omitempty"` // the label or port it is about
	Detail string `json:"detail"`
}

// Preflight lists how this daemon, with o, would register c differently from gliderlabs/registrator:
// what an operator checks before swapping the image. Empty when the two agree. ipGiven says whether
// -ip was given: without it gliderlabs registers a port at the address it is published on, as this
// daemon does.
func Preflight(c Container, o Options, ipGiven bool) []Difference {
	var out []Difference
	add := func(kind, key, format string, args ...any) {
		out = append(out, Difference{Kind: kind, Key: key, Detail: fmt.Sprintf(format, args...)})
	}
	res := Desired(c, o)
	var lr Result
	l := parseLabels(c, &lr)

	// What the labels ask for, container-level and per port.
	var checkMeta []string
	each := func(attrs map[string]string, spell func(string) string) {
		for _, k := range slices.Sorted(maps.Keys(attrs)) {
			switch {
			case k == "CHECK_SCRIPT" || k == "CHECK_CMD":
				add(DiffScriptCheck, spell(k), "gliderlabs runs it as a script check on the Consul agent's host; here the service is kept out")
			case strings.HasPrefix(k, "CHECK_"):
				checkMeta = append(checkMeta, spell(k))
			case k == "REGISTER":
				add(DiffRegisterLabel, spell(k), "gliderlabs puts it in Meta; here =false keeps the container out and =true opts it in")
			case k == "ID":
				add(DiffCustomID, spell(k), "a registration gliderlabs made under this ID is not taken over (nothing shows gliderlabs made it): deregister gliderlabs's copy once this daemon runs on the host")
			}
		}
	}
	each(l.global, l.key)
	for _, p := range slices.Sorted(maps.Keys(l.ports)) {
		each(l.ports[p], func(k string) string { return l.portKey(p, k) })
	}
	if len(checkMeta) > 0 && len(res.Services) > 0 {
		add(DiffCheckMeta, strings.Join(checkMeta, ","), "gliderlabs copies check_* keys into Meta; here they are not")
	}

	// What evaluating them refused or reported. The kind is the one the problem was made with
	// (Problem.Diff), never read from its message, which may be reworded.
	for _, p := range res.Problems {
		if p.Severity != SeverityError || p.Refused != "" {
			continue
		}
		switch k := strings.ToUpper(p.Key); {
		case strings.HasSuffix(k, "CHECK_SCRIPT") || strings.HasSuffix(k, "CHECK_CMD"):
			// listed above
		case p.Diff == DiffIDSeveralPorts:
			add(DiffIDSeveralPorts, p.Key, "gliderlabs registers every port under it, the last write wins; here the first port keeps it: %s", p.Message)
		case p.Diff == DiffCheckTarget:
			add(DiffCheckTarget, p.Key, "gliderlabs registers it; here it is kept out: %s", p.Message)
		default:
			add(DiffBadValue, p.Key, "gliderlabs passes it on as it is (Consul may refuse the registration, or the value is lost); here the service is kept out, saying why: %s", p.Message)
		}
	}

	// What the container is and runs.
	if c.HasHealthcheck && health.MirrorEnabled(l.global) && len(res.Services) > 0 {
		now := "it is healthy now"
		if c.HealthStatus != "healthy" {
			now = "it is " + cmp.Or(c.HealthStatus, "without a status") + " now, so its services would not be passing"
		}
		add(DiffHealthcheck, "HEALTHCHECK", "gliderlabs ignores it; here it is mirrored as a check and an unhealthy container leaves the passing set (%s; SERVICE_CHECK_DOCKER=false turns it off)", now)
	}
	if !o.Internal && c.NetworkMode != "host" && !strings.HasPrefix(c.NetworkMode, "container:") && Wanted(c, o) {
		for _, p := range c.Ports {
			ip, err := netip.ParseAddr(p.HostIP)
			if p.HostPort == 0 || err != nil || ip.IsUnspecified() {
				continue
			}
			key := fmt.Sprintf("%d/%s", p.Port, p.Proto)
			switch {
			case ip.IsLoopback() && !o.AdvertiseIP.IsLoopback():
				add(DiffHostBinding, key, "published on %s only: gliderlabs registers it (at -ip, or at %s), where other hosts cannot reach it; here it is not registered", ip, ip)
			case ipGiven && ip != o.AdvertiseIP:
				add(DiffHostBinding, key, "published on %s only: gliderlabs registers it at -ip %s, where nothing answers; here at %s", ip, o.AdvertiseIP, ip)
			}
		}
	}
	return out
}
