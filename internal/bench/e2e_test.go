// Package bench holds the end-to-end benchmark harness: the real daemon binary against real dockerd and
// Consul, run by `make bench` (ECSR_E2E_BENCH=1). It reports latencies as medians and percentiles and
// compares them with a floor measured in the same run, because this machine is shared and noisy.
//
// The harness observes without competing with the daemon for CPU: one goroutine holds a Consul blocking
// query on the catalog's services of the agent's node, one holds a blocking query on a passing set, one
// reads Docker's event stream, and each records time.Now() when an answer arrives. Nothing polls (except
// /readyz while a daemon starts, which has no push signal) and no CLI process runs.
//
// With ECSR_GLIDERLABS_BIN set to a gliderlabs/registrator binary, the cost part (churn, idle, burst,
// RSS, deregistration lag, mass removal) runs against it too and is printed next to ours.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
	"github.com/docker/docker/client"
	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// Sizes of the sections: the whole run stays under about 6 minutes on 2 cores (with gliderlabs too).
const (
	regN     = 100 // sequential starts for the registration lag (p99 wants ~100)
	drainN   = 40  // sequential docker stops for the drain lag (p95)
	churnN   = 60  // sequential create, start, rm -f: churn CPU and the deregistration lag (p95)
	runningN = 150 // started at once: burst, RSS, startup, mass removal
	parallel = 25  // Docker API calls in flight for the burst and the removals
	steady   = 20 * time.Second
	idle     = 20 * time.Second
	resync   = 5 * time.Second  // part 1's resync interval
	settle   = 10 * time.Second // after Docker is done: a service not seen (or not gone) by then is missed
)

func TestEndToEnd(t *testing.T) {
	if os.Getenv("ECSR_E2E_BENCH") != "1" {
		t.Skip("a benchmark, not a test: run with ECSR_E2E_BENCH=1 (make bench)")
	}
	began := time.Now()
	glider := os.Getenv("ECSR_GLIDERLABS_BIN")
	if glider != "" {
		if _, err := os.Stat(glider); err != nil {
			t.Fatalf("ECSR_GLIDERLABS_BIN: %v", err)
		}
	}
	d := testenv.Docker(t)
	testenv.BuildWorkload(t, d)
	consul := testenv.StartConsul(t)
	a := consul.API()
	host := startECSHost(t, d)
	report := &bytes.Buffer{}
	out := func(format string, args ...any) { fmt.Fprintf(report, format+"\n", args...) }
	defer func() { fmt.Print("\n" + report.String()) }()

	dir := t.TempDir()
	bin := filepath.Join(dir, "ecs-registrator")
	// Built as the image ships it (Makefile): static, without cgo. A cgo build maps libc and the
	// dynamic loader too: 1.5 MiB more resident.
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/ecs-registrator/ecs-registrator/cmd/ecs-registrator")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := newBoard()
	go b.watchNode(ctx, consul.Addr(), consul.Node)
	go b.watchPassing(ctx, consul.Addr(), "drain")
	go b.watchDocker(ctx, d)
	b.wait(t, 30*time.Second, "the observers' first answers", func() bool { return b.nodeSeen && b.passSeen && b.dockerSeen })

	out("ecs-registrator end-to-end benchmark (%s, %d cores, %s)", time.Now().UTC().Format(time.DateOnly), numCPU(), kernel())
	out("observer: Consul blocking queries (catalog services of node %s; passing set of \"drain\"), Docker's event stream", consul.Node)
	out("ecs-registrator runs as on an ECS host: AWS's instance metadata emulator (read every second for Spot and Auto Scaling")
	out("notices) and a stand-in ECS agent (its task list read every second while task containers run); gliderlabs reads neither")

	// One agent write: a register's round trip (the floor's "one agent write"), and how long until the
	// observer sees the service. The difference (the agent's sync to the catalog and the blocking query's
	// answer) is in every lag below but not in the floor: it counts against the registrator.
	var rtts, writes []time.Duration
	for i := range 40 {
		id := fmt.Sprintf("rtt-%d", i)
		t0 := time.Now()
		if err := a.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: "rtt", Port: 1}); err != nil {
			t.Fatal(err)
		}
		rtts = append(rtts, time.Since(t0))
		b.waitPresent(t, id, true)
		writes = append(writes, b.seenAt(id).Sub(t0))
		if err := a.Agent().ServiceDeregister(id); err != nil {
			t.Fatal(err)
		}
		b.waitPresent(t, id, false)
	}
	write := pct(rtts, 50)
	out("consul agent register round trip (one agent write): p50 %v  p95 %v; register to seen by the observer: p50 %v  p95 %v",
		us(write), us(pct(rtts, 95)), us(pct(writes, 50)), us(pct(writes, 95)))

	// Part 1: latencies and the steady state, with a 5 s resync.
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ours := func(args ...string) *proc {
		return startProc(t, dir, "ecs-registrator", bin,
			append([]string{"-consul", consul.Addr(), "-ip", "127.0.0.1", "-listen", listen}, args...),
			host.env(), func(p *proc) { waitReady(t, p, listen) })
	}
	e := &env{t: t, d: d, b: b, consul: consul, host: host}
	subjects := []subject{{name: "ecs-registrator", prefix: "ecsr", start: func() *proc { return ours() }, restart: true, ecs: true}}
	if glider != "" {
		host := d.DaemonHost()
		subjects = append(subjects, subject{name: "gliderlabs", prefix: "glid", start: func() *proc {
			// gliderlabs/registrator's own command line and defaults; it finds Docker through DOCKER_HOST.
			return startProc(t, dir, "gliderlabs", glider, []string{"-ip", "127.0.0.1", "consul://" + consul.Addr()},
				[]string{"DOCKER_HOST=" + host}, func(p *proc) { p.waitLine(t, "Listening for Docker events") })
		}})
	}
	if os.Getenv("ECSR_E2E_SCALE_ONLY") == "1" { // the at-scale part alone, when only it changed
		scale := e.atScale(subjects)
		out("")
		printScale(out, scale)
		return
	}

	daemon := ours("-resync", resync.String(), "-log-level", "warn")
	pid := daemon.pid()
	out("")
	out("== ecs-registrator -resync %v -log-level warn: latencies", resync)
	out("daemon RSS with 0 containers: %s (peak so far %s)", vm(pid, "VmRSS"), vm(pid, "VmHWM"))

	// 1. Registration lag, from the container's StartedAt to the service seen in Consul, against the
	// floor: Docker's own delay until its start event, plus one agent write.
	var regLag, floor, share []time.Duration
	var regIDs []string
	for i := range regN {
		name := fmt.Sprintf("reg-%d-%d", os.Getpid(), i)
		id := testenv.Create(t, d, workload(name, "bench"))
		if err := d.ContainerStart(t.Context(), id, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		r := b.registration(t, d, id, name)
		regLag, floor, share = append(regLag, r.lag), append(floor, r.docker+write), append(share, r.share)
		regIDs = append(regIDs, id)
	}
	out("registration lag from StartedAt, %d sequential containers: p50 %v  p95 %v  p99 %v", regN, ms(pct(regLag, 50)), ms(pct(regLag, 95)), ms(pct(regLag, 99)))
	out("  floor (start event - StartedAt + one agent write):       p50 %v  p95 %v  p99 %v", ms(pct(floor, 50)), ms(pct(floor, 95)), ms(pct(floor, 99)))
	out("  ratio p50 lag / p50 floor: %.2f (target <= 3)", float64(pct(regLag, 50))/float64(pct(floor, 50)))
	out("  daemon's own share (seen - start event):                 p50 %v  p95 %v  p99 %v", ms(pct(share, 50)), ms(pct(share, 95)), ms(pct(share, 99)))
	out("daemon RSS with %d containers: %s (peak so far %s)", regN, vm(pid, "VmRSS"), vm(pid, "VmHWM"))
	t.Logf("registration lag done at %v", time.Since(began).Round(time.Second))

	// 2. Steady state: 100 services, a resync every 5 s, nothing happening.
	w0, cpu0 := consul.Writes(), cpuSeconds(pid)
	time.Sleep(steady) // a fixed measurement window, not synchronisation
	nw, cpu := consul.Writes()-w0, cpuSeconds(pid)-cpu0
	resyncs := float64(steady / resync)
	out("consul writes in %v of steady state (%.0f resyncs of %d services): %d, %.1f per resync", steady, resyncs, regN, nw, float64(nw)/resyncs)
	out("  CPU in those %v: %.2f s (%.2f%% of a core), about %.3f ms per container per resync", steady, cpu, cpu*100/steady.Seconds(), cpu*1000/resyncs/regN)

	// 3. Drain: a container that keeps serving 2 s after SIGTERM leaves the passing set long before it
	// exits. docker stop returns only then, so it runs in the background while the next one starts.
	var drain, drainShare []time.Duration
	var stops sync.WaitGroup
	var drainIDs []string
	for i := range drainN {
		name := fmt.Sprintf("drain-%d-%d", os.Getpid(), i)
		w := workload(name, "drain")
		w.Drain = 2 * time.Second
		id := testenv.Start(t, d, w)
		drainIDs = append(drainIDs, id)
		key := svcKey(name)
		b.wait(t, time.Minute, key+" passing", func() bool { return b.passing[key] })
		t0 := time.Now()
		stops.Go(func() { _ = d.ContainerStop(context.Background(), id, container.StopOptions{}) })
		b.wait(t, time.Minute, key+" out of the passing set", func() bool { return !b.passing[key] })
		b.waitEvent(t, id, events.ActionKill)
		drain = append(drain, b.offAt(key).Sub(t0))
		drainShare = append(drainShare, b.offAt(key).Sub(b.event(id, events.ActionKill)))
	}
	stops.Wait()
	t.Logf("drain done at %v", time.Since(began).Round(time.Second))
	out("drain lag, docker stop to out of the passing set, %d containers: p50 %v  p95 %v  max %v (target p95 <= 100ms)",
		drainN, ms(pct(drain, 50)), ms(pct(drain, 95)), ms(pct(drain, 100)))
	out("  daemon's share (after Docker's kill event):                 p50 %v  p95 %v  max %v",
		ms(pct(drainShare, 50)), ms(pct(drainShare, 95)), ms(pct(drainShare, 100)))

	// A clean slate for part 2: everything removed while the daemon still runs, so that it deregisters.
	removeAll(d, append(regIDs, drainIDs...))
	b.wait(t, 2*time.Minute, "part 1's services gone", func() bool { return b.countPresent("reg-") == 0 && b.countPresent("drain-") == 0 })
	daemon.stop()
	t.Logf("part 1 done at %v", time.Since(began).Round(time.Second))

	// Part 2: costs at the default flags (30 s resync, info logs), ours and, when given, gliderlabs's.
	var results []*costs
	for _, s := range subjects {
		results = append(results, e.run(s))
	}
	scale := e.atScale(subjects)
	out("")
	printCosts(out, results)
	out("")
	printScale(out, scale)
	out("wall clock of the run: %v", time.Since(began).Round(time.Second))
}

func workload(name, service string) testenv.Workload {
	return testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Labels: map[string]string{"SERVICE_NAME": service}}
}

// svcKey is what identifies a workload's service whoever registered it: ours are <node>:<name>:<port>,
// gliderlabs's <hostname>:<name>:<port>.
func svcKey(name string) string { return name + ":8080" }

type env struct {
	t      *testing.T
	d      *client.Client
	b      *board
	consul *testenv.Consul
	host   *ecsHost
}

// subject is a registrator under test.
type subject struct {
	name    string
	prefix  string       // of its containers' names
	start   func() *proc // starts it and waits until it is ready
	restart bool         // measure a restart with every container running (needs /readyz)
	ecs     bool         // reads the ECS agent and task metadata
}

type costs struct {
	name                           string
	rss0                           string
	churnCPU                       float64
	churnWall                      time.Duration
	churnEvents                    int
	reg, regShare                  []time.Duration
	dereg, deregShare              []time.Duration
	idleCPU                        float64
	burstConverged, burstLastStart time.Duration
	burstCPU                       float64
	burstEvents                    int
	rss, hwm                       string
	startup                        time.Duration
	startupWrites                  int
	startupRSS                     string
	restarted                      bool
	massDocker, massGone           time.Duration
	churnMissed, churnStale        int // never seen registered; never seen gone
	burstMissed, massStale         int
}

// run measures one registrator's costs: a churn of 60 containers, 20 s of idle, 150 started at once,
// its memory, optionally a restart with them running, and their removal at once. A service that is not
// seen within settle of Docker being done is counted as missed (or left stale) and the run goes on:
// gliderlabs's Docker client drops events it cannot hand over at once, so it misses some in a burst.
func (e *env) run(s subject) *costs {
	t, d, b := e.t, e.d, e.b
	c := &costs{name: s.name}
	p := s.start()
	c.rss0 = vm(p.pid(), "VmRSS")

	// Churn: one container at a time is created, started, seen registered, removed with rm -f and seen
	// gone. The CPU is the registrator's over the whole churn; the deregistration lag runs from the
	// ContainerRemove call to the service seen gone.
	ev0, cpu0, t0 := b.events(), cpuSeconds(p.pid()), time.Now()
	for i := range churnN {
		name := fmt.Sprintf("%s-churn-%d-%d", s.prefix, os.Getpid(), i)
		key := svcKey(name)
		id := testenv.Create(t, d, workload(name, "churn"))
		if err := d.ContainerStart(t.Context(), id, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		registered := b.waitUpTo(settle, func() bool { return b.present[key] })
		if registered {
			r := b.registration(t, d, id, name)
			c.reg, c.regShare = append(c.reg, r.lag), append(c.regShare, r.share)
		} else {
			c.churnMissed++
		}
		rm := time.Now()
		if err := d.ContainerRemove(t.Context(), id, container.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		b.waitEvent(t, id, events.ActionDestroy)
		if !registered {
			continue
		}
		if !b.waitUpTo(settle, func() bool { return !b.present[key] }) {
			c.churnStale++
			continue
		}
		c.dereg = append(c.dereg, b.goneAt(key).Sub(rm))
		c.deregShare = append(c.deregShare, b.goneAt(key).Sub(b.event(id, events.ActionKill)))
	}
	c.churnCPU, c.churnWall, c.churnEvents = cpuSeconds(p.pid())-cpu0, time.Since(t0), b.events()-ev0
	t.Logf("%s: churn done in %v", s.name, c.churnWall.Round(time.Millisecond))

	// Idle after the churn.
	cpu0 = cpuSeconds(p.pid())
	time.Sleep(idle) // a fixed measurement window, not synchronisation
	c.idleCPU = cpuSeconds(p.pid()) - cpu0

	// Burst: 150 containers created, then started at once. Converged when every one is seen registered;
	// the floor is Docker's own: its last start event.
	var ids []string
	for i := range runningN {
		ids = append(ids, testenv.Create(t, d, workload(fmt.Sprintf("%s-run-%d-%d", s.prefix, os.Getpid(), i), "running")))
	}
	prefix := fmt.Sprintf("%s-run-", s.prefix)
	ev0, cpu0, t0 = b.events(), cpuSeconds(p.pid()), time.Now()
	var startErrs atomic.Int32
	inParallel(ids, func(id string) {
		if err := d.ContainerStart(context.Background(), id, container.StartOptions{}); err != nil {
			startErrs.Add(1)
			t.Logf("start %.12s: %v", id, err)
		}
	})
	if startErrs.Load() > 0 {
		t.Fatalf("%d of %d containers did not start", startErrs.Load(), runningN)
	}
	if !b.waitUpTo(settle, func() bool { return b.countPresent(prefix) == runningN }) {
		b.locked(func() { c.burstMissed = runningN - b.countPresent(prefix) })
	}
	c.burstCPU, c.burstEvents = cpuSeconds(p.pid())-cpu0, b.events()-ev0
	var last time.Time
	for _, id := range ids {
		b.waitEvent(t, id, events.ActionStart)
		last = maxTime(last, b.event(id, events.ActionStart))
	}
	c.burstConverged, c.burstLastStart = b.lastSeen(prefix).Sub(t0), last.Sub(t0)
	c.rss, c.hwm = vm(p.pid(), "VmRSS"), vm(p.pid(), "VmHWM")
	t.Logf("%s: burst done in %v", s.name, time.Since(t0).Round(time.Millisecond))

	if s.restart {
		// A new process (same agent, which keeps the registrations) with every container running.
		p.stop()
		w0 := e.consul.Writes()
		t0 := time.Now()
		p = s.start()
		c.restarted, c.startup, c.startupWrites = true, p.readyAt.Sub(t0), e.consul.Writes()-w0
		c.startupRSS = fmt.Sprintf("%s (peak %s)", vm(p.pid(), "VmRSS"), vm(p.pid(), "VmHWM"))
	}

	// Everything removed at once.
	t0 = time.Now()
	removeAll(d, ids)
	c.massDocker = time.Since(t0)
	if !b.waitUpTo(settle, func() bool { return b.countPresent(prefix) == 0 }) {
		b.locked(func() { c.massStale = b.countPresent(prefix) })
	}
	c.massGone = b.lastGone(prefix).Sub(t0)
	p.stop()
	t.Logf("%s: mass removal done in %v", s.name, time.Since(t0).Round(time.Millisecond))
	return c
}

// rowPrinter prints a table row: a label, each registrator's figure, and the target if there is one.
func rowPrinter[C any](out func(string, ...any), rs []C) func(label, target string, f func(c C) string) {
	return func(label, target string, f func(c C) string) {
		line := fmt.Sprintf("  %-44s", label)
		for _, c := range rs {
			line += fmt.Sprintf(" %-32s", f(c))
		}
		if target != "" {
			line += " target " + target
		}
		out("%s", strings.TrimRight(line, " "))
	}
}

func printCosts(out func(string, ...any), rs []*costs) {
	out("== costs at the default flags (ecs-registrator: 30 s resync, info logs; gliderlabs: its defaults, -ip 127.0.0.1)")
	out("churn: %d containers one at a time: create, start, seen registered, rm -f, seen gone; then %v idle", churnN, idle)
	out("(the idle window may or may not hold one of ecs-registrator's 30 s resyncs; gliderlabs has none by default)")
	row := rowPrinter(out, rs)
	row("", "", func(c *costs) string { return c.name })
	row("RSS at start, no containers", "", func(c *costs) string { return c.rss0 })
	row("churn CPU (utime+stime)", "<= gliderlabs (issue: 410ms)", func(c *costs) string {
		return fmt.Sprintf("%.0fms (%.1fs wall, %d events)", c.churnCPU*1000, c.churnWall.Seconds(), c.churnEvents)
	})
	row("churn: never seen registered / never gone", "0 / 0", func(c *costs) string {
		return fmt.Sprintf("%d / %d", c.churnMissed, c.churnStale)
	})
	row("registration lag from StartedAt p50/p95", "", func(c *costs) string { return p50p95(c.reg) })
	row("  after Docker's start event p50/p95", "", func(c *costs) string { return p50p95(c.regShare) })
	row("deregistration lag, rm -f to gone p50/p95", "p95 <= ~60ms", func(c *costs) string { return p50p95(c.dereg) })
	row("  max", "", func(c *costs) string { return ms(pct(c.dereg, 100)) })
	row("  after Docker's kill event p50/p95", "", func(c *costs) string { return p50p95(c.deregShare) })
	row(fmt.Sprintf("idle CPU, %v after the churn", idle), "<= 0.25% of a core", func(c *costs) string {
		return fmt.Sprintf("%.0fms (%.2f%% of a core)", c.idleCPU*1000, c.idleCPU*100/idle.Seconds())
	})
	row(fmt.Sprintf("burst of %d starts: all registered at", runningN), "", func(c *costs) string {
		if c.burstMissed > 0 {
			return fmt.Sprintf("never: %d missed (%v after)", c.burstMissed, settle)
		}
		return ms(c.burstConverged)
	})
	row("  Docker's last start event at", "", func(c *costs) string { return ms(c.burstLastStart) })
	row("  CPU for the burst", "", func(c *costs) string {
		return fmt.Sprintf("%.0fms, %.2fs per 1000 events", c.burstCPU*1000, c.burstCPU*1000/float64(max(c.burstEvents, 1)))
	})
	row(fmt.Sprintf("RSS with %d registered (peak since start)", runningN), "peak <= 20 MB (19.1 MiB)", func(c *costs) string {
		return fmt.Sprintf("%s (peak %s)", c.rss, c.hwm)
	})
	if slices.ContainsFunc(rs, func(c *costs) bool { return c.restarted }) {
		row(fmt.Sprintf("restart with %d running: ready after exec", runningN), "0 writes", func(c *costs) string {
			if !c.restarted {
				return "-"
			}
			return fmt.Sprintf("%s, %d consul writes", ms(c.startup), c.startupWrites)
		})
		row("  RSS after its first sync", "", func(c *costs) string {
			if !c.restarted {
				return "-"
			}
			return c.startupRSS
		})
	}
	row(fmt.Sprintf("%d removed at once: Docker took", runningN), "", func(c *costs) string { return ms(c.massDocker) })
	row("  all seen gone at", "", func(c *costs) string {
		if c.massStale > 0 {
			return fmt.Sprintf("never: %d left (%v after)", c.massStale, settle)
		}
		return ms(c.massGone)
	})
}

func p50p95(d []time.Duration) string { return ms(pct(d, 50)) + " / " + ms(pct(d, 95)) }

func inParallel(ids []string, f func(id string)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for _, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(id)
		})
	}
	wg.Wait()
}

func removeAll(d *client.Client, ids []string) {
	inParallel(ids, func(id string) { _ = d.ContainerRemove(context.Background(), id, container.RemoveOptions{Force: true}) })
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// board is what the observers have seen, each change stamped with the time its answer arrived.
// Waiters block on changed (closed and replaced on every update) instead of polling.
type board struct {
	mu      sync.Mutex
	changed chan struct{}

	// The catalog's services of the agent's node (the agent syncs them at once on every change), by
	// svcKey-compatible ID suffix: the ID without its "<node>:" prefix.
	nodeSeen           bool
	present            map[string]bool
	appeared, vanished map[string]time.Time

	// The passing set of one service name, keyed likewise.
	passSeen bool
	passing  map[string]bool
	passOff  map[string]time.Time

	// Docker: each container's events by action, at Docker's own timestamps (TimeNano).
	dockerSeen bool
	byID       map[string]map[events.Action]time.Time
	nEvents    int // container events a registrator receives too (exec_* of health probes excluded)

	errs []string // observer errors, reported when a wait times out
}

func newBoard() *board {
	return &board{changed: make(chan struct{}), present: map[string]bool{}, appeared: map[string]time.Time{},
		vanished: map[string]time.Time{}, passing: map[string]bool{}, passOff: map[string]time.Time{},
		byID: map[string]map[events.Action]time.Time{}}
}

func (b *board) update(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f()
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *board) fail(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errs) < 20 {
		b.errs = append(b.errs, fmt.Sprintf(format, args...))
	}
}

// wait blocks until cond (called with the board locked) holds, woken by the observers' updates.
func (b *board) wait(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !b.waitUpTo(timeout, cond) {
		b.mu.Lock()
		defer b.mu.Unlock()
		t.Fatalf("after %v: waiting for %s (observer errors: %v)", timeout, what, b.errs)
	}
}

// waitUpTo is wait that returns false on a timeout instead of failing the test.
func (b *board) waitUpTo(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		ok, ch := cond(), b.changed
		b.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

func (b *board) waitPresent(t testing.TB, key string, want bool) {
	t.Helper()
	b.wait(t, time.Minute, fmt.Sprintf("%s present=%v", key, want), func() bool { return b.present[key] == want })
}

func (b *board) waitEvent(t testing.TB, id string, action events.Action) {
	t.Helper()
	b.wait(t, time.Minute, fmt.Sprintf("%s event of %.12s", action, id), func() bool { return !b.byID[id][action].IsZero() })
}

func (b *board) locked(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f()
}

func (b *board) seenAt(key string) (t time.Time) { b.locked(func() { t = b.appeared[key] }); return }
func (b *board) goneAt(key string) (t time.Time) { b.locked(func() { t = b.vanished[key] }); return }
func (b *board) offAt(key string) (t time.Time)  { b.locked(func() { t = b.passOff[key] }); return }
func (b *board) events() (n int)                 { b.locked(func() { n = b.nEvents }); return }
func (b *board) event(id string, a events.Action) (t time.Time) {
	b.locked(func() { t = b.byID[id][a] })
	return
}

// countPresent counts the services whose key starts with prefix; call it inside wait's cond.
func (b *board) countPresent(prefix string) int {
	n := 0
	for k, ok := range b.present {
		if ok && strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

func (b *board) lastSeen(prefix string) (t time.Time) {
	b.locked(func() {
		for k, at := range b.appeared {
			if strings.HasPrefix(k, prefix) {
				t = maxTime(t, at)
			}
		}
	})
	return
}

func (b *board) lastGone(prefix string) (t time.Time) {
	b.locked(func() {
		for k, at := range b.vanished {
			if strings.HasPrefix(k, prefix) {
				t = maxTime(t, at)
			}
		}
	})
	return
}

type registration struct {
	lag    time.Duration // StartedAt to seen in Consul
	docker time.Duration // StartedAt to Docker's start event
	share  time.Duration // Docker's start event to seen in Consul
}

// registration waits until the container's service is seen and its start event has arrived, then
// inspects it (the daemon is done with it by then) for StartedAt.
func (b *board) registration(t testing.TB, d *client.Client, id, name string) registration {
	t.Helper()
	key := svcKey(name)
	b.waitPresent(t, key, true)
	b.waitEvent(t, id, events.ActionStart)
	in := testenv.Inspect(t, d, id)
	started, err := time.Parse(time.RFC3339Nano, in.State.StartedAt)
	if err != nil {
		t.Fatalf("%s: StartedAt %q: %v", name, in.State.StartedAt, err)
	}
	seen, ev := b.seenAt(key), b.event(id, events.ActionStart)
	return registration{lag: seen.Sub(started), docker: ev.Sub(started), share: seen.Sub(ev)}
}

// blocking runs Consul blocking queries on path (index-based, X-Consul-Index) until ctx ends, and hands
// each answer's body to f with the time the answer arrived.
func (b *board) blocking(ctx context.Context, addr, path string, f func(at time.Time, body []byte) error) {
	var index uint64
	hc := &http.Client{}
	for ctx.Err() == nil {
		q := url.Values{"index": {strconv.FormatUint(index, 10)}, "wait": {"30s"}}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path+sep+q.Encode(), nil)
		resp, err := hc.Do(req)
		at := time.Now()
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("%s", resp.Status)
			resp.Body.Close()
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			b.fail("%s: %v", path, err)
			// Only after an error: wait before asking again (the agent is restarting or gone).
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			err = f(at, body)
		}
		if err != nil {
			b.fail("%s: %v", path, err)
		}
		next, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
		if next < index || next == 0 {
			next = 0 // the index went backwards: start over, as Consul's documentation says
		}
		index = next
	}
}

// keyOf is a service ID without its "<node>:" prefix, when it has one.
func keyOf(id string) string {
	if _, rest, ok := strings.Cut(id, ":"); ok {
		return rest
	}
	return id
}

// watchNode follows the catalog's services of the agent's node. The agent endpoint /v1/agent/services
// cannot block (Consul documents it "Blocking Queries: NO", and v1.14.11 ignores ?hash there), so the
// observer follows the catalog, which the agent updates right after each local change (its anti-entropy
// partial sync); the run reports how long that takes after a register returns.
func (b *board) watchNode(ctx context.Context, addr, node string) {
	b.blocking(ctx, addr, "/v1/catalog/node-services/"+url.PathEscape(node), func(at time.Time, body []byte) error {
		var r struct{ Services []struct{ ID string } }
		if err := json.Unmarshal(body, &r); err != nil {
			return err
		}
		now := map[string]bool{}
		for _, s := range r.Services {
			now[keyOf(s.ID)] = true
		}
		b.update(func() {
			b.nodeSeen = true
			for k := range now {
				if !b.present[k] {
					b.present[k], b.appeared[k] = true, at
				}
			}
			for k, ok := range b.present {
				if ok && !now[k] {
					b.present[k], b.vanished[k] = false, at
				}
			}
		})
		return nil
	})
}

// watchPassing follows the passing instances of one service name.
func (b *board) watchPassing(ctx context.Context, addr, name string) {
	b.blocking(ctx, addr, "/v1/health/service/"+url.PathEscape(name)+"?passing=1", func(at time.Time, body []byte) error {
		var r []struct{ Service struct{ ID string } }
		if err := json.Unmarshal(body, &r); err != nil {
			return err
		}
		now := map[string]bool{}
		for _, e := range r {
			now[keyOf(e.Service.ID)] = true
		}
		b.update(func() {
			b.passSeen = true
			for k := range now {
				b.passing[k] = true
			}
			for k, ok := range b.passing {
				if ok && !now[k] {
					b.passing[k], b.passOff[k] = false, at
				}
			}
		})
		return nil
	})
}

// watchDocker records Docker's container events at their own timestamps.
func (b *board) watchDocker(ctx context.Context, d *client.Client) {
	msgs, errs := d.Events(ctx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", "container"))})
	// Events subscribes in the background; the first container of the run starts long after that.
	b.update(func() { b.dockerSeen = true })
	for {
		select {
		case m := <-msgs:
			if strings.HasPrefix(string(m.Action), "exec_") {
				continue
			}
			at := time.Unix(0, m.TimeNano)
			b.update(func() {
				b.nEvents++
				if b.byID[m.Actor.ID] == nil {
					b.byID[m.Actor.ID] = map[events.Action]time.Time{}
				}
				if b.byID[m.Actor.ID][m.Action].IsZero() {
					b.byID[m.Actor.ID][m.Action] = at
				}
			})
		case err := <-errs:
			if ctx.Err() == nil {
				b.fail("docker events: %v", err)
			}
			return
		}
	}
}

// proc is a registrator process; its output goes to a log file in the test's directory.
type proc struct {
	t       testing.TB
	name    string
	cmd     *exec.Cmd
	logPath string
	readyAt time.Time

	mu    sync.Mutex
	lines chan string // output lines while someone waits for one
}

// startProc starts bin and waits with ready until it is ready; it is killed when the test ends.
func startProc(t testing.TB, dir, name, bin string, args, env []string, ready func(*proc)) *proc {
	t.Helper()
	f, err := os.CreateTemp(dir, name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, logPath: f.Name(), lines: make(chan string, 1024)}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	go func() {
		defer f.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(f, sc.Text())
			p.mu.Lock()
			if p.lines != nil {
				select {
				case p.lines <- sc.Text():
				default:
				}
			}
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	ready(p)
	p.readyAt = time.Now()
	p.mu.Lock()
	p.lines = nil // nobody waits any more
	p.mu.Unlock()
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitLine waits for an output line that contains s.
func (p *proc) waitLine(t testing.TB, s string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, s) {
				return
			}
		case <-timeout:
			t.Fatalf("%s did not print %q in 30s:\n%s", p.name, s, p.logTail())
		}
	}
}

// stop sends SIGTERM and waits for the process to exit.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// waitReady polls /readyz every 10 ms: readiness has no push signal. It runs only while a daemon starts,
// never during a CPU or lag measurement other than the startup's own.
func waitReady(t testing.TB, p *proc, listen string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready in 30s:\n%s", p.name, p.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cpuSeconds is the process's user and system CPU time, from /proc/<pid>/stat (10 ms ticks).
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

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, max(0, (len(s)*p+99)/100-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)) }

// vm reads one of /proc/<pid>/status's memory lines (VmRSS now, VmHWM the peak).
func vm(pid int, field string) string {
	m := vmMiB(pid, field)
	if m < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1f MiB", m)
}

func vmMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.Atoi(strings.Fields(v)[0])
			return float64(kb) / 1024
		}
	}
	return -1
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
