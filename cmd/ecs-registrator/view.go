package main

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/promtext"
	"github.com/ecs-registrator/ecs-registrator/registrator"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
	"github.com/ecs-registrator/ecs-registrator/status"
)

// daemonStatus is the status page's source: the registrator's snapshot, what only main knows
// (version, start time, flags), the AWS endpoints' states, and what the Consul agent says of the
// checks and the leader.
type daemonStatus struct {
	reg       *registrator.Registrator
	consul    *api.Client // nil: checks and leader are not shown
	ecs       *ecsmeta.Source
	lifecycle *ecsmeta.Lifecycle // nil when the host's lifecycle is not watched
	version   string
	started   time.Time
	config    map[string]string
	policy    status.Policy
}

func (d daemonStatus) Snapshot(ctx context.Context) status.Snapshot {
	var checks map[string][]status.Check
	var checksErr, leaderErr error
	leader := ""
	if d.consul != nil {
		checks, checksErr = agentChecks(ctx, d.consul)
		leader, leaderErr = agentLeader(ctx, d.consul)
	}
	s := toStatus(d.reg.Snapshot(), checks, d.ecs)
	s.Daemon.Version, s.Daemon.StartedAt, s.Daemon.Config, s.Daemon.Policy = d.version, d.started, d.config, d.policy
	consul := &s.Dependencies[1]
	switch {
	case d.consul == nil:
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
	if d.lifecycle != nil {
		if p, ok := d.lifecycle.Plan(); ok {
			s.Host.Notice, s.Host.Plan, s.Host.LeaveAt = p.Notice.Reason, p.Why, p.LeaveAt
		}
		s.Host.Advisories = adviceLines(d.lifecycle.Advice())
	}
	return s
}

// policyView is the registration policy as the status page shows it; nil is none.
func policyView(p *desired.Policy) status.Policy {
	if p == nil {
		return status.Policy{}
	}
	return status.Policy{Set: true, Source: p.Source(), Default: string(p.Default()), Rules: p.Rules()}
}

// adviceLines says the host's advisories in plain words.
func adviceLines(a ecsmeta.Advice) []string {
	var out []string
	if !a.Rebalance.IsZero() {
		out = append(out, "EC2 recommends rebalancing this Spot instance (since "+a.Rebalance.Format(time.RFC3339)+"): an interruption is more likely")
	}
	for _, m := range a.Maintenance {
		out = append(out, "scheduled maintenance: "+m)
	}
	return out
}

// registerAdviceMetrics exports the host's advisories, which drain nothing, for alerting.
func registerAdviceMetrics(reg *promtext.Registry, l *ecsmeta.Lifecycle) {
	reg.GaugeFunc("ecsr_host_rebalance_recommended",
		"1 while EC2 recommends rebalancing this Spot instance (instance metadata events/recommendations/rebalance).",
		func() float64 {
			if l.Advice().Rebalance.IsZero() {
				return 0
			}
			return 1
		})
	reg.GaugeFunc("ecsr_host_scheduled_events", "Scheduled maintenance events for this instance that are not completed or canceled.",
		func() float64 { return float64(len(l.Advice().Maintenance)) })
	reg.GaugeFunc("ecsr_host_notice",
		"1 while a Spot interruption or Auto Scaling termination notice is in force, drained on yet or not (ecsr_host_draining).",
		func() float64 {
			if _, ok := l.Plan(); ok {
				return 1
			}
			return 0
		})
}

// Ready is /readyz: the first sync is done and the Consul agent answers.
func (d daemonStatus) Ready() bool { return d.reg.Ready() && d.reg.ConsulUp() }

// toStatus turns the core's snapshot into the status page's, with the agent's check states (nil
// when unknown: each check then shows "unknown") and the AWS endpoints (ecs may be nil).
func toStatus(snap registrator.Snapshot, checks map[string][]status.Check, ecs *ecsmeta.Source) status.Snapshot {
	out := status.Snapshot{Time: snap.Time, Containers: []status.Container{}, Events: []status.Event{}}
	out.Daemon.Ready, out.Daemon.Node, out.Daemon.AdvertiseIP = snap.Ready, snap.Node, snap.AdvertiseIP
	if snap.Host.Draining != "" {
		out.Host = status.Host{Draining: true, Reason: snap.Host.Draining, Since: snap.Host.Since}
	}
	dep := func(name string, d registrator.Dependency) status.Dependency {
		return status.Dependency{Name: name, Enabled: true, Up: d.Up, Since: d.Since, LastError: d.LastError, Detail: d.Detail,
			LastEvent: d.LastEvent}
	}
	consul := dep("consul", snap.Consul)
	consul.Detail = "node " + snap.Node
	out.Dependencies = []status.Dependency{dep("docker", snap.Docker), consul}
	if ecs != nil {
		host, agent := ecs.Host(), ecs.Agent()
		for _, d := range ecs.Status() {
			sd := status.Dependency{Name: d.Name, Enabled: d.Enabled, Up: d.Up, LastError: d.LastError, Since: d.Since}
			switch {
			case d.Name == ecsmeta.DepIMDS && host.InstanceID != "":
				sd.Detail = host.InstanceID + " in " + host.AvailabilityZone
			case d.Name == ecsmeta.DepAgent && agent.Cluster != "":
				sd.Detail = "cluster " + agent.Cluster + ", " + agent.Version
			}
			out.Dependencies = append(out.Dependencies, sd)
		}
	}
	for _, c := range snap.Containers {
		out.Containers = append(out.Containers, containerStatus(c, checks))
	}
	for _, e := range snap.Events {
		out.Events = append(out.Events, status.Event{Time: e.Time, Container: e.Container, Name: e.Name, Source: e.Source,
			Action: e.Action, Detail: e.Detail})
	}
	return out
}

func containerStatus(c registrator.ContainerView, checks map[string][]status.Check) status.Container {
	sc := status.Container{ID: c.ID, Name: c.Name, Image: c.Image, Running: c.Running, Reason: c.Reason,
		Services: []status.Service{}, Problems: []status.Problem{}}
	for _, p := range c.Problems {
		sc.Problems = append(sc.Problems, status.Problem{Severity: string(p.Severity), Key: p.Key, Message: p.Message, Refused: p.Refused})
	}
	if t := c.Task; t != nil {
		sc.ECS = &status.ECS{Cluster: t.Cluster, TaskARN: t.ARN, Family: t.Family, Revision: t.Revision, Service: t.Service,
			Container: t.Container, DesiredStatus: t.DesiredStatus, KnownStatus: t.KnownStatus}
	}
	for _, s := range c.Services {
		sv := status.Service{ID: s.ID, Name: s.Name, Address: s.Addr(), Tags: append([]string{}, s.Tags...),
			Maintenance: s.Maintenance, Checks: checks[s.ID]}
		if sv.Checks == nil {
			sv.Checks = []status.Check{}
			for _, hc := range s.Checks {
				sv.Checks = append(sv.Checks, status.Check{ID: hc.ID, Name: hc.Name, Status: "unknown"})
			}
		}
		if m := s.Connect; m != nil {
			sidecar := s.ID + desired.SidecarSuffix
			sv.Connect = &status.Connect{SidecarID: sidecar, Address: m.Addr(), Upstreams: []string{}, Checks: checks[sidecar]}
			for _, u := range m.Upstreams {
				sv.Connect.Upstreams = append(sv.Connect.Upstreams, u.Name+":"+strconv.Itoa(u.LocalPort))
			}
			if sv.Connect.Checks == nil {
				sv.Connect.Checks = []status.Check{}
			}
		}
		sc.Services = append(sc.Services, sv)
	}
	switch {
	case c.Draining != "" && c.Running:
		sc.State = status.StateDraining
	case len(sc.Services) == 0:
		sc.State = status.StateNotRegistered
	case c.HasErrors():
		sc.State = status.StatePartly
	default:
		sc.State = status.StateRegistered
	}
	return sc
}

// agentChecks returns the agent's service checks by service ID.
func agentChecks(ctx context.Context, c *api.Client) (map[string][]status.Check, error) {
	all, err := c.Agent().ChecksWithFilterOpts(`ServiceID != ""`, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, err
	}
	out := map[string][]status.Check{}
	for _, c := range all {
		out[c.ServiceID] = append(out[c.ServiceID], status.Check{ID: c.CheckID, Name: c.Name, Status: c.Status, Output: c.Output})
	}
	for _, cs := range out {
		slices.SortFunc(cs, func(a, b status.Check) int { return strings.Compare(a.ID, b.ID) })
	}
	return out, nil
}

// agentLeader returns the cluster's leader as the agent knows it.
func agentLeader(ctx context.Context, c *api.Client) (string, error) {
	var leader string
	_, err := c.Raw().Query("/v1/status/leader", &leader, (&api.QueryOptions{}).WithContext(ctx))
	return leader, err
}
