package main

import (
	"context"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
)

// advertiseIP is -ip when given, else the address EC2 instance metadata gives (local-ipv4, or ipv6
// on an IPv6-only instance), else the address of the interface that holds the default route (IPv4
// first, then IPv6). Instance metadata gets two seconds: off EC2 it never answers.
func advertiseIP(ctx context.Context, flagIP string, c *imds.Client) (netip.Addr, string, ecsmeta.Host) {
	if flagIP != "" {
		return netip.MustParseAddr(flagIP), "flag", ecsmeta.Host{}
	}
	if c != nil {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		h, err := ecsmeta.LookupHost(ctx, c)
		cancel()
		if err == nil {
			return h.Addr(), "instance metadata", h
		}
		// ecsmeta keeps asking in the background, and says once that it gets no answer.
	}
	if ip, ok := defaultRouteAddr("/proc/net", interfaceIPv4); ok {
		return ip, "default route", ecsmeta.Host{}
	}
	return netip.Addr{}, "none", ecsmeta.Host{}
}

// defaultRouteAddr is the address of the IPv4 default route's interface, else that of the IPv6 one's,
// from the kernel's tables under procNet (/proc/net) and an interface's IPv4 addresses (ipv4Of). No
// packet is sent.
func defaultRouteAddr(procNet string, ipv4Of func(iface string) []netip.Addr) (netip.Addr, bool) {
	if ip, ok := defaultRouteIP(filepath.Join(procNet, "route"), ipv4Of); ok {
		return ip, true
	}
	return defaultRouteIPv6(filepath.Join(procNet, "ipv6_route"), filepath.Join(procNet, "if_inet6"))
}

// defaultRouteIP reads the kernel's routing table (no packet is sent) and returns the first IPv4
// address of the default route's interface that is not link-local: EC2 gives an IPv6-only instance's
// interface a 169.254.x.x address by DHCP, which no other host can reach.
func defaultRouteIP(routes string, ipv4Of func(iface string) []netip.Addr) (netip.Addr, bool) {
	data, err := os.ReadFile(routes)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 2 || f[1] != "00000000" {
			continue
		}
		for _, ip := range ipv4Of(f[0]) {
			if !ip.IsLinkLocalUnicast() {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}

// interfaceIPv4 returns the IPv4 addresses of the named interface.
func interfaceIPv4(name string) []netip.Addr {
	iface, err := net.InterfaceByName(name)
	if err != nil {
		return nil
	}
	addrs, err := iface.Addrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			out = append(out, p.Addr())
		}
	}
	return out
}

// Flags from linux/route.h and linux/if_addr.h, as /proc/net/ipv6_route and /proc/net/if_inet6 show them.
const (
	rtfReject = 0x0200 // an unreachable route, such as the ::/0 on lo of a host without IPv6 routing

	ifaTemporary  = 0x01 // a privacy address, replaced every few hours
	ifaDADFailed  = 0x08
	ifaDeprecated = 0x20
	ifaTentative  = 0x40
)

// defaultRouteIPv6 reads the kernel's IPv6 routing table (routes, /proc/net/ipv6_route) and
// addresses (addrs, /proc/net/if_inet6) and returns the first global address of an IPv6 default
// route's interface that is in use and stable: not tentative, deprecated, duplicated or temporary.
func defaultRouteIPv6(routes, addrs string) (netip.Addr, bool) {
	rt, err := os.ReadFile(routes)
	if err != nil {
		return netip.Addr{}, false
	}
	ad, err := os.ReadFile(addrs)
	if err != nil {
		return netip.Addr{}, false
	}
	for line := range strings.Lines(string(rt)) {
		// destination, its prefix length, source, its prefix length, next hop, metric, references, use, flags,
		// device. A prefix length of 0 is ::/0, the default route.
		f := strings.Fields(line)
		if len(f) != 10 || f[1] != "00" {
			continue
		}
		if flags, err := strconv.ParseUint(f[8], 16, 32); err != nil || flags&rtfReject != 0 {
			continue
		}
		if ip, ok := stableGlobalIPv6(string(ad), f[9]); ok {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// stableGlobalIPv6 returns the first global, stable address of device in an if_inet6 table.
func stableGlobalIPv6(table, device string) (netip.Addr, bool) {
	for line := range strings.Lines(table) {
		// address, interface index, prefix length, scope (00 global), flags, device
		f := strings.Fields(line)
		if len(f) != 6 || f[5] != device || f[3] != "00" {
			continue
		}
		flags, err := strconv.ParseUint(f[4], 16, 32)
		if err != nil || flags&(ifaTemporary|ifaDADFailed|ifaDeprecated|ifaTentative) != 0 {
			continue
		}
		b, err := hex.DecodeString(f[0])
		if err != nil || len(b) != 16 {
			continue
		}
		if ip := netip.AddrFrom16([16]byte(b)); ip.IsGlobalUnicast() && !ip.Is4In6() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}
