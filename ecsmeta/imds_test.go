package ecsmeta

import (
	"io"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

func TestLookupHostFromEmulator(t *testing.T) {
	m := testenv.StartIMDS(t)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", m.URL)
	h, err := LookupHost(t.Context(), NewIMDS())
	if err != nil {
		t.Fatal(err)
	}
	v := testenv.IMDSValues
	if h.InstanceID != v["instance-id"] || h.AvailabilityZone != v["placement-availability-zone"] ||
		h.Region != v["placement-region"] || h.LocalIPv4.String() != v["local-ipv4"] {
		t.Errorf("host = %+v, want the emulator's %v", h, v)
	}

	// The Source fills the host in the background and says so with "".
	s, n := runSource(t, Config{IMDS: NewIMDS()})
	testenv.Eventually(t, 10*time.Second, "host never looked up", func() bool { return n.count("") == 1 })
	if got := s.Host(); got != h {
		t.Errorf("Source host = %+v, want %+v", got, h)
	}
}

// On an IPv6-only instance IMDS has no local-ipv4: the identity is learned all the same, and the
// instance's ipv6 is its address.
func TestLookupHostIPv6OnlyFromEmulator(t *testing.T) {
	m := testenv.StartIMDSConfig(t, testenv.IMDSIPv6Only())
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", m.URL)
	// The premise: the emulator answers as EC2 does for an IPv6-only instance.
	if code, body := emulatorGet(t, m.URL, "local-ipv4"); code != http.StatusNotFound {
		t.Fatalf("emulator local-ipv4: %d %q, want 404", code, body)
	}
	if code, body := emulatorGet(t, m.URL, "ipv6"); code != http.StatusOK || body != testenv.IMDSIPv6 {
		t.Fatalf("emulator ipv6: %d %q, want %s", code, body, testenv.IMDSIPv6)
	}

	h, err := LookupHost(t.Context(), NewIMDS())
	if err != nil {
		t.Fatal(err)
	}
	v := testenv.IMDSValues
	want := Host{InstanceID: v["instance-id"], AvailabilityZone: v["placement-availability-zone"], Region: v["placement-region"],
		IPv6: netip.MustParseAddr(testenv.IMDSIPv6)}
	if h != want || h.Addr() != want.IPv6 {
		t.Errorf("host = %+v (address %v), want %+v", h, h.Addr(), want)
	}

	s, n := runSource(t, Config{IMDS: NewIMDS()})
	testenv.Eventually(t, 10*time.Second, "host never looked up", func() bool { return n.count("") == 1 })
	if got := s.Host(); got != h {
		t.Errorf("Source host = %+v, want %+v", got, h)
	}
}

// emulatorGet reads one metadata item with an IMDSv2 token.
func emulatorGet(t *testing.T, url, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, url+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	token, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/latest/meta-data/"+path, nil)
	req.Header.Set("X-aws-ec2-metadata-token", string(token))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// fakeIMDS serves IMDSv2 as EC2 does: a token from PUT /latest/api/token, then the items under
// /latest/meta-data/ by path; an item not set is a 404 with EC2's page, one in codes fails with that
// status. It records the paths asked for.
type fakeIMDS struct {
	mu    sync.Mutex
	asked []string
}

func (f *fakeIMDS) serve(t *testing.T, items map[string]string, codes map[string]int) *imds.Client {
	e := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
			_, _ = w.Write([]byte("AQAEAFake-token=="))
			return
		}
		if r.Header.Get("X-Aws-Ec2-Metadata-Token") != "AQAEAFake-token==" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		path := strings.TrimPrefix(r.URL.Path, "/latest/meta-data/")
		f.mu.Lock()
		f.asked = append(f.asked, path)
		f.mu.Unlock()
		v, ok := items[path]
		switch {
		case codes[path] != 0:
			w.WriteHeader(codes[path])
		case !ok:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write(fixture(t, "imds-404.html"))
		default:
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte(v))
		}
	})
	return imds.New(imds.Options{Endpoint: e.URL, EnableFallback: aws.FalseTernary})
}

func (f *fakeIMDS) askedFor(path string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.asked, path)
}

// The address is local-ipv4, else (absent or empty) ipv6; anything else wrong is an error, never a
// fallback.
func TestLookupHostAddress(t *testing.T) {
	t.Parallel()
	identity := map[string]string{"instance-id": "i-0abc1234def567890", "placement/availability-zone": "eu-west-1b",
		"placement/region": "eu-west-1"}
	with := func(kv ...string) map[string]string {
		m := maps.Clone(identity)
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	v6 := "2001:db8:1234:1a00:9691:9503:25ad:1761"
	for _, tc := range []struct {
		name      string
		items     map[string]string
		codes     map[string]int
		want      string // the address; "" wants an error
		askedIPv6 bool
	}{
		{name: "dual stack", items: with("local-ipv4", "10.0.1.23", "ipv6", v6), want: "10.0.1.23"},
		{name: "IPv4 only", items: with("local-ipv4", "10.0.1.23"), want: "10.0.1.23"},
		{name: "IPv6 only", items: with("ipv6", v6), want: v6, askedIPv6: true},
		{name: "empty local-ipv4", items: with("local-ipv4", "", "ipv6", v6), want: v6, askedIPv6: true},
		{name: "ULA", items: with("ipv6", "fd12:3456:789a::17"), want: "fd12:3456:789a::17", askedIPv6: true},
		{name: "neither", items: with(), askedIPv6: true},
		{name: "empty ipv6", items: with("ipv6", ""), askedIPv6: true},
		{name: "local-ipv4 forbidden", items: with("ipv6", v6), codes: map[string]int{"local-ipv4": http.StatusForbidden}},
		{name: "ipv6 forbidden", items: with(), codes: map[string]int{"ipv6": http.StatusForbidden}, askedIPv6: true},
		{name: "local-ipv4 is IPv6", items: with("local-ipv4", v6)},
		{name: "ipv6 is IPv4", items: with("ipv6", "10.0.1.23"), askedIPv6: true},
		{name: "ipv6 is IPv4-mapped", items: with("ipv6", "::ffff:10.0.1.23"), askedIPv6: true},
		{name: "ipv6 link-local", items: with("ipv6", "fe80::1"), askedIPv6: true},
		{name: "ipv6 with zone", items: with("ipv6", v6+"%eth0"), askedIPv6: true},
		{name: "ipv6 loopback", items: with("ipv6", "::1"), askedIPv6: true},
		{name: "ipv6 is a list", items: with("ipv6", v6+"\n2001:db8::2"), askedIPv6: true},
		{name: "ipv6 is a page", items: with("ipv6", "<html>"), askedIPv6: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeIMDS{}
			h, err := LookupHost(t.Context(), f.serve(t, tc.items, tc.codes))
			switch {
			case tc.want == "" && err == nil:
				t.Errorf("accepted %+v", h)
			case tc.want != "" && (err != nil || h.Addr().String() != tc.want || h.InstanceID != identity["instance-id"]):
				t.Errorf("host %+v (address %v), err %v; want address %s", h, h.Addr(), err, tc.want)
			}
			if f.askedFor("ipv6") != tc.askedIPv6 {
				t.Errorf("asked for ipv6: %v, want %v", f.askedFor("ipv6"), tc.askedIPv6)
			}
		})
	}
}

func TestLookupHostDisabled(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1")
	if _, err := LookupHost(t.Context(), NewIMDS()); err == nil {
		t.Fatal("AWS_EC2_METADATA_DISABLED=true still looked up the host")
	}
}

// Off EC2 and with a broken endpoint the lookup fails with an error, and the Source keeps the host
// unknown without notifying.
func TestLookupHostBroken(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"500": serveBody([]byte("oops"), 500),
		"garbage": func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
				_, _ = w.Write([]byte("token"))
				return
			}
			_, _ = w.Write(fixture(t, "garbage.html"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEndpoint(t, h)
			c := imds.New(imds.Options{Endpoint: e.URL, EnableFallback: aws.FalseTernary, Retryer: aws.NopRetryer{}})
			if host, err := LookupHost(t.Context(), c); err == nil {
				t.Fatalf("broken metadata gave %+v", host)
			}
		})
	}
	c := imds.New(imds.Options{Endpoint: "http://127.0.0.1:1", EnableFallback: aws.FalseTernary})
	s, n := runSource(t, Config{IMDS: c})
	testenv.Eventually(t, 10*time.Second, "failure never recorded", func() bool { return status(s, DepIMDS).LastError != "" })
	if n.count("") != 0 || s.Host().InstanceID != "" {
		t.Error("a failed lookup changed the host")
	}
}

// AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6 reaches IMDS at its IPv6 address, as the SDK's config
// loader would (imds.New alone does not read it).
func TestIMDSEndpointModeIPv6(t *testing.T) {
	for mode, want := range map[string]imds.EndpointModeState{"IPv6": imds.EndpointModeStateIPv6, "ipv6": imds.EndpointModeStateIPv6,
		"": imds.EndpointModeStateUnset, "IPv4": imds.EndpointModeStateUnset} {
		o := imdsOptions(func(k string) string {
			if k == "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE" {
				return mode
			}
			return ""
		})
		if o.EndpointMode != want || o.EnableFallback != aws.FalseTernary {
			t.Errorf("mode %q: options %+v", mode, o)
		}
	}
}
