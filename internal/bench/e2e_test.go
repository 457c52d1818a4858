// Package bench holds the end-to-end benchmark harness: the real daemon binary against real dockerd and
// Consul, run by `make bench` (ECSR_E2E_BENCH=1). It reports latencies as medians and percentiles and
// compares them with a floor measured in the same run, because this machine is shared and noisy.
package bench

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

func TestEndToEnd(t *testing.T) {
	if os.Getenv("ECSR_E2E_BENCH") != "1" {
		t.Skip("a benchmark, not a test: run with ECSR_E2E_BENCH=1 (make bench)")
	}
	d := testenv.Docker(t)
	testenv.BuildWorkload(t, d)
	consul := testenv.StartConsul(t)
	a := consul.API()
	report := &bytes.Buffer{}
	out := func(format string, args ...any) {
		fmt.Fprintf(report, format+"\n", args...)
	}
	defer func() { fmt.Print("\n" + report.String()) }()

	// One agent round trip: what registering a service costs at the least.
	var rtts []time.Duration
	for i := range 30 {
		start := time.Now()
		if err := a.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: fmt.Sprintf("rtt-%d", i), Name: "rtt", Port: 1}); err != nil {
			t.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
		_ = a.Agent().ServiceDeregister(fmt.Sprintf("rtt-%d", i))
	}
	rtt := pct(rtts, 50)

	dir := t.TempDir()
	bin := filepath.Join(dir, "ecs-registrator")
	if b, err := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/ecs-registrator/ecs-registrator/cmd/ecs-registrator").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	daemon := exec.Command(bin, "-consul", consul.Addr(), "-ip", "127.0.0.1", "-listen", listen, "-resync", "5s", "-log-level", "warn")
	var logs bytes.Buffer
	daemon.Stdout, daemon.Stderr = &logs, &logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = daemon.Process.Kill(); _ = daemon.Wait() })
	testenv.Eventually(t, 30*time.Second, "daemon not ready", func() bool {
		resp, err := http.Get("http://" + listen + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	// The harness watches start events itself: Docker's own latency is part of the floor.
	var mu sync.Mutex
	started := map[string]time.Time{}
	msgs, _ := d.Events(t.Context(), events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", "container"), filters.Arg("event", "start"))})
	go func() {
		for m := range msgs {
			mu.Lock()
			started[m.Actor.ID] = time.Now()
			mu.Unlock()
		}
	}()

	node := consul.Node
	present := func(id string) bool {
		_, _, err := a.Agent().Service(id, nil)
		return err == nil
	}
	const n = 50
	var regLag, floor, overhead []time.Duration
	var ids, svcIDs []string
	for i := range n {
		name := fmt.Sprintf("bench-%d-%d", os.Getpid(), i)
		id := testenv.Create(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Labels: map[string]string{"SERVICE_NAME": "bench"}})
		svc := node + ":" + name + ":8080"
		t0 := time.Now()
		if err := d.ContainerStart(t.Context(), id, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return present(svc) })
		reg := time.Since(t0)
		var ev time.Time
		waitFor(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			ev = started[id]
			return !ev.IsZero()
		})
		regLag = append(regLag, reg)
		floor = append(floor, ev.Sub(t0)+rtt)
		overhead = append(overhead, reg-ev.Sub(t0))
		ids, svcIDs = append(ids, id), append(svcIDs, svc)
	}
	out("ecs-registrator end-to-end benchmark (%s, %d cores)", time.Now().UTC().Format(time.DateOnly), numCPU())
	out("consul agent round trip (register): p50 %v", rtt.Round(10*time.Microsecond))
	out("registration lag from docker start, %d sequential containers: p50 %v  p95 %v", n, ms(pct(regLag, 50)), ms(pct(regLag, 95)))
	out("  floor (docker start event + one agent round trip):         p50 %v  p95 %v", ms(pct(floor, 50)), ms(pct(floor, 95)))
	out("  ratio p50 lag / p50 floor: %.2f (target <= 3)", float64(pct(regLag, 50))/float64(pct(floor, 50)))
	out("  daemon's own share (lag after the start event):          p50 %v  p95 %v", ms(pct(overhead, 50)), ms(pct(overhead, 95)))

	// Steady state: every container registered, resync every 5s, 20s of nothing happening.
	w0 := consul.Writes()
	time.Sleep(20 * time.Second) // the measurement window itself, not synchronisation
	out("consul writes in 20s of steady state with %d services and -resync 5s: %d", n, consul.Writes()-w0)

	// Drain: a container that keeps serving 2s after SIGTERM leaves the passing set long before it dies.
	var drain []time.Duration
	for i := range 10 {
		name := fmt.Sprintf("drain-%d-%d", os.Getpid(), i)
		id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Drain: 2 * time.Second,
			Labels: map[string]string{"SERVICE_NAME": name}})
		waitFor(t, func() bool { return passing(a, name) == 1 })
		t0 := time.Now()
		go func() { _ = d.ContainerStop(t.Context(), id, container.StopOptions{}) }()
		waitFor(t, func() bool { return passing(a, name) == 0 })
		drain = append(drain, time.Since(t0))
	}
	out("drain lag, docker stop to out of the passing set (10 containers): p50 %v  p95 %v", ms(pct(drain, 50)), ms(pct(drain, 95)))

	var dereg []time.Duration
	for i, id := range ids {
		t0 := time.Now()
		if err := d.ContainerRemove(t.Context(), id, container.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return !present(svcIDs[i]) })
		dereg = append(dereg, time.Since(t0))
	}
	out("deregistration lag, docker rm -f to gone (%d containers): p50 %v  p95 %v", n, ms(pct(dereg, 50)), ms(pct(dereg, 95)))
	out("daemon peak RSS (VmHWM): %s", vmHWM(daemon.Process.Pid))
}

func passing(a *api.Client, name string) int {
	e, _, err := a.Health().Service(name, "", true, nil)
	if err != nil {
		return -1
	}
	return len(e)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, (len(s)*p+99)/100-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

func vmHWM(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.Fields(v)[0])
			return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
		}
	}
	return "unknown"
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
