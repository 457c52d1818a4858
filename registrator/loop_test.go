package registrator

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// loop is a Registrator running in a synctest bubble against the recording fakes.
type loop struct {
	t    *testing.T
	d    *fakeDocker
	a    *fakeAgent
	r    *Registrator
	logs *testenv.Buffer
	stop func()
}

// startLoop runs a registrator against fresh fakes (or the given ones) and waits until it is ready.
// Call it inside synctest.Test.
func startLoop(t *testing.T, d *fakeDocker, a *fakeAgent, mod ...func(*Config)) *loop {
	t.Helper()
	if a == nil {
		a = newFakeAgent()
	}
	return runLoop(t, d, a, a, mod...)
}

// runLoop is startLoop with the Agent the registrator is given (a wrapper of a, or a itself).
func runLoop(t *testing.T, d *fakeDocker, a *fakeAgent, agent Agent, mod ...func(*Config)) *loop {
	t.Helper()
	l := launchLoop(t, d, a, agent, mod...)
	// Bubble time: readiness is polled every 20ms by the daemon itself.
	for deadline := time.Now().Add(time.Minute); !l.r.Ready(); l.after(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not ready after a minute")
		}
	}
	return l
}

// launchLoop is runLoop without waiting until the registrator is ready.
func launchLoop(t *testing.T, d *fakeDocker, a *fakeAgent, agent Agent, mod ...func(*Config)) *loop {
	t.Helper()
	if d == nil {
		d = newFakeDocker()
	}
	logs := &testenv.Buffer{}
	cfg := Config{AdvertiseIP: netip.MustParseAddr("10.0.0.5"), OptIn: true, Resync: 30 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, m := range mod {
		m(&cfg)
	}
	r := New(d, agent, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	l := &loop{t: t, d: d, a: a, r: r, logs: logs}
	var once sync.Once
	l.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		})
	}
	t.Cleanup(func() {
		l.stop()
		if t.Failed() {
			t.Logf("registrator log:\n%s", logs.String())
		}
	})
	return l
}

// settle lets every goroutine of the bubble run until all of them wait: for an event, a timer, a
// blocking query. Time does not pass.
func (l *loop) settle() { synctest.Wait() }

// after lets d of the bubble's time pass.
func (l *loop) after(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func webSpec(id, name string, labels ...string) spec {
	s := spec{id: id, name: name, port: 8080, labels: map[string]string{"SERVICE_NAME": "web"}}
	for i := 0; i+1 < len(labels); i += 2 {
		s.labels[labels[i]] = labels[i+1]
	}
	return s
}

func (l *loop) container(id string) ContainerView {
	for _, c := range l.r.Snapshot().Containers {
		if c.ID == id {
			return c
		}
	}
	l.t.Fatalf("container %s not in the snapshot", id)
	return ContainerView{}
}

func TestLoopRegistersAndDeregisters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, nil, nil)
		l.d.start(webSpec("c1", "web-1"))
		l.settle()
		sid := "node1:web-1:8080"
		if s, ok := l.a.service(sid); !ok || s.Port != 38080 || s.Address != "10.0.0.5" {
			t.Fatalf("service = %+v, %v", s, ok)
		}
		if v := l.container("c1"); len(v.Services) != 1 || v.Draining != "" || len(v.Problems) != 0 {
			t.Errorf("snapshot = %+v", v)
		}
		l.d.remove("c1")
		l.settle()
		if _, ok := l.a.service(sid); ok {
			t.Fatal("still registered after removal")
		}
		if n := l.r.store.len(); n != 0 {
			t.Errorf("store keeps %d records of gone containers", n)
		}
		if got := l.a.log(); !slices.Equal(got, []string{"register " + sid, "deregister " + sid}) {
			t.Errorf("writes = %q", got)
		}
	})
}

// Readiness waits for the containers Docker listed at the first sync, and not for those that come
// after: on a host where containers never stop coming and going, a queue that is never empty must
// not keep the daemon unready. Here Docker holds one container's inspect from each group.
func TestLoopReadyWaitsForTheFirstSyncOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFakeDocker()
		d.start(webSpec("c0", "web-0"))
		d.start(webSpec("c1", "web-1"))
		listed, later := make(chan struct{}), make(chan struct{})
		d.hold["c0"], d.hold["c2"] = listed, later
		a := newFakeAgent()
		l := launchLoop(t, d, a, a)
		l.settle() // the first sync is done; readiness is polled on a 20 ms tick, which has not come yet
		l.d.start(webSpec("c2", "web-2"))
		l.after(time.Second)
		if l.r.Ready() {
			t.Fatal("ready while a container listed at the first sync waits for its inspect")
		}
		if _, ok := l.a.service("node1:web-1:8080"); !ok {
			t.Fatal("the listed container Docker answers for is not registered")
		}
		close(listed)
		l.after(100 * time.Millisecond)
		if !l.r.Ready() {
			t.Fatal("not ready once every container listed at the first sync is evaluated: waits for one started later")
		}
		if _, ok := l.a.service("node1:web-0:8080"); !ok {
			t.Fatal("ready before a listed container is registered")
		}
		close(later)
		l.settle()
		if _, ok := l.a.service("node1:web-2:8080"); !ok {
			t.Fatal("the later container is not registered once Docker answers")
		}
	})
}

// A kill with a terminating signal takes the container out at once, while Docker still holds it and
// an inspect would block.
func TestLoopDrainsFromTheKillEventWithoutInspect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, nil, nil)
		l.d.start(webSpec("c1", "web-1"))
		l.settle()
		hold := make(chan struct{})
		l.d.mu.Lock()
		l.d.hold["c1"] = hold
		l.d.mu.Unlock()
		before := l.d.inspected("c1")
		l.d.kill("c1", "15")
		l.settle()
		if _, ok := l.a.service("node1:web-1:8080"); ok {
			t.Fatal("still registered after SIGTERM while the inspect is held")
		}
		if v := l.container("c1"); !strings.Contains(v.Draining, "stop signal") || !v.Running {
			t.Errorf("snapshot during the drain = %+v", v)
		}
		l.d.kill("c1", "1") // a SIGHUP in the stop window does not undo the stop
		l.settle()
		if _, ok := l.a.service("node1:web-1:8080"); ok {
			t.Fatal("registered again after a SIGHUP during the drain")
		}
		// A kill says all there is to know: no inspect at all until the container runs again.
		if n := l.d.inspected("c1") - before; n != 0 {
			t.Errorf("%d inspects after the kill", n)
		}
		close(hold)
		l.r.requestSync() // a resync inspects everything: the container still runs, and still drains
		l.settle()
		if l.d.inspected("c1") == before {
			t.Error("the resync did not inspect the container")
		}
		if _, ok := l.a.service("node1:web-1:8080"); ok {
			t.Fatal("the inspect after the kill registered the draining container again")
		}
		// SIGHUP is no stop; a new run is registered again.
		l.d.stop("c1")
		l.d.start(webSpec("c1", "web-1"))
		l.settle()
		l.d.kill("c1", "1")
		l.settle()
		if _, ok := l.a.service("node1:web-1:8080"); !ok {
			t.Fatal("not registered after the restart and a SIGHUP")
		}
	})
}

// -deregister on-success: a container that fails keeps its services, through a restart of the
// daemon, until it exits 0, runs again or is removed.
func TestLoopKeepsFailedContainers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		keep := func(c *Config) { c.KeepFailed = true }
		a := newFakeAgent()
		l := startLoop(t, nil, a, keep)
		l.d.start(webSpec("c1", "web-1"))
		l.d.start(webSpec("c2", "web-2"))
		l.settle()
		l.d.exit("c1", 1)
		l.d.exit("c2", 143) // a signal's code: stopped, not failed
		l.settle()
		if _, ok := l.a.service("node1:web-1:8080"); !ok {
			t.Fatal("the container that exited 1 was deregistered")
		}
		if v := l.container("c1"); !strings.Contains(v.Reason, "exited with code 1; kept registered") {
			t.Errorf("the snapshot does not say why the stopped container is registered: %+v", v)
		}
		if _, ok := l.a.service("node1:web-2:8080"); ok {
			t.Fatal("the container killed by a signal kept its service")
		}
		l.stop()
		l2 := startLoop(t, l.d, a, keep) // a restarted daemon inspects a stopped container: still kept
		l2.settle()
		if _, ok := l2.a.service("node1:web-1:8080"); !ok {
			t.Fatal("a restarted daemon deregistered the failed container")
		}
		l2.d.start(webSpec("c1", "web-1"))
		l2.settle()
		l2.d.exit("c1", 0)
		l2.settle()
		if _, ok := l2.a.service("node1:web-1:8080"); ok {
			t.Fatal("exit 0 kept the service")
		}
	})
}

// A container on another container's network (a sidecar, a pod) is registered at that container's
// address, as gliderlabs does.
func TestLoopContainerNetworkUsesTheOtherContainersAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, nil, nil)
		l.d.start(spec{id: "pod", name: "pod", ip: "172.17.0.9"})
		l.d.start(spec{id: "c1", name: "app", port: 9000, network: "container:pod", labels: map[string]string{"SERVICE_NAME": "app"}})
		l.settle()
		s, ok := l.a.service("node1:app:9000")
		if !ok || s.Addr() != "172.17.0.9:9000" {
			t.Fatalf("service %+v (registered %v), want it at 172.17.0.9:9000", s, ok)
		}
	})
}

func TestLoopMaintenanceDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, nil, nil, func(c *Config) { c.Drain = DrainMaintenance })
		l.d.start(webSpec("c1", "web-1"))
		l.settle()
		l.d.kill("c1", "SIGTERM")
		l.settle()
		s, ok := l.a.service("node1:web-1:8080")
		if !ok || !strings.HasPrefix(s.Maintenance, drainReason) {
			t.Fatalf("draining service = %+v, %v; want it in maintenance", s, ok)
		}
		// A daemon restarted mid-drain recognises its own drain and writes nothing.
		l.stop()
		writes := len(l.a.log())
		l2 := startLoop(t, l.d, l.a, func(c *Config) { c.Drain = DrainMaintenance })
		if got := l.a.log()[writes:]; len(got) != 0 {
			t.Errorf("restarted daemon wrote %q", got)
		}
		l2.d.stop("c1")
		l2.settle()
		if _, ok := l2.a.service("node1:web-1:8080"); ok {
			t.Fatal("still registered after the container died")
		}
		// The next run starts over, out of maintenance.
		l2.d.start(webSpec("c1", "web-1"))
		l2.settle()
		if s, ok := l2.a.service("node1:web-1:8080"); !ok || s.Maintenance != "" {
			t.Fatalf("restarted container's service = %+v, %v", s, ok)
		}
	})
}

// Pairs of containers started at the same instant asking for one SERVICE_ID: the first started holds
// it, the other shows the clash and takes the ID over as soon as the holder goes.
func TestLoopServiceIDClashAndHandOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, nil, nil)
		for _, id := range []string{"b2", "a1"} { // b2 starts first
			l.d.start(webSpec(id, "web-"+id, "SERVICE_ID", "shared"))
		}
		l.settle()
		if got := l.a.owner("shared"); got != "b2" {
			t.Fatalf("shared is held by %q, want b2 (started first)", got)
		}
		if p := l.container("a1").Problems; len(p) != 1 || !strings.Contains(p[0].Message, "b2") {
			t.Errorf("a1's problems = %v, want the clash naming b2", p)
		}
		if l.container("b2").HasErrors() {
			t.Errorf("holder has problems: %v", l.container("b2").Problems)
		}
		l.d.remove("b2")
		l.settle()
		if got := l.a.owner("shared"); got != "a1" {
			t.Fatalf("after the holder's removal shared is held by %q, want a1", got)
		}
		if p := l.container("a1").Problems; len(p) != 0 {
			t.Errorf("a1 still shows %v", p)
		}
		// Removing the holder handed over with one write: no deregistration, no gap.
		if n := l.a.countWrites("deregister shared"); n != 0 {
			t.Errorf("%d deregistrations of shared during the hand-over", n)
		}
	})
}

func TestLoopForeignServiceKeepsItsID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newFakeAgent()
		a.addForeign("hand-made")
		l := startLoop(t, nil, a)
		l.d.start(webSpec("c1", "web-1", "SERVICE_ID", "hand-made"))
		l.settle()
		// A foreign service registered after the daemon started is respected too.
		l.a.addForeign("later")
		l.after(2 * time.Second)
		l.d.start(webSpec("c2", "web-2", "SERVICE_ID", "later"))
		l.settle()
		for id, sid := range map[string]string{"c1": "hand-made", "c2": "later"} {
			if s, _ := l.a.service(sid); s.ContainerID != "" {
				t.Errorf("foreign %s was overwritten by %s", sid, s.ContainerID)
			}
			if p := l.container(id).Problems; len(p) != 1 || !strings.Contains(p[0].Message, "does not own") {
				t.Errorf("%s problems = %v", id, p)
			}
		}
		if n := l.a.countWrites("deregister"); n != 0 {
			t.Errorf("%d deregistrations", n)
		}
	})
}

// Adopting gliderlabs's registrations (gliderlabs mode, -migrate-gliderlabs) takes only what gliderlabs
// left for the container itself. A vault registered by hand at the address and port of a container that
// asks for SERVICE_ID=vault stays vault's: not written over, not deregistered when the container goes,
// and the container says why it is not registered.
func TestLoopAdoptsOnlyGliderlabsOwnRegistrations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newFakeAgent()
		a.addUnmarked("vault", "vault", "10.0.0.5", 38080)          // where web-1's 8080 is published
		a.addUnmarked("host1:web-2:8080", "web", "10.0.0.5", 38080) // gliderlabs's, for web-2
		l := startLoop(t, nil, a, func(c *Config) {
			c.IDPrefix, c.Migrate = "host1", Migration{Adopt: true, Cleanup: true, Hostname: "host1"}
		})
		l.d.start(webSpec("c1", "web-1", "SERVICE_ID", "vault"))
		l.d.start(webSpec("c2", "web-2"))
		l.settle()
		if s, _ := l.a.service("vault"); s.ContainerID != "" || s.Name != "vault" {
			t.Errorf("vault was taken over: %+v", s)
		}
		if p := l.container("c1").Problems; len(p) != 1 || !strings.Contains(p[0].Message, "does not own") || !strings.Contains(p[0].Message, "not taken over") {
			t.Errorf("c1 problems = %v, want the foreign ID, not taken over", p)
		}
		if got := l.a.owner("host1:web-2:8080"); got != "c2" {
			t.Errorf("gliderlabs's registration of web-2 is held by %q, want c2", got)
		}
		l.d.kill("c1", "SIGTERM")
		l.d.stop("c1")
		l.d.remove("c1")
		l.settle()
		if s, ok := l.a.service("vault"); !ok || s.ContainerID != "" {
			t.Errorf("vault after its squatter went: %+v, %v", s, ok)
		}
		if n := l.a.countWrites("register vault") + l.a.countWrites("deregister vault"); n != 0 {
			t.Errorf("%d writes of vault", n)
		}
	})
}

// A dev agent that restarts forgets every service: the watch sees it and they come back.
func TestLoopAgentRestartForgetsEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, nil, nil, func(c *Config) { c.Resync = 0 })
		l.d.start(webSpec("c1", "web-1"))
		l.d.start(webSpec("c2", "web-2", "SERVICE_CHECK_TTL", "30s"))
		l.settle()
		l.a.restart()
		l.after(2 * time.Second)
		for _, sid := range []string{"node1:web-1:8080", "node1:web-2:8080"} {
			if _, ok := l.a.service(sid); !ok {
				t.Errorf("%s not registered again after the agent restart", sid)
			}
		}
	})
}

// With the agent down, changes wait; once it is back they are applied without waiting for a resync.
func TestLoopAgentDownThenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, nil, nil, func(c *Config) { c.Resync = 0 })
		l.d.start(webSpec("c1", "web-1"))
		l.settle()
		l.a.setDown(true)
		l.after(time.Second)
		l.d.remove("c1")
		l.d.start(webSpec("c2", "web-2"))
		l.after(30 * time.Second)
		if l.r.ConsulUp() {
			t.Error("ConsulUp while the agent is down")
		}
		l.a.setDown(false)
		l.after(10 * time.Second) // at most one grown retry delay (5s, randomised)
		if _, ok := l.a.service("node1:web-1:8080"); ok {
			t.Error("removed container still registered")
		}
		if _, ok := l.a.service("node1:web-2:8080"); !ok {
			t.Error("new container not registered")
		}
		if !l.r.ConsulUp() {
			t.Error("ConsulUp false after the agent came back")
		}
	})
}

// A write the agent refuses is that container's problem: retried with backoff, shown in the snapshot,
// and the others are registered.
func TestLoopRefusedWriteStaysWithItsContainer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, nil, nil)
		l.a.mu.Lock()
		l.a.refuse["node1:bad:8080"] = http.StatusForbidden
		l.a.mu.Unlock()
		l.d.start(webSpec("c1", "bad"))
		l.d.start(webSpec("c2", "good"))
		l.settle()
		if _, ok := l.a.service("node1:good:8080"); !ok {
			t.Fatal("the other container was held up")
		}
		p := l.container("c1").Problems
		if len(p) != 1 || !strings.Contains(p[0].Message, "Permission denied") {
			t.Fatalf("problems = %v", p)
		}
		l.after(time.Minute)
		l.a.mu.Lock()
		delete(l.a.refuse, "node1:bad:8080")
		l.a.mu.Unlock()
		l.after(time.Minute)
		if _, ok := l.a.service("node1:bad:8080"); !ok {
			t.Fatal("not registered once the agent accepts it")
		}
		if p := l.container("c1").Problems; len(p) != 0 {
			t.Errorf("problems after success = %v", p)
		}
	})
}

// A container's Docker health is mirrored; once the service is deregistered nothing updates its
// check again (it would fail for ever).
func TestLoopMirrorsHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, nil, nil, func(c *Config) { c.HealthTTL = 30 * time.Second })
		s := webSpec("c1", "web-1")
		s.health = "starting"
		l.d.start(s)
		l.settle()
		check := "service:node1:web-1:8080:health"
		if st := l.a.ttl[check]; st.Status != "critical" {
			t.Fatalf("check after start = %+v", st)
		}
		l.d.setHealth("c1", "healthy")
		l.settle()
		if st := l.a.ttl[check]; st.Status != "passing" || !strings.Contains(st.Output, "healthy") {
			t.Fatalf("check after healthy = %+v", st)
		}
		// The TTL is refreshed every third of it while nothing changes.
		n := l.a.countWrites("ttl " + check)
		l.after(time.Minute)
		if got := l.a.countWrites("ttl "+check) - n; got < 4 || got > 7 {
			t.Errorf("%d refreshes in a minute at TTL 30s, want about 6", got)
		}
		l.d.remove("c1")
		l.settle()
		n = l.a.countWrites("ttl")
		l.after(time.Minute)
		if got := l.a.countWrites("ttl") - n; got != 0 {
			t.Errorf("%d check updates after the deregistration", got)
		}
		if strings.Contains(l.logs.String(), "refreshing a health check failed") {
			t.Error("a refresh of a deleted check was tried")
		}
	})
}

// A resync with nothing changed writes nothing, and a daemon restart adopts what the agent holds.
func TestLoopSteadyStateAndRestartWriteNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, nil, nil, func(c *Config) { c.Resync = 5 * time.Second })
		for _, id := range []string{"c1", "c2", "c3"} {
			l.d.start(webSpec(id, "web-"+id, "SERVICE_CHECK_HTTP", "/health"))
		}
		l.settle()
		n := len(l.a.log())
		l.after(time.Minute)
		if got := l.a.log()[n:]; len(got) != 0 {
			t.Errorf("steady state wrote %q", got)
		}
		if l.r.Syncs() < 10 {
			t.Errorf("%d syncs in a minute at 5s", l.r.Syncs())
		}
		l.stop()
		startLoop(t, l.d, l.a)
		if got := l.a.log()[n:]; len(got) != 0 {
			t.Errorf("restart wrote %q", got)
		}
	})
}

// After a Docker restart (the stream breaks) the daemon re-lists: a container removed meanwhile is
// deregistered, one started meanwhile registered.
func TestLoopDockerStreamBreaks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, nil, nil, func(c *Config) { c.Resync = 0 })
		l.d.start(webSpec("c1", "web-1"))
		l.settle()
		l.d.breakStream()
		l.d.mu.Lock()
		delete(l.d.containers, "c1") // gone while nobody watched
		l.d.mu.Unlock()
		l.d.start(webSpec("c2", "web-2")) // no subscriber: its event is lost
		l.after(10 * time.Second)
		if _, ok := l.a.service("node1:web-1:8080"); ok {
			t.Error("container removed during the outage still registered")
		}
		if _, ok := l.a.service("node1:web-2:8080"); !ok {
			t.Error("container started during the outage not registered")
		}
		if l.r.store.len() != 1 {
			t.Errorf("store holds %d records, want 1", l.r.store.len())
		}
	})
}

// fakeECS is an Enricher whose answers the test sets.
type fakeECS struct {
	mu      sync.Mutex
	tasks   map[string]ecsmeta.Task
	changed func(string)
	forgot  []string
	stopped []string               // containers looked up as not running
	refs    map[string]ecsmeta.Ref // the last lookup of each container
	known   []ecsmeta.Known
}

func (f *fakeECS) Lookup(c ecsmeta.Ref) (ecsmeta.Task, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !c.Running {
		f.stopped = append(f.stopped, c.ID)
	}
	if f.refs == nil {
		f.refs = map[string]ecsmeta.Ref{}
	}
	f.refs[c.ID] = c
	t, ok := f.tasks[c.ID]
	return t, ok
}
func (f *fakeECS) Remember(known []ecsmeta.Known) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.known = append(f.known, known...)
}
func (f *fakeECS) Forget(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = append(f.forgot, id)
}
func (f *fakeECS) Host() ecsmeta.Host { return ecsmeta.Host{AvailabilityZone: "eu-west-1a"} }
func (f *fakeECS) Run(ctx context.Context, changed func(string)) {
	f.mu.Lock()
	f.changed = changed
	f.mu.Unlock()
	<-ctx.Done()
}

func (f *fakeECS) set(id string, t ecsmeta.Task) {
	f.mu.Lock()
	f.tasks[id] = t
	changed := f.changed
	f.mu.Unlock()
	changed(id)
}

// ECS's STOPPED mark drains the container without another inspect: only the metadata changed.
func TestLoopECSStoppedDrainsWithoutInspect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &fakeECS{tasks: map[string]ecsmeta.Task{}}
		task := ecsmeta.Task{Cluster: "prod", ARN: "arn:aws:ecs:eu-west-1:1:task/prod/abc", Family: "web", Revision: "3",
			Container: "app", DesiredStatus: "RUNNING"}
		e.tasks["c1"] = task
		l := startLoop(t, nil, nil, func(c *Config) { c.ECS = e })
		l.d.start(webSpec("c1", "web-1"))
		l.settle()
		s, ok := l.a.service("node1:web-1:8080")
		if !ok || s.Meta[desired.MetaECSCluster] != "prod" || s.Meta[desired.MetaAvailabilityZone] != "eu-west-1a" {
			t.Fatalf("service = %+v, %v", s, ok)
		}
		before := l.d.inspected("c1")
		task.DesiredStatus = ecsmeta.StatusStopped
		e.set("c1", task)
		l.settle()
		if _, ok := l.a.service("node1:web-1:8080"); ok {
			t.Fatal("still registered after ECS marked the task STOPPED")
		}
		if n := l.d.inspected("c1") - before; n != 0 {
			t.Errorf("%d inspects for a metadata change", n)
		}
		if v := l.container("c1"); !strings.Contains(v.Draining, "STOPPED") || v.Task == nil {
			t.Errorf("snapshot = %+v", v)
		}
		l.d.stop("c1") // a die: no inspect, but the enricher learns that the container stopped
		l.settle()
		if !slices.Contains(e.stopped, "c1") {
			t.Error("the enricher was not told the container stopped")
		}
		l.d.remove("c1")
		l.settle()
		if !slices.Contains(e.forgot, "c1") {
			t.Error("the enricher was not told the container is gone")
		}
	})
}

// The enricher is told which containers want registering (only their tasks are worth an ECS API
// call) and which have a Docker HEALTHCHECK (no task metadata polling), and a restarted daemon hands it
// what it wrote into Meta about each task, so it does not ask ECS again.
func TestLoopTellsTheEnricherWhatItNeeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		task := ecsmeta.Task{Cluster: "prod", ARN: "arn:aws:ecs:eu-west-1:1:task/prod/abc", Family: "web", Revision: "3",
			Container: "app", Service: "web-svc", Tags: map[string]string{"team": "core"}, TagsRead: []string{"team"}}
		e := &fakeECS{tasks: map[string]ecsmeta.Task{"c1": task, "c2": task}}
		a := newFakeAgent()
		l := startLoop(t, nil, a, func(c *Config) { c.ECS = e })
		l.d.start(spec{id: "c1", name: "web-1", port: 8080, labels: map[string]string{"SERVICE_NAME": "web"}, health: "healthy"})
		l.d.start(spec{id: "c2", name: "sidecar-1", port: 9000})
		l.settle()
		e.mu.Lock()
		c1, c2 := e.refs["c1"], e.refs["c2"]
		e.mu.Unlock()
		if !c1.Wanted || !c1.DockerHealth || c2.Wanted || c2.DockerHealth {
			t.Errorf("lookups: c1 %+v, c2 %+v; want c1 wanted with Docker health, c2 neither", c1, c2)
		}
		l.stop()
		e2 := &fakeECS{tasks: e.tasks}
		startLoop(t, l.d, a, func(c *Config) { c.ECS = e2 }).settle()
		e2.mu.Lock()
		defer e2.mu.Unlock()
		if len(e2.known) != 1 || e2.known[0].TaskARN != task.ARN || e2.known[0].Service != "web-svc" || e2.known[0].Tags["team"] != "core" ||
			!slices.Equal(e2.known[0].TagsRead, []string{"team"}) {
			t.Errorf("a restarted daemon remembered %+v; want the task, its service and its tag from Meta", e2.known)
		}
	})
}

func TestLoopDryRunWritesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newFakeAgent()
		logs := &testenv.Buffer{}
		dry := NewDryRun(a, slog.New(slog.NewTextHandler(logs, nil)))
		d := newFakeDocker()
		r := New(d, dry, Config{AdvertiseIP: netip.MustParseAddr("10.0.0.5"), OptIn: true,
			Logger: slog.New(slog.NewTextHandler(logs, nil))})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { _ = r.Run(ctx); close(done) }()
		d.start(webSpec("c1", "web-1"))
		time.Sleep(time.Minute)
		d.remove("c1")
		time.Sleep(time.Minute)
		cancel()
		<-done
		if got := a.log(); len(got) != 0 {
			t.Errorf("dry run wrote %q", got)
		}
		out := logs.String()
		if strings.Count(out, "would register") != 1 || strings.Count(out, "would deregister") != 1 {
			t.Errorf("dry run log:\n%s", out)
		}
	})
}

// A task whose services' Meta disagree (a container's own label won over the task tag in one of them)
// is not remembered: its tags are asked for again rather than read back wrong.
func TestKnownTasksLeavesOutDisagreement(t *testing.T) {
	meta := func(arn, svc, team string) desired.Service {
		m := map[string]string{desired.MetaECSTaskARN: arn, desired.MetaECSService: svc, desired.MetaECSTags: "Team"}
		if team != "" {
			m["team"] = team
		}
		return desired.Service{Meta: m}
	}
	got := knownTasks(map[string]desired.Service{
		"a1": meta("arn-a", "svc", "core"), "a2": meta("arn-a", "svc", "core"),
		"b1": meta("arn-b", "svc", "core"), "b2": meta("arn-b", "svc", "label-value"),
		"c1": meta("arn-c", "", ""),                                      // not in a service, tags looked up, none found
		"d1": {Meta: map[string]string{desired.MetaECSTaskARN: "arn-d"}}, // nothing known
	})
	slices.SortFunc(got, func(a, b ecsmeta.Known) int { return strings.Compare(a.TaskARN, b.TaskARN) })
	if len(got) != 2 || got[0].TaskARN != "arn-a" || got[0].Tags["team"] != "core" || got[1].TaskARN != "arn-c" ||
		!slices.Equal(got[1].TagsRead, []string{"Team"}) || len(got[1].Tags) != 0 {
		t.Errorf("known = %+v; want arn-a with its tag and arn-c with none, not the disagreeing arn-b nor arn-d", got)
	}
}
