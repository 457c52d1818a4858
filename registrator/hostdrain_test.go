package registrator

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ecs-registrator/ecs-registrator/internal/promtext"
)

// fakeHost is a HostLifecycle the test drives.
type fakeHost struct {
	mu      sync.Mutex
	why     string
	changed chan struct{}
}

func newFakeHost() *fakeHost { return &fakeHost{changed: make(chan struct{}, 1)} }

func (f *fakeHost) Draining() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.why
}

func (f *fakeHost) Changed() <-chan struct{} { return f.changed }

func (f *fakeHost) set(why string) {
	f.mu.Lock()
	f.why = why
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

const spotNotice = "EC2 Spot interruption notice: terminate at 2000-01-01T00:02:00Z"

// The host's notice takes every running container out at once, without an inspect; containers that
// start while the host goes are kept out, through resyncs; the snapshot and the metrics say so.
func TestLoopHostDrainDeregistersEverythingAndKeepsNewOnesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host := newFakeHost()
		reg := promtext.NewRegistry()
		l := startLoop(t, nil, nil, func(c *Config) { c.HostLifecycle, c.Metrics, c.Resync = host, reg, 5*time.Second })
		for _, id := range []string{"c1", "c2", "c3"} {
			l.d.start(webSpec(id, "web-"+id))
		}
		l.d.start(spec{id: "side", name: "sidecar"}) // not opted in
		l.a.addForeign("hand-made")
		l.settle()
		if got := len(l.r.OwnedServices()); got != 3 {
			t.Fatalf("%d services before the notice, want 3", got)
		}
		inspects := l.d.inspected("c1")

		host.set(spotNotice)
		l.settle() // no time passes: the drain is immediate
		if got := l.r.OwnedServices(); len(got) != 0 {
			t.Fatalf("still registered after the notice: %v", got)
		}
		for _, id := range []string{"c1", "c2", "c3"} {
			if _, ok := l.a.service("node1:web-" + id + ":8080"); ok {
				t.Errorf("%s still on the agent", id)
			}
			v := l.container(id)
			if !strings.Contains(v.Draining, spotNotice) || !strings.Contains(v.Reason, "host is going away") {
				t.Errorf("%s in the snapshot: draining %q, reason %q", id, v.Draining, v.Reason)
			}
		}
		if n := l.d.inspected("c1") - inspects; n != 0 {
			t.Errorf("%d inspects for the host's notice", n)
		}
		if _, ok := l.a.service("hand-made"); !ok {
			t.Error("the foreign service was touched")
		}
		if v := l.container("side"); v.Draining != "" || !strings.Contains(v.Reason, "not opted in") {
			t.Errorf("the sidecar that wants nothing is shown draining: %+v", v)
		}
		snap := l.r.Snapshot()
		if snap.Host.Draining != spotNotice || snap.Host.Since.IsZero() {
			t.Errorf("snapshot host = %+v", snap.Host)
		}
		if !hasEvent(snap.Events, "host", spotNotice) {
			t.Errorf("no host event: %+v", snap.Events)
		}
		if got := gaugeValue(t, reg, "ecsr_host_draining"); got != 1 {
			t.Errorf("ecsr_host_draining = %v, want 1", got)
		}
		if got := gaugeValue(t, reg, "ecsr_host_drains_total"); got != 1 {
			t.Errorf("ecsr_host_drains_total = %v, want 1", got)
		}

		// A new container, the same notice again, a minute of resyncs: nothing is registered.
		l.d.start(webSpec("c4", "web-c4"))
		host.set(spotNotice)
		l.after(time.Minute)
		if got := l.a.log(); strings.Contains(strings.Join(got, " "), "register node1:web-c4") {
			t.Errorf("a container started while the host goes was registered: %q", got)
		}
		if got := len(l.r.OwnedServices()); got != 0 {
			t.Errorf("%d services while the host goes", got)
		}
		if got := gaugeValue(t, reg, "ecsr_host_drains_total"); got != 1 {
			t.Errorf("the same notice counted again: %v", got)
		}

		// Were it ever lifted (a hibernated Spot instance resumed), everything comes back.
		host.set("")
		l.settle()
		if got := len(l.r.OwnedServices()); got != 4 {
			t.Errorf("%d services after the notice lifted, want 4", got)
		}
		if got := gaugeValue(t, reg, "ecsr_host_draining"); got != 0 {
			t.Errorf("ecsr_host_draining = %v after the lift", got)
		}
	})
}

// In maintenance mode the registered services stay with Consul's maintenance check naming the
// notice; a new container is not registered at all; a daemon restarted on a host that is going
// writes nothing.
func TestLoopHostDrainMaintenance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		maint := func(host *fakeHost) func(*Config) {
			return func(c *Config) { c.HostLifecycle, c.Drain = host, DrainMaintenance }
		}
		host := newFakeHost()
		l := startLoop(t, nil, nil, maint(host))
		l.d.start(webSpec("c1", "web-1"))
		l.d.start(webSpec("c2", "web-2"))
		l.settle()
		host.set("Auto Scaling target lifecycle state Terminated")
		l.settle()
		for _, sid := range []string{"node1:web-1:8080", "node1:web-2:8080"} {
			s, ok := l.a.service(sid)
			if !ok || s.Maintenance != hostDrainNote("Auto Scaling target lifecycle state Terminated") {
				t.Errorf("%s = %+v, %v; want it in maintenance naming the notice", sid, s, ok)
			}
		}
		l.d.start(webSpec("c3", "web-3"))
		l.settle()
		if _, ok := l.a.service("node1:web-3:8080"); ok {
			t.Error("a container started while the host goes was registered")
		}
		if v := l.container("c3"); !strings.Contains(v.Reason, "new containers are kept out") {
			t.Errorf("c3 reason %q", v.Reason)
		}

		// A restarted daemon that learns of the notice before its first plan writes nothing.
		l.stop()
		writes := len(l.a.log())
		again := newFakeHost()
		again.why = "Auto Scaling target lifecycle state Terminated"
		startLoop(t, l.d, l.a, maint(again))
		synctest.Wait()
		if got := l.a.log()[writes:]; len(got) != 0 {
			t.Errorf("the restarted daemon wrote %q", got)
		}
	})
}

func hasEvent(evs []Event, source, detail string) bool {
	for _, e := range evs {
		if e.Source == source && strings.Contains(e.Detail, detail) {
			return true
		}
	}
	return false
}

func gaugeValue(t *testing.T, reg *promtext.Registry, name string) float64 {
	t.Helper()
	m := family(t, reg, name).GetMetric()[0]
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

// A daemon restarted in maintenance mode on a host that is going away puts what the agent holds into
// maintenance at once, before Docker answers the inspects it holds up while it kills containers.
func TestLoopHostDrainMaintenanceDoesNotWaitForInspects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		maint := func(c *Config) { c.Drain = DrainMaintenance }
		a := newFakeAgent()
		l := startLoop(t, nil, a, maint)
		l.d.start(webSpec("c1", "web-1"))
		l.settle()
		l.stop()
		hold := make(chan struct{})
		l.d.mu.Lock()
		l.d.hold["c1"] = hold
		l.d.mu.Unlock()
		host := newFakeHost()
		host.set(spotNotice)
		// Not startLoop: it waits for readiness, which waits for the inspect.
		r := New(l.d, a, Config{AdvertiseIP: netip.MustParseAddr("10.0.0.5"), OptIn: true, Drain: DrainMaintenance, HostLifecycle: host})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { _ = r.Run(ctx); close(done) }()
		defer func() { cancel(); close(hold); <-done }()
		time.Sleep(time.Second) // bubble time: the first sync, its agent read and a round
		synctest.Wait()
		s, ok := a.service("node1:web-1:8080")
		if !ok || !strings.Contains(s.Maintenance, "host is going away") {
			t.Errorf("service %+v (held %v) while its inspect is held; want it in maintenance saying why", s, ok)
		}
		if r.Ready() {
			t.Error("ready although the inspect is held: the test did not hold it")
		}
	})
}
