package health

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

// Every class of address the host's agent must not be sent to, and the neighbours that are fine.
func TestAddressRefusal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr       string
		loopbackOK bool
		want       string // a word of the reason; "" for allowed
	}{
		{addr: "10.0.0.5"},
		{addr: "172.17.0.2"},
		{addr: "192.168.50.7"},
		{addr: "2600:1f18::5"},
		{addr: "fd00:ec3::1"},     // next to the metadata range, not in it
		{addr: "169.253.255.255"}, // below 169.254.0.0/16
		{addr: "169.255.0.1"},     // above it
		{addr: "1.0.0.0"},         // above 0.0.0.0/8
		{addr: "169.254.169.254", want: "link-local"},
		{addr: "169.254.170.2", want: "link-local"},
		{addr: "169.254.0.1", want: "link-local"},
		{addr: "::ffff:169.254.169.254", want: "link-local"}, // IPv4-mapped
		{addr: "fe80::1", want: "link-local"},
		{addr: "febf::1", want: "link-local"}, // the top of fe80::/10
		{addr: "fd00:ec2::254", want: "fd00:ec2::/32"},
		{addr: "fd00:ec2::23", want: "fd00:ec2::/32"},
		{addr: "0.0.0.0", want: "unspecified"},
		{addr: "0.1.2.3", want: "unspecified"},
		{addr: "::", want: "unspecified"},
		{addr: "::ffff:0.0.0.0", want: "unspecified"},
		{addr: "224.0.0.1", want: "multicast"},
		{addr: "239.255.255.250", want: "multicast"},
		{addr: "ff02::1", want: "multicast"},
		{addr: "127.0.0.1", want: "loopback"},
		{addr: "127.1.2.3", want: "loopback"},
		{addr: "::1", want: "loopback"},
		{addr: "::ffff:127.0.0.1", want: "loopback"},
		{addr: "127.0.0.1", loopbackOK: true},
		{addr: "::1", loopbackOK: true},
		{addr: "169.254.169.254", loopbackOK: true, want: "link-local"}, // a loopback setup allows loopback only
	} {
		got := AddressRefusal(netip.MustParseAddr(tc.addr), tc.loopbackOK)
		if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
			t.Errorf("AddressRefusal(%s, loopback allowed %v) = %q, want %q", tc.addr, tc.loopbackOK, got, tc.want)
		}
	}
}

// A probe of an address that is the host's keeps the service out, naming the check key and the
// reason; a TTL check probes nothing and is not affected.
func TestFromLabelsRefusesHostTargets(t *testing.T) {
	t.Parallel()
	probes := map[string]map[string]string{
		"http":  {"CHECK_HTTP": "/h"},
		"https": {"CHECK_HTTPS": "/h"},
		"tcp":   {"CHECK_TCP": "true"},
		"grpc":  {"CHECK_GRPC": "true"},
	}
	for _, tc := range []struct {
		addr     string
		loopback bool
		want     string // a word of the reason; "" when the probe is registered
	}{
		{addr: "10.0.0.5"},
		{addr: "2001:db8::5"},
		{addr: "169.254.169.254", want: "link-local"},
		{addr: "fd00:ec2::254", want: "fd00:ec2::/32"},
		{addr: "fe80::1", want: "link-local"},
		{addr: "0.0.0.0", want: "unspecified"},
		{addr: "224.0.0.251", want: "multicast"},
		{addr: "127.0.0.1", want: "loopback"},
		{addr: "127.0.0.1", loopback: true},
		{addr: "instance-data.ec2.internal", want: "not an IP address"},
		{addr: "web-1.internal", want: "not an IP address"},
	} {
		for kind, keys := range probes {
			tgt := Target{ServiceID: "s", Address: tc.addr, Port: 80, Proto: "tcp"}
			checks, probs := FromLabels(keys, label, tgt, Rules{LoopbackTargets: tc.loopback})
			if tc.want == "" {
				if len(checks) != 1 || len(probs) != 0 {
					t.Errorf("%s check of %s: checks %+v, problems %v", kind, tc.addr, checks, probs)
				}
				continue
			}
			if checks != nil || len(probs) != 1 || !probs[0].Error || probs[0].Key != "SERVICE_CHECK_"+strings.ToUpper(kind) ||
				!strings.Contains(probs[0].Message, tc.want) {
				t.Errorf("%s check of %s: checks %+v, problems %v; want one error on its key saying %q", kind, tc.addr, checks, probs, tc.want)
			}
		}
		tgt := Target{ServiceID: "s", Address: tc.addr, Port: 80, Proto: "tcp"}
		if checks, probs := FromLabels(map[string]string{"CHECK_TTL": "30s"}, label, tgt, Rules{}); len(checks) != 1 || len(probs) != 0 {
			t.Errorf("TTL check at %s: checks %+v, problems %v", tc.addr, checks, probs)
		}
	}
}

// A check may only read. The rule is the same in gliderlabs mode, which sent any method.
func TestFromLabelsMethods(t *testing.T) {
	t.Parallel()
	for _, rules := range []Rules{{}, {Gliderlabs: true}} {
		for _, tc := range []struct {
			key, method string
			refused     bool
		}{
			{key: "CHECK_METHOD", method: "GET"},
			{key: "CHECK_METHOD", method: "HEAD"},
			{key: "CHECK_HTTP_METHOD", method: "OPTIONS"},
			{key: "CHECK_METHOD", method: "PUT", refused: true},
			{key: "CHECK_METHOD", method: "POST", refused: true},
			{key: "CHECK_HTTP_METHOD", method: "DELETE", refused: true},
			{key: "CHECK_HTTP_METHOD", method: "PATCH", refused: true},
			{key: "CHECK_METHOD", method: "CONNECT", refused: true},
			{key: "CHECK_METHOD", method: "TRACE", refused: true},
			{key: "CHECK_METHOD", method: "PROPFIND", refused: true},
		} {
			checks, probs := FromLabels(map[string]string{"CHECK_HTTP": "/h", tc.key: tc.method}, label, target, rules)
			if !tc.refused {
				if len(checks) != 1 || checks[0].Method != tc.method || len(probs) != 0 {
					t.Errorf("%+v %s=%s: checks %+v, problems %v", rules, tc.key, tc.method, checks, probs)
				}
				continue
			}
			if checks != nil || len(probs) != 1 || !probs[0].Error || probs[0].Key != "SERVICE_"+tc.key ||
				!strings.Contains(probs[0].Message, "GET, HEAD or OPTIONS") {
				t.Errorf("%+v %s=%s: checks %+v, problems %v; want one error naming the methods allowed", rules, tc.key, tc.method, checks, probs)
			}
		}
	}
	// The HTTPS check's own method key too.
	if checks, probs := FromLabels(map[string]string{"CHECK_HTTPS": "/h", "CHECK_HTTPS_METHOD": "PUT"}, label, target, Rules{}); checks != nil || len(probs) != 1 {
		t.Errorf("HTTPS with PUT: checks %+v, problems %v", checks, probs)
	}
}

// Headers that speak for the host are refused, in any spelling; credentials are registered with a
// warning that says where Consul keeps them. No message repeats a header's value.
func TestFromLabelsHeaders(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-value"
	for _, rules := range []Rules{{}, {Gliderlabs: true}} {
		for _, tc := range []struct {
			key  string
			want string // "" registered silently, "warning" or "error"
		}{
			{key: "CHECK_HEADER_X_API_KEY"},
			{key: "CHECK_HEADER_ACCEPT"},
			{key: "CHECK_HEADER_HOST", want: "error"},
			{key: "CHECK_HEADER_host", want: "error"},
			{key: "CHECK_HEADER_X_AWS_EC2_METADATA_TOKEN", want: "error"},
			{key: "CHECK_HEADER_X-aws-ec2-metadata-token-ttl-seconds", want: "error"},
			{key: "CHECK_HEADER_x_AWS_ec2_METADATA_anything", want: "error"},
			{key: "CHECK_HEADER_AUTHORIZATION", want: "warning"},
			{key: "CHECK_HEADER_authorization", want: "warning"},
			{key: "CHECK_HEADER_COOKIE", want: "warning"},
			{key: "CHECK_HEADER_PROXY_AUTHORIZATION", want: "warning"},
			{key: "CHECK_HEADER_BAD.NAME", want: "error"},
		} {
			checks, probs := FromLabels(map[string]string{"CHECK_HTTP": "/h", tc.key: secret}, label, target, rules)
			for _, p := range probs {
				if strings.Contains(p.Key+p.Message, secret) {
					t.Errorf("%s: a message repeats the value: %v", tc.key, p)
				}
			}
			switch tc.want {
			case "":
				if len(checks) != 1 || len(checks[0].Header) != 1 || len(probs) != 0 {
					t.Errorf("%+v %s: checks %+v, problems %v", rules, tc.key, checks, probs)
				}
			case "warning":
				if len(checks) != 1 || len(probs) != 1 || probs[0].Error || probs[0].Key != "SERVICE_"+tc.key ||
					!strings.Contains(probs[0].Message, "plain text") {
					t.Errorf("%+v %s: checks %+v, problems %v; want the check and a warning", rules, tc.key, checks, probs)
				}
			case "error":
				if checks != nil || len(probs) != 1 || !probs[0].Error || probs[0].Key != "SERVICE_"+tc.key {
					t.Errorf("%+v %s: checks %+v, problems %v; want one error on the key", rules, tc.key, checks, probs)
				}
			}
		}
	}
}

// Every HTTP(S) check is registered with redirects disabled, so its fingerprint (and with it the
// registration) changes once for a service registered before; other checks are as they were.
func TestHTTPChecksDisableRedirects(t *testing.T) {
	t.Parallel()
	checks, _ := FromLabels(map[string]string{"CHECK_HTTP": "/h", "CHECK_HTTPS": "/h", "CHECK_TCP": "true", "CHECK_GRPC": "true", "CHECK_TTL": "9s"},
		label, target, Rules{})
	if len(checks) != 5 {
		t.Fatalf("checks %+v", checks)
	}
	for _, c := range checks {
		if want := c.Kind == KindHTTP || c.Kind == KindHTTPS; c.DisableRedirects != want {
			t.Errorf("%s check: DisableRedirects %v", c.Kind, c.DisableRedirects)
		}
	}
	tcp, _ := FromLabels(map[string]string{"CHECK_TCP": "true"}, label, target, Rules{})
	before := checks[0]
	before.DisableRedirects = false
	if Fingerprint(checks[:1]) == Fingerprint([]Check{before}) {
		t.Error("the fingerprint does not see DisableRedirects: services registered before would keep following redirects")
	}
	// omitempty: checks without it hash as before, so an upgrade re-registers only HTTP-checked services.
	if b, _ := json.Marshal(tcp); len(tcp) != 1 || strings.Contains(string(b), "redirects") {
		t.Errorf("a TCP check's definition mentions redirects: %s", b)
	}
}

// A refused target or request is marked Target, a malformed value is not: the pre-flight tells the
// two apart by the mark, never by a message's words.
func TestFromLabelsTargetMarksRefusals(t *testing.T) {
	t.Parallel()
	host := Target{ServiceID: "s", Address: "169.254.169.254", Port: 80, Proto: "tcp"}
	udp := Target{ServiceID: "s", Address: "10.0.0.5", Port: 53, Proto: "udp"}
	for _, tc := range []struct {
		name   string
		keys   map[string]string
		t      Target
		target bool
	}{
		{"host address", map[string]string{"CHECK_HTTP": "/h"}, host, true},
		{"UDP port", map[string]string{"CHECK_TCP": "true"}, udp, true},
		{"writing method", map[string]string{"CHECK_HTTP": "/h", "CHECK_METHOD": "PUT"}, target, true},
		{"Host header", map[string]string{"CHECK_HTTP": "/h", "CHECK_HEADER_HOST": "x"}, target, true},
		{"not a method", map[string]string{"CHECK_HTTP": "/h", "CHECK_METHOD": "get it"}, target, false},
		{"not a header", map[string]string{"CHECK_HTTP": "/h", "CHECK_HEADER_BAD.NAME": "x"}, target, false},
		{"not a path", map[string]string{"CHECK_HTTP": "health"}, target, false},
		{"bad interval", map[string]string{"CHECK_TCP": "true", "CHECK_INTERVAL": "soon"}, target, false},
	} {
		_, probs := FromLabels(tc.keys, label, tc.t, Rules{})
		if len(probs) != 1 || !probs[0].Error || probs[0].Target != tc.target {
			t.Errorf("%s: problems %+v, want one error with Target %v", tc.name, probs, tc.target)
		}
	}
}
