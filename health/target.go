package health

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Consul's agent runs a service's HTTP, TCP and gRPC checks from the host's network namespace, where
// the instance metadata service, the ECS agent and the Consul agent itself answer. What a check may be
// aimed at and what it may send is limited here, so that a container's labels can make the agent probe
// that container and nothing else; and every HTTP check is registered with Check.DisableRedirects, so
// the container cannot send the agent elsewhere with a redirect either.

// Target is where the service is reached: the address Consul's checks probe.
type Target struct {
	ServiceID string
	Address   string
	Port      int
	Proto     string // "tcp" or "udp"
}

func (t Target) hostPort() string { return net.JoinHostPort(t.Address, strconv.Itoa(t.Port)) }

var (
	// imdsV6 is where the instance metadata service answers over IPv6 (fd00:ec2::254), with the
	// Amazon DNS server and the time service beside it: the host's, never a container's.
	imdsV6 = netip.MustParsePrefix("fd00:ec2::/32")
	// thisNetwork is 0.0.0.0/8: "this host on this network"; Linux connects 0.0.0.0 to the host itself.
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
)

// AddressRefusal says why the host's Consul agent must not be sent to addr on a container's behalf,
// as a service address or a check target, or "" when it may. Link-local addresses (169.254.0.0/16,
// where instance metadata and the ECS task metadata and credentials endpoints answer; fe80::/10),
// the instance metadata service's IPv6 range, unspecified and multicast addresses are always
// refused; loopback (the host's own services) unless loopbackOK, which is for a daemon that
// advertises a loopback address itself (a single-host setup, where every service is on loopback).
func AddressRefusal(addr netip.Addr, loopbackOK bool) string {
	a := addr.Unmap()
	switch {
	case !a.IsValid():
		return "no address"
	case a.IsUnspecified() || thisNetwork.Contains(a):
		return a.String() + " is unspecified: a connection to it reaches the host itself"
	case a.IsLinkLocalUnicast():
		return a.String() + " is link-local (169.254.0.0/16, fe80::/10): there the host's instance metadata service (169.254.169.254) and ECS task metadata and credentials endpoints (169.254.170.2) answer, not a container"
	case imdsV6.Contains(a):
		return a.String() + " is in fd00:ec2::/32, where the host's instance metadata service answers over IPv6"
	case a.IsMulticast():
		return a.String() + " is a multicast address"
	case a.IsLoopback() && !loopbackOK:
		return a.String() + " is loopback: it reaches the host's own services (the Consul and ECS agents), not the container's; loopback is allowed only when the daemon advertises a loopback address itself (-ip 127.0.0.1)"
	}
	return ""
}

// refusal is why a probe of t must not be registered, or "". A host name is refused: Consul
// would resolve it at every probe, and a name can point anywhere (instance-data.ec2.internal is the
// instance metadata service).
func (t Target) refusal(loopbackOK bool) string {
	a, err := netip.ParseAddr(t.Address)
	if err != nil {
		return "the service address " + strconv.Quote(t.Address) + " is not an IP address: Consul would resolve it at every probe, and a name can point anywhere (instance-data.ec2.internal is the instance metadata service); give the service an IP address"
	}
	if why := AddressRefusal(a, loopbackOK); why != "" {
		return "the service address " + why
	}
	return ""
}

// Methods a check may use: a check only reads. The agent sends it from the host, where a PUT is
// what fetches an instance metadata session token.
var checkMethods = []string{"GET", "HEAD", "OPTIONS"}

// headerRefusal says why a check must not send the header (canonical name), or "".
func headerRefusal(name string) string {
	lower := strings.ToLower(name)
	switch {
	case lower == "host":
		return "Consul sends it as the request's host, so a check could ask a proxy or load balancer at the service's address for another site than the service"
	case strings.HasPrefix(lower, "x-aws-ec2-metadata-"):
		return "X-aws-ec2-metadata-* headers are the instance metadata service's own (its session token); a check of a container has no use for them"
	}
	return ""
}

// credentialHeader reports headers whose value is a credential, which Consul keeps in plain text.
func credentialHeader(name string) bool {
	switch strings.ToLower(name) {
	case "authorization", "cookie", "proxy-authorization":
		return true
	}
	return false
}
