package registrator

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/status"
)

// ConsulUp reports whether the Consul agent answered last time it was asked.
func (r *Registrator) ConsulUp() bool { return r.consulUp.Load() }

// Snapshot is what the daemon knows now, for the status page. It asks the agent for check states and
// its leader (bounded by ctx); everything else is in memory. Container environments are never
// included: they hold credentials.
func (r *Registrator) Snapshot(ctx context.Context) status.Snapshot {
	checks, checksErr := r.agent.Checks(ctx)
	leader, leaderErr := r.agent.Leader(ctx)

	snap := status.Snapshot{Time: time.Now(), Events: r.activity.recent()}
	snap.Daemon.Ready = r.ready.Load()
	snap.Daemon.AdvertiseIP = r.cfg.AdvertiseIP.String()

	up, since, lastErr := r.dockerUp.get()
	docker := status.Dependency{Name: "docker", Enabled: true, Up: up, Since: since, LastError: lastErr,
		Detail: "API " + r.docker.ClientVersion()}
	if last := r.lastEvent.Load(); last > 0 {
		docker.LastEvent = time.Unix(0, last)
	}
	up, since, lastErr = r.consulUp.get()
	consul := status.Dependency{Name: "consul", Enabled: true, Up: up, Since: since, LastError: lastErr}

	r.mu.Lock()
	snap.Daemon.Node = r.node
	consul.Detail = "node " + r.node
	byContainer := map[string][]Service{}
	for _, e := range r.ledger {
		if !e.deleting {
			byContainer[e.ContainerID] = append(byContainer[e.ContainerID], e.Service)
		}
	}
	for id, st := range r.containers {
		if st.name == "" {
			continue // known from an event only, not inspected yet
		}
		c := status.Container{ID: id, Name: st.name, Image: st.image, Running: st.running, Reason: st.skipped,
			Services: []status.Service{}, Problems: []status.Problem{}}
		for _, p := range st.problems {
			c.Problems = append(c.Problems, status.Problem{Severity: string(p.Severity), Key: p.Key, Message: p.Message})
		}
		if t := st.task; t != nil {
			c.ECS = &status.ECS{Cluster: t.Cluster, TaskARN: t.ARN, Family: t.Family, Revision: t.Revision, Service: t.Service,
				Container: t.Container, DesiredStatus: t.DesiredStatus, KnownStatus: t.KnownStatus}
		}
		svcs := byContainer[id]
		slices.SortFunc(svcs, func(a, b Service) int { return strings.Compare(a.ID, b.ID) })
		for _, s := range svcs {
			sv := status.Service{ID: s.ID, Name: s.Name, Address: net.JoinHostPort(s.Address, strconv.Itoa(s.Port)),
				Tags: append([]string{}, s.Tags...), Maintenance: s.Maintenance, Checks: checks[s.ID]}
			if sv.Checks == nil {
				sv.Checks = []status.Check{}
				for _, hc := range s.Checks {
					sv.Checks = append(sv.Checks, status.Check{ID: hc.ID, Name: hc.Name, Status: "unknown"})
				}
			}
			c.Services = append(c.Services, sv)
		}
		c.State = stateOf(st, c)
		snap.Containers = append(snap.Containers, c)
	}
	r.mu.Unlock()
	slices.SortFunc(snap.Containers, func(a, b status.Container) int { return strings.Compare(a.Name, b.Name) })

	switch {
	case leaderErr != nil:
		consul.Detail += ", leader unknown"
	case leader == "":
		consul.Detail += ", no leader"
	default:
		consul.Detail += ", leader " + leader
	}
	if checksErr != nil && consul.LastError == "" {
		consul.LastError = checksErr.Error()
	}
	snap.Dependencies = []status.Dependency{docker, consul}
	if r.cfg.ECS != nil {
		host := r.cfg.ECS.Host()
		var agent ecsmeta.AgentMetadata
		if a, ok := r.cfg.ECS.(interface{ Agent() ecsmeta.AgentMetadata }); ok {
			agent = a.Agent()
		}
		for _, d := range r.cfg.ECS.Status() {
			dep := status.Dependency{Name: d.Name, Enabled: d.Enabled, Up: d.Up, LastError: d.LastError, Since: d.Since}
			switch {
			case d.Name == ecsmeta.DepIMDS && host.InstanceID != "":
				dep.Detail = host.InstanceID + " in " + host.AvailabilityZone
			case d.Name == ecsmeta.DepAgent && agent.Cluster != "":
				dep.Detail = "cluster " + agent.Cluster + ", " + agent.Version
			}
			snap.Dependencies = append(snap.Dependencies, dep)
		}
	}
	return snap
}

// stateOf summarises a container for the page's state column.
func stateOf(st *containerState, c status.Container) string {
	errs := slices.ContainsFunc(st.problems, func(p Problem) bool { return p.Severity == SeverityError })
	switch {
	case st.draining && st.running:
		return status.StateDraining
	case len(c.Services) == 0:
		return status.StateNotRegistered
	case errs:
		return status.StatePartly
	default:
		return status.StateRegistered
	}
}
