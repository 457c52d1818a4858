package registrator

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// work evaluates queued containers until the queue shuts down. Workers run in parallel; none of them
// writes to Consul or decides who owns a service ID.
func (r *Registrator) work(ctx context.Context) error {
	for {
		id, ok := r.queue.get()
		if !ok {
			return ctx.Err()
		}
		ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
		began := time.Now()
		err := r.evaluate(ectx, id)
		r.metrics.evaluate.Observe(time.Since(began).Seconds())
		cancel()
		switch {
		case err == nil:
			r.queue.forget(id)
		case ctx.Err() != nil:
		default:
			d := r.queue.retry(id, 10*time.Second)
			r.containerLog(id).Warn("evaluating the container failed; retrying", "err", err, "retry_in", d)
		}
		r.queue.done(id)
	}
}

// evaluate brings one container's record up to date: it inspects the container when Docker said
// something since the last look (else the last inspect is reused, e.g. when only ECS metadata
// changed), then works out its ECS task and desired services. A container Docker no longer has
// leaves the store.
func (r *Registrator) evaluate(ctx context.Context, id string) error {
	rec := r.store.get(id)
	var c desired.Container
	if rec == nil || rec.stale || !rec.evaluated() {
		r.store.inspecting(id) // an event from now on marks it stale again
		in, err := r.docker.ContainerInspect(ctx, id)
		if cerrdefs.IsNotFound(err) {
			r.forget(id)
			return nil
		}
		if err != nil {
			r.store.markStale(id)
			r.metrics.fail(errDockerInspect)
			return fmt.Errorf("inspect: %w", err)
		}
		c = desired.FromInspect(in)
		if netID, ok := strings.CutPrefix(c.NetworkMode, "container:"); ok {
			if other, err := r.docker.ContainerInspect(ctx, netID); err == nil {
				c.JoinNetwork(desired.FromInspect(other))
			}
		}
		if r.cfg.InspectTags != nil {
			c.InspectTags, c.InspectTagsErr = r.cfg.InspectTags.Render(in)
		}
	} else {
		c = *rec.container
	}

	opts := desired.Options{Node: cmp.Or(r.cfg.IDPrefix, *r.node.Load()), AdvertiseIP: r.cfg.AdvertiseIP, Internal: r.cfg.Internal,
		OptIn: r.cfg.OptIn, Tags: r.cfg.Tags, HealthTTL: r.cfg.HealthTTL, Gliderlabs: r.cfg.Gliderlabs, IPFromLabel: r.cfg.IPFromLabel,
		Policy: r.cfg.Policy}
	c.Task = nil
	if r.cfg.ECS != nil {
		opts.Host = r.cfg.ECS.Host()
		ref := ecsmeta.Ref{ID: c.ID, Labels: c.Labels, Env: c.Env, Running: c.Running, Wanted: desired.Wanted(c, opts), DockerHealth: c.HasHealthcheck}
		if t, ok := r.cfg.ECS.Lookup(ref); ok {
			c.Task = &t
		}
	} else if t, ok := ecsmeta.FromLabels(c.Labels); ok {
		c.Task = &t
	}
	res := desired.Desired(c, opts) // whether it drains is the planner's call
	old, cur := r.store.evaluated(id, &c, res)
	if old == nil || !sameAdvert(old, cur) {
		r.store.notify()
	}
	r.noteDrain(old, cur)
	r.noteProblems(ctx, old, cur)
	return nil
}

// forget drops a container Docker no longer has; the planner then deregisters what it held.
func (r *Registrator) forget(id string) {
	if r.cfg.ECS != nil {
		r.cfg.ECS.Forget(id)
	}
	r.store.remove(id)
}

// sameAdvert reports whether two records of a container lead the planner to the same services.
func sameAdvert(a, b *record) bool {
	if a.running() != b.running() || a.drainWhy() != b.drainWhy() || a.evaluated() != b.evaluated() ||
		len(a.services) != len(b.services) {
		return false
	}
	if a.evaluated() && !a.container.StartedAt.Equal(b.container.StartedAt) {
		return false
	}
	for i, s := range a.services {
		o := b.services[i]
		if !s.Equal(o) || (s.Health == nil) != (o.Health == nil) || (s.Health != nil && *s.Health != *o.Health) {
			return false
		}
	}
	return true
}

// noteDrain counts and shows a container that starts draining.
func (r *Registrator) noteDrain(old, cur *record) {
	why := cur.drainWhy()
	if why == "" || (old != nil && old.drainWhy() != "") {
		return
	}
	r.metrics.drains.Inc()
	r.activity.add(Event{Container: shortID(cur.id), Name: nameOf(cur), Source: "reconcile", Action: "draining", Detail: why})
}

// noteProblems logs a container's problems when they change, not on every resync.
func (r *Registrator) noteProblems(ctx context.Context, old, cur *record) {
	if old != nil && old.evaluated() && slices.Equal(old.problems, cur.problems) && old.skipped == cur.skipped {
		return
	}
	log := r.containerLog(cur.id)
	for _, p := range cur.problems {
		level, msg := slog.LevelWarn, "bad service definition"
		switch {
		case p.Refused != "":
			level, msg = slog.LevelError, "refused by the registration policy"
			r.metrics.refuse(p.Refused)
		case p.Severity == desired.SeverityError:
			level = slog.LevelError
			r.metrics.fail(errBadDefinition)
		}
		if level == slog.LevelError {
			r.activity.add(Event{Container: shortID(cur.id), Name: nameOf(cur), Source: "reconcile", Action: "kept out", Detail: p.String()})
		}
		log.Log(ctx, level, msg, "key", p.Key, "problem", p.Message)
	}
	if cur.skipped != "" {
		log.Debug("not registered", "reason", cur.skipped)
	}
}

func (r *Registrator) containerLog(id string) *slog.Logger {
	return r.log.With("component", "evaluate", "container", shortID(id), "name", nameOf(r.store.get(id)))
}
