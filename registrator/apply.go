package registrator

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/internal/retry"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// applier is the only writer to the Consul agent. It owns the ledger (what the agent holds for this
// daemon), plans from the store and the ledger, and carries the plan out. Everything but published is
// touched by Run's goroutine alone.
type applier struct {
	agent Agent
	store *store
	drain DrainMode
	ttl   time.Duration
	// keepFailed and migrate are Config.KeepFailed and Config.Migrate, for the planner.
	keepFailed bool
	migrate    Migration
	log        *slog.Logger
	metrics    *metrics
	activity   *activity

	observations chan observation

	// The ledger: what the agent holds for this daemon, and which of it this daemon wrote after the
	// last read of the agent began (the write count after each write).
	held     map[string]desired.Service
	written  map[string]uint64
	changed  bool // held changed since the last publish
	foreign  map[string]bool
	unmarked map[string]desired.Service // foreign services without an external-source (Migration)
	mirrored map[string]ttlPush
	deleted  map[string]uint64  // deregistered (at this write count) since an observation that may still show them
	failing  map[string]failure // op + ID (opRegister...) -> a write the agent refused, retried with backoff
	// tokenGen is the agent's TokenGeneration the held services were last registered under; rewrite
	// are the held services registered under an earlier one, to register again.
	tokenGen uint64
	rewrite  map[string]bool

	mu        sync.Mutex // guards published
	published applied
	seq       atomic.Uint64 // writes done; a read of the agent notes it when it starts (observation.seq)
	reads     atomic.Uint64 // reads of the agent started (observation.read)
	merged    atomic.Uint64 // the number of the newest read merged (observation.read)
	rounds    atomic.Uint64 // rounds started
	doneRound atomic.Uint64 // the number of the last round that tried every write it planned
}

// ttlPush is the last status written to a mirror check, and when.
type ttlPush struct {
	health.State
	at time.Time
}

// failure is a write the agent answered with an error.
type failure struct {
	container string
	err       string
	attempts  int
	next      time.Time
	svc       *desired.Service // the registration refused; another one is tried at once
}

// applied is what the applier last did and knows, for the snapshot. Immutable once published.
type applied struct {
	held     map[string]desired.Service
	clashes  map[string][]desired.Problem
	failures map[string][]desired.Problem // container ID -> writes the agent refused
	foreign  int
}

func newApplier(agent Agent, st *store, cfg Config, m *metrics, act *activity) *applier {
	return &applier{
		agent: agent, store: st, drain: cfg.Drain, ttl: cfg.HealthTTL, keepFailed: cfg.KeepFailed, migrate: cfg.Migrate, log: cfg.Logger.With("component", "apply"),
		metrics: m, activity: act,
		observations: make(chan observation, 1),
		held:         map[string]desired.Service{}, written: map[string]uint64{}, foreign: map[string]bool{}, mirrored: map[string]ttlPush{},
		rewrite: map[string]bool{},
		deleted: map[string]uint64{}, failing: map[string]failure{},
	}
}

// observe hands the applier a read of the agent. A newer read replaces one not yet taken.
func (a *applier) observe(ctx context.Context, o observation) {
	for {
		select {
		case a.observations <- o:
			return
		case <-ctx.Done():
			return
		default:
		}
		select {
		case old := <-a.observations:
			full := o.full || old.full
			if old.read > o.read { // the waiting read is the newer one
				o = old
			}
			o.full = full
		default:
		}
	}
}

// Run applies until ctx ends. It plans nothing before the first full sync's read of the agent:
// diffing against an empty ledger would rewrite every service, and a container not yet listed
// would look gone.
func (a *applier) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case o := <-a.observations:
			if o.full {
				a.merge(o)
				return a.loop(ctx)
			}
		}
	}
}

func (a *applier) loop(ctx context.Context) error {
	b := retry.Backoff(5 * time.Second)
	refresh := time.NewTicker(a.ttl / 6)
	defer refresh.Stop()
	var wait *time.Timer
	for {
		down := a.round(ctx)
		if !down && a.tokenMoved() {
			continue // a login during the round: register again with the new token now
		}
		var retryC <-chan time.Time
		if wait != nil {
			wait.Stop()
		}
		switch {
		case down:
			d := b.NextBackOff()
			a.log.Warn("consul agent write failed; retrying", "retry_in", d)
			wait = time.NewTimer(d)
			retryC = wait.C
		default:
			b.Reset()
			if next := a.nextRetry(); !next.IsZero() {
				wait = time.NewTimer(time.Until(next))
				retryC = wait.C
			}
		}
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-a.store.changed:
				if down {
					continue // the retry comes soon and applies the latest state anyway
				}
			case o := <-a.observations:
				a.merge(o)
				if down {
					b.Reset() // the agent answers again: now, not at the end of a grown delay
				}
			case <-retryC:
			case <-refresh.C:
				if down || !a.refreshMirrors(ctx) {
					continue
				}
			}
			break
		}
	}
}

// forgetHeld drops a service from the ledger, with its mirror check's state.
func (a *applier) forgetHeld(sid string) {
	delete(a.held, sid)
	delete(a.written, sid)
	delete(a.mirrored, health.MirrorID(sid))
	delete(a.rewrite, sid)
	a.changed = true
}

// merge takes the agent's word for everything this daemon did not write after the read began. A read
// older than one already merged says nothing new.
func (a *applier) merge(o observation) {
	if o.read < a.merged.Load() {
		return
	}
	a.merged.Store(o.read)
	fresh := make(map[string]desired.Service, len(o.state.Owned))
	for id, s := range o.state.Owned {
		if seq, ok := a.deleted[id]; !ok || seq <= o.seq {
			fresh[id] = s
		}
	}
	foreign, unmarked := o.state.Foreign, o.state.Unmarked
	for id, seq := range a.written {
		_, adopted := unmarked[id]
		switch {
		case seq <= o.seq:
			delete(a.written, id) // the read saw it
		case foreign[id] && !adopted: // someone else took the ID since: theirs
			delete(a.written, id)
		default:
			// Written since the read began; an unmarked service under its ID is the one it took over.
			fresh[id] = a.held[id]
			foreign, unmarked = without(foreign, id), without(unmarked, id)
		}
	}
	for id, seq := range a.deleted {
		if seq <= o.seq {
			delete(a.deleted, id)
		} else if foreign[id] {
			foreign, unmarked = without(foreign, id), without(unmarked, id) // removed since the read began
		}
	}
	for checkID := range a.mirrored {
		if _, ok := fresh[health.MirrorService(checkID)]; !ok {
			delete(a.mirrored, checkID) // the service is gone; a registration writes its state anew
		}
	}
	a.held, a.foreign, a.unmarked, a.changed = fresh, foreign, unmarked, true
}

// without returns m without key k, copying m only when it holds k: an observation's maps are shared
// with the agent watch, which compares reads.
func without[V any](m map[string]V, k string) map[string]V {
	if _, ok := m[k]; !ok {
		return m
	}
	c := maps.Clone(m)
	delete(c, k)
	return c
}

// round plans from the current store and carries the plan out. It reports whether the agent could
// not be reached, in which case the rest of the plan waits for a retry.
func (a *applier) round(ctx context.Context) (down bool) {
	n := a.rounds.Add(1)
	if a.tokenMoved() {
		a.tokenGen = a.agent.(TokenRotator).TokenGeneration()
		for sid := range a.held {
			a.rewrite[sid] = true
		}
		if len(a.held) > 0 {
			a.log.Info("the Consul token changed: registering this host's services again with it, so that the agent can keep the catalog up to date",
				"services", len(a.held))
		}
	}
	in := planInput{records: a.store.all(), held: a.held, foreign: a.foreign, mirrored: a.mirrored, drain: a.drain,
		keepFailed: a.keepFailed, unmarked: a.unmarked, migrate: a.migrate, hostDrain: a.store.hostDrain().why, rewrite: a.rewrite}
	p := makePlan(in)
	planned := map[string]bool{}
	for _, sid := range p.deregister {
		planned[opDeregister+sid] = true
	}
	for _, s := range p.register {
		planned[opRegister+s.ID] = true
	}
	for _, m := range p.mirrors {
		planned[opTTL+m.checkID] = true
	}
	for _, m := range p.maintain {
		planned[opMaintain+m.id] = true
	}
	for key := range a.failing {
		if !planned[key] {
			delete(a.failing, key) // no longer wanted: nothing to retry
		}
	}
	err := a.apply(ctx, p, in.records)
	a.publish(p)
	if err == nil {
		a.doneRound.Store(n)
	}
	return err != nil
}

// tokenMoved reports whether the agent's token changed since the held services were registered.
// The agent syncs each service to the catalog with the token it was registered with: under a token
// that is gone (a login renewed or logged out, a token file rotated), what Consul learns of the
// service (its checks' results) never reaches the catalog.
func (a *applier) tokenMoved() bool {
	r, ok := a.agent.(TokenRotator)
	return ok && r.TokenGeneration() != a.tokenGen
}

// The kinds of write, which prefix the keys of failing.
const (
	opRegister   = "register "
	opDeregister = "deregister "
	opTTL        = "ttl "
	opMaintain   = "maintain "
)

// writeTimeout bounds one write: an agent that accepts a connection and never answers must not stop
// every other registration and drain.
const writeTimeout = 10 * time.Second

// due reports whether a write may be tried now: it never failed, its backoff is over, or what is to
// be registered is not what the agent refused.
func (a *applier) due(key string, s *desired.Service, now time.Time) bool {
	f, ok := a.failing[key]
	return !ok || !f.next.After(now) || (s != nil && f.svc != nil && !f.svc.Equal(*s))
}

// apply carries a plan out. A write the agent refuses is that service's problem, retried with
// backoff; a write that does not reach the agent stops the round.
func (a *applier) apply(ctx context.Context, p plan, records map[string]*record) error {
	now := time.Now()
	for _, sid := range p.deregister {
		if !a.due(opDeregister+sid, nil, now) {
			continue
		}
		e := a.held[sid]
		if ok, err := a.write(ctx, opDeregister+sid, e.ContainerID, nil, errConsulDereg, func(ctx context.Context) error {
			return a.agent.Deregister(ctx, sid)
		}); !ok {
			if err != nil {
				return err
			}
			continue
		}
		a.forgetHeld(sid)
		a.deleted[sid] = a.seq.Add(1)
		a.metrics.deregistrations.Inc()
		if e.ID == "" {
			a.log.Info("removed a registration gliderlabs/registrator left", "service", sid, "why", p.released[sid])
			a.activity.add(Event{Source: "reconcile", Action: "deregistered", Detail: sid + " (left by gliderlabs: " + p.released[sid] + ")"})
			continue
		}
		name := nameOf(records[e.ContainerID])
		a.log.Info("deregistered", "service", sid, "container", shortID(e.ContainerID), "name", name)
		a.activity.add(Event{Container: shortID(e.ContainerID), Name: name, Source: "reconcile", Action: "deregistered", Detail: sid})
	}
	for _, s := range p.register {
		if !a.due(opRegister+s.ID, &s, now) {
			continue
		}
		if ok, err := a.write(ctx, opRegister+s.ID, s.ContainerID, &s, errConsulRegister, func(ctx context.Context) error {
			return a.agent.Register(ctx, s, p.replaces[s.ID])
		}); !ok {
			if err != nil {
				return err
			}
			continue
		}
		a.held[s.ID], a.written[s.ID], a.changed = s, a.seq.Add(1), true
		delete(a.mirrored, health.MirrorID(s.ID))
		delete(a.rewrite, s.ID)
		a.metrics.registrations.Inc()
		if at := a.store.takeStartEvent(s.ContainerID); !at.IsZero() {
			a.metrics.lag.Observe(time.Since(at).Seconds())
		}
		name := nameOf(records[s.ContainerID])
		a.log.Info("registered", "service", s.ID, "service_name", s.Name, "address", s.Addr(), "checks", len(s.Checks),
			"maintenance", s.Maintenance != "", "container", shortID(s.ContainerID), "name", name)
		a.activity.add(Event{Container: shortID(s.ContainerID), Name: name, Source: "reconcile", Action: "registered",
			Detail: s.ID + " at " + s.Addr()})
	}
	for _, m := range p.maintain {
		h, held := a.held[m.id]
		if !held || !a.due(opMaintain+m.id, nil, now) {
			continue
		}
		if ok, err := a.write(ctx, opMaintain+m.id, h.ContainerID, nil, errConsulRegister, func(ctx context.Context) error {
			return a.agent.Maintain(ctx, m.id, m.note)
		}); !ok {
			if err != nil {
				return err
			}
			continue
		}
		h.Maintenance = m.note
		a.held[m.id], a.written[m.id], a.changed = h, a.seq.Add(1), true
		a.log.Info("maintenance: the host is going away", "service", m.id, "container", shortID(h.ContainerID))
		a.activity.add(Event{Container: shortID(h.ContainerID), Source: "reconcile", Action: "maintenance", Detail: m.id})
	}
	for _, m := range p.mirrors {
		sid := health.MirrorService(m.checkID)
		if _, ok := a.held[sid]; !ok || !a.due(opTTL+m.checkID, nil, now) {
			continue // its registration failed, or the agent refused the update a moment ago
		}
		if err := a.push(ctx, sid, m.checkID, m.state); err != nil {
			return err
		}
	}
	return nil
}

// write makes one write, bounded by writeTimeout, and keeps the books on its failure under key: ok
// is whether it was done; err is set when the agent could not be reached or did not answer in time (a
// refusal is ok false, err nil).
func (a *applier) write(ctx context.Context, key, containerID string, s *desired.Service, reason string, f func(context.Context) error) (ok bool, _ error) {
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	err := f(wctx)
	cancel()
	if err == nil {
		delete(a.failing, key)
		return true, nil
	}
	if ctx.Err() != nil {
		return false, err
	}
	a.metrics.fail(reason)
	if !errors.Is(err, ErrRefused) {
		return false, err
	}
	// The agent answered and refused: this service's problem, not the others'.
	f0 := a.failing[key]
	d := min(100*time.Millisecond<<min(f0.attempts, 20), time.Minute)
	if f0.err != err.Error() {
		a.log.Error("consul agent refused a write", "write", key, "container", shortID(containerID), "err", err, "retry_in", d)
	}
	a.failing[key] = failure{container: containerID, err: err.Error(), attempts: f0.attempts + 1, next: time.Now().Add(d), svc: s}
	return false, nil
}

// push writes a mirror check's state. An update the agent refuses means the check is not what this
// daemon registered (removed, or replaced by hand): the service is forgotten, so the next round
// registers it again with its checks.
func (a *applier) push(ctx context.Context, sid, checkID string, st health.State) error {
	last, ok := a.mirrored[checkID]
	done, err := a.write(ctx, opTTL+checkID, a.held[sid].ContainerID, nil, errConsulCheck, func(ctx context.Context) error {
		return a.agent.UpdateTTL(ctx, checkID, st)
	})
	if !done {
		if err == nil {
			a.forgetHeld(sid)
		}
		return err
	}
	a.mirrored[checkID] = ttlPush{State: st, at: time.Now()}
	a.metrics.healthUpdates.Inc()
	if !ok || last.Status != st.Status {
		a.log.Info("health", "check", checkID, "status", st.Status, "output", st.Output)
		a.activity.add(Event{Source: "health", Action: st.Status, Detail: checkID + ": " + st.Output})
	}
	return nil
}

// refreshMirrors rewrites every mirror check's state a third of its TTL after the last write, so it
// never expires while the daemon runs. It reports whether the ledger changed (a refused update
// forgets its service, which a round then registers again).
func (a *applier) refreshMirrors(ctx context.Context) (changed bool) {
	n := len(a.held)
	defer func() { changed = len(a.held) != n }()
	for _, checkID := range slices.Sorted(maps.Keys(a.mirrored)) {
		m := a.mirrored[checkID]
		if time.Since(m.at) < a.ttl/3 {
			continue
		}
		if err := a.push(ctx, health.MirrorService(checkID), checkID, m.State); err != nil {
			// The agent may have lost the service; its watch and the next observation tell.
			a.log.Warn("refreshing a health check failed", "check", checkID, "err", err)
			return
		}
	}
	return
}

// nextRetry is when the earliest refused write is due again, zero when none is.
func (a *applier) nextRetry() time.Time {
	var next time.Time
	for _, f := range a.failing {
		if next.IsZero() || f.next.Before(next) {
			next = f.next
		}
	}
	return next
}

func (a *applier) publish(p plan) {
	out := applied{held: a.last().held, clashes: p.clashes, failures: map[string][]desired.Problem{}}
	if a.changed || out.held == nil {
		out.held, a.changed = maps.Clone(a.held), false
	}
	for _, key := range slices.Sorted(maps.Keys(a.failing)) {
		f := a.failing[key]
		out.failures[f.container] = append(out.failures[f.container], desired.Problem{Severity: desired.SeverityError, Key: "consul",
			Message: "the agent refused to " + key + ": " + f.err})
	}
	out.foreign = len(a.foreign)
	a.mu.Lock()
	a.published = out
	a.mu.Unlock()
}

func (a *applier) last() applied {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.published
}

func nameOf(r *record) string {
	if r == nil || r.container == nil {
		return ""
	}
	return r.container.Name
}
