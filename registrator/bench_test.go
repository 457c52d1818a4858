package registrator

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/go-connections/nat"

	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/status"
)

func BenchmarkDesired(b *testing.B) {
	c := web(withLabels("SERVICE_TAGS", "a,b,c", "SERVICE_VERSION", "1.2", "SERVICE_TEAM", "core", "SERVICE_9090_NAME", "metrics"),
		withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 32768}, Port{Port: 9090, Proto: "tcp", HostPort: 32769}))
	for i := range 20 {
		c.Env = append(c.Env, fmt.Sprintf("VAR_%d=value", i))
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := Desired(c, testOpts); len(r.Services) != 2 {
			b.Fatal(r)
		}
	}
}

// memDocker and memAgent are in-memory stand-ins for the benchmark of the reconcile path itself; the
// real components are measured end to end by internal/bench.
type memDocker struct{ in container.InspectResponse }

func (m memDocker) Events(context.Context, events.ListOptions) (<-chan events.Message, <-chan error) {
	return nil, nil
}
func (m memDocker) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	return nil, nil
}
func (m memDocker) ContainerInspect(context.Context, string) (container.InspectResponse, error) {
	return m.in, nil
}
func (m memDocker) ClientVersion() string { return "1.41" }

type memAgent struct{ writes int }

func (a *memAgent) NodeName(context.Context) (string, error)              { return "node1", nil }
func (a *memAgent) Services(context.Context) (AgentState, error)          { return AgentState{}, nil }
func (a *memAgent) Register(context.Context, Service) error               { a.writes++; return nil }
func (a *memAgent) Deregister(context.Context, string) error              { a.writes++; return nil }
func (a *memAgent) UpdateTTL(context.Context, string, health.State) error { a.writes++; return nil }
func (a *memAgent) Checks(context.Context) (map[string][]status.Check, error) {
	return nil, nil
}
func (a *memAgent) Leader(context.Context) (string, error) { return "", nil }

// BenchmarkReconcileUnchanged is what a resync costs per container when nothing changed: inspect
// (in memory here), desired state, and the diff against the ledger, with no write.
func BenchmarkReconcileUnchanged(b *testing.B) {
	in := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: "c0ffee", Name: "/web-1",
			State:      &container.State{Running: true, StartedAt: "2026-11-26T10:00:00Z"},
			HostConfig: &container.HostConfig{NetworkMode: "bridge"}},
		Config: &container.Config{Image: "registry/web:1", Labels: map[string]string{"SERVICE_NAME": "web", "SERVICE_TAGS": "a,b",
			"SERVICE_CHECK_HTTP": "/health"}, ExposedPorts: nat.PortSet{"8080/tcp": {}}},
		NetworkSettings: &container.NetworkSettings{},
	}
	in.NetworkSettings.Ports = nat.PortMap{"8080/tcp": {{HostIP: "0.0.0.0", HostPort: "32768"}}}
	agent := &memAgent{}
	r := New(memDocker{in}, agent, Config{AdvertiseIP: netip.MustParseAddr("10.0.0.5"), OptIn: true})
	r.node = "node1"
	ctx := b.Context()
	if err := r.Reconcile(ctx, "c0ffee"); err != nil || agent.writes != 1 {
		b.Fatalf("first reconcile: %v, %d writes", err, agent.writes)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Reconcile(ctx, "c0ffee"); err != nil {
			b.Fatal(err)
		}
	}
	if agent.writes != 1 {
		b.Fatalf("%d writes for an unchanged container", agent.writes-1)
	}
}
