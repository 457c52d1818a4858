package registrator

import (
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// record is what is known of one container: its last evaluation, and the Docker events seen since.
// Records are immutable once stored; every change stores a new one, so the planner and the snapshot
// read them without a lock.
type record struct {
	id string
	// container is the last inspect, nil until the first one: the container's desire is unknown and
	// whatever the agent holds for it is left alone.
	container *desired.Container
	// stale is set by a Docker event: the next evaluation inspects again instead of reusing container.
	stale bool

	services []desired.Service // what the container advertises while it serves (drain is the planner's call)
	problems []desired.Problem
	skipped  string
	task     *ecsmeta.Task

	kill       killMark  // the last kill event
	diedAt     time.Time // Docker's time of the last die event
	exitCode   *int      // the exit code the last die event reported
	startEvent time.Time // Docker's time of a start event not yet followed by a registration
}

// killMark is a Docker kill event. Docker's clock, so it compares with State.StartedAt.
type killMark struct {
	signal string
	at     time.Time
}

// evaluated reports whether the container has been inspected at least once.
func (r *record) evaluated() bool { return r.container != nil }

// running reports whether the container runs: as its last inspect said, unless it died since.
func (r *record) running() bool {
	c := r.container
	return c != nil && c.Running && !r.diedAt.After(c.StartedAt)
}

// keptWhy says why a container that is not running keeps its services with -deregister on-success
// (gliderlabs's rule): it exited with a non-zero code that is not a signal's (128 and up), so it
// failed and may come back; "" when it does not. A container that was being stopped (a terminating
// signal to this run, ECS stopping its task) is not kept, whatever its code: it was drained.
func (r *record) keptWhy() string {
	c := r.container
	if c == nil || r.running() || c.StartedAt.IsZero() || r.task != nil && r.task.Stopping() {
		return ""
	}
	if !r.kill.at.IsZero() && !r.kill.at.Before(c.StartedAt) && desired.Terminating(r.kill.signal, c.StopSignal) {
		return ""
	}
	code := c.ExitCode
	if r.exitCode != nil && !r.diedAt.Before(c.StartedAt) {
		code = *r.exitCode
	} else if c.Running {
		return "" // died, and the event did not say how
	}
	if code == 0 || code&128 != 0 {
		return ""
	}
	return fmt.Sprintf("exited with code %d; kept registered (-deregister on-success)", code)
}

// drainWhy says why a running container is stopping, "" when it is not: a terminating signal to its
// current run, or ECS marking its task for stopping (which comes before the signal).
func (r *record) drainWhy() string {
	if !r.running() {
		return ""
	}
	c := r.container
	if !r.kill.at.IsZero() && !r.kill.at.Before(c.StartedAt) && desired.Terminating(r.kill.signal, c.StopSignal) {
		return "stop signal " + r.kill.signal
	}
	if r.task != nil && r.task.Stopping() {
		return "ECS task DesiredStatus=STOPPED"
	}
	return ""
}

// store holds every known container's record: the workers write it, the planner reads it whole.
// Nothing in it outlives its container: a record goes when Docker says the container is gone.
type store struct {
	mu      sync.Mutex
	records map[string]*record
	host    hostDrain     // whether the whole host is going away (hostdrain.go)
	changed chan struct{} // capacity 1: a change since the planner last read the store
}

func newStore() *store {
	return &store{records: map[string]*record{}, changed: make(chan struct{}, 1)}
}

func (s *store) get(id string) *record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records[id]
}

// update replaces a container's record with f's copy of it (a new, empty one when there is none) and
// returns the old and the new; a nil old means the container was unknown. The caller decides whether
// the change matters to the planner (notify).
func (s *store) update(id string, f func(r *record)) (old, cur *record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old = s.records[id]
	next := record{id: id}
	if old != nil {
		next = *old
	}
	f(&next)
	s.records[id] = &next
	return old, &next
}

// dockerEvent records what a Docker event says of a container: a kill that stops it (a SIGHUP
// during the stop window, log rotation, does not undo the stop), its death and exit code, its start
// (for the registration lag). stale marks it for a new inspect.
func (s *store) dockerEvent(id, action string, attrs map[string]string, at time.Time, stale bool) (old, cur *record) {
	return s.update(id, func(n *record) {
		n.stale = n.stale || stale
		switch action {
		case "kill":
			if sig := attrs["signal"]; n.drainWhy() == "" || desired.Terminating(sig, n.container.StopSignal) {
				n.kill = killMark{signal: sig, at: at}
			}
		case "die":
			n.diedAt, n.exitCode = at, nil
			if code, err := strconv.Atoi(attrs["exitCode"]); err == nil {
				n.exitCode = &code
			}
		case "start":
			n.startEvent = at
		}
	})
}

// inspecting says the container is being inspected: an event from now on makes it stale again.
func (s *store) inspecting(id string) {
	s.update(id, func(r *record) { r.stale = false })
}

// evaluated records a container's evaluation: what Docker and ECS say of it, and what it wants.
func (s *store) evaluated(id string, c *desired.Container, res desired.Result) (old, cur *record) {
	return s.update(id, func(n *record) {
		n.container = c
		n.services, n.problems, n.skipped, n.task = res.Services, res.Problems, res.Skipped, c.Task
	})
}

// markStale says that Docker may have news of the container: its next evaluation inspects it.
func (s *store) markStale(id string) {
	s.update(id, func(r *record) { r.stale = true })
}

// takeStartEvent returns, and clears, the time of the container's start event not yet followed by
// a registration.
func (s *store) takeStartEvent(id string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.records[id]
	if r == nil || r.startEvent.IsZero() {
		return time.Time{}
	}
	next := *r
	next.startEvent = time.Time{}
	s.records[id] = &next
	return r.startEvent
}

// remove forgets a container that Docker no longer has, and tells the planner.
func (s *store) remove(id string) (old *record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old = s.records[id]
	if old != nil {
		delete(s.records, id)
		s.notify()
	}
	return old
}

// all returns the current records; the map is a copy, the records are immutable.
func (s *store) all() map[string]*record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.records)
}

// setHost records why the host is going away ("" when it is not) and tells the planner; it returns
// what it replaced, and whether that was different.
func (s *store) setHost(why string, now time.Time) (was string, changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	was = s.host.why
	if was == why {
		return was, false
	}
	if was != "" && why != "" {
		now = s.host.since // another notice for a host already going: it has been going since the first
	}
	s.host = hostDrain{why: why, since: now}
	s.notify()
	return was, true
}

// hostDrain returns the host's state as the planner sees it.
func (s *store) hostDrain() hostDrain {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.host
}

func (s *store) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return mapsKeys(s.records)
}

func (s *store) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

// notify tells the applier that the store changed; notifications merge.
func (s *store) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func mapsKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
