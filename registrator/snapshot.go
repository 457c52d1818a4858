package registrator

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// Snapshot is what the daemon knows at one moment, for the status page, the JSON API and tests. It
// is a copy: nothing in it changes afterwards, and taking it makes no network call.
type Snapshot struct {
	Time        time.Time
	Ready       bool
	Node        string
	AdvertiseIP string
	Docker      Dependency // Detail is the Engine API version
	Consul      Dependency
	Host        HostState
	Containers  []ContainerView // sorted by name
	Events      []Event         // newest first
}

// Dependency is whether Docker or the Consul agent answers, since when, and its last error.
type Dependency struct {
	Up        bool
	Since     time.Time
	LastError string
	Detail    string
	LastEvent time.Time // Docker: the last event seen
}

// HostState is whether the whole host is going away.
type HostState struct {
	// Draining is why the host is going away (an EC2 Spot interruption notice, an Auto Scaling
	// termination), "" while it is not.
	Draining string
	Since    time.Time // when the daemon learnt it
}

// ContainerView is one container and what the daemon did about it.
type ContainerView struct {
	ID, Name, Image string
	Running         bool
	// Draining is why a running container is stopping, "" when it is not.
	Draining string
	// Reason is why it has no services, in plain words, when it wants none.
	Reason string
	Task   *ecsmeta.Task
	// Services are what the agent holds for it, sorted by ID.
	Services []desired.Service
	// Problems are its bad labels, the service IDs it wants but does not get, and writes the agent refused.
	Problems []desired.Problem
}

// HasErrors reports whether a problem kept something out of Consul.
func (c ContainerView) HasErrors() bool {
	return slices.ContainsFunc(c.Problems, func(p desired.Problem) bool { return p.Severity == desired.SeverityError })
}

// Snapshot returns what the daemon knows now. Container environments are never included: they hold
// credentials.
func (r *Registrator) Snapshot() Snapshot {
	snap := Snapshot{Time: time.Now(), Ready: r.ready.Load(), Node: *r.node.Load(), Events: r.activity.recent(),
		Docker: dependency(&r.dockerUp), Consul: dependency(&r.consulUp)}
	if r.cfg.AdvertiseIP.IsValid() {
		snap.AdvertiseIP = r.cfg.AdvertiseIP.String()
	}
	snap.Docker.Detail = "API " + r.docker.ClientVersion()
	if last := r.lastEvent.Load(); last > 0 {
		snap.Docker.LastEvent = time.Unix(0, last)
	}
	host := r.store.hostDrain()
	if host.why != "" {
		snap.Host = HostState{Draining: host.why, Since: host.since}
	}
	done := r.applier.last()
	byContainer := map[string][]desired.Service{}
	for _, s := range done.held {
		byContainer[s.ContainerID] = append(byContainer[s.ContainerID], s)
	}
	for id, rec := range r.store.all() {
		if !rec.evaluated() {
			continue // known from an event only, not inspected yet
		}
		c := rec.container
		v := ContainerView{ID: id, Name: c.Name, Image: c.Image, Running: rec.running(), Draining: rec.drainWhy(),
			Reason: rec.skipped, Task: rec.task, Services: byContainer[id]}
		hostGoing := v.Draining == "" && v.Running && host.why != "" && len(rec.services) > 0
		if hostGoing {
			v.Draining = hostDrainWhy(host.why)
		}
		switch {
		case !v.Running && r.cfg.KeepFailed && rec.keptWhy() != "":
			v.Reason = rec.keptWhy()
		case !v.Running && rec.running() != c.Running:
			v.Reason = "not running"
		case hostGoing && r.cfg.Drain != DrainMaintenance:
			v.Reason = "the host is going away: deregistered, and kept out while it goes"
		case hostGoing && len(v.Services) == 0 && v.Reason == "":
			v.Reason = "the host is going away: new containers are kept out"
		case v.Draining != "" && r.cfg.Drain != DrainMaintenance:
			v.Reason = "stopping: deregistered until it runs again"
		}
		v.Problems = append(slices.Clone(rec.problems), done.clashes[id]...)
		v.Problems = append(v.Problems, done.failures[id]...)
		slices.SortFunc(v.Services, func(a, b desired.Service) int { return strings.Compare(a.ID, b.ID) })
		snap.Containers = append(snap.Containers, v)
	}
	slices.SortFunc(snap.Containers, func(a, b ContainerView) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	})
	return snap
}

// OwnedServices returns the services the daemon believes the agent holds for it, by ID.
func (r *Registrator) OwnedServices() map[string]desired.Service {
	return r.applier.last().held
}
