package registrator

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// planInput is everything the planner decides from: every container's record and what the agent holds.
type planInput struct {
	records  map[string]*record
	held     map[string]desired.Service // owned services on the agent, by ID, as far as the applier knows
	foreign  map[string]bool            // IDs of services on the agent that are not ours
	mirrored map[string]ttlPush         // mirror check ID -> the state last written to it
	drain    DrainMode
	// keepFailed is -deregister on-success: a container that failed keeps its services.
	keepFailed bool
	// unmarked are the foreign services without an external-source, for migrate.
	unmarked map[string]desired.Service
	migrate  Migration
	// hostDrain is why the whole host is going away, "" while it is not: every running container
	// drains, and none is registered anew.
	hostDrain string
	// rewrite are held services to register again as they are: registered with a token that is gone.
	rewrite map[string]bool
}

// plan is what the applier does next, in this order: deregister, register, push mirror states.
type plan struct {
	deregister []string
	register   []desired.Service
	// replaces are the registrations over one the agent holds under the same ID (Agent.Register).
	replaces map[string]bool
	mirrors  []mirrorPush
	// clashes are the containers that want a service ID they do not get, with why.
	clashes map[string][]desired.Problem
	// draining are the running containers that are stopping, with why.
	draining map[string]string
	// released are the registrations gliderlabs/registrator left that are deregistered, with why.
	released map[string]string
	// maintain are held services put into maintenance without registering them again: on a host that
	// is going away, those of containers not inspected yet (the agent's list has no checks to
	// register them with).
	maintain []maintenance
}

type maintenance struct{ id, note string }

type mirrorPush struct {
	checkID string
	state   health.State
}

// candidate is one container's claim on a service ID.
type candidate struct {
	rec      *record
	svc      *desired.Service // in rec, or in its maintenance copy: never changed
	draining bool
}

// makePlan decides, from the whole picture at once, which container holds each service ID and what
// the agent must be told. It is pure and deterministic: the same input gives the same plan.
//
// Ownership: a foreign service keeps its ID; between containers, one that is not stopping wins over
// one that is, then the one that started first, then the lower container ID. The others get a clash
// problem and take the ID over once the plan no longer gives it to the holder.
func makePlan(in planInput) plan {
	p := plan{clashes: map[string][]desired.Problem{}, draining: map[string]string{}, replaces: map[string]bool{}}
	// Map order is random; every list the plan returns is sorted at the end, and candidates are
	// ranked, so the plan does not depend on it. Most IDs have one claimant: best holds it, and
	// rivals only the IDs that have more.
	best := make(map[string]candidate, len(in.held)+8)
	rivals := map[string][]candidate{}
	var heldBy map[string][]desired.Service // container ID -> held services, built when a failed container needs it
	for id, rec := range in.records {
		svcs, why := advertised(rec, in.held, in.drain, in.hostDrain)
		if why != "" {
			p.draining[id] = why
		}
		failed := false
		// A host that is going keeps nothing of a failed container: it is not coming back here.
		if in.keepFailed && in.hostDrain == "" && svcs == nil && rec.keptWhy() != "" {
			if heldBy == nil && len(rec.services) == 0 {
				heldBy = map[string][]desired.Service{}
				for _, h := range in.held {
					heldBy[h.ContainerID] = append(heldBy[h.ContainerID], h)
				}
			}
			svcs, failed = keptServices(rec, heldBy[id], in.mirrored), true
		}
		for i := range svcs {
			s := &svcs[i]
			c := candidate{rec: rec, svc: s, draining: why != "" || failed}
			if b, ok := best[s.ID]; ok {
				if rank(c, b) < 0 {
					c, b = b, c
					best[s.ID] = b
				}
				rivals[s.ID] = append(rivals[s.ID], c)
				continue
			}
			best[s.ID] = c
		}
	}

	won := make(map[string]*desired.Service, len(best))
	for sid, c := range best {
		held, isHeld := in.held[sid]
		_, unmarked := in.unmarked[sid]
		rs := rivals[sid]
		adopted := unmarked && in.migrate.adopts(c.rec.container, c.svc)
		if unmarked && !adopted {
			// gliderlabs's registration goes to the container it was made for, however another that
			// names its ID ranks: a squatter must not keep it from being taken over.
			c, rs, adopted = adopter(c, rs, in.migrate)
		}
		switch {
		case in.foreign[sid] && !adopted:
			for _, c := range append(rs, c) {
				p.clash(c.rec.id, foreignMessage(sid, unmarked, in.migrate, c))
			}
		case isHeld && held.ContainerID != c.rec.id && in.records[held.ContainerID] != nil && !in.records[held.ContainerID].evaluated():
			// Its holder is not inspected yet (a daemon that just started): it may still want it.
			for _, c := range append(rs, c) {
				p.clash(c.rec.id, fmt.Sprintf("service ID %q is held by container %s, not yet inspected; waiting", sid, shortID(held.ContainerID)))
			}
		default:
			won[sid] = c.svc
			why := "which started first; this one takes it over when it goes"
			if adopted {
				why = "for which gliderlabs/registrator registered it; ecs-registrator takes it over for that container only"
			}
			for _, r := range rs {
				p.clash(r.rec.id, fmt.Sprintf("service ID %q belongs to container %s, %s", sid, shortID(c.rec.id), why))
			}
		}
	}

	for sid, want := range won {
		have, ok := in.held[sid]
		if have.Maintenance != "" && !ownMaintenance(have.Maintenance) && want.Maintenance == "" {
			have.Maintenance = "" // an operator's maintenance is theirs to lift
		}
		if have.Maintenance != "" && want.Maintenance != "" {
			// In maintenance either way: Consul keeps the note it has until the maintenance is lifted,
			// so registering again for another note would only repeat itself.
			have.Maintenance = want.Maintenance
		}
		switch {
		case !ok:
		case have.Equal(*want) && !in.rewrite[sid]:
			continue
		case have.Maintenance != "" && want.Maintenance == "", have.Connect != nil && want.Connect == nil:
			// Registering again keeps the maintenance check, and the sidecar (Consul removes a sidecar
			// only with its service): start over to lift them.
			p.deregister = append(p.deregister, sid)
			ok = false
		}
		if _, adopted := in.unmarked[sid]; ok || adopted {
			p.replaces[sid] = true
		}
		p.register = append(p.register, *want)
	}
	for sid, h := range in.held {
		if _, ok := won[sid]; ok || in.foreign[sid] {
			continue
		}
		if rec := in.records[h.ContainerID]; rec != nil && !rec.evaluated() && (in.hostDrain == "" || in.drain == DrainMaintenance) {
			// Not inspected yet: what it wants is unknown. On a host that is going it wants out, now,
			// not once Docker answers an inspect, which it holds up while it kills containers.
			if note := hostDrainNote(in.hostDrain); in.hostDrain != "" && h.Maintenance != note {
				p.maintain = append(p.maintain, maintenance{id: sid, note: note})
			}
			continue
		}
		p.deregister = append(p.deregister, sid)
	}

	p.released = in.migrate.released(in.records, in.unmarked, in.held, won, in.keepFailed, in.hostDrain)
	for sid := range p.released {
		p.deregister = append(p.deregister, sid)
	}

	registering := make(map[string]bool, len(p.register))
	for _, s := range p.register {
		registering[s.ID] = true
	}
	for sid, s := range won {
		if s.Health == nil {
			continue
		}
		checkID := health.MirrorID(sid)
		if last, ok := in.mirrored[checkID]; registering[sid] || !ok || last.State != *s.Health {
			p.mirrors = append(p.mirrors, mirrorPush{checkID: checkID, state: *s.Health})
		}
	}
	slices.SortFunc(p.maintain, func(a, b maintenance) int { return strings.Compare(a.id, b.id) })
	slices.Sort(p.deregister)
	slices.SortFunc(p.register, func(a, b desired.Service) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(p.mirrors, func(a, b mirrorPush) int { return strings.Compare(a.checkID, b.checkID) })
	for _, ps := range p.clashes {
		slices.SortFunc(ps, func(a, b desired.Problem) int { return strings.Compare(a.Message, b.Message) })
	}
	return p
}

// adopter returns the best-ranked of best's rivals that takes over the unmarked registration of their ID,
// with the others as rivals; best and rivals unchanged, and false, when none does.
func adopter(best candidate, rivals []candidate, m Migration) (candidate, []candidate, bool) {
	i := -1
	for j, r := range rivals {
		if m.adopts(r.rec.container, r.svc) && (i < 0 || rank(r, rivals[i]) < 0) {
			i = j
		}
	}
	if i < 0 {
		return best, rivals, false
	}
	rest := append(slices.Delete(slices.Clone(rivals), i, i+1), best)
	return rivals[i], rest, true
}

// foreignMessage is the problem of container c, which wants the ID sid of a service the daemon does
// not own. For an unmarked one it says whether, and how, this container could have it.
func foreignMessage(sid string, unmarked bool, m Migration, c candidate) string {
	msg := fmt.Sprintf("a service with ID %q that ecs-registrator does not own is on the agent; left untouched", sid)
	switch {
	case !unmarked:
	case m.leftFor(c.rec.container, c.svc):
		// gliderlabs's ID for this very container: only adopting is off.
		msg += "; if gliderlabs/registrator left it, -migrate-gliderlabs takes it over"
	case !m.Adopt:
	case isGliderlabsIDOfAnother(sid, m.Hostname, c.rec.container.Name):
		msg += "; not taken over: it is gliderlabs/registrator's ID of another container on this host, which alone takes it over"
	default:
		msg += fmt.Sprintf("; not taken over: only gliderlabs/registrator's default ID for this container (%s:%s:<port>) is. "+
			"If gliderlabs registered it under a custom SERVICE_ID, deregister it (consul services deregister -id=%q) and this container registers it",
			cmp.Or(m.Hostname, "<hostname>"), c.rec.container.Name, sid)
	}
	return msg
}

// isGliderlabsIDOfAnother reports whether sid is gliderlabs's ID on this host of a container not named name.
func isGliderlabsIDOfAnother(sid, hostname, name string) bool {
	id, ok := parseGliderlabsID(sid)
	return ok && hostname != "" && id.host == hostname && id.container != name
}

func (p *plan) clash(containerID, msg string) {
	p.clashes[containerID] = append(p.clashes[containerID], desired.Problem{Severity: desired.SeverityError, Key: "SERVICE_ID", Message: msg})
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
// maintenance check naming this run of the container. On a host that is going away (hostDrain)
// every running container drains the same way, its maintenance note saying why; and nothing the
// agent does not hold yet is registered.
func advertised(rec *record, held map[string]desired.Service, mode DrainMode, hostDrain string) ([]desired.Service, string) {
	if !rec.running() {
		return nil, ""
	}
	why := rec.drainWhy()
	if mode != DrainMaintenance {
		if why == "" && hostDrain != "" {
			why = hostDrainWhy(hostDrain)
		}
		if why != "" {
			return nil, why
		}
		return rec.services, ""
	}
	note := drainNote(rec.container.StartedAt)
	if why == "" {
		// A daemon that restarted mid-drain finds its own note for this run on the agent.
		for _, s := range rec.services {
			if h, ok := held[s.ID]; ok && h.ContainerID == rec.id && h.Maintenance == note {
				why = "stop signal (found in maintenance)"
				break
			}
		}
	}
	if why == "" && hostDrain != "" {
		why, note = hostDrainWhy(hostDrain), hostDrainNote(hostDrain)
	}
	if why == "" {
		return rec.services, ""
	}
	out := make([]desired.Service, 0, len(rec.services))
	for _, s := range rec.services {
		if h, ok := held[s.ID]; hostDrain != "" && !(ok && h.ContainerID == rec.id) {
			continue // a host that is going registers nothing new, not even in maintenance
		}
		s.Maintenance = note
		out = append(out, s)
	}
	return out, why
}

// keptServices are what a container that failed keeps advertising (-deregister on-success): its
// services as last evaluated, else what the agent holds for it (a daemon that restarted since). Its
// own health is gone with it, so a mirrored check goes critical.
func keptServices(rec *record, held []desired.Service, mirrored map[string]ttlPush) []desired.Service {
	svcs := rec.services
	if len(svcs) == 0 {
		svcs = held
	}
	out := make([]desired.Service, len(svcs))
	for i, s := range svcs {
		if _, ok := mirrored[health.MirrorID(s.ID)]; ok || s.Health != nil {
			s.Health = &health.State{Status: health.Critical, Output: "container " + rec.keptWhy()}
		}
		out[i] = s
	}
	return out
}

// ownMaintenance reports whether a maintenance note is one of the daemon's drains, which it lifts
// itself; any other maintenance is an operator's.
func ownMaintenance(note string) bool {
	return strings.HasPrefix(note, drainReason) || strings.HasPrefix(note, hostDrainReason)
}

// drainReason starts the maintenance note of a container's drain (drainNote), which marks the
// maintenance as the daemon's own (ownMaintenance).
const drainReason = "ecs-registrator: container is stopping"

// drainNote is the maintenance note of a drain. It names the run of the container it belongs to, so
// that a daemon restarted mid-drain recognises its own drain.
func drainNote(started time.Time) string {
	return drainReason + " (started " + started.Format(time.RFC3339Nano) + ")"
}
