package registrator_test

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	"github.com/ecs-registrator/ecs-registrator/registrator"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// canary stands in for a service on the host (instance metadata, the ECS agent) that a check must
// never reach: it counts requests by path.
type canary struct {
	*httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func startCanary(t *testing.T) *canary {
	c := &canary{hits: map[string]int{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.hits[r.URL.Path]++
		c.mu.Unlock()
		fmt.Fprintln(w, "canary: instance-role credentials would be here")
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *canary) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits[path]
}

var redirectCount = regexp.MustCompile(`redirect (\d+)`)

// A container whose health path redirects to a canary on the host is registered, and in 5 s of 1 s
// checks the canary is never reached: the check is registered with DisableRedirects, and Consul
// reports the redirect itself (critical, "302 Found"). The same redirect in a check registered
// without it, beside, does reach the canary: the agent follows redirects unless told not to, so the
// test would see it. A private dockerd: another registrator watching the shared one (another test, an
// engineer's daemon) would register the container too, and its agent's checks must not count.
func TestCheckRedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	d := testenv.StartDockerd(t).Client()
	e := run(t, d, testenv.StartConsul(t))
	can := startCanary(t)
	name := unique(t, "redirect")
	// Host networking: the workload listens on the host, where the daemon advertises 127.0.0.1.
	port := testenv.FreePort(t)
	id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{port}, Network: "host", Labels: map[string]string{
		"SERVICE_NAME": name, "SERVICE_CHECK_HTTP": "/redirect?to=" + can.URL + "/daemon", "SERVICE_CHECK_INTERVAL": "1s"}})
	sid := e.consul.Node + ":" + name + ":" + strconv.Itoa(port)
	checkID := health.CheckID(sid, health.KindHTTP, true)
	e.waitServices(t, id, 1, 10*time.Second)

	// The control: the same redirect, registered by hand without DisableRedirects (a foreign service,
	// which the daemon leaves alone).
	control := &api.AgentServiceRegistration{ID: "control-" + name, Name: "control-" + name, Address: "127.0.0.1", Port: port,
		Check: &api.AgentServiceCheck{HTTP: fmt.Sprintf("http://127.0.0.1:%d/redirect?to=%s/control", port, can.URL), Interval: "1s"}}
	if err := e.api.Agent().ServiceRegister(control); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "a check without DisableRedirects never reached the canary: the test could not tell", func() bool {
		return can.count("/control") > 0
	})

	// The daemon's check has run: its output is the redirect itself.
	var check *api.AgentCheck
	runs := func() int {
		check = e.checks(t, sid)[checkID]
		if check == nil {
			return 0
		}
		m := redirectCount.FindStringSubmatch(check.Output)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	testenv.EventuallyExplain(t, 10*time.Second, func() bool { return runs() > 0 || can.count("/daemon") > 0 }, func() string {
		return fmt.Sprintf("the daemon's check never ran: %+v", check)
	})
	if n := can.count("/daemon"); n > 0 {
		t.Fatalf("the daemon's check followed the redirect to the canary (%d times); check %s %q", n, check.Status, check.Output)
	}
	first := runs()
	if check.Status != api.HealthCritical || !strings.Contains(check.Output, "302 Found") || strings.Contains(check.Output, "canary") {
		t.Errorf("check %s %q; want critical with the redirect as its output, not the canary's", check.Status, check.Output)
	}
	t.Logf("Consul reports the redirect as: %s %q", check.Status, check.Output)

	// 5 s of 1 s checks: the canary is never reached, and the check keeps running.
	end := time.Now().Add(5 * time.Second)
	for time.Now().Before(end) {
		if n := can.count("/daemon"); n > 0 {
			t.Fatalf("the daemon's check reached the canary (%d times)", n)
		}
		time.Sleep(100 * time.Millisecond) // an observation window, not synchronisation
	}
	last := runs()
	if last-first < 3 || can.count("/daemon") > 0 {
		t.Errorf("in 5 s the check ran %d times (redirect %d to %d) and reached the canary %d times; want 3 or more and none",
			last-first, first, last, can.count("/daemon"))
	}
	if e.services(t, id)[sid] == nil {
		t.Errorf("the service is not registered")
	}
}

// With -useIpFromLabel, a container labelled with the instance metadata address is not registered
// there (nor anywhere), and its status names the label and why; a container labelled with a usable
// address beside it is registered at that address.
func TestIPFromLabelRefusesInstanceMetadata(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	e := run(t, d, testenv.StartConsul(t), func(c *registrator.Config) { c.IPFromLabel = "com.example.ip" })
	imds := unique(t, "imds")
	bad := testenv.Start(t, d, testenv.Workload{Name: imds, TCP: []int{testenv.FreePort(t)}, Network: "host", Labels: map[string]string{
		"SERVICE_NAME": imds, "com.example.ip": "169.254.169.254", "SERVICE_CHECK_HTTP": "/latest/meta-data/iam/security-credentials/"}})
	okName, okPort := unique(t, "labelled"), testenv.FreePort(t)
	good := testenv.Start(t, d, testenv.Workload{Name: okName, TCP: []int{okPort}, Network: "host", Labels: map[string]string{
		"SERVICE_NAME": okName, "com.example.ip": "127.0.0.1"}}) // the advertise IP is loopback here
	if s := e.waitServices(t, good, 1, 10*time.Second)[fmt.Sprintf("%s:%s:%d", e.consul.Node, okName, okPort)]; s == nil || s.Address != "127.0.0.1" {
		t.Fatalf("the container with a usable label: %+v", s)
	}

	var probs []desired.Problem
	var reason string
	testenv.EventuallyExplain(t, 10*time.Second, func() bool {
		probs, reason = e.problems(bad)
		return slices.ContainsFunc(probs, func(p desired.Problem) bool {
			return p.Severity == desired.SeverityError && p.Key == "com.example.ip" && strings.Contains(p.Message, "169.254.169.254 is link-local")
		})
	}, func() string { return fmt.Sprintf("no error on the label in the status: %v (%s)", probs, reason) })
	if !strings.Contains(reason, "-useIpFromLabel") {
		t.Errorf("reason %q does not name -useIpFromLabel", reason)
	}
	t.Logf("status: %s; %v", reason, probs)
	if got := e.services(t, bad); len(got) != 0 {
		t.Errorf("registered: %v", got)
	}
	if all, _ := e.api.Agent().ServicesWithFilter(`Address == "169.254.169.254"`); len(all) != 0 {
		t.Errorf("a service at the instance metadata address: %v", keys(all))
	}
}

// A SERVICE_DB_PASSWORD environment variable is not in Meta (a warning says so, without the value,
// which no log line holds either); a label is. In gliderlabs mode it is Meta, as gliderlabs did.
func TestEnvSecretIsNotMeta(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-e2e"
	d := testenv.Docker(t)
	e := run(t, d, testenv.StartConsul(t))
	gl := run(t, d, testenv.StartConsul(t), func(c *registrator.Config) { c.Gliderlabs = true })
	name, port := unique(t, "secretenv"), testenv.FreePort(t)
	id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{port}, Network: "host",
		Labels: map[string]string{"SERVICE_NAME": name, "SERVICE_REGION": "eu"},
		Env:    []string{"SERVICE_DB_PASSWORD=" + secret, "SERVICE_TAGS=from-env"}})

	sid := fmt.Sprintf(":%s:%d", name, port)
	s := e.waitServices(t, id, 1, 10*time.Second)[e.consul.Node+sid]
	if s == nil {
		t.Fatal("not registered")
	}
	if _, ok := s.Meta["db_password"]; ok || s.Meta["region"] != "eu" || !slices.Equal(s.Tags, []string{"from-env"}) {
		t.Errorf("meta %v tags %v; want region from the label, tags from env, no db_password", s.Meta, s.Tags)
	}
	for k, v := range s.Meta {
		if strings.Contains(v, secret) {
			t.Errorf("Meta[%s] holds the secret", k)
		}
	}
	probs, _ := e.problems(id)
	if !slices.ContainsFunc(probs, func(p desired.Problem) bool {
		return p.Severity == desired.SeverityWarning && p.Key == "SERVICE_DB_PASSWORD" && strings.Contains(p.Message, "not put in Meta")
	}) {
		t.Errorf("no warning on SERVICE_DB_PASSWORD: %v", probs)
	}
	for _, p := range probs {
		if strings.Contains(p.Message, secret) {
			t.Errorf("a problem repeats the value: %v", p)
		}
	}

	gs := gl.waitServices(t, id, 1, 10*time.Second)[gl.consul.Node+sid]
	if gs == nil || gs.Meta["db_password"] != secret {
		t.Errorf("gliderlabs mode: %+v; want Meta[db_password] from the environment, as gliderlabs did", gs)
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Errorf("the daemon's log holds the secret")
	}
}

// A service registered by an earlier version, whose HTTP check follows redirects, is registered
// again by the first daemon of this one: the check fingerprint in its Meta covers DisableRedirects.
// A private dockerd, as in TestCheckRedirectIsNotFollowed.
func TestUpgradeStopsFollowingRedirects(t *testing.T) {
	t.Parallel()
	d := testenv.StartDockerd(t).Client()
	consul := testenv.StartConsul(t)
	can := startCanary(t)
	old := run(t, d, consul)
	name, port := unique(t, "upgrade"), testenv.FreePort(t)
	labels := map[string]string{"SERVICE_NAME": name, "SERVICE_CHECK_HTTP": "/redirect?to=" + can.URL + "/upgrade", "SERVICE_CHECK_INTERVAL": "1s"}
	id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{port}, Network: "host", Labels: labels})
	sid := fmt.Sprintf("%s:%s:%d", consul.Node, name, port)
	s := old.waitServices(t, id, 1, 10*time.Second)[sid]
	if s == nil {
		t.Fatal("not registered")
	}
	old.stop()

	// What the earlier version wrote: the same service, its check without DisableRedirects, and the
	// fingerprint of that definition.
	checks, _ := health.FromLabels(map[string]string{"CHECK_HTTP": labels["SERVICE_CHECK_HTTP"], "CHECK_INTERVAL": "1s"},
		func(k string) string { return "SERVICE_" + k }, health.Target{ServiceID: sid, Address: "127.0.0.1", Port: port, Proto: "tcp"},
		health.Rules{LoopbackTargets: true})
	if len(checks) != 1 || health.Fingerprint(checks) != s.Meta[desired.MetaChecks] {
		t.Fatalf("the test's checks %+v are not the daemon's (fingerprint %s)", checks, s.Meta[desired.MetaChecks])
	}
	before := checks[0]
	before.DisableRedirects = false
	meta := maps.Clone(s.Meta)
	meta[desired.MetaChecks] = health.Fingerprint([]health.Check{before})
	reg := &api.AgentServiceRegistration{ID: sid, Name: s.Service, Address: s.Address, Port: s.Port, Tags: s.Tags, Meta: meta,
		Checks: api.AgentServiceChecks{{CheckID: before.ID, Name: before.Name, HTTP: before.HTTP, Interval: "1s", Timeout: before.Timeout.String()}}}
	if err := consul.API().Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the earlier version's check never reached the canary", func() bool { return can.count("/upgrade") > 0 })

	e := run(t, d, consul)
	var check *api.AgentCheck
	testenv.EventuallyExplain(t, 10*time.Second, func() bool {
		check = e.checks(t, sid)[before.ID]
		return check != nil && strings.Contains(check.Output, "302 Found") && e.services(t, id)[sid].Meta[desired.MetaChecks] == health.Fingerprint(checks)
	}, func() string { return fmt.Sprintf("not registered again with redirects disabled: %+v", check) })
	hits := can.count("/upgrade")
	end := time.Now().Add(3 * time.Second)
	for time.Now().Before(end) {
		time.Sleep(100 * time.Millisecond) // an observation window
		if n := can.count("/upgrade"); n != hits {
			t.Fatalf("the canary was reached again after the upgrade (%d, then %d)", hits, n)
		}
	}
	if check = e.checks(t, sid)[before.ID]; !strings.Contains(check.Output, "302 Found") {
		t.Errorf("check after the upgrade: %s %q", check.Status, check.Output)
	}
}
