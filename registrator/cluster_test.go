package registrator_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	"github.com/ecs-registrator/ecs-registrator/registrator"
	consulagent "github.com/ecs-registrator/ecs-registrator/registrator/consul"
)

// host is one simulated container instance: its own dockerd, Consul client agent and daemon, with an
// address of its own on loopback (127.0.0.2, 127.0.0.3, ...).
type host struct {
	ip      string
	dockerd *testenv.Dockerd
	agent   *testenv.Consul
	stop    func()
}

func startHost(t *testing.T, cl *testenv.Cluster, name, ip string) *host {
	t.Helper()
	h := &host{ip: ip, dockerd: testenv.StartDockerd(t)}
	h.agent = cl.StartClient(t, name, ip)
	agent, err := consulagent.NewAgent(h.agent.Addr())
	if err != nil {
		t.Fatal(err)
	}
	reg := registrator.New(h.dockerd.Client(), agent, registrator.Config{AdvertiseIP: netip.MustParseAddr(ip), OptIn: true, Resync: 30 * time.Second})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = reg.Run(ctx) })
	h.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(h.stop)
	return h
}

// The cluster scenario: three Consul servers and two hosts. Services from both hosts are in the catalog
// under their node and address; a host whose Consul agent dies drops out of the passing set while the
// other host's instances stay, and comes back when its agent does.
func TestClusterTwoHosts(t *testing.T) {
	t.Parallel()
	cl := testenv.StartConsulCluster(t, 3)
	a := startHost(t, cl, "host-a", "127.0.0.2")
	b := startHost(t, cl, "host-b", "127.0.0.3")
	catalog := cl.Servers[0].API()

	name := fmt.Sprintf("web-%d", testenv.FreePort(t))
	for _, h := range []*host{a, b} {
		for i := range 2 {
			testenv.Start(t, h.dockerd.Client(), testenv.Workload{Name: fmt.Sprintf("%s-%d", name, i), Network: "host",
				TCP: []int{testenv.FreePort(t)}, Labels: map[string]string{"SERVICE_NAME": name}})
		}
	}
	passing := func() map[string]int {
		entries, _, err := catalog.Health().Service(name, "", true, nil)
		if err != nil {
			return nil
		}
		byNode := map[string]int{}
		for _, e := range entries {
			byNode[e.Node.Node]++
			if want := map[string]string{a.agent.Node: a.ip, b.agent.Node: b.ip}[e.Node.Node]; e.Service.Address != want {
				t.Errorf("%s on node %s has address %s, want %s", e.Service.ID, e.Node.Node, e.Service.Address, want)
			}
		}
		return byNode
	}
	both := func() bool { p := passing(); return p[a.agent.Node] == 2 && p[b.agent.Node] == 2 }
	took := testenv.Eventually(t, 30*time.Second, "both hosts' services never in the catalog", both)
	t.Logf("4 instances from 2 hosts in the catalog after %v", took)

	a.agent.Stop() // host A's agent dies
	took = testenv.Eventually(t, 30*time.Second, "host A's instances still passing", func() bool {
		p := passing()
		return p[a.agent.Node] == 0 && p[b.agent.Node] == 2
	})
	t.Logf("host A out of the passing set %v after its agent died; host B's instances stayed", took)
	var nodeA *api.HealthCheck
	checks, _, err := catalog.Health().Node(a.agent.Node, nil)
	if err == nil {
		for _, c := range checks {
			if c.CheckID == "serfHealth" {
				nodeA = c
			}
		}
	}
	if nodeA == nil || nodeA.Status != api.HealthCritical {
		t.Errorf("host A's serfHealth = %+v", nodeA)
	}

	a.agent.Start()
	took = testenv.Eventually(t, 30*time.Second, "host A never came back", both)
	t.Logf("host A back %v after its agent restarted", took)
}
