package main

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// published is the host port Docker published a container port ("8080/tcp") on.
func published(t *testing.T, in container.InspectResponse, p string) int {
	t.Helper()
	b := in.NetworkSettings.Ports[nat.Port(p)]
	if len(b) == 0 {
		t.Fatalf("port %s is not published", p)
	}
	n, _ := strconv.Atoi(b[0].HostPort)
	return n
}

// gliderlabsEnv is dockerd, a Consul agent, the hostname gliderlabs's IDs start with, and a number
// that keeps the test's container names apart.
func gliderlabsEnv(t *testing.T) (*client.Client, *testenv.Consul, string, int) {
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return testenv.Docker(t), testenv.StartConsul(t), hostname, testenv.FreePort(t)
}

// The daemon with gliderlabs's command line against real dockerd and Consul: the services, tags, Meta
// and check definitions Consul ends up with are gliderlabs's.
func TestGliderlabsDropIn(t *testing.T) {
	t.Parallel()
	d, consul, hostname, suffix := gliderlabsEnv(t)
	a := consul.API()
	name := func(s string) string { return fmt.Sprintf("gl-%s-%d", s, suffix) }

	web := testenv.Start(t, d, testenv.Workload{Name: name("web"), TCP: []int{8080, 8443}, Publish: true, Labels: map[string]string{
		"SERVICE_NAME": "web", "SERVICE_TAGS": `a\,b,c`, "SERVICE_8080_CHECK_HTTP": "/health",
		"SERVICE_CHECK_HTTP_METHOD": "HEAD", "SERVICE_CHECK_INTERVAL": "1s", "SERVICE_version": "1.2", "team": "core"}})
	dns := testenv.Start(t, d, testenv.Workload{Name: name("dns"), UDP: []int{5353}, Publish: true, Labels: map[string]string{
		"SERVICE_NAME": "dns", "team": "net", "ip": "10.11.12.13/24"}})
	ttl := testenv.Start(t, d, testenv.Workload{Name: name("ttl"), TCP: []int{8080}, Publish: true, Labels: map[string]string{
		"SERVICE_NAME": "beat", "SERVICE_CHECK_TTL": "30s", "SERVICE_CHECK_TCP": "true", "team": "core"},
		Env: []string{"SERVICE_NAME=ignored-env"}})
	ignored := testenv.Start(t, d, testenv.Workload{Name: name("ign"), TCP: []int{8080}, Publish: true, Labels: map[string]string{
		"SERVICE_IGNORE": "false", "team": "core"}})

	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	dm := startDaemonArgs(t, consul, listen, []string{"-ip", "127.0.0.1", "-resync", "30",
		"-tags", "{{.Config.Labels.team}},static,{{toUpper .Config.Labels.team}}", "-useIpFromLabel", "ip",
		"consul://" + consul.Addr()}, "REGISTRATOR_CONSUL=", "REGISTRATOR_IP=")
	testenv.Eventually(t, 15*time.Second, "the daemon did not become ready", dm.ready)
	testenv.Eventually(t, 10*time.Second, "not every container was registered", func() bool {
		return services(t, a, web) == 2 && services(t, a, dns) == 1 && services(t, a, ttl) == 1
	})

	webIn, dnsIn, ttlIn := testenv.Inspect(t, d, web), testenv.Inspect(t, d, dns), testenv.Inspect(t, d, ttl)
	id := func(c, port string) string { return hostname + ":" + c + ":" + port }
	type want struct {
		name, addr string
		port       int
		tags       []string
		meta       map[string]string
	}
	wants := map[string]want{
		id(name("web"), "8080"):     {"web-8080", "127.0.0.1", published(t, webIn, "8080/tcp"), []string{"a,b", "c", "core", "static", "CORE"}, map[string]string{"version": "1.2"}},
		id(name("web"), "8443"):     {"web-8443", "127.0.0.1", published(t, webIn, "8443/tcp"), []string{"a,b", "c", "core", "static", "CORE"}, map[string]string{"version": "1.2"}},
		id(name("dns"), "5353:udp"): {"dns", "10.11.12.13", published(t, dnsIn, "5353/udp"), []string{"net", "static", "NET", "udp"}, nil},
		id(name("ttl"), "8080"):     {"beat", "127.0.0.1", published(t, ttlIn, "8080/tcp"), []string{"core", "static", "CORE"}, nil},
	}
	all, err := a.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	for sid, w := range wants {
		s := all[sid]
		if s == nil {
			t.Errorf("no service %s; the agent has %v", sid, slices.Sorted(maps.Keys(all)))
			continue
		}
		if s.Service != w.name || s.Address != w.addr || s.Port != w.port || !slices.Equal(s.Tags, w.tags) {
			t.Errorf("%s: %s at %s:%d tags %q, want %s at %s:%d tags %q", sid, s.Service, s.Address, s.Port, s.Tags, w.name, w.addr, w.port, w.tags)
		}
		for k, v := range w.meta {
			if s.Meta[k] != v {
				t.Errorf("%s: Meta[%s] = %q, want %q", sid, k, s.Meta[k], v)
			}
		}
		for k := range s.Meta {
			if strings.HasPrefix(k, "check_") {
				t.Errorf("%s: check key %s copied into Meta", sid, k)
			}
		}
	}
	if n := services(t, a, ignored); n != 0 {
		t.Errorf("SERVICE_IGNORE=false registered %d services; gliderlabs ignores on any value", n)
	}

	// One check per service, named service:<service ID>. Consul 1.14's API shows no check definitions,
	// so the definition is checked by what the check does: Consul's output names the method and URL.
	webCheck := "service:" + id(name("web"), "8080")
	wantOut := fmt.Sprintf("HTTP HEAD http://127.0.0.1:%d/health: 200 OK", wants[id(name("web"), "8080")].port)
	testenv.EventuallyExplain(t, 15*time.Second, func() bool {
		cs, err := a.Agent().Checks()
		c := cs[webCheck]
		return err == nil && c != nil && c.Type == "http" && c.Status == api.HealthPassing && strings.HasPrefix(c.Output, wantOut)
	}, func() string {
		cs, _ := a.Agent().Checks()
		return fmt.Sprintf("check %s = %+v, want type http, passing, output %q", webCheck, cs[webCheck], wantOut)
	})
	checks, err := a.Agent().Checks()
	if err != nil {
		t.Fatal(err)
	}
	if c := checks["service:"+id(name("web"), "8443")]; c != nil {
		t.Errorf("the 8443 service has a check %+v; only 8080 asked for one", c)
	}
	beat := "service:" + id(name("ttl"), "8080")
	if c := checks[beat]; c == nil || c.Type != "ttl" {
		t.Fatalf("TTL check %s = %+v", beat, c)
	}
	if c := checks[beat+":tcp"]; c != nil {
		t.Errorf("gliderlabs mode registered a second check %s", c.CheckID)
	}
	// An application heartbeats where gliderlabs put its check.
	if err := a.Agent().PassTTL(beat, "beat"); err != nil {
		t.Fatalf("heartbeat at %s: %v", beat, err)
	}
	testenv.Eventually(t, 5*time.Second, "the heartbeat did not make the service passing", func() bool {
		out, _, err := a.Health().Service("beat", "", true, nil)
		return err == nil && len(out) == 1
	})
	_ = dm.cmd.Process.Signal(syscall.SIGTERM)
	_ = dm.cmd.Wait()
}

// Migration: gliderlabs/registrator's registrations of running containers are taken over in place,
// and its leftovers removed, with no moment where a running container is missing from Consul.
func TestGliderlabsMigrationNoGap(t *testing.T) {
	t.Parallel()
	d, consul, hostname, suffix := gliderlabsEnv(t)
	a := consul.API()
	const svcName = "migrating"
	type seeded struct{ id, container string }
	var running []seeded
	for i := range 6 {
		n := fmt.Sprintf("mig-%d-%d", suffix, i)
		labels := map[string]string{"SERVICE_NAME": svcName}
		if i%2 == 1 { // half of them with an HTTP check, as gliderlabs registers it: embedded, so service:<ID>
			labels["SERVICE_CHECK_HTTP"], labels["SERVICE_CHECK_INTERVAL"] = "/health", "1s"
		}
		cid := testenv.Start(t, d, testenv.Workload{Name: n, TCP: []int{8080}, Publish: true, Labels: labels})
		in := testenv.Inspect(t, d, cid)
		sid := hostname + ":" + n + ":8080"
		port := published(t, in, "8080/tcp")
		// What gliderlabs registered: no external-source, its ID shape, the -ip address.
		reg := &api.AgentServiceRegistration{ID: sid, Name: svcName, Address: "127.0.0.1", Port: port}
		if i%2 == 1 {
			reg.Check = &api.AgentServiceCheck{HTTP: fmt.Sprintf("http://127.0.0.1:%d/health", port), Interval: "1s"}
		}
		if err := a.Agent().ServiceRegister(reg); err != nil {
			t.Fatal(err)
		}
		running = append(running, seeded{sid, cid})
	}
	testenv.Eventually(t, 10*time.Second, "gliderlabs's registrations never all passed", func() bool {
		out, _, err := a.Health().Service(svcName, "", true, nil)
		return err == nil && len(out) == len(running)
	})
	leftovers := []string{hostname + ":mig-gone-" + strconv.Itoa(suffix) + ":8080", hostname + ":mig-gone-" + strconv.Itoa(suffix) + ":53:udp"}
	for _, sid := range leftovers {
		if err := a.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: sid, Name: svcName, Address: "127.0.0.1", Port: 9}); err != nil {
			t.Fatal(err)
		}
	}
	// Not gliderlabs's: another tool's service, and another host's ID shape. Both stay.
	untouched := []string{"redis-primary", "otherhost:mig-gone:8080"}
	for _, sid := range untouched {
		if err := a.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: sid, Name: "other", Port: 1}); err != nil {
			t.Fatal(err)
		}
	}

	// Every state of the service's passing set, with the running containers counted in it.
	watch := testenv.WatchPassing(t, a, svcName, func(es []*api.ServiceEntry) int {
		n := 0
		for _, e := range es {
			if slices.ContainsFunc(running, func(s seeded) bool { return s.id == e.Service.ID }) {
				n++
			}
		}
		return n
	})

	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	dm := startDaemonArgs(t, consul, listen, []string{"-ip", "127.0.0.1", "-cleanup", "consul://" + consul.Addr()},
		"REGISTRATOR_CONSUL=", "REGISTRATOR_IP=")
	testenv.EventuallyExplain(t, 20*time.Second, func() bool {
		all, err := a.Agent().Services()
		if err != nil {
			return false
		}
		for _, s := range running {
			if all[s.id] == nil || all[s.id].Meta["external-source"] != "ecs-registrator" || all[s.id].Meta["container-id"] != s.container {
				return false
			}
		}
		for _, sid := range leftovers {
			if all[sid] != nil {
				return false
			}
		}
		return true
	}, func() string {
		all, _ := a.Agent().Services()
		return fmt.Sprintf("migration not done: agent holds %v", slices.Sorted(maps.Keys(all)))
	})
	watch.Stop()
	all, err := a.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	for _, sid := range untouched {
		if all[sid] == nil {
			t.Errorf("%s was removed; it is not gliderlabs's", sid)
		}
	}
	// Other tests' containers on the same dockerd are registered too; none of gliderlabs's is left.
	for sid, s := range all {
		if s.Meta["external-source"] != "ecs-registrator" && !slices.Contains(untouched, sid) {
			t.Errorf("%s is still gliderlabs's: %+v", sid, s)
		}
	}
	minRunning, observed := watch.Fewest()
	t.Logf("%d states of the passing set observed during the migration; fewest running instances in one: %d of %d", observed, minRunning, len(running))
	if minRunning != len(running) {
		t.Errorf("a running container was missing from the passing set during the migration (%d of %d)", minRunning, len(running))
	}
	_ = dm.cmd.Process.Signal(syscall.SIGTERM)
	_ = dm.cmd.Wait()
}
