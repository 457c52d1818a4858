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
	"sync/atomic"
	"syscall"
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
	daemon.Env = append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true")
	var logs bytes.Buffer
	daemon.Stdout, daemon.Stderr = &logs, &logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = daemon.Process.Kill(); _ = daemon.Wait() })
	testenv.Eventually(t, 30*time.Second, "daemon not ready", func() bool { return ready(listen) })

	// The harness watches start events itself: Docker's own latency is part of the floor.
	var mu sync.Mutex
	started := map[string]time.Time{}
	var eventCount atomic.Int64 // container events the daemon receives too (health probes' exec_* excluded)
	msgs, _ := d.Events(t.Context(), events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", "container"))})
	go func() {
		for m := range msgs {
			if strings.HasPrefix(string(m.Action), "exec_") {
				continue
			}
			eventCount.Add(1)
			if m.Action == events.ActionStart {
				mu.Lock()
				started[m.Actor.ID] = time.Now()
				mu.Unlock()
			}
		}
	}()

	node := consul.Node
	present := func(id string) bool {
		_, _, err := a.Agent().Service(id, nil)
		return err == nil
	}
	out("ecs-registrator end-to-end benchmark (%s, %d cores, %s)", time.Now().UTC().Format(time.DateOnly), numCPU(), kernel())
	out("consul agent round trip (register): p50 %v", rtt.Round(10*time.Microsecond))
	pid := daemon.Process.Pid
	out("daemon RSS with 0 containers: %s (peak so far %s)", vm(pid, "VmRSS"), vm(pid, "VmHWM"))

	// 1. Registration lag, 100 sequential starts, against the floor measured in the same run.
	const n = 100
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
	out("registration lag from docker start, %d sequential containers: p50 %v  p95 %v  p99 %v", n, ms(pct(regLag, 50)), ms(pct(regLag, 95)), ms(pct(regLag, 99)))
	out("  floor (docker start event + one agent round trip):          p50 %v  p95 %v  p99 %v", ms(pct(floor, 50)), ms(pct(floor, 95)), ms(pct(floor, 99)))
	out("  ratio p50 lag / p50 floor: %.2f (target <= 2)", float64(pct(regLag, 50))/float64(pct(floor, 50)))
	out("  daemon's own share (lag after the start event):           p50 %v  p95 %v  p99 %v", ms(pct(overhead, 50)), ms(pct(overhead, 95)), ms(pct(overhead, 99)))
	out("daemon RSS with %d containers: %s (peak so far %s)", n, vm(pid, "VmRSS"), vm(pid, "VmHWM"))

	// 2. Steady state: 100 services, resync every 5 s, 20 s of nothing happening.
	w0, idleCPU := consul.Writes(), cpuSeconds(pid)
	time.Sleep(20 * time.Second) // the measurement window itself, not synchronisation
	writes := consul.Writes() - w0
	out("consul writes in 20 s of steady state (4 resyncs of %d services): %d, %.1f per resync", n, writes, float64(writes)/4)
	out("  CPU in those 20 s (4 resyncs, 20 agent polls): %.2f s, about %.2f ms per container per resync",
		cpuSeconds(pid)-idleCPU, (cpuSeconds(pid)-idleCPU)*1000/4/n)

	// 3. Drain: a container that keeps serving 2 s after SIGTERM leaves the passing set long before it dies.
	var drain []time.Duration
	for i := range 20 {
		name := fmt.Sprintf("drain-%d-%d", os.Getpid(), i)
		id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Drain: 2 * time.Second,
			Labels: map[string]string{"SERVICE_NAME": name}})
		waitFor(t, func() bool { return passing(a, name) == 1 })
		t0 := time.Now()
		go func() { _ = d.ContainerStop(t.Context(), id, container.StopOptions{}) }()
		waitFor(t, func() bool { return passing(a, name) == 0 })
		drain = append(drain, time.Since(t0))
	}
	out("drain lag, docker stop to out of the passing set (20 containers): p50 %v  p95 %v  max %v", ms(pct(drain, 50)), ms(pct(drain, 95)), ms(pct(drain, 100)))

	// 4. Deregistration lag.
	var dereg []time.Duration
	for i, id := range ids {
		t0 := time.Now()
		if err := d.ContainerRemove(t.Context(), id, container.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return !present(svcIDs[i]) })
		dereg = append(dereg, time.Since(t0))
	}
	out("deregistration lag, docker rm -f to gone (%d containers): p50 %v  p95 %v  p99 %v", n, ms(pct(dereg, 50)), ms(pct(dereg, 95)), ms(pct(dereg, 99)))

	// From here on the daemon runs with the default resync (30 s): the CPU per event measured below is
	// the events' cost, not the 5 s resync's.
	_ = daemon.Process.Signal(syscall.SIGTERM)
	_ = daemon.Wait()
	daemon = exec.Command(bin, "-consul", consul.Addr(), "-ip", "127.0.0.1", "-listen", listen, "-log-level", "warn")
	daemon.Env = append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true")
	daemon.Stdout, daemon.Stderr = &logs, &logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = daemon.Process.Kill(); _ = daemon.Wait() })
	waitFor(t, func() bool { return ready(listen) })
	pid = daemon.Process.Pid

	// 5. Burst: 200 containers created, then all started at once. Converged when every one is registered;
	// the floor is Docker's own: when the last start event arrived.
	const burst = 200
	var burstIDs []string
	for i := range burst {
		name := fmt.Sprintf("burst-%d-%d", os.Getpid(), i)
		burstIDs = append(burstIDs, testenv.Create(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true,
			Labels: map[string]string{"SERVICE_NAME": "burst"}}))
	}
	events0, cpu0 := eventCount.Load(), cpuSeconds(pid)
	t0 := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for _, id := range burstIDs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_ = d.ContainerStart(t.Context(), id, container.StartOptions{})
		})
	}
	wg.Wait()
	waitFor(t, func() bool { return passing(a, "burst") == burst })
	converged := time.Since(t0)
	var lastStart time.Time
	mu.Lock()
	for _, id := range burstIDs {
		if started[id].After(lastStart) {
			lastStart = started[id]
		}
	}
	mu.Unlock()
	out("burst: %d parallel starts converged %v after the first start; Docker's last start event came at %v (daemon after it: %v)",
		burst, ms(converged), ms(lastStart.Sub(t0)), ms(converged-lastStart.Sub(t0)))

	// 6. Up to 500 running containers, then memory.
	const total = 500
	var more []string
	for i := range total - burst {
		name := fmt.Sprintf("fill-%d-%d", os.Getpid(), i)
		more = append(more, testenv.Create(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true,
			Labels: map[string]string{"SERVICE_NAME": "fill"}}))
	}
	for _, id := range more {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_ = d.ContainerStart(t.Context(), id, container.StartOptions{})
		})
	}
	wg.Wait()
	waitFor(t, func() bool { return passing(a, "fill") == total-burst })
	cpu := cpuSeconds(pid) - cpu0
	evs := eventCount.Load() - events0
	out("CPU: %.2f s for %d Docker events (%d starts), %.2f CPU-seconds per 1000 events", cpu, evs, total, cpu*1000/float64(max(evs, 1)))
	out("daemon RSS with %d containers: %s (peak %s, since its start with none running)", total, vm(pid, "VmRSS"), vm(pid, "VmHWM"))

	// 7. Startup: a new daemon (same agent, which keeps the registrations) with 500 containers running.
	_ = daemon.Process.Signal(syscall.SIGTERM)
	_ = daemon.Wait()
	w0 = consul.Writes()
	second := exec.Command(bin, "-consul", consul.Addr(), "-ip", "127.0.0.1", "-listen", listen, "-log-level", "warn")
	second.Env = daemon.Env
	second.Stdout, second.Stderr = &logs, &logs
	t0 = time.Now()
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Process.Kill(); _ = second.Wait() })
	waitFor(t, func() bool { return ready(listen) })
	out("startup with %d running containers, all registered: ready (first full sync) %v after exec, %d consul writes",
		total, ms(time.Since(t0)), consul.Writes()-w0)
	out("  new daemon's RSS after its first sync: %s (peak %s)", vm(second.Process.Pid, "VmRSS"), vm(second.Process.Pid, "VmHWM"))

	// 8. Everything removed at once.
	all := append(burstIDs, more...)
	t0 = time.Now()
	for _, id := range all {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_ = d.ContainerRemove(t.Context(), id, container.RemoveOptions{Force: true})
		})
	}
	wg.Wait()
	removed := time.Since(t0)
	waitFor(t, func() bool { return passing(a, "burst") == 0 && passing(a, "fill") == 0 })
	out("%d containers removed at once (docker took %v): all deregistered %v after the first removal", total, ms(removed), ms(time.Since(t0)))
}

func ready(listen string) bool {
	resp, err := http.Get("http://" + listen + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// cpuSeconds is the process's user and system CPU time, from /proc/<pid>/stat.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return float64(ut+st) / 100 // USER_HZ
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + strings.TrimSpace(string(b))
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

// vm reads one of /proc/<pid>/status's memory lines (VmRSS now, VmHWM the peak).
func vm(pid int, field string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
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
