package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	"github.com/ecs-registrator/ecs-registrator/status"
)

func TestDefaultRouteIP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	routes := filepath.Join(dir, "route")
	table := "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n" +
		"lo\t00000000\t0100007F\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	if err := os.WriteFile(routes, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	ip, ok := defaultRouteIP(routes, interfaceIPv4)
	if !ok || !ip.IsLoopback() {
		t.Fatalf("default route via lo gave %v %v, want 127.0.0.1", ip, ok)
	}
	if _, ok := defaultRouteIP(filepath.Join(dir, "missing"), interfaceIPv4); ok {
		t.Fatal("a missing routing table gave an address")
	}
}

// The kernel's tables of a few hosts, in testdata/procnet: the IPv4 default route's address comes
// first; without a usable one, the IPv6 default route's interface's global, stable address.
func TestDefaultRouteAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host string
		ipv4 map[string][]string // the interfaces' IPv4 addresses
		want string
	}{
		// EC2 IPv6-only: ens5 has only the link-local IPv4 address EC2's DHCP gives such an instance, and
		// a default route; ::/0 goes via ens5's router; docker0 has addresses of its own.
		{"ipv6-only", map[string][]string{"ens5": {"169.254.1.74"}, "docker0": {"172.17.0.1"}},
			"2001:db8:1234:1a00:9691:9503:25ad:1761"},
		// The same, dual-stack.
		{"dual-stack", map[string][]string{"ens5": {"10.0.1.23"}, "docker0": {"172.17.0.1"}}, "10.0.1.23"},
		// No IPv6 routing: only unreachable ::/0 routes on lo, the kernel's own and one an operator added
		// (lo holds a global service address).
		{"no-ipv6-default", nil, ""},
		// The first default's interface has only site-local, tentative, deprecated, temporary, duplicated,
		// IPv4-mapped and link-local addresses; the second's (ens6, not ens6.1) has a good one.
		{"unstable-addresses", nil, "2001:db8::a6"},
		{"missing", nil, ""},
	} {
		t.Run(tc.host, func(t *testing.T) {
			t.Parallel()
			ipv4Of := func(iface string) []netip.Addr {
				var out []netip.Addr
				for _, a := range tc.ipv4[iface] {
					out = append(out, netip.MustParseAddr(a))
				}
				return out
			}
			ip, ok := defaultRouteAddr(filepath.Join("testdata", "procnet", tc.host), ipv4Of)
			if tc.want == "" {
				if ok {
					t.Fatalf("gave %v, want none", ip)
				}
				return
			}
			if !ok || ip != netip.MustParseAddr(tc.want) {
				t.Fatalf("gave %v %v, want %s", ip, ok, tc.want)
			}
		})
	}
}

// End to end on an IPv6-only EC2 instance (AWS's metadata emulator without local-ipv4): the daemon
// learns the instance and advertises its IPv6 address. No Consul or Docker is needed for that: both
// addresses are closed ports, and the status API says what the daemon chose.
func TestEC2DefaultsIPv6Only(t *testing.T) {
	t.Parallel()
	imds := testenv.StartIMDSConfig(t, testenv.IMDSIPv6Only())
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	out := &testenv.Buffer{}
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(), "REGISTRATOR_IP=", "REGISTRATOR_LISTEN="+listen, "REGISTRATOR_LOG_LEVEL=debug",
		fmt.Sprintf("REGISTRATOR_CONSUL=127.0.0.1:%d", testenv.FreePort(t)),
		"REGISTRATOR_DOCKER=unix://"+filepath.Join(t.TempDir(), "no-docker.sock"),
		"AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("daemon output:\n%s", out)
		}
	})
	var st status.Snapshot
	testenv.Eventually(t, 15*time.Second, "no status", func() bool {
		resp, err := http.Get("http://" + listen + "/v1/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&st) == nil
	})
	if st.Daemon.AdvertiseIP != testenv.IMDSIPv6 {
		t.Errorf("advertise IP %q, want the instance's ipv6 %s", st.Daemon.AdvertiseIP, testenv.IMDSIPv6)
	}
	v := testenv.IMDSValues
	wantDetail := v["instance-id"] + " in " + v["placement-availability-zone"]
	found := false
	for _, d := range st.Dependencies {
		found = found || d.Name == ecsmeta.DepIMDS && d.Detail == wantDetail
	}
	if !found {
		t.Errorf("dependencies %+v, want imds with %q", st.Dependencies, wantDetail)
	}
}
