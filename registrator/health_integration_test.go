package registrator_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	"github.com/ecs-registrator/ecs-registrator/registrator"
)

// checks returns the agent's checks of a service by check ID.
func (e *env) checks(t *testing.T, serviceID string) map[string]*api.AgentCheck {
	t.Helper()
	cs, err := e.api.Agent().ChecksWithFilter(fmt.Sprintf("ServiceID == %q", serviceID))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// poke calls one of the workload's switches (/fail, /recover) through its published port.
func poke(t *testing.T, port int, path string) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// dnsAnswers resolves <name>.service.consul on the agent's DNS port, as dig @127.0.0.1 -p <port> would.
func (e *env) dnsAnswers(name string) []string {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", fmt.Sprintf("127.0.0.1:%d", e.consul.DNS))
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, _ := r.LookupHost(ctx, name+".service.consul")
	return addrs
}

func TestHTTPAndTCPChecksFollowTheEndpoint(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	e := run(t, d, testenv.StartConsul(t))
	name := unique(t, "checked")
	id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Labels: map[string]string{
		"SERVICE_NAME": name, "SERVICE_CHECK_HTTP": "/health", "SERVICE_CHECK_TCP": "true", "SERVICE_CHECK_INTERVAL": "1s"}})
	port := hostPort(t, d, id, "8080/tcp")
	sid := e.consul.Node + ":" + name + ":8080"
	testenv.Eventually(t, 10*time.Second, "never passing", func() bool { return e.passing(t, name) == 1 })
	cs := e.checks(t, sid)
	httpID, tcpID := health.CheckID(sid, health.KindHTTP, true), health.CheckID(sid, health.KindTCP, false)
	if len(cs) != 2 || cs[httpID] == nil || cs[tcpID] == nil {
		t.Fatalf("checks = %v, want http and tcp", keys(cs))
	}
	if got := cs[httpID].Type; got != "http" {
		t.Errorf("http check type %q", got)
	}

	poke(t, port, "/fail")
	took := testenv.Eventually(t, 2*time.Second, "still passing 2 intervals after the endpoint failed", func() bool { return e.passing(t, name) == 0 })
	t.Logf("out of the passing set %v after /health started failing (interval 1s)", took)
	if st := e.checks(t, sid)[tcpID].Status; st != api.HealthPassing {
		t.Errorf("tcp check %s while the port still answers", st)
	}
	poke(t, port, "/recover")
	testenv.Eventually(t, 3*time.Second, "never passing again", func() bool { return e.passing(t, name) == 1 })
}

func TestGRPCCheck(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	e := run(t, d, testenv.StartConsul(t))
	name := unique(t, "grpc")
	id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Labels: map[string]string{
		"SERVICE_NAME": name, "SERVICE_CHECK_GRPC": "true", "SERVICE_CHECK_INTERVAL": "1s"}})
	testenv.Eventually(t, 10*time.Second, "gRPC check never passing", func() bool { return e.passing(t, name) == 1 })
	poke(t, hostPort(t, d, id, "8080/tcp"), "/fail")
	testenv.Eventually(t, 3*time.Second, "NOT_SERVING never made it critical", func() bool { return e.passing(t, name) == 0 })
	sid := e.consul.Node + ":" + name + ":8080"
	if c := e.checks(t, sid)[health.CheckID(sid, health.KindGRPC, true)]; c == nil || c.Type != "grpc" || c.Status != api.HealthCritical {
		t.Fatalf("grpc check = %+v", c)
	}
}

// A Docker HEALTHCHECK is mirrored within a second of each health_status event, in the passing set
// and in DNS.
func TestDockerHealthcheckMirrored(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	e := run(t, d, testenv.StartConsul(t))
	name := unique(t, "dockerhc")
	id := testenv.Create(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, HealthProbe: "/health",
		Labels: map[string]string{"SERVICE_NAME": name}})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	msgs, errs := d.Events(ctx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("container", id), filters.Arg("type", "container"))})
	healthEv := make(chan time.Time, 16)
	status := make(chan string, 16)
	go func() {
		for {
			select {
			case m := <-msgs:
				if s, ok := strings.CutPrefix(string(m.Action), "health_status: "); ok {
					healthEv <- time.Unix(0, m.TimeNano)
					status <- s
				}
			case <-errs:
				return
			}
		}
	}()
	if err := d.ContainerStart(t.Context(), id, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	port := hostPort(t, d, id, "8080/tcp")
	sid := e.consul.Node + ":" + name + ":8080"

	// wait for Docker's event, then measure how long the passing set takes to follow.
	follow := func(want string, passing int) {
		t.Helper()
		var at time.Time
		select {
		case at = <-healthEv:
			if got := <-status; got != want {
				t.Fatalf("docker says %s, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no health_status: %s event", want)
		}
		testenv.Eventually(t, time.Until(at.Add(time.Second)), fmt.Sprintf("passing set not %d within 1s of %s", passing, want),
			func() bool { return e.passing(t, name) == passing })
		t.Logf("%s: passing set followed %v after Docker's event", want, time.Since(at))
		testenv.Eventually(t, time.Second, "DNS disagrees", func() bool { return (len(e.dnsAnswers(name)) == 1) == (passing == 1) })
	}
	follow("healthy", 1)
	if c := e.checks(t, sid)[health.MirrorID(sid)]; c == nil || c.Type != "ttl" || c.Status != api.HealthPassing {
		t.Fatalf("mirror check = %+v", c)
	}
	poke(t, port, "/fail")
	follow("unhealthy", 0)
	if out := e.checks(t, sid)[health.MirrorID(sid)].Output; !strings.Contains(out, "503") {
		t.Errorf("unhealthy output %q lacks the probe's output", out)
	}
	poke(t, port, "/recover")
	follow("healthy", 1)
}

// The mirror's TTL never expires while the daemon runs; once the daemon is gone, it does.
func TestMirrorTTLRefreshedUntilTheDaemonStops(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	const ttl = 2 * time.Second
	e := run(t, d, testenv.StartConsul(t), func(c *registrator.Config) { c.HealthTTL = ttl })
	name := unique(t, "ttl")
	testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, HealthProbe: "/health", HealthInterval: 500 * time.Millisecond,
		Labels: map[string]string{"SERVICE_NAME": name}})
	testenv.Eventually(t, 10*time.Second, "never passing", func() bool { return e.passing(t, name) == 1 })
	// Poll through three and a half TTLs: the instance must never leave the passing set.
	end := time.Now().Add(7 * ttl / 2)
	for time.Now().Before(end) {
		if e.passing(t, name) != 1 {
			t.Fatal("the mirror's TTL expired while the daemon runs")
		}
		time.Sleep(50 * time.Millisecond) // sampling the state, not waiting for it
	}
	e.stop()
	took := testenv.Eventually(t, 2*ttl, "check never expired after the daemon stopped", func() bool { return e.passing(t, name) == 0 })
	t.Logf("out of the passing set %v after the daemon stopped (TTL %v)", took, ttl)
}

// An invalid check label keeps only that service out, with the reason; other containers are unaffected.
func TestInvalidCheckKeptOut(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	e := run(t, d, testenv.StartConsul(t))
	bad := testenv.Start(t, d, testenv.Workload{Name: unique(t, "badcheck"), TCP: []int{8080}, Publish: true, Labels: map[string]string{
		"SERVICE_NAME": unique(t, "badcheck"), "SERVICE_CHECK_HTTP": "/health", "SERVICE_CHECK_INTERVAL": "10"}})
	goodName := unique(t, "goodcheck")
	good := testenv.Start(t, d, testenv.Workload{Name: goodName, TCP: []int{8080}, Publish: true, Labels: map[string]string{
		"SERVICE_NAME": goodName, "SERVICE_CHECK_HTTP": "/health", "SERVICE_CHECK_INTERVAL": "1s"}})
	e.waitServices(t, good, 1, 5*time.Second)
	e.waitReady(t)
	if got := e.services(t, bad); len(got) != 0 {
		t.Fatalf("service with an invalid check registered: %v", keys(got))
	}
	probs, why := e.problems(bad)
	if len(probs) != 1 || probs[0].Key != "SERVICE_CHECK_INTERVAL" || !strings.Contains(probs[0].Message, `"10"`) || why == "" {
		t.Fatalf("problems %v, skipped %q", probs, why)
	}
	testenv.Eventually(t, 5*time.Second, "good service never passing", func() bool { return e.passing(t, goodName) == 1 })
}

// A daemon upgraded from a version that named checks <service ID>:<kind> re-registers its services
// with the new check IDs; a check under a new ID starts with the status of the one it replaces, so the
// instance never leaves the passing set (Consul would hold the new one critical until its first probe,
// up to an interval later).
func TestUpgradeRenamesChecksWithoutAGap(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	a := consul.API()
	name := unique(t, "upgraded")
	id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Labels: map[string]string{
		"SERVICE_NAME": name, "SERVICE_CHECK_HTTP": "/health", "SERVICE_CHECK_INTERVAL": "1h"}})
	port := hostPort(t, d, id, "8080/tcp")
	sid := consul.Node + ":" + name + ":8080"
	// What the previous version registered: its ownership Meta, an older fingerprint, the old check ID.
	err := a.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: sid, Name: name, Address: "127.0.0.1", Port: port,
		Meta: map[string]string{"external-source": "ecs-registrator", "container-id": id, "container-name": name, "ecsr-checks": "0123456789ab"},
		Checks: api.AgentServiceChecks{{CheckID: sid + ":http", Name: "HTTP GET /health", Status: api.HealthPassing,
			HTTP: fmt.Sprintf("http://127.0.0.1:%d/health", port), Interval: "1h", Timeout: "5s"}}})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "the old registration never passed", func() bool {
		out, _, err := a.Health().Service(name, "", true, nil)
		return err == nil && len(out) == 1
	})
	watch := testenv.WatchPassing(t, a, name, nil)
	e := run(t, d, consul)
	newID := health.CheckID(sid, health.KindHTTP, true)
	testenv.EventuallyExplain(t, 10*time.Second, func() bool {
		cs := e.checks(t, sid)
		return len(cs) == 1 && cs[newID] != nil
	}, func() string { return fmt.Sprintf("checks %v, want only %s", keys(e.checks(t, sid)), newID) })
	if st := e.checks(t, sid)[newID].Status; st != api.HealthPassing {
		t.Errorf("the renamed check is %s, want passing as the one it replaced", st)
	}
	watch.Stop()
	fewest, observed := watch.Fewest()
	t.Logf("%d states of the passing set through the upgrade, fewest instances %d", observed, fewest)
	if fewest != 1 {
		t.Errorf("the instance left the passing set during the upgrade (fewest %d)", fewest)
	}
}
