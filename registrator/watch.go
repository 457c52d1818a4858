package registrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	if err := r.markListed(ctx); err != nil {
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

// markListed puts every container Docker lists in the store, for a fresh inspect.
func (r *Registrator) markListed(ctx context.Context) error {
	list, err := r.docker.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		r.metrics.fail(errDockerList)
		return fmt.Errorf("list containers: %w", err)
	}
	for _, c := range list {
		r.store.markStale(c.ID)
	}
	return nil
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
