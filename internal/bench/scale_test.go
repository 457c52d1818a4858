package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// The at-scale part: with backgroundN containers running and registered, each registrator's idle CPU
// (a window that holds one of ecs-registrator's 30 s resyncs), the registration lag of scaleRegN
// containers started one at a time, and its peak RSS. The background containers are started once and
// shared; between registrators the agent is emptied.
const (
	backgroundN = 300
	scaleRegN   = 30
	scaleIdle   = 32 * time.Second
)

type scaleCosts struct {
	name       string
	synced     time.Duration // from exec to every background service seen
	enriched   time.Duration // from exec to the last task metadata read of the start
	idleCPU    float64
	idleAgent  int64 // requests to the ECS agent's introspection API in the idle window
	idleTMDS   int64 // and to task metadata
	reg, share []time.Duration
	rss, hwm   string
	missed     int
}

// watchService follows the catalog's instances of one service name into the board, as watchNode does
// for the whole node: the at-scale part watches only the names it measures, so that the observer does
// not decode hundreds of services on every change.
func (b *board) watchService(ctx context.Context, addr, name string) {
	mine := map[string]bool{}
	b.blocking(ctx, addr, "/v1/catalog/service/"+url.PathEscape(name), func(at time.Time, body []byte) error {
		var r []struct{ ServiceID string }
		if err := json.Unmarshal(body, &r); err != nil {
			return err
		}
		now := map[string]bool{}
		for _, s := range r {
			now[keyOf(s.ServiceID)] = true
		}
		b.update(func() {
			for k := range now {
				if !b.present[k] {
					b.present[k], b.appeared[k] = true, at
				}
				mine[k] = true
			}
			for k := range mine {
				if b.present[k] && !now[k] {
					b.present[k], b.vanished[k] = false, at
				}
			}
		})
		return nil
	})
}

// atScale starts the background containers, measures every subject against them, and removes them.
func (e *env) atScale(subjects []subject) []*scaleCosts {
	t, d, b := e.t, e.d, e.b
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.watchService(ctx, e.consul.Addr(), "background")
	go b.watchService(ctx, e.consul.Addr(), "scale")

	var bg []string
	// The background are ECS task containers, one per task, as on an ECS host: the daemon reads the
	// agent's list of their tasks every second.
	for i := range backgroundN {
		bg = append(bg, testenv.Create(t, d, taskWorkload("bg", i, "background")))
	}
	var startErrs atomic.Int32
	inParallel(bg, func(id string) {
		if err := d.ContainerStart(context.Background(), id, container.StartOptions{}); err != nil {
			startErrs.Add(1)
			t.Logf("start %.12s: %v", id, err)
		}
	})
	defer removeAll(d, bg)
	if startErrs.Load() > 0 {
		t.Fatalf("%d of %d background containers did not start", startErrs.Load(), backgroundN)
	}
	e.host.refresh(t)
	bgPrefix := "ecs-bg-7-app-"

	var out []*scaleCosts
	for _, s := range subjects {
		c := &scaleCosts{name: s.name}
		t0 := time.Now()
		p := s.start()
		b.wait(t, 3*time.Minute, s.name+" registering the background", func() bool { return b.countPresent(bgPrefix) == backgroundN })
		c.synced = b.lastSeen(bgPrefix).Sub(t0)

		// Then the ECS enrichment of 300 tasks finishes: task metadata is read at most 10 times a
		// second (a quarter of the agent's limit). Idle starts once no read came for 3 s.
		if s.ecs {
			c.enriched = e.host.quiet(t, 3*time.Second, 2*time.Minute).Sub(t0)
		}
		cpu0 := cpuSeconds(p.pid())
		agent0, tmds0 := e.host.requests()
		time.Sleep(scaleIdle) // a fixed measurement window, not synchronisation
		c.idleCPU = cpuSeconds(p.pid()) - cpu0
		agent1, tmds1 := e.host.requests()
		c.idleAgent, c.idleTMDS = agent1-agent0, tmds1-tmds0

		for i := range scaleRegN {
			name := fmt.Sprintf("%s-scale-%d-%d", s.prefix, os.Getpid(), i)
			key := svcKey(name)
			id := testenv.Start(t, d, workload(name, "scale"))
			if !b.waitUpTo(settle, func() bool { return b.present[key] }) {
				c.missed++
			} else {
				r := b.registration(t, d, id, name)
				c.reg, c.share = append(c.reg, r.lag), append(c.share, r.share)
			}
			if err := d.ContainerRemove(t.Context(), id, container.RemoveOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
			b.waitEvent(t, id, events.ActionDestroy)
			b.waitUpTo(settle, func() bool { return !b.present[key] })
		}
		c.rss, c.hwm = vm(p.pid(), "VmRSS"), vm(p.pid(), "VmHWM")
		p.stop()

		// Neither registrator deregisters when it stops: the next one starts from an empty agent.
		a := e.consul.API().Agent()
		svcs, err := a.Services()
		if err != nil {
			t.Fatal(err)
		}
		for id := range svcs {
			if err := a.ServiceDeregister(id); err != nil {
				t.Fatal(err)
			}
		}
		b.wait(t, time.Minute, "the background's services gone", func() bool { return b.countPresent(bgPrefix) == 0 })
		t.Logf("%s: at scale done in %v", s.name, time.Since(t0).Round(time.Second))
		out = append(out, c)
	}
	return out
}

func printScale(out func(string, ...any), rs []*scaleCosts) {
	out("== with %d containers running and registered (ecs-registrator: 30 s resync, info logs; gliderlabs: its defaults)", backgroundN)
	row := rowPrinter(out, rs)
	row("", "", func(c *scaleCosts) string { return c.name })
	row(fmt.Sprintf("all %d registered, from exec", backgroundN), "", func(c *scaleCosts) string { return ms(c.synced) })
	row("  ECS task metadata of all read, from exec", "", func(c *scaleCosts) string {
		if c.enriched == 0 {
			return "-"
		}
		return ms(c.enriched)
	})
	row(fmt.Sprintf("idle CPU over %v", scaleIdle), "<= 0.25% of a core", func(c *scaleCosts) string {
		return fmt.Sprintf("%.0fms (%.2f%% of a core)", c.idleCPU*1000, c.idleCPU*100/scaleIdle.Seconds())
	})
	row("  ECS agent requests in it: introspection / task metadata", "", func(c *scaleCosts) string {
		return fmt.Sprintf("%d / %d", c.idleAgent, c.idleTMDS)
	})
	row(fmt.Sprintf("registration lag, %d one at a time, p50/p95", scaleRegN), "p50 <= gliderlabs", func(c *scaleCosts) string {
		if c.missed > 0 {
			return fmt.Sprintf("%s (%d never seen)", p50p95(c.reg), c.missed)
		}
		return p50p95(c.reg)
	})
	row("  after Docker's start event p50/p95", "", func(c *scaleCosts) string { return p50p95(c.share) })
	row("RSS at the end (peak since start)", "peak <= 20 MB (19.1 MiB)", func(c *scaleCosts) string {
		return fmt.Sprintf("%s (peak %s)", c.rss, c.hwm)
	})
}
