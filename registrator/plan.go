package registrator

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ecs-registrator/ecs-registrator/health"
)

// planInput is everything the planner decides from: every container's record and what the agent holds.
type planInput struct {
	records  map[string]*record
	held     map[string]Service      // owned services on the agent, by ID, as far as the applier knows
	foreign  map[string]bool         // IDs of services on the agent that are not ours
	mirrored map[string]health.State // mirror check ID -> the state last written to it
	drain    DrainMode
}

// plan is what the applier does next, in this order: deregister, register, push mirror states.
type plan struct {
	deregister []string
	register   []Service
	mirrors    []mirrorPush
	// clashes are the containers that want a service ID they do not get, with why.
	clashes map[string][]Problem
	// draining are the running containers that are stopping, with why.
	draining map[string]string
}

type mirrorPush struct {
	checkID string
	state   health.State
}

// candidate is one container's claim on a service ID.
type candidate struct {
	rec      *record
	svc      Service
	draining bool
}

// makePlan decides, from the whole picture at once, which container holds each service ID and what
// the agent must be told. It is pure and deterministic: the same input gives the same plan.
//
// Ownership: a foreign service keeps its ID; between containers, one that is not stopping wins over
// one that is, then the one that started first, then the lower container ID. The others get a clash
// problem and take the ID over once the plan no longer gives it to the holder.
func makePlan(in planInput) plan {
	p := plan{clashes: map[string][]Problem{}, draining: map[string]string{}}
	claims := map[string][]candidate{}
	for _, id := range slices.Sorted(maps.Keys(in.records)) {
		rec := in.records[id]
		svcs, why := advertised(rec, in.held, in.drain)
		if why != "" {
			p.draining[id] = why
		}
		for _, s := range svcs {
			claims[s.ID] = append(claims[s.ID], candidate{rec: rec, svc: s, draining: why != ""})
		}
	}

	won := map[string]Service{}
	for _, sid := range slices.Sorted(maps.Keys(claims)) {
		cands := claims[sid]
		if in.foreign[sid] {
			for _, c := range cands {
				p.clash(c.rec.id, fmt.Sprintf("a service with ID %q that ecs-registrator does not own is on the agent; left untouched", sid))
			}
			continue
		}
		if h, ok := in.held[sid]; ok {
			if r := in.records[h.ContainerID]; r != nil && !r.evaluated() {
				// Its holder is not inspected yet (a daemon that just started): it may still want it.
				for _, c := range cands {
					p.clash(c.rec.id, fmt.Sprintf("service ID %q is held by container %s, not yet inspected; waiting", sid, shortID(h.ContainerID)))
				}
				continue
			}
		}
		slices.SortFunc(cands, rank)
		won[sid] = cands[0].svc
		for _, c := range cands[1:] {
			p.clash(c.rec.id, fmt.Sprintf("service ID %q belongs to container %s, which started first; this one takes it over when it goes",
				sid, shortID(cands[0].rec.id)))
		}
	}

	for _, sid := range slices.Sorted(maps.Keys(won)) {
		want := won[sid]
		have, ok := in.held[sid]
		if have.Maintenance != "" && !strings.HasPrefix(have.Maintenance, drainReason) && want.Maintenance == "" {
			have.Maintenance = "" // an operator's maintenance is theirs to lift
		}
		switch {
		case !ok:
		case have.Equal(want):
			continue
		case have.Maintenance != "" && want.Maintenance == "":
			// Registering again keeps the maintenance check; start over to lift it.
			p.deregister = append(p.deregister, sid)
		}
		p.register = append(p.register, want)
	}
	for _, sid := range slices.Sorted(maps.Keys(in.held)) {
		if _, ok := won[sid]; ok || in.foreign[sid] {
			continue
		}
		if rec := in.records[in.held[sid].ContainerID]; rec != nil && !rec.evaluated() {
			continue // not inspected yet: what it wants is unknown
		}
		p.deregister = append(p.deregister, sid)
	}

	registering := map[string]bool{}
	for _, s := range p.register {
		registering[s.ID] = true
	}
	for _, sid := range slices.Sorted(maps.Keys(won)) {
		s := won[sid]
		if s.Health == nil {
			continue
		}
		checkID := sid + ":" + health.KindMirror
		if last, ok := in.mirrored[checkID]; registering[sid] || !ok || last != *s.Health {
			p.mirrors = append(p.mirrors, mirrorPush{checkID: checkID, state: *s.Health})
		}
	}
	return p
}

func (p *plan) clash(containerID, msg string) {
	p.clashes[containerID] = append(p.clashes[containerID], Problem{Severity: SeverityError, Key: "SERVICE_ID", Message: msg})
}

func rank(a, b candidate) int {
	if a.draining != b.draining {
		if a.draining {
			return 1
		}
		return -1
	}
	return cmp.Or(a.rec.container.StartedAt.Compare(b.rec.container.StartedAt), strings.Compare(a.rec.id, b.rec.id))
}

// advertised is what a container should have on the agent now, and why it is draining if it is.
// A stopping container is deregistered, or in maintenance mode keeps its services with Consul's
// maintenance check naming this run of the container.
func advertised(rec *record, held map[string]Service, mode DrainMode) ([]Service, string) {
	if !rec.running() {
		return nil, ""
	}
	why := rec.drainWhy()
	note := drainReason + " (started " + rec.container.StartedAt.Format(time.RFC3339Nano) + ")"
	if why == "" && mode == DrainMaintenance {
		// A daemon that restarted mid-drain finds its own note for this run on the agent.
		for _, s := range rec.services {
			if h, ok := held[s.ID]; ok && h.ContainerID == rec.id && h.Maintenance == note {
				why = "stop signal (found in maintenance)"
				break
			}
		}
	}
	switch {
	case why == "":
		return rec.services, ""
	case mode != DrainMaintenance:
		return nil, why
	}
	out := make([]Service, len(rec.services))
	for i, s := range rec.services {
		s.Maintenance = note
		out[i] = s
	}
	return out, why
}
