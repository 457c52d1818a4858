package registrator_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	"github.com/ecs-registrator/ecs-registrator/registrator"
	consulagent "github.com/ecs-registrator/ecs-registrator/registrator/consul"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// env is one registrator running against a real dockerd and its own Consul dev agent.
type env struct {
	docker *client.Client
	consul *testenv.Consul
	api    *api.Client
	reg    *registrator.Registrator
	ecs    *ecsmeta.Source // when the test runs one
	logs   *testenv.Buffer
	stop   func()
}

// problems returns a container's problems and why it has no services, as the snapshot shows them.
func (e *env) problems(id string) ([]desired.Problem, string) {
	for _, c := range e.reg.Snapshot().Containers {
		if c.ID == id {
			return c.Problems, c.Reason
		}
	}
	return nil, ""
}

// run starts a registrator against docker and a fresh Consul agent, advertising 127.0.0.1.
func run(t *testing.T, docker *client.Client, consul *testenv.Consul, mod ...func(*registrator.Config)) *env {
	t.Helper()
	agent, err := consulagent.NewAgent(consul.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	return runWith(t, docker, consul, agent, mod...)
}

// runWith is run with an agent the test connected itself; it is closed (a login logged out) when the
// registrator stops.
func runWith(t *testing.T, docker *client.Client, consul *testenv.Consul, agent *consulagent.Agent, mod ...func(*registrator.Config)) *env {
	t.Helper()
	// The daemon's log is kept, and shown (its end) only when the test fails.
	logs := &testenv.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			lines := strings.Split(logs.String(), "\n")
			t.Logf("registrator log (last 150 lines):\n%s", strings.Join(lines[max(0, len(lines)-150):], "\n"))
		}
	})
	cfg := registrator.Config{AdvertiseIP: netip.MustParseAddr("127.0.0.1"), OptIn: true, Resync: 30 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, m := range mod {
		m(&cfg)
	}
	reg := registrator.New(docker, agent, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = reg.Run(ctx) })
	stop := sync.OnceFunc(func() { cancel(); wg.Wait(); _ = agent.Close(t.Context()) })
	e := &env{docker: docker, consul: consul, api: consul.API(), reg: reg, logs: logs, stop: stop}
	t.Cleanup(e.stop)
	return e
}

func (e *env) waitReady(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "registrator never became ready", e.reg.Ready)
}

// services returns the agent's services for one container.
func (e *env) services(t *testing.T, containerID string) map[string]*api.AgentService {
	t.Helper()
	s, err := e.api.Agent().ServicesWithFilter(fmt.Sprintf("Meta[%q] == %q", desired.MetaContainerID, containerID))
	if err != nil {
		t.Fatalf("agent services: %v", err)
	}
	return s
}

func (e *env) waitServices(t *testing.T, containerID string, n int, timeout time.Duration) map[string]*api.AgentService {
	t.Helper()
	var got map[string]*api.AgentService
	testenv.EventuallyExplain(t, timeout, func() bool {
		got = e.services(t, containerID)
		return len(got) == n
	}, func() string {
		return fmt.Sprintf("container %.12s never had %d services (has %v)", containerID, n, keys(got))
	})
	return got
}

// passing reports whether the named service has a passing instance in the catalog.
func (e *env) passing(t *testing.T, name string) int {
	t.Helper()
	entries, _, err := e.api.Health().Service(name, "", true, nil)
	if err != nil {
		t.Fatalf("health: %v", err)
	}
	return len(entries)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func unique(t *testing.T, prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, testenv.FreePort(t))
}

func hostPort(t *testing.T, d *client.Client, id, port string) int {
	t.Helper()
	in := testenv.Inspect(t, d, id)
	for p, b := range in.NetworkSettings.Ports {
		if string(p) == port && len(b) > 0 {
			n, _ := strconv.Atoi(b[0].HostPort)
			return n
		}
	}
	t.Fatalf("%s not published", port)
	return 0
}

func TestRegistersBridgeContainerAndRemovesIt(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	e := run(t, d, testenv.StartConsul(t))
	e.waitReady(t)
	name := unique(t, "web")
	id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true,
		Labels: map[string]string{"SERVICE_NAME": name, "SERVICE_TAGS": "blue,v2", "SERVICE_VERSION": "2"}})

	svcs := e.waitServices(t, id, 1, 5*time.Second)
	s := svcs[e.consul.Node+":"+name+":8080"]
	if s == nil {
		t.Fatalf("no service with the default ID; have %v", keys(svcs))
	}
	if want := hostPort(t, d, id, "8080/tcp"); s.Address != "127.0.0.1" || s.Port != want || s.Service != name {
		t.Errorf("service = %s %s:%d, want %s 127.0.0.1:%d", s.Service, s.Address, s.Port, name, want)
	}
	if !slices.Equal(s.Tags, []string{"blue", "v2"}) || s.Meta["version"] != "2" || s.Meta["external-source"] != "ecs-registrator" ||
		s.Meta["container-name"] != name {
		t.Errorf("tags %v meta %v", s.Tags, s.Meta)
	}

	// stop -> gone; start -> back; rm -f -> nothing left
	if err := d.ContainerStop(t.Context(), id, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitServices(t, id, 0, 5*time.Second)
	if err := d.ContainerStart(t.Context(), id, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitServices(t, id, 1, 5*time.Second)
	if err := d.ContainerRestart(t.Context(), id, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitServices(t, id, 1, 5*time.Second)
	if err := d.ContainerKill(t.Context(), id, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	e.waitServices(t, id, 0, 5*time.Second)
	if err := d.ContainerStart(t.Context(), id, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitServices(t, id, 1, 5*time.Second)
	if err := d.ContainerRemove(t.Context(), id, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	e.waitServices(t, id, 0, 5*time.Second)
}

func TestSeveralPortsAndUDP(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	e := run(t, d, testenv.StartConsul(t))
	name := unique(t, "multi")
	id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080, 9090}, UDP: []int{5353}, Publish: true,
		Labels: map[string]string{"SERVICE_REGISTER": "true", "SERVICE_9090_NAME": "metrics", "SERVICE_5353_TAGS": "dns"}})
	svcs := e.waitServices(t, id, 3, 5*time.Second)
	node := e.consul.Node
	want := map[string]string{
		node + ":" + name + ":8080":     "ecsr-workload-8080",
		node + ":" + name + ":9090":     "metrics",
		node + ":" + name + ":5353:udp": "ecsr-workload-5353",
	}
	for id, svcName := range want {
		if svcs[id] == nil || svcs[id].Service != svcName {
			t.Errorf("service %s: got %+v, want name %s", id, svcs[id], svcName)
		}
	}
	if s := svcs[node+":"+name+":5353:udp"]; s != nil && (s.Port != hostPort(t, d, id, "5353/udp") || !slices.Equal(s.Tags, []string{"dns", "udp"})) {
		t.Errorf("udp service %+v", s)
	}
}

func TestOptInIgnoreAndBadLabelsStayPerContainer(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	e := run(t, d, testenv.StartConsul(t))
	e.waitReady(t)
	w := func(name string, labels map[string]string) string {
		return testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Labels: labels})
	}
	plain := w(unique(t, "plain"), nil)
	ignored := w(unique(t, "ignored"), map[string]string{"SERVICE_NAME": "ignored", "SERVICE_IGNORE": "true"})
	bad := w(unique(t, "bad"), map[string]string{"SERVICE_NAME": "bad", "SERVICE_IGNORE": "perhaps"})
	badName := w(unique(t, "badname"), map[string]string{"SERVICE_NAME": "no/slashes"})
	good := w(unique(t, "good"), map[string]string{"SERVICE_REGISTER": "true", "SERVICE_NAME": unique(t, "good")})

	e.waitServices(t, good, 1, 5*time.Second)
	// The good one is registered; every other container has had its reconcile by now or soon: wait for
	// each to report why it is out, then check Consul holds nothing for it.
	for _, c := range []struct{ id, reason, problem string }{
		{plain, "not opted in", ""},
		{ignored, "SERVICE_IGNORE is set", ""},
		{bad, "SERVICE_IGNORE has a bad value", "SERVICE_IGNORE"},
		{badName, "no port left", "SERVICE_NAME"},
	} {
		var problems []desired.Problem
		var skipped string
		testenv.EventuallyExplain(t, 5*time.Second, func() bool {
			problems, skipped = e.problems(c.id)
			return strings.Contains(skipped, c.reason)
		}, func() string { return fmt.Sprintf("%.12s: skipped %q problems %v", c.id, skipped, problems) })
		if c.problem != "" && !slices.ContainsFunc(problems, func(p desired.Problem) bool { return p.Key == c.problem }) {
			t.Errorf("%.12s: problems %v lack %s", c.id, problems, c.problem)
		}
		if s := e.services(t, c.id); len(s) != 0 {
			t.Errorf("%.12s registered %v", c.id, keys(s))
		}
	}
}

func TestForeignServicesAreNeverTouched(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	a := consul.API().Agent()
	name := unique(t, "clash")
	clashID := consul.Node + ":" + name + ":8080"
	foreign := []*api.AgentServiceRegistration{
		{ID: "hand-made", Name: "hand", Port: 1},
		{ID: "other-tool", Name: "other", Port: 2, Meta: map[string]string{"external-source": "nomad"}},
		{ID: clashID, Name: "squatter", Port: 3}, // the ID our container would get
	}
	for _, f := range foreign {
		if err := a.ServiceRegister(f); err != nil {
			t.Fatal(err)
		}
	}
	e := run(t, d, consul, func(c *registrator.Config) { c.Resync = 100 * time.Millisecond })
	e.waitReady(t)
	id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Labels: map[string]string{"SERVICE_NAME": name}})
	testenv.Eventually(t, 5*time.Second, "no problem reported for the ID clash", func() bool {
		p, _ := e.problems(id)
		return len(p) > 0 && strings.Contains(p[0].Message, "does not own")
	})
	start := e.reg.Syncs()
	testenv.Eventually(t, 10*time.Second, "resyncs did not run", func() bool { return e.reg.Syncs() >= start+5 })
	if err := d.ContainerRemove(t.Context(), id, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "resyncs did not run", func() bool { return e.reg.Syncs() >= start+10 })
	all, err := a.Services()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range foreign {
		s := all[f.ID]
		if s == nil || s.Service != f.Name || s.Port != f.Port {
			t.Errorf("foreign service %s changed: %+v", f.ID, s)
		}
	}
}

// hostWorkload is a host-network container bound to a free port of its own.
func hostWorkload(t *testing.T, d *client.Client, name string, labels map[string]string, mod ...func(*testenv.Workload)) (string, int) {
	t.Helper()
	port := testenv.FreePort(t)
	w := testenv.Workload{Name: name, TCP: []int{port}, Network: "host", Labels: labels}
	for _, m := range mod {
		m(&w)
	}
	return testenv.Start(t, d, w), port
}

func TestOptOutRegistersEveryContainerWithAPort(t *testing.T) {
	t.Parallel()
	dockerd := testenv.StartDockerd(t)
	d := dockerd.Client()
	e := run(t, d, testenv.StartConsul(t), func(c *registrator.Config) { c.OptIn = false })
	id, port := hostWorkload(t, d, "unlabelled", nil)
	svcs := e.waitServices(t, id, 1, 5*time.Second)
	s := svcs[fmt.Sprintf("%s:unlabelled:%d", e.consul.Node, port)]
	if s == nil || s.Service != "ecsr-workload" || s.Port != port || s.Address != "127.0.0.1" {
		t.Fatalf("got %v", svcs)
	}
	ignored, _ := hostWorkload(t, d, "ignored", map[string]string{"SERVICE_IGNORE": "1"})
	testenv.Eventually(t, 5*time.Second, "ignored container not looked at", func() bool {
		_, why := e.problems(ignored)
		return why == "SERVICE_IGNORE is set"
	})
	if len(e.services(t, ignored)) != 0 {
		t.Fatal("SERVICE_IGNORE=true registered with opt-in off")
	}
}

// TestResyncWritesNothingInSteadyState counts the agent's own write metric across many resyncs.
func TestResyncWritesNothingInSteadyState(t *testing.T) {
	t.Parallel()
	dockerd := testenv.StartDockerd(t)
	d := dockerd.Client()
	e := run(t, d, testenv.StartConsul(t), func(c *registrator.Config) { c.Resync = 100 * time.Millisecond })
	var ids []string
	for i := range 20 {
		id, _ := hostWorkload(t, d, fmt.Sprintf("steady-%d", i), map[string]string{"SERVICE_NAME": "steady", "SERVICE_TAGS": "a,b", "SERVICE_ROLE": "x"})
		ids = append(ids, id)
	}
	for _, id := range ids {
		e.waitServices(t, id, 1, 10*time.Second)
	}
	testenv.Eventually(t, 10*time.Second, "never ready", e.reg.Ready)
	// Let in-flight work settle: two full syncs after the last registration.
	s0 := e.reg.Syncs()
	testenv.Eventually(t, 10*time.Second, "resyncs stalled", func() bool { return e.reg.Syncs() >= s0+2 })

	before := e.consul.Writes()
	s1 := e.reg.Syncs()
	testenv.Eventually(t, 30*time.Second, "resyncs stalled", func() bool { return e.reg.Syncs() >= s1+20 })
	if w := e.consul.Writes() - before; w != 0 {
		t.Fatalf("%d writes to Consul during %d resyncs of an unchanged host", w, e.reg.Syncs()-s1)
	}
	// The counter does count our writes: one more container is one more write.
	hostWorkload(t, d, "one-more", map[string]string{"SERVICE_NAME": "steady"})
	testenv.Eventually(t, 5*time.Second, "a registration was not counted as a write", func() bool { return e.consul.Writes() > before })
}

func TestDrainOnStopBeforeTheContainerDies(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	e := run(t, d, testenv.StartConsul(t))
	name := unique(t, "drain")
	id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Drain: 3 * time.Second,
		Labels: map[string]string{"SERVICE_NAME": name}})
	e.waitServices(t, id, 1, 5*time.Second)
	testenv.Eventually(t, 5*time.Second, "not passing", func() bool { return e.passing(t, name) == 1 })

	// SIGHUP and SIGUSR1 are not stops. A rename after them is a marker: once the renamed service is
	// registered, the kill events before it have been handled too.
	for _, sig := range []string{"SIGHUP", "SIGUSR1"} {
		if err := d.ContainerKill(t.Context(), id, sig); err != nil {
			t.Fatal(err)
		}
	}
	renamed := name + "-r"
	if err := d.ContainerRename(t.Context(), id, renamed); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "renamed service never registered", func() bool {
		_, ok := e.services(t, id)[e.consul.Node+":"+renamed+":8080"]
		return ok && len(e.services(t, id)) == 1
	})

	stopped := make(chan error, 1)
	start := time.Now()
	go func() { stopped <- d.ContainerStop(context.WithoutCancel(t.Context()), id, container.StopOptions{}) }()
	lag := testenv.Eventually(t, 2*time.Second, "still passing after docker stop", func() bool { return e.passing(t, name) == 0 })
	if !testenv.Inspect(t, d, id).State.Running {
		t.Fatalf("container died before the drain was seen (%v); the test proves nothing", time.Since(start))
	}
	t.Logf("drain lag: %v after docker stop, container still serving", lag)
	if lag > 250*time.Millisecond {
		t.Errorf("left the passing set %v after docker stop, want within 250ms", lag)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	// Started again: advertised again.
	if err := d.ContainerStart(t.Context(), id, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "not re-registered after start", func() bool { return e.passing(t, name) == 1 })
}

func TestDrainMaintenanceKeepsServiceVisibleButNotPassing(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	e := run(t, d, testenv.StartConsul(t), func(c *registrator.Config) { c.Drain = registrator.DrainMaintenance })
	name := unique(t, "maint")
	id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Drain: 2 * time.Second,
		Labels: map[string]string{"SERVICE_NAME": name}})
	testenv.Eventually(t, 5*time.Second, "not passing", func() bool { return e.passing(t, name) == 1 })
	if err := d.ContainerKill(t.Context(), id, "SIGTERM"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Second, "still passing after SIGTERM", func() bool { return e.passing(t, name) == 0 })
	if n := len(e.services(t, id)); n != 1 {
		t.Fatalf("maintenance drain should keep the service registered, have %d", n)
	}
	e.waitServices(t, id, 0, 10*time.Second) // dies after its 2s drain: deregistered
	if err := d.ContainerStart(t.Context(), id, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "not passing after restart", func() bool { return e.passing(t, name) == 1 })
}

func TestConsulDownAtStartAndDuringChanges(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	consul.Stop()
	e := run(t, d, consul)
	name := unique(t, "patient")
	id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Labels: map[string]string{"SERVICE_NAME": name}})
	if e.reg.Ready() {
		t.Fatal("ready without Consul")
	}
	consul.Start()
	back := time.Now()
	e.waitServices(t, id, 1, 5*time.Second)
	testenv.Eventually(t, 5*time.Second, "not ready after Consul came back", e.reg.Ready)
	t.Logf("registered and ready %v after Consul first answered", time.Since(back))

	consul.Stop()
	gone := unique(t, "late")
	id2 := testenv.Start(t, d, testenv.Workload{Name: gone, TCP: []int{8080}, Publish: true, Labels: map[string]string{"SERVICE_NAME": gone}})
	if err := d.ContainerRemove(t.Context(), id, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	consul.Start() // forgot everything, and the containers changed meanwhile
	back = time.Now()
	e.waitServices(t, id2, 1, 5*time.Second)
	if n := len(e.services(t, id)); n != 0 {
		t.Errorf("removed container still has %d services", n)
	}
	t.Logf("converged %v after Consul came back", time.Since(back))
}

func TestDryRunWritesNothingAndLogsOnce(t *testing.T) {
	t.Parallel()
	dockerd := testenv.StartDockerd(t)
	d := dockerd.Client()
	consul := testenv.StartConsul(t)
	agent, err := consulagent.NewAgent(consul.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	reg := registrator.New(d, registrator.NewDryRun(agent, log), registrator.Config{
		AdvertiseIP: netip.MustParseAddr("127.0.0.1"), OptIn: true, Resync: 100 * time.Millisecond, AgentPoll: 50 * time.Millisecond, Logger: log,
	})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = reg.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	before := consul.Writes()
	id, _ := hostWorkload(t, d, "dry", map[string]string{"SERVICE_NAME": "dry"})
	testenv.Eventually(t, 5*time.Second, "dry run did not say what it would register", func() bool {
		return strings.Contains(logs.String(), "dry run: would register")
	})
	s0 := reg.Syncs()
	testenv.Eventually(t, 10*time.Second, "resyncs stalled", func() bool { return reg.Syncs() >= s0+10 })
	if n := strings.Count(logs.String(), "dry run: would register"); n != 1 {
		t.Errorf("dry run logged %d registrations over 10 resyncs, want 1", n)
	}
	if w := consul.Writes() - before; w != 0 {
		t.Errorf("dry run wrote %d times to Consul", w)
	}
	if svcs, err := consul.API().Agent().Services(); err != nil || len(svcs) != 0 {
		t.Errorf("agent services after dry run: %v %v (container %.12s)", keys(svcs), err, id)
	}
}
