package registrator_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	"github.com/ecs-registrator/ecs-registrator/registrator"
)

// A Connect sidecar on a real agent is part of its service's registration: read back equal (no
// rewrite on later rounds), registered again when someone deletes it, gone when the service leaves
// the mesh, and another tool's proxy under the sidecar's ID is never taken for it.
func TestConnectSidecarOwnership(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	e := run(t, d, consul, func(c *registrator.Config) { c.Resync = time.Second })
	name := unique(t, "meshed")
	id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080, 21000}, Publish: true, Labels: map[string]string{
		"SERVICE_NAME": name, "SERVICE_CONNECT": "true", "SERVICE_CONNECT_UPSTREAMS": "orders:9191"}})
	sid := consul.Node + ":" + name + ":8080"
	sidecar := func() *api.AgentService {
		all, err := e.api.Agent().Services()
		if err != nil {
			t.Fatal(err)
		}
		return all[sid+"-sidecar-proxy"]
	}
	testenv.Eventually(t, 10*time.Second, "no sidecar registered", func() bool { return sidecar() != nil })
	if sc := sidecar(); sc.Port != hostPort(t, d, id, "21000/tcp") || len(sc.Proxy.Upstreams) != 1 || sc.Proxy.Upstreams[0].LocalBindPort != 9191 {
		t.Errorf("sidecar %+v, want the published 21000 and the orders upstream", sc)
	}
	// Settled: resyncs do not register it again (the sidecar reads back as what was registered).
	// Other tests' containers on the same dockerd may be written meanwhile: count this service's.
	e.waitReady(t)
	registered := func() int { return strings.Count(e.logs.String(), "msg=registered component=apply service="+sid+" ") }
	before := registered()
	syncs := e.reg.Syncs()
	testenv.Eventually(t, 10*time.Second, "no resync", func() bool { return e.reg.Syncs() > syncs+1 })
	if after := registered(); after != before {
		t.Errorf("the settled meshed service was registered %d more times in two resyncs, want 0", after-before)
	}
	// Deleted by hand: registered again with its service.
	if err := e.api.Agent().ServiceDeregister(sid + "-sidecar-proxy"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the deleted sidecar never came back", func() bool { return sidecar() != nil })
	// Another tool's proxy under another service's sidecar ID stays foreign and untouched.
	other := unique(t, "other")
	if err := e.api.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: other, Name: other, Port: 1}); err != nil {
		t.Fatal(err)
	}
	if err := e.api.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: other + "-sidecar-proxy", Name: other + "-proxy", Port: 2,
		Kind: api.ServiceKindConnectProxy, Proxy: &api.AgentServiceConnectProxyConfig{DestinationServiceName: other, DestinationServiceID: other}}); err != nil {
		t.Fatal(err)
	}
	syncs = e.reg.Syncs()
	testenv.Eventually(t, 10*time.Second, "no resync", func() bool { return e.reg.Syncs() > syncs+1 })
	if all, _ := e.api.Agent().Services(); all[other+"-sidecar-proxy"] == nil || all[other] == nil {
		t.Errorf("another tool's service or proxy was removed: %v", keys(all))
	}
	// The same container name again, out of the mesh: the service keeps its ID and loses its sidecar
	// (Consul removes a sidecar only with its service).
	if err := d.ContainerRemove(t.Context(), id, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	id = testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Labels: map[string]string{"SERVICE_NAME": name}})
	testenv.EventuallyExplain(t, 10*time.Second, func() bool {
		all, err := e.api.Agent().Services()
		return err == nil && all[sid] != nil && all[sid].Meta["container-id"] == id && all[sid+"-sidecar-proxy"] == nil
	}, func() string { all, _ := e.api.Agent().Services(); return fmt.Sprintf("agent holds %v", keys(all)) })
}
