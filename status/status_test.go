package status

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecs-registrator/ecs-registrator/internal/promtext"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var t0 = time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)

// fixture is a snapshot with one of everything the page has to show.
func fixture() Snapshot {
	return Snapshot{
		Time: t0,
		Daemon: Daemon{Version: "v1.2.3", StartedAt: t0.Add(-3 * time.Hour), Ready: true, Node: "ip-10-0-1-23", AdvertiseIP: "10.0.1.23",
			Config: map[string]string{"consul": "127.0.0.1:8500", "drain": "deregister", "opt-in": "true", "resync": "30s", "policy": "/etc/ecs-registrator/policy.json"},
			Policy: Policy{Set: true, Source: "/etc/ecs-registrator/policy.json", Default: "ecs-identity", Rules: 2}},
		Dependencies: []Dependency{
			{Name: "docker", Enabled: true, Up: true, Detail: "API 1.41", Since: t0.Add(-3 * time.Hour), LastEvent: t0.Add(-2 * time.Second)},
			{Name: "consul", Enabled: true, Up: true, Detail: "node ip-10-0-1-23, leader 10.0.0.10:8300", Since: t0.Add(-3 * time.Hour)},
			{Name: "ecs-agent", Enabled: true, Up: false, LastError: "GET /v1/tasks: dial tcp 127.0.0.1:51678: connect: connection refused", Since: t0.Add(-time.Minute)},
			{Name: "task-metadata", Enabled: true, Up: true, Since: t0.Add(-time.Hour)},
			{Name: "instance-metadata", Enabled: true, Up: true, Detail: "i-0abc1234def567890 in eu-west-1b"},
			{Name: "ecs-api", Enabled: false},
		},
		Containers: []Container{
			{ID: "3f1d0b5f3f1d0b5f3f1d0b5f3f1d0b5f3f1d0b5f3f1d0b5f3f1d0b5f3f1d0b5f", Name: "ecs-web-7-app-b0d6e8f2c4a1d3e5f701",
				Image: "111122223333.dkr.ecr.eu-west-1.amazonaws.com/web:1.2.3", Running: true, State: StateRegistered,
				ECS: &ECS{Cluster: "prod", TaskARN: "arn:aws:ecs:eu-west-1:111122223333:task/prod/1a2b3c4d", Family: "web", Revision: "7",
					Service: "web-svc", Container: "app", DesiredStatus: "RUNNING", KnownStatus: "RUNNING"},
				Services: []Service{{ID: "ip-10-0-1-23:ecs-web-7-app-b0d6e8f2c4a1d3e5f701:8080", Name: "web-svc", Address: "10.0.1.23:32768",
					Tags: []string{"az-eu-west-1b", "v2"}, Checks: []Check{
						{ID: "ip-10-0-1-23:ecs-web-7-app-b0d6e8f2c4a1d3e5f701:8080:http", Name: "HTTP GET /health", Status: "passing", Output: "HTTP GET http://10.0.1.23:32768/health: 200 OK Output: ok"},
						{ID: "ip-10-0-1-23:ecs-web-7-app-b0d6e8f2c4a1d3e5f701:8080:health", Name: "Docker HEALTHCHECK", Status: "critical", Output: "Docker: unhealthy: 503 Service Unavailable: <unhealthy>"},
					}},
					{ID: "ip-10-0-1-23:ecs-web-7-app-b0d6e8f2c4a1d3e5f701:8443", Name: "web-mesh", Address: "10.0.1.23:32770", Tags: []string{},
						Checks: []Check{},
						Connect: &Connect{SidecarID: "ip-10-0-1-23:ecs-web-7-app-b0d6e8f2c4a1d3e5f701:8443-sidecar-proxy", Address: "10.0.1.23:32771",
							Upstreams: []string{"orders:9191", "payments:9192"}, Checks: []Check{
								{ID: "service:ip-10-0-1-23:ecs-web-7-app-b0d6e8f2c4a1d3e5f701:8443-sidecar-proxy:1", Name: "Connect Sidecar Listening", Status: "passing"},
								{ID: "service:ip-10-0-1-23:ecs-web-7-app-b0d6e8f2c4a1d3e5f701:8443-sidecar-proxy:2", Name: "Connect Sidecar Aliasing ip-10-0-1-23:ecs-web-7-app-b0d6e8f2c4a1d3e5f701:8443", Status: "passing"},
							}}}},
				Problems: []Problem{}},
			{ID: "aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11", Name: "billing", Image: "billing:4", Running: true,
				State: StateNotRegistered, Reason: "no port left to register", Services: []Service{},
				Problems: []Problem{{Severity: "error", Key: "SERVICE_CHECK_INTERVAL", Message: `not a positive duration: "10" (write e.g. 10s, 1m30s); port 8080 kept out`}}},
			{ID: "bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22", Name: "sidecar", Image: "envoy:v1.30", Running: true,
				State: StateNotRegistered, Reason: "not opted in: no SERVICE_NAME, SERVICE_<port>_NAME or SERVICE_REGISTER=true", Services: []Service{}, Problems: []Problem{}},
			{ID: "cc33cc33cc33cc33cc33cc33cc33cc33cc33cc33cc33cc33cc33cc33cc33cc33", Name: "api-old", Image: "api:1", Running: true,
				State: StateDraining, Reason: "stopping: deregistered until it runs again", Services: []Service{}, Problems: []Problem{}},
		},
		Events: []Event{
			{Time: t0.Add(-2 * time.Second), Container: "cc33cc33cc33", Name: "api-old", Source: "docker", Action: "kill", Detail: "signal 15"},
			{Time: t0.Add(-2*time.Second + 3*time.Millisecond), Container: "cc33cc33cc33", Name: "api-old", Source: "reconcile", Action: "deregistered", Detail: "ip-10-0-1-23:api-old:9000"},
			{Time: t0.Add(-time.Second), Container: "aa11aa11aa11", Name: "billing", Source: "reconcile", Action: "kept out", Detail: "SERVICE_CHECK_INTERVAL: not a positive duration"},
		},
	}
}

type fixed struct{ s Snapshot }

func (f fixed) Snapshot(context.Context) Snapshot { return f.s }
func (f fixed) Ready() bool                       { return f.s.Daemon.Ready }

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./status -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./status -update rewrites it); got:\n%s", name, got)
	}
}

func get(t *testing.T, h http.Handler, path string) (int, []byte) {
	t.Helper()
	return getHost(t, h, path, "127.0.0.1:9555")
}

// getHost is get with a Host header (httptest's default, example.com, is refused).
func getHost(t *testing.T, h http.Handler, path, host string) (int, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Host = host
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, b
}

func TestGoldenJSON(t *testing.T) {
	h := Handler(fixed{fixture()}, nil, "")
	code, b := get(t, h, "/v1/status")
	if code != 200 {
		t.Fatalf("GET /v1/status: %d", code)
	}
	golden(t, "status.json", b)
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil || len(back.Containers) != 4 {
		t.Fatalf("the JSON does not decode into a Snapshot: %v", err)
	}
	code, b = get(t, h, "/v1/containers/billing")
	if code != 200 || !strings.Contains(string(b), "SERVICE_CHECK_INTERVAL") {
		t.Errorf("by name: %d %s", code, b)
	}
	if code, _ := get(t, h, "/v1/containers/3f1d0b5f"); code != 200 {
		t.Errorf("by ID prefix: %d", code)
	}
	if code, _ := get(t, h, "/v1/containers/nope"); code != 404 {
		t.Errorf("unknown container: %d", code)
	}
}

func TestGoldenHTML(t *testing.T) {
	h := Handler(fixed{fixture()}, nil, "")
	code, b := get(t, h, "/")
	if code != 200 {
		t.Fatalf("GET /: %d", code)
	}
	golden(t, "status.html", b)
	page := string(b)
	// The question the page answers: the container, the label and the reason.
	for _, want := range []string{"billing", "SERVICE_CHECK_INTERVAL", `not a positive duration: &#34;10&#34;`, "not opted in",
		"&lt;unhealthy&gt;", "connection refused", "web-svc"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<unhealthy>") {
		t.Error("probe output is not escaped")
	}
	for _, ext := range []string{"<script", "src=\"http", "href=\"http", "@import"} {
		if strings.Contains(page, ext) {
			t.Errorf("page loads something external or runs script: %q", ext)
		}
	}
}

// shaped is a snapshot with one of everything the page shows, every string in it s.
func shaped(s string) Snapshot {
	return Snapshot{
		Time:   t0,
		Daemon: Daemon{Version: s, StartedAt: t0.Add(-time.Hour), Node: s, AdvertiseIP: s, Config: map[string]string{s: s}},
		Host:   Host{Draining: true, Reason: s, Since: t0.Add(-time.Second)},
		Dependencies: []Dependency{
			{Name: s, Enabled: true, Up: true, Detail: s, LastError: s, LastEvent: t0.Add(-time.Second)},
			{Name: s, Enabled: true, LastError: s},
		},
		Containers: []Container{{ID: s, Name: s, Image: s, State: s, Reason: s,
			ECS:      &ECS{Cluster: s, TaskARN: s, Family: s, Revision: s, Service: s, Container: s, DesiredStatus: s, KnownStatus: s},
			Services: []Service{{ID: s, Name: s, Address: s, Tags: []string{s, s}, Maintenance: s, Checks: []Check{{ID: s, Name: s, Status: s, Output: s}}}},
			Problems: []Problem{{Severity: s, Key: s, Message: s}}}},
		Events: []Event{{Time: t0, Container: s, Name: s, Source: s, Action: s, Detail: s}},
	}
}

var (
	tagRE     = regexp.MustCompile(`<[^>]*>`)
	quotedRE  = regexp.MustCompile(`"[^"]*"`)
	urlAttrRE = regexp.MustCompile(`(?i)\b(href|src|action|formaction)\s*=\s*"([^"]*)"`)
)

// skeleton is the page's markup without text or attribute values: the tags and their attribute
// names, one tag a line.
func skeleton(page string) string {
	var b strings.Builder
	for _, tag := range tagRE.FindAllString(page, -1) {
		b.WriteString(quotedRE.ReplaceAllString(tag, `""`) + "\n")
	}
	return b.String()
}

// Container names, labels, problem messages, probe output and the filter all come from outside:
// whatever they hold, the page shows them as text and its markup stays the same.
func TestHostileStringsAreEscaped(t *testing.T) {
	const evil = `javascript:alert(1)//"'><script>alert(2)</script><img src=x onerror=alert(3)>&amp; <!--`
	render := func(s string) string {
		var b strings.Builder
		if err := Render(&b, shaped(s), Filter{Query: s, State: s}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	page, plain := render(evil), render("x")
	if got, want := skeleton(page), skeleton(plain); got != want {
		t.Errorf("hostile strings change the page's markup:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(page, `<tr data-container=`) {
		t.Fatal("the hostile container's row is not shown; the test proves nothing")
	}
	for _, bad := range []string{"<script", "<img", "<!--", `"'>`, `onerror=alert(3)>`} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("page has %q unescaped", bad)
		}
	}
	for _, want := range []string{`&#34;&#39;&gt;&lt;script&gt;alert(2)&lt;/script&gt;`, `&amp;amp;`, `value="javascript:alert(1)//&#34;`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks the escaped %q", want)
		}
	}
	for _, tag := range tagRE.FindAllString(page, -1) {
		for _, m := range urlAttrRE.FindAllStringSubmatch(tag, -1) {
			if !slices.Contains([]string{"/", "/v1/status", "/v1/containers", "/metrics", "/readyz"}, m[2]) {
				t.Errorf("%s=%q in %s: only the page's own links may be URLs", m[1], m[2], tag)
			}
		}
	}
}

func TestFilters(t *testing.T) {
	h := Handler(fixed{fixture()}, nil, "")
	for q, want := range map[string][]string{
		"/?q=bill":               {"billing"},
		"/?state=draining":       {"api-old"},
		"/?state=problems":       {"billing"},
		"/?q=web-svc":            {"ecs-web-7-app-b0d6e8f2c4a1d3e5f701"},
		"/?state=registered":     {"ecs-web-7-app-b0d6e8f2c4a1d3e5f701"},
		"/?q=zzz&state=":         {},
		"/?state=not+registered": {"billing", "sidecar"},
	} {
		_, b := get(t, h, q)
		rows := strings.Count(string(b), "<tr data-container=")
		if rows != len(want) {
			t.Errorf("%s: %d rows, want %v", q, rows, want)
		}
		for _, name := range want {
			if !strings.Contains(string(b), `data-name="`+name+`"`) {
				t.Errorf("%s: no row for %s", q, name)
			}
		}
	}
}

func TestReadOnlyAndProbes(t *testing.T) {
	snap := fixture()
	snap.Daemon.Ready = false
	reg := promtext.NewRegistry()
	reg.Counter("ecsr_test_total", "test")
	h := Handler(fixed{snap}, reg, "")
	if code, _ := get(t, h, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz before the first sync: %d", code)
	}
	if code, _ := get(t, h, "/healthz"); code != 200 {
		t.Errorf("healthz: %d", code)
	}
	if code, b := get(t, h, "/metrics"); code != 200 || !strings.Contains(string(b), "ecsr_test_total 0") {
		t.Errorf("metrics: %d %s", code, b)
	}
	for _, path := range []string{"/", "/v1/status", "/v1/containers/billing", "/metrics"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(m, path, nil)
			req.Host = "localhost"
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405", m, path, rec.Code)
			}
		}
	}
}

func TestGoldenTable(t *testing.T) {
	var b bytes.Buffer
	if err := PrintTable(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	golden(t, "status.txt", b.Bytes())
}

// A host that is going away says so above everything else, with the notice, in the page, the JSON and
// the table; a host that is not says nothing.
func TestHostDraining(t *testing.T) {
	snap := fixture()
	reason := "EC2 Spot interruption notice: terminate at 2026-11-26T14:02:00Z"
	snap.Host = Host{Draining: true, Reason: reason, Since: t0.Add(-12 * time.Second)}
	h := Handler(fixed{snap}, nil, "")
	_, b := get(t, h, "/")
	page := string(b)
	banner := strings.Index(page, `id="host-draining"`)
	if banner < 0 || banner > strings.Index(page, "<h2>Dependencies</h2>") {
		t.Fatalf("no host-draining line above the dependencies:\n%s", page)
	}
	for _, want := range []string{reason, "since 12s ago", "deregistered and new containers are kept out"} {
		if !strings.Contains(page[banner:], want) {
			t.Errorf("the host line lacks %q", want)
		}
	}
	_, b = get(t, h, "/v1/status")
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil || !back.Host.Draining || back.Host.Reason != reason || !back.Host.Since.Equal(snap.Host.Since) {
		t.Errorf("/v1/status host = %+v (%v)", back.Host, err)
	}
	var tb bytes.Buffer
	if err := PrintTable(&tb, snap); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tb.String(), "HOST DRAINING: "+reason) {
		t.Errorf("table:\n%s", tb.String())
	}

	snap.Daemon.Config["drain"] = "maintenance"
	_, b = get(t, Handler(fixed{snap}, nil, ""), "/")
	if !strings.Contains(string(b), "in maintenance and new containers are kept out") {
		t.Error("the host line does not say the containers are in maintenance")
	}

	_, b = get(t, Handler(fixed{fixture()}, nil, ""), "/")
	if strings.Contains(string(b), `id="host-draining"`) {
		t.Error("a host that is not going away shows the line")
	}
}

// A notice whose services may stay a while yet, and advice that drains nothing, are shown without
// the draining line: the operator sees what comes, and when.
func TestHostNoticeAndAdvice(t *testing.T) {
	snap := fixture()
	snap.Host = Host{Notice: "EC2 Spot interruption notice: terminate at 2026-11-26T14:02:00Z",
		Plan:       "services ECS has not stopped leave at 2026-11-26T14:01:30Z, 30s before the Spot action",
		LeaveAt:    t0.Add(90 * time.Second),
		Advisories: []string{"EC2 recommends rebalancing this Spot instance (since 2026-11-26T13:50:00Z): an interruption is more likely"}}
	h := Handler(fixed{snap}, nil, "")
	_, b := get(t, h, "/")
	page := string(b)
	if strings.Contains(page, `id="host-draining"`) {
		t.Error("a notice not yet drained on shows the draining line")
	}
	for _, want := range []string{`id="host-notice"`, snap.Host.Notice, "leave at 2026-11-26T14:01:30Z", "data-host-advice", "rebalancing this Spot instance", "nothing is drained on it"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	_, b = get(t, h, "/v1/status")
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil || back.Host.Draining || back.Host.Notice != snap.Host.Notice ||
		!back.Host.LeaveAt.Equal(snap.Host.LeaveAt) || len(back.Host.Advisories) != 1 {
		t.Errorf("/v1/status host = %+v (%v)", back.Host, err)
	}
}

// The registration policy in force is in the page's header, the JSON and the table; without one they
// say that any container may claim any name.
func TestRegistrationPolicyShown(t *testing.T) {
	for _, tc := range []struct {
		policy Policy
		page   string
		table  string
	}{
		{Policy{}, "<b>no registration policy</b>: any container may claim any name",
			"no registration policy: any container may claim any name"},
		{Policy{Set: true, Source: "inline", Default: "deny", Rules: 1}, "policy <b>deny</b> by default, 1 rule",
			"registration policy inline: 1 rule, default deny"},
	} {
		snap := fixture()
		snap.Daemon.Policy = tc.policy
		h := Handler(fixed{snap}, nil, "")
		_, b := get(t, h, "/")
		if header := string(b[:bytes.Index(b, []byte("</header>"))]); !strings.Contains(header, tc.page) {
			t.Errorf("the page's header lacks %q:\n%s", tc.page, header)
		}
		_, b = get(t, h, "/v1/status")
		var back Snapshot
		if err := json.Unmarshal(b, &back); err != nil || back.Daemon.Policy != tc.policy {
			t.Errorf("/v1/status policy = %+v (%v), want %+v", back.Daemon.Policy, err, tc.policy)
		}
		var tb bytes.Buffer
		if err := PrintTable(&tb, snap); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(tb.String(), "\n"+tc.table+"\n") {
			t.Errorf("the table lacks %q:\n%s", tc.table, tb.String())
		}
	}
}
