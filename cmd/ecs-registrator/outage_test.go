package main

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// selfCheck is the daemon's own check on the agent, nil while it has none.
func selfCheck(t *testing.T, a *api.Client) *api.AgentCheck {
	t.Helper()
	cs, err := a.Agent().ChecksWithFilter(`ServiceID == "ecs-registrator"`)
	if err != nil {
		t.Fatal(err)
	}
	return cs["service:ecs-registrator"]
}

// The daemon's own outage changes nothing in Consul, at its defaults: a container with a Docker
// HEALTHCHECK (mirrored as a TTL check) and one with an HTTP label check (run by Consul) stay passing
// through 100 s of a SIGKILLed daemon, while the daemon's own check turns critical within a minute.
// Started again, the daemon removes what went away meanwhile in its first sync, and a poll of the
// passing set every 100 ms never loses either service.
func TestDaemonOutageKeepsHealthyServicesPassing(t *testing.T) {
	t.Parallel()
	const outage = 100 * time.Second
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	a := consul.API()
	prefix := fmt.Sprintf("outage-%d", testenv.FreePort(t))
	mirrored, probed, gone := prefix+"-docker", prefix+"-http", prefix+"-gone"
	testenv.Start(t, d, testenv.Workload{Name: mirrored, TCP: []int{8080}, Publish: true, HealthProbe: "/health", HealthInterval: time.Second,
		Labels: map[string]string{"SERVICE_NAME": mirrored}})
	testenv.Start(t, d, testenv.Workload{Name: probed, TCP: []int{8080}, Publish: true,
		Labels: map[string]string{"SERVICE_NAME": probed, "SERVICE_CHECK_HTTP": "/health", "SERVICE_CHECK_INTERVAL": "1s"}})
	goneID := testenv.Start(t, d, testenv.Workload{Name: gone, TCP: []int{8080}, Publish: true, Labels: map[string]string{"SERVICE_NAME": gone}})

	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	first := startDaemon(t, consul, listen)
	testenv.EventuallyExplain(t, 20*time.Second, func() bool {
		c := selfCheck(t, a)
		return passing(t, a, mirrored) == 1 && passing(t, a, probed) == 1 && services(t, a, goneID) == 1 && c != nil && c.Status == api.HealthPassing
	}, func() string {
		return fmt.Sprintf("not all passing before the outage: own check %+v", selfCheck(t, a))
	})
	watches := map[string]*testenv.PassingWatch{mirrored: testenv.WatchPassing(t, a, mirrored, nil), probed: testenv.WatchPassing(t, a, probed, nil)}
	testenv.Eventually(t, 5*time.Second, "the watches never saw the services", func() bool {
		for _, w := range watches {
			if s := w.States(); len(s) == 0 || s[len(s)-1].N != 1 {
				return false
			}
		}
		return true
	})

	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	killed := time.Now()
	if err := d.ContainerRemove(t.Context(), goneID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}

	// The alert: the daemon's own check turns critical within a minute (its TTL is 30 s).
	var own *api.AgentCheck
	testenv.EventuallyExplain(t, time.Minute, func() bool {
		own = selfCheck(t, a)
		return own != nil && own.Status == api.HealthCritical
	}, func() string { return fmt.Sprintf("the daemon's own check is still %+v a minute after the kill", own) })
	t.Logf("the daemon's own check turned critical %v after the kill", time.Since(killed).Round(100*time.Millisecond))

	// Nothing else changes: sampled every second to the end of the outage, and every change the
	// watches saw.
	for time.Since(killed) < outage {
		if c := selfCheck(t, a); c == nil || c.Status == api.HealthPassing {
			t.Fatalf("the daemon's own check is %+v during the outage", c)
		}
		time.Sleep(time.Second) // sampling the state through the outage, not waiting for it
	}
	for name, w := range watches {
		if fewest, _ := w.Fewest(); fewest != 1 {
			s := w.States()
			t.Errorf("%s left the passing set during the outage: %+v", name, s)
		}
	}
	if services(t, a, goneID) != 1 {
		t.Errorf("the removed container's service changed while no daemon ran")
	}

	// The return: a poll every 100 ms from before the start never loses either service.
	var (
		mu    sync.Mutex
		lost  []string
		polls int
	)
	stop := make(chan struct{})
	var poller sync.WaitGroup
	poller.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, name := range []string{mirrored, probed} {
				es, _, err := a.Health().Service(name, "", true, nil)
				mu.Lock()
				polls++
				if err != nil || len(es) != 1 {
					lost = append(lost, fmt.Sprintf("%s at %s: %d passing, %v", name, time.Now().Format("15:04:05.000"), len(es), err))
				}
				mu.Unlock()
			}
		}
	})
	second := startDaemon(t, consul, listen)
	begin := time.Now()
	// The correction comes with the first sync, within a second or two. Readiness also waits for
	// every other container on the shared dockerd to be evaluated, and an inspect Docker holds (a
	// container of another test being killed and removed) can take that up to the evaluation's 30 s
	// bound: CI once measured more than 10 s.
	corrected := testenv.Eventually(t, 3*time.Second, "the container removed during the outage kept its service", func() bool {
		return services(t, a, goneID) == 0
	})
	testenv.Eventually(t, 30*time.Second, "the restarted daemon never ready", second.ready)
	ready := time.Since(begin)
	// Passing once the daemon is ready, not a heartbeat (10 s) later.
	testenv.EventuallyExplain(t, 3*time.Second, func() bool {
		own = selfCheck(t, a)
		return own != nil && own.Status == api.HealthPassing
	}, func() string {
		return fmt.Sprintf("the daemon's own check 3 s after the restarted daemon was ready: %+v", own)
	})
	t.Logf("restarted: the removed container's service gone %v after the start, ready %v after, own check passing %v after",
		corrected.Round(time.Millisecond), ready.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
	// Keep polling through a few heartbeats and mirror refreshes of the new daemon.
	time.Sleep(5 * time.Second) // the observation window: the poller samples meanwhile
	close(stop)
	poller.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(lost) > 0 {
		t.Errorf("after the restart, %d of %d polls lost a service: %s", len(lost), polls, strings.Join(lost, "; "))
	}
	if !strings.Contains(own.Output, "follows Docker") {
		t.Errorf("the daemon's own check output: %q", own.Output)
	}
}
