package registrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// The daemon's own registration: a service on its node (Config.Self) with one TTL check that the
// daemon heartbeats. While the daemon is down nothing else in Consul changes (mirrored health
// outlasts an outage, see DefaultHealthTTL), so this check is how an outage shows: it turns critical
// at most SelfTTL after the last heartbeat, and at once on a clean stop. It is the alert.
//
// The service carries this daemon's external-source but no container-id: the agent adapter counts it
// as foreign, so the applier never reaps it and no container can claim its ID.

// DefaultSelfTTL is the TTL of the daemon's own check: critical within half a minute of a crash.
const DefaultSelfTTL = 30 * time.Second

// selfService is the daemon's own registration.
func (r *Registrator) selfService() desired.Service {
	name := r.cfg.Self
	return desired.Service{ID: name, Name: name,
		Meta: map[string]string{desired.MetaExternalSource: desired.ExternalSource, "version": r.cfg.Version},
		Checks: []health.Check{{ID: health.CheckID(name, health.KindTTL, true), Name: "ecs-registrator daemon", Kind: health.KindTTL,
			TTL: r.cfg.SelfTTL, InitialStatus: health.Critical,
			Notes: "Heartbeated by the ecs-registrator daemon on this node. Critical: the daemon is down or stopped; " +
				"this node's registrations stay as they were and nothing follows its containers. Warning: Docker does not answer it."}},
	}
}

// selfState is what the heartbeat says: passing while the daemon follows Docker, warning while
// Docker does not answer, critical before the first sync. The output changes only with the state, so
// a heartbeat costs the servers nothing.
func (r *Registrator) selfState() health.State {
	d := r.dockerUp.Get()
	switch {
	case !r.Ready() && d.Used && !d.Up:
		return health.State{Status: health.Critical, Output: fmt.Sprintf("starting, and Docker does not answer since %s (%s): nothing on this node is followed",
			d.Since.UTC().Format(time.RFC3339), d.LastError)}
	case !r.Ready():
		return health.State{Status: health.Critical, Output: "starting: the first sync of Docker and Consul is not done"}
	case d.Used && !d.Up:
		return health.State{Status: health.Warning, Output: fmt.Sprintf("Docker does not answer since %s (%s): containers started or stopped since are not followed; registrations stay as they were",
			d.Since.UTC().Format(time.RFC3339), d.LastError)}
	}
	return health.State{Status: health.Passing, Output: "ecs-registrator " + r.cfg.Version + " follows Docker on this node"}
}

// heartbeat keeps the daemon's own check up to date until ctx ends, then marks it critical: a
// stopped daemon is down, whether or not one follows it.
func (r *Registrator) heartbeat(ctx context.Context) error {
	h := selfBeat{r: r, svc: r.selfService(), log: r.log.With("component", "self", "service", r.cfg.Self)}
	t := time.NewTicker(r.cfg.SelfTTL / 3)
	defer t.Stop()
	ready := r.readyCh
	for {
		if why := r.store.hostDrain().why; why != "" {
			// The host is going away and its services have left: so does the daemon's own, so that
			// a host ending is not an alert that its daemon is down.
			h.leave(ctx, why)
		} else {
			h.beat(ctx, r.selfState())
		}
		select {
		case <-ctx.Done():
			if !h.registered && h.left {
				return ctx.Err() // left with the host
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			h.beat(sctx, health.State{Status: health.Critical, Output: "stopped at " + time.Now().UTC().Format(time.RFC3339) +
				": this node's registrations stay as they were and nothing follows its containers until a daemon runs again"})
			return ctx.Err()
		case <-t.C:
		case <-ready: // passing at once, not a heartbeat later
			ready = nil
		case <-r.selfWake:
		}
	}
}

type selfBeat struct {
	r          *Registrator
	svc        desired.Service
	left       bool // deregistered because the host is going away
	registered bool
	gen        uint64 // the agent's TokenGeneration it was registered under
	failed     string // the last failure, logged once
	log        *slog.Logger
}

// beat writes st to the check, registering the service first when the agent does not hold it (the
// daemon's start, an agent that restarted without its data).
func (h *selfBeat) beat(ctx context.Context, st health.State) {
	// Bounded: a hung agent must not hold the heartbeat past its next beat.
	ctx, cancel := context.WithTimeout(ctx, h.r.cfg.SelfTTL/3)
	defer cancel()
	id := h.svc.Checks[0].ID
	err := h.write(ctx, id, st)
	if errors.Is(err, ErrRefused) && h.registered {
		h.registered = false // the agent lost it, or the ID was taken over: register it again
		err = h.write(ctx, id, st)
	}
	switch {
	case err != nil && errors.Is(err, context.Canceled):
		// The daemon is stopping; its last write follows.
	case err != nil && err.Error() != h.failed:
		h.log.Warn("the daemon's own check could not be written; it turns critical on its own", "err", err)
		h.failed = err.Error()
	case err == nil && h.failed != "":
		h.log.Info("the daemon's own check is written again", "status", st.Status)
		h.failed = ""
	}
}

// leave deregisters the daemon's own service, once, while the host is going away.
func (h *selfBeat) leave(ctx context.Context, why string) {
	if h.left {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, h.r.cfg.SelfTTL/3)
	defer cancel()
	if err := h.r.agent.Deregister(ctx, h.svc.ID); err != nil {
		if ctx.Err() == nil {
			h.log.Warn("the daemon's own service could not leave with the host's", "err", err)
		}
		return
	}
	h.left, h.registered = true, false
	h.log.Info("the daemon's own service left: the host is going away", "why", why)
}

func (h *selfBeat) write(ctx context.Context, id string, st health.State) error {
	h.left = false
	// Registered again under a new token: the agent syncs the check to the catalog with the token the
	// service was registered with, and an alert reads the catalog.
	if r, ok := h.r.agent.(TokenRotator); ok && r.TokenGeneration() != h.gen {
		h.registered, h.gen = false, r.TokenGeneration()
	}
	if !h.registered {
		if err := h.r.agent.Register(ctx, h.svc, true); err != nil {
			return err
		}
		h.registered = true
	}
	return h.r.agent.UpdateTTL(ctx, id, st)
}
