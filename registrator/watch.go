package registrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/retry"
)

// watchDocker subscribes to container events, then re-lists, on every (re)connect.
func (r *Registrator) watchDocker(ctx context.Context) error {
	log := r.log.With("component", "docker")
	b := retry.Backoff(5 * time.Second)
	for {
		start := time.Now()
		err := r.streamEvents(ctx, log)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			err = errors.New("event stream ended")
		}
		r.dockerUp.Record(err)
		r.metrics.fail(errDockerEvents)
		// A stream that was healthy for a while failed for a new reason: retry quickly.
		if time.Since(start) > time.Minute {
			b.Reset()
		}
		d := b.NextBackOff()
		log.Warn("docker event stream ended; reconnecting", "err", err, "retry_in", d)
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

func (r *Registrator) streamEvents(ctx context.Context, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)))}
	if last := r.lastEvent.Load(); last > 0 {
		opts.Since = fmt.Sprintf("%d.%09d", last/1e9, last%1e9)
	}
	msgs, errs := r.docker.Events(ctx, opts)
	// Subscribed first, listed second: nothing that happens in between is missed.
	if err := r.relist(ctx); err != nil {
		return err
	}
	r.dockerUp.Record(nil)
	r.queue.retryNow()
	log.Info("watching docker events")
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			if err == nil {
				err = errors.New("stream closed")
			}
			return err
		case m := <-msgs:
			r.handleEvent(m)
		}
	}
}

// relist marks every container Docker lists, and every container the store knows, for a fresh
// inspect: after a reconnect, events may have been missed for any of them.
func (r *Registrator) relist(ctx context.Context) error {
	if _, err := r.markListed(ctx, true); err != nil {
		return err
	}
	for _, id := range r.store.ids() {
		r.store.markStale(id)
		r.queue.add(id)
	}
	return nil
}

// handleEvent notes a Docker event in the container's record and queues the container for an
// evaluation, which inspects it: only which container changed matters. A stop is the exception: a
// kill, die or destroy tells all there is to know (the container is stopping, has stopped, is gone),
// so it takes the container's services out at once, without an inspect, which Docker would hold up
// while it kills and removes the container.
func (r *Registrator) handleEvent(m events.Message) {
	if m.Type != events.ContainerEventType || m.Actor.ID == "" {
		return
	}
	if m.TimeNano > r.lastEvent.Load() {
		r.lastEvent.Store(m.TimeNano)
	}
	action := string(m.Action)
	if strings.HasPrefix(action, "exec_") || slices.Contains(ignoredActions, action) {
		return // every health probe makes three exec_ events
	}
	id, at := m.Actor.ID, time.Unix(0, m.TimeNano)
	r.activity.add(Event{Time: at, Container: shortID(id), Name: m.Actor.Attributes["name"], Source: "docker",
		Action: action, Detail: eventDetail(m)})
	if action == "destroy" {
		r.forget(id)
		return
	}
	stop := slices.Contains(stopActions, action)
	old, cur := r.store.dockerEvent(id, action, m.Actor.Attributes, at, !stop)
	if old != nil && (old.running() != cur.running() || old.drainWhy() != cur.drainWhy()) {
		r.store.notify()
	}
	if action == "die" && r.cfg.ECS != nil && cur.evaluated() {
		// No inspect follows: tell the enricher here that the container stopped, so that a stopped
		// task's background fetching ends although ECS keeps its containers for hours.
		r.cfg.ECS.Lookup(ecsmeta.Ref{ID: id, Labels: cur.container.Labels, Env: cur.container.Env})
	}
	r.noteDrain(old, cur)
	if !stop || !cur.evaluated() {
		r.queue.add(id)
	}
}

// stopActions need no inspect once the container is known: its process is being signalled or has
// exited; a restart comes with its own start event.
var stopActions = []string{"kill", "die", "stop", "oom"}

func eventDetail(m events.Message) string {
	if sig := m.Actor.Attributes["signal"]; sig != "" {
		return "signal " + sig
	}
	if code := m.Actor.Attributes["exitCode"]; code != "" {
		return "exit code " + code
	}
	return ""
}

// markListed puts every container Docker lists in the store, for a fresh inspect: all of them, or
// only those the list shows otherwise than their records do (listedAsKnown), and those the store
// knows but Docker no longer lists. It returns the containers it marked. The event stream keeps
// records current; a periodic resync re-inspects what it may have missed (Docker drops events for a
// subscriber that falls behind), not every container, which with hundreds of them was most of an
// idle daemon's CPU.
func (r *Registrator) markListed(ctx context.Context, all bool) ([]string, error) {
	list, err := r.docker.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		r.metrics.fail(errDockerList)
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var marked []string
	listed := make(map[string]bool, len(list))
	for _, c := range list {
		listed[c.ID] = true
		if all || !listedAsKnown(r.store.get(c.ID), c) {
			r.store.markStale(c.ID)
			marked = append(marked, c.ID)
		}
	}
	for _, id := range r.store.ids() {
		if !listed[id] {
			r.store.markStale(id) // its inspect finds it gone
			marked = append(marked, id)
		}
	}
	return marked, nil
}

// listedAsKnown reports whether Docker's list entry of a container agrees with its record on what
// decides its services: whether it runs, its health, its published ports and its addresses. A
// container on another's network namespace shows neither ports nor addresses in the list: it never
// agrees.
func listedAsKnown(rec *record, c container.Summary) bool {
	if rec == nil || rec.stale || !rec.evaluated() || rec.running() != (c.State == container.StateRunning) {
		return false
	}
	k := rec.container
	if k.HasHealthcheck && rec.running() && listedHealth(c.Status) != k.HealthStatus {
		return false
	}
	type published struct {
		port     uint16
		proto    string
		hostPort uint16
	}
	var listedPorts, knownPorts []published
	for _, p := range c.Ports {
		if p.PublicPort != 0 {
			listedPorts = append(listedPorts, published{p.PrivatePort, p.Type, p.PublicPort})
		}
	}
	for _, p := range k.Ports {
		if p.HostPort != 0 {
			knownPorts = append(knownPorts, published{uint16(p.Port), p.Proto, uint16(p.HostPort)})
		}
	}
	// The list shows a port once per host address it is bound to; the record holds the one chosen.
	for _, p := range knownPorts {
		if !slices.Contains(listedPorts, p) {
			return false
		}
	}
	for _, p := range listedPorts {
		if !slices.ContainsFunc(knownPorts, func(q published) bool { return q.port == p.port && q.proto == p.proto }) {
			return false
		}
	}
	var ips []netip.Addr
	if ns := c.NetworkSettings; ns != nil {
		for _, ep := range ns.Networks {
			if ep == nil {
				continue
			}
			for _, s := range []string{ep.IPAddress, ep.GlobalIPv6Address} {
				if ip, err := netip.ParseAddr(s); err == nil {
					ips = append(ips, ip)
				}
			}
		}
	}
	if len(ips) != len(k.IPs) {
		return false
	}
	for _, ip := range ips {
		if !slices.Contains(k.IPs, ip) {
			return false
		}
	}
	return true
}

// listedHealth reads a container's health from the list's status text ("Up 5 minutes (healthy)").
func listedHealth(status string) string {
	switch {
	case strings.HasSuffix(status, "(healthy)"):
		return container.Healthy
	case strings.HasSuffix(status, "(unhealthy)"):
		return container.Unhealthy
	case strings.HasSuffix(status, "(health: starting)"):
		return container.Starting
	}
	return ""
}

// ignoredActions cannot change what a container should advertise.
var ignoredActions = []string{"attach", "detach", "resize", "top", "copy", "archive-path", "extract-to-dir", "export", "commit", "create"}

// ecsChanged is told by the Enricher which container's task metadata changed ("" for the host's). The
// container is evaluated again from its last inspect: Docker said nothing new.
func (r *Registrator) ecsChanged(id string) {
	if id != "" {
		r.queue.add(id)
		return
	}
	for _, id := range r.store.ids() {
		r.queue.add(id)
	}
}
