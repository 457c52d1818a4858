package registrator

import (
	"context"
	"time"
)

// HostLifecycle says whether the whole host is about to go away (an EC2 Spot interruption, an Auto
// Scaling scale-in); ecsmeta.Lifecycle is one. While it is, every running container drains (per
// Config.Drain) and new ones are kept out.
type HostLifecycle interface {
	// Draining is why the host is going away, "" while it is not.
	Draining() string
	// Changed receives a value when Draining's answer may have changed.
	Changed() <-chan struct{}
}

// hostDrain is the host's state as the planner sees it.
type hostDrain struct {
	why   string    // "" while the host is not going away
	since time.Time // when the daemon learnt it
}

// hostDrainReason starts the maintenance note of a host drain: like drainReason, it marks the
// maintenance as the daemon's own, for the daemon to lift.
const hostDrainReason = "ecs-registrator: host is going away"

// hostDrainNote is the maintenance note of the services of a host that is going away.
func hostDrainNote(why string) string { return hostDrainReason + ": " + why }

// hostDrainWhy is why a container drains while its host is going away.
func hostDrainWhy(why string) string { return "the host is going away: " + why }

// watchHost follows the host's lifecycle until ctx ends.
func (r *Registrator) watchHost(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.cfg.HostLifecycle.Changed():
			r.noteHost()
		}
	}
}

// noteHost takes the host's lifecycle into the store, where the planner reads it, and counts, logs
// and shows a change.
func (r *Registrator) noteHost() {
	why := r.cfg.HostLifecycle.Draining()
	was, changed := r.store.setHost(why, time.Now())
	if !changed {
		return
	}
	select {
	case r.selfWake <- struct{}{}: // the daemon's own service leaves with the host's, or comes back
	default:
	}
	log := r.log.With("component", "host")
	if why == "" {
		log.Info("the host is no longer going away: its containers are advertised again")
		r.activity.add(Event{Source: "host", Action: "drain lifted"})
		return
	}
	if was == "" {
		r.metrics.hostDrains.Inc()
	}
	log.Warn("the host is going away: draining every container, keeping new ones out", "why", why, "drain", r.cfg.Drain)
	r.activity.add(Event{Source: "host", Action: "draining", Detail: why})
}
