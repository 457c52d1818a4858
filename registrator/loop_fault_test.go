package registrator

import (
	"log/slog"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// An agent that never answers one write does not hold up the others: every write has a deadline.
func TestLoopHungWriteHoldsNothingUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, nil, nil)
		l.d.start(webSpec("c1", "web-1"))
		l.settle()
		l.a.mu.Lock()
		l.a.hang["node1:web-2:8080"] = true
		l.a.mu.Unlock()
		l.d.start(webSpec("c2", "web-2"))
		l.settle()
		l.d.kill("c1", "15")
		l.after(writeTimeout + 6*time.Second) // the deadline, then at most one retry delay
		if _, ok := l.a.service("node1:web-1:8080"); ok {
			t.Fatal("the drain waited for a write the agent never answers")
		}
	})
}

// A registration the agent keeps refusing never delays the same service's deregistration when the
// container stops.
func TestLoopRefusedRegistrationDoesNotDelayTheDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &fakeECS{tasks: map[string]ecsmeta.Task{}}
		task := ecsmeta.Task{Cluster: "prod", ARN: "arn:aws:ecs:eu-west-1:1:task/prod/abc", Family: "web", Revision: "3", Container: "app"}
		e.tasks["c1"] = task
		l := startLoop(t, nil, nil, func(c *Config) { c.ECS = e })
		l.d.start(webSpec("c1", "web-1"))
		l.settle()
		sid := "node1:web-1:8080"
		l.a.mu.Lock()
		l.a.refuse[sid] = http.StatusForbidden
		l.a.mu.Unlock()
		task.Revision = "4"
		e.set("c1", task) // new metadata: the update is refused, again and again
		l.after(3 * time.Minute)
		if s, _ := l.a.service(sid); s.Meta[desired.MetaECSTaskRevision] != "3" {
			t.Fatalf("the refused update got through: %v", s.Meta)
		}
		l.d.kill("c1", "15")
		l.settle()
		if _, ok := l.a.service(sid); ok {
			t.Fatal("the drain waited for the refused registration's backoff")
		}
	})
}

// A mirror check that vanished while its service stayed (removed by hand) is restored by registering
// the service again; the daemon neither spins on the refused update nor stops being ready.
func TestLoopLostMirrorCheckIsRestored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, nil, nil, func(c *Config) { c.HealthTTL = 30 * time.Second })
		s := webSpec("c1", "web-1")
		s.health = "healthy"
		l.d.start(s)
		l.settle()
		check := "service:node1:web-1:8080:health"
		l.a.mu.Lock()
		delete(l.a.ttl, check)
		l.a.mu.Unlock()
		l.stop()
		n := len(l.a.log())
		l2 := startLoop(t, l.d, l.a, func(c *Config) { c.HealthTTL = 30 * time.Second })
		l2.after(time.Minute)
		l.a.mu.Lock()
		st, ok := l.a.ttl[check]
		l.a.mu.Unlock()
		if !ok || st.Status != "passing" {
			t.Fatalf("check after a minute: %+v, %v", st, ok)
		}
		if w := len(l.a.log()) - n; w > 12 {
			t.Errorf("%d writes in a minute: %q", w, l.a.log()[n:])
		}
		if !l2.r.Ready() || l2.r.Syncs() < 2 {
			t.Errorf("ready %v, %d syncs", l2.r.Ready(), l2.r.Syncs())
		}
	})
}

// A full sync's read that waited behind a newer read of the watch never replaces it, and keeps its
// "full" mark on the newer one; merging an older read after a newer one changes nothing.
func TestObservationsKeepTheNewestRead(t *testing.T) {
	a := newApplier(newFakeAgent(), newStore(), Config{Logger: slog.New(slog.DiscardHandler), HealthTTL: time.Minute},
		newMetrics(nil, nil), &activity{})
	full, _ := a.readAgent(t.Context())
	full.state, full.full = AgentState{Owned: map[string]desired.Service{"web1": {ID: "web1"}}}, true
	newer, _ := a.readAgent(t.Context())
	newer.state = AgentState{Owned: map[string]desired.Service{}} // the agent restarted meanwhile
	a.observe(t.Context(), newer)
	a.observe(t.Context(), full)
	got := <-a.observations
	if got.read != newer.read || !got.full || len(got.state.Owned) != 0 {
		t.Fatalf("waiting observation = read %d full %v %v; want the newer read, marked full", got.read, got.full, got.state.Owned)
	}
	a.merge(got)
	a.merge(full)
	if len(a.held) != 0 {
		t.Errorf("an older read was merged after a newer one: %v", a.held)
	}
}
