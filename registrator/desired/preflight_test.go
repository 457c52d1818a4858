package desired

import (
	"cmp"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The pre-flight over a corpus of containers, in gliderlabs mode as a swap runs it: each lists exactly
// the kinds of difference from gliderlabs that README's table names for it, and a container the two
// register alike lists none.
func TestPreflightCorpus(t *testing.T) {
	t.Parallel()
	published := func(ports ...int) []Port {
		var out []Port
		for i, p := range ports {
			out = append(out, Port{Port: p, Proto: "tcp", HostIP: "0.0.0.0", HostPort: 32768 + i})
		}
		return out
	}
	ctr := func(name string, labels map[string]string, ports []Port) Container {
		return Container{ID: "id-" + name, Name: name, Image: "team/" + name + ":1", Labels: labels, Running: true,
			NetworkMode: "bridge", IPs: []netip.Addr{netip.MustParseAddr(glCIP)}, Ports: ports}
	}
	healthcheck := ctr("hc", map[string]string{"SERVICE_NAME": "hc"}, published(8080))
	healthcheck.HasHealthcheck, healthcheck.HealthStatus = true, "starting"
	healthy := healthcheck
	healthy.Name, healthy.HealthStatus = "healthy", "healthy"
	off := healthcheck
	off.Name, off.Labels = "off", map[string]string{"SERVICE_CHECK_DOCKER": "false"}
	metadataIP := ctr("imds", map[string]string{"SERVICE_NAME": "imds", "com.example.ip": "169.254.169.254"}, published(8080))
	withIPLabel := glOptions()
	withIPLabel.IPFromLabel = "com.example.ip"

	for _, tc := range []struct {
		name string
		c    Container
		o    Options
		want []string
	}{
		{"plain", ctr("web", map[string]string{"SERVICE_NAME": "web", "SERVICE_TAGS": "a,b"}, published(8080)), glOptions(), nil},
		{"several ports, names as gliderlabs's", ctr("multi", map[string]string{"SERVICE_NAME": "multi"}, published(8080, 8443)), glOptions(), nil},
		{"unlabelled, registered by image name", ctr("anon", nil, published(80)), glOptions(), nil},
		{"script check", ctr("script", map[string]string{"SERVICE_NAME": "s", "SERVICE_CHECK_SCRIPT": "nc -z $SERVICE_IP $SERVICE_PORT"}, published(8080)), glOptions(),
			[]string{DiffScriptCheck}},
		{"cmd check on a port", ctr("cmd", map[string]string{"SERVICE_8080_NAME": "c", "SERVICE_8080_CHECK_CMD": "/bin/check"}, published(8080)), glOptions(),
			[]string{DiffScriptCheck}},
		{"check method PUT", ctr("put", map[string]string{"SERVICE_NAME": "put", "SERVICE_CHECK_HTTP": "/health", "SERVICE_CHECK_HTTP_METHOD": "PUT"}, published(8080)), glOptions(),
			[]string{DiffCheckTarget}},
		{"-useIpFromLabel at instance metadata", metadataIP, withIPLabel, []string{DiffCheckTarget}},
		{"HTTP check: its settings are not Meta", ctr("http", map[string]string{"SERVICE_NAME": "http", "SERVICE_CHECK_HTTP": "/health", "SERVICE_CHECK_INTERVAL": "5s"}, published(8080)), glOptions(),
			[]string{DiffCheckMeta}},
		{"TTL check: its settings are not Meta", ctr("ttl", map[string]string{"SERVICE_NAME": "ttl", "SERVICE_CHECK_TTL": "30s"}, published(8080)), glOptions(),
			[]string{DiffCheckMeta}},
		{"HEALTHCHECK starting", healthcheck, glOptions(), []string{DiffHealthcheck}},
		{"HEALTHCHECK healthy", healthy, glOptions(), []string{DiffHealthcheck}},
		{"HEALTHCHECK turned off", off, glOptions(), []string{DiffCheckMeta}},
		{"one SERVICE_ID on two ports", ctr("dup", map[string]string{"SERVICE_NAME": "dup", "SERVICE_ID": "dup-1"}, published(8080, 8443)), glOptions(),
			[]string{DiffCustomID, DiffIDSeveralPorts}},
		{"custom SERVICE_ID", ctr("custom", map[string]string{"SERVICE_NAME": "custom", "SERVICE_8080_ID": "custom-a"}, published(8080)), glOptions(),
			[]string{DiffCustomID}},
		{"bad interval", ctr("bad", map[string]string{"SERVICE_NAME": "bad", "SERVICE_CHECK_HTTP": "/health", "SERVICE_CHECK_INTERVAL": "10"}, published(8080)), glOptions(),
			[]string{DiffBadValue}},
		{"published on loopback only", ctr("lo", map[string]string{"SERVICE_NAME": "lo"}, []Port{{Port: 8080, Proto: "tcp", HostIP: "127.0.0.1", HostPort: 18080}, {Port: 9090, Proto: "tcp", HostIP: "0.0.0.0", HostPort: 19090}}), glOptions(),
			[]string{DiffHostBinding}},
		{"published on another host address", ctr("other", map[string]string{"SERVICE_NAME": "other"}, []Port{{Port: 8080, Proto: "tcp", HostIP: "10.0.9.9", HostPort: 18080}}), glOptions(),
			[]string{DiffHostBinding}},
		{"SERVICE_REGISTER", ctr("reg", map[string]string{"SERVICE_NAME": "reg", "SERVICE_REGISTER": "true"}, published(8080)), glOptions(),
			[]string{DiffRegisterLabel}},
		{"SERVICE_REGISTER=false", ctr("unreg", map[string]string{"SERVICE_REGISTER": "false"}, published(8080)), glOptions(),
			[]string{DiffRegisterLabel}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			diffs := Preflight(tc.c, tc.o, true)
			t.Logf("%+v", diffs)
			var got []string
			for _, d := range diffs {
				if d.Detail == "" || !slices.Contains(DiffKinds, d.Kind) {
					t.Errorf("a difference without a known kind or detail: %+v", d)
				}
				got = append(got, d.Kind)
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Errorf("kinds %v, want %v: %+v", got, want, diffs)
			}
		})
	}
}

// README's table of deliberate differences names, in its pre-flight column, exactly the kinds the
// pre-flight reports: a row added to one is added to the other.
func TestPreflightKindsAreREADMEs(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "### Deliberate differences")
	if start < 0 {
		t.Fatal("README has no Deliberate differences section")
	}
	section := doc[start:]
	if end := strings.Index(section[4:], "\n#"); end >= 0 {
		section = section[:end+4]
	}
	var named []string
	rows := 0
	cell := regexp.MustCompile("`([a-z-]+)`")
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| gliderlabs |") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		last := cells[len(cells)-1]
		rows++
		for _, m := range cell.FindAllStringSubmatch(last, -1) {
			named = append(named, m[1])
		}
	}
	if rows < 10 {
		t.Fatalf("read %d rows of the table", rows)
	}
	if got, want := slices.Sorted(slices.Values(named)), slices.Sorted(slices.Values(DiffKinds)); !slices.Equal(got, want) {
		t.Errorf("README's pre-flight column names %v; the pre-flight reports %v", got, want)
	}
}

// Without -ip, gliderlabs registers a port at the address it is published on, as this daemon does:
// only a loopback binding differs.
func TestPreflightHostBindingWithoutIP(t *testing.T) {
	t.Parallel()
	c := Container{ID: "id-b", Name: "b", Image: "team/b:1", Labels: map[string]string{"SERVICE_NAME": "b"}, Running: true, NetworkMode: "bridge",
		IPs: []netip.Addr{netip.MustParseAddr(glCIP)}, Ports: []Port{{Port: 8080, Proto: "tcp", HostIP: "10.0.9.9", HostPort: 18080},
			{Port: 9090, Proto: "tcp", HostIP: "127.0.0.1", HostPort: 19090}}}
	var kinds []string
	for _, d := range Preflight(c, glOptions(), false) {
		kinds = append(kinds, d.Kind+" "+d.Key)
	}
	if strings.Join(kinds, ";") != DiffHostBinding+" 9090/tcp" {
		t.Errorf("without -ip: %v", kinds)
	}
}

// The kind of a refusal is set where the problem is made, not read from its message: each problem
// gliderlabs would have registered as asked carries its kind on the Problem itself, and the pre-flight
// lists exactly that kind for its key. A value that merely contains the words of a refusal is still a
// bad value.
func TestPreflightKindIsTheProblems(t *testing.T) {
	t.Parallel()
	pub := []Port{{Port: 8080, Proto: "tcp", HostIP: "0.0.0.0", HostPort: 32768}}
	ctr := func(ports []Port, kv ...string) Container {
		labels := map[string]string{"SERVICE_NAME": "web"}
		for i := 0; i < len(kv); i += 2 {
			labels[kv[i]] = kv[i+1]
		}
		return Container{ID: "id-web", Name: "web", Image: "team/web:1", Labels: labels, Running: true,
			NetworkMode: "bridge", IPs: []netip.Addr{netip.MustParseAddr(glCIP)}, Ports: ports}
	}
	withIPLabel := glOptions()
	withIPLabel.IPFromLabel = "com.example.ip"
	for _, tc := range []struct {
		name string
		c    Container
		o    Options
		key  string // the key of the error Problem
		diff string // its Diff; the pre-flight lists that kind for key, or DiffBadValue for ""
	}{
		{"check address not an IP", ctr(pub, "com.example.ip", "instance-data.ec2.internal", "SERVICE_CHECK_HTTP", "/"), withIPLabel,
			"SERVICE_CHECK_HTTP", DiffCheckTarget},
		{"TCP check on a UDP port", ctr([]Port{{Port: 53, Proto: "udp", HostIP: "0.0.0.0", HostPort: 5353}}, "SERVICE_CHECK_TCP", "true"), glOptions(),
			"SERVICE_CHECK_TCP", DiffCheckTarget},
		{"writing method", ctr(pub, "SERVICE_CHECK_HTTP", "/h", "SERVICE_CHECK_METHOD", "PUT"), glOptions(),
			"SERVICE_CHECK_METHOD", DiffCheckTarget},
		{"Host header", ctr(pub, "SERVICE_CHECK_HTTP", "/h", "SERVICE_CHECK_HEADER_host", "metadata"), glOptions(),
			"SERVICE_CHECK_HEADER_host", DiffCheckTarget},
		{"-useIpFromLabel at instance metadata", ctr(pub, "com.example.ip", "169.254.169.254"), withIPLabel,
			"com.example.ip", DiffCheckTarget},
		{"-useIpFromLabel not an address", ctr(pub, "com.example.ip", "not/an-address"), withIPLabel,
			"com.example.ip", DiffCheckTarget},
		{"one SERVICE_ID on two ports", ctr(append(pub, Port{Port: 8443, Proto: "tcp", HostIP: "0.0.0.0", HostPort: 32769}), "SERVICE_ID", "dup-1"), glOptions(),
			"SERVICE_ID", DiffIDSeveralPorts},
		{"bad value with a refusal's words", ctr(pub, "SERVICE_CHECK_TCP", "true", "SERVICE_CHECK_INITIAL_STATUS", "is refused, cannot probe"), glOptions(),
			"SERVICE_CHECK_INITIAL_STATUS", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var found []Problem
			for _, p := range Desired(tc.c, tc.o).Problems {
				if p.Severity == SeverityError && p.Key == tc.key {
					found = append(found, p)
				}
			}
			if len(found) != 1 || found[0].Diff != tc.diff {
				t.Fatalf("error problems on %s: %+v, want one with Diff %q", tc.key, found, tc.diff)
			}
			// Kinds that come from the key itself (custom-id for SERVICE_ID) are not the problem's.
			fromProblems := []string{DiffCheckTarget, DiffIDSeveralPorts, DiffBadValue}
			var kinds []string
			for _, d := range Preflight(tc.c, tc.o, true) {
				if d.Key == tc.key && slices.Contains(fromProblems, d.Kind) {
					kinds = append(kinds, d.Kind)
				}
			}
			if want := cmp.Or(tc.diff, DiffBadValue); !slices.Equal(kinds, []string{want}) {
				t.Errorf("pre-flight kinds for %s: %v, want %s", tc.key, kinds, want)
			}
		})
	}
}
