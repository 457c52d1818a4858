package fakeecs

// What the fake agent derives from Docker: each ECS-labelled container grouped into its task, and the
// answers of both APIs as the agent builds them.

import (
	"cmp"
	"context"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
)

// task is one ECS task as the fake derives it from Docker.
type task struct {
	arn, family, revision, cluster string
	cfg                            TaskConfig
	containers                     []*fcontainer
}

type fcontainer struct {
	id, dockerName, name, image, imageID string
	created, started                     string
	running, pause, awsvpc               bool
	uuid                                 string
	ports                                []ecsmeta.WirePort
	network                              string             // Docker's network mode
	mapped                               []ecsmeta.WirePort // the workload's PORTS, as a task definition's portMappings
	state                                string
}

// snapshot reads every ECS-labelled container from Docker and groups them into tasks.
func (a *Agent) snapshot(ctx context.Context) ([]*task, error) {
	list, err := a.docker.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", ecsmeta.LabelTaskARN))})
	if err != nil {
		return nil, err
	}
	byARN := map[string]*task{}
	var order []string
	for _, s := range list {
		// Inspecting every task container on every request would make the fake, not the daemon, slow
		// when many tests share a dockerd; a container's inspect only changes with its state.
		a.mu.Lock()
		cached, ok := a.inspect[s.ID]
		a.mu.Unlock()
		in := cached.in
		if !ok || cached.state != s.State {
			var err error
			if in, err = a.docker.ContainerInspect(ctx, s.ID); err != nil {
				continue // removed meanwhile
			}
			a.mu.Lock()
			a.inspect[s.ID] = inspected{state: s.State, in: in}
			a.mu.Unlock()
		}
		l := in.Config.Labels
		arn := l[ecsmeta.LabelTaskARN]
		t := byARN[arn]
		if t == nil {
			a.mu.Lock()
			cfg := a.tasks[arn]
			a.mu.Unlock()
			t = &task{arn: arn, family: l[ecsmeta.LabelFamily], revision: l[ecsmeta.LabelRevision], cluster: l[ecsmeta.LabelCluster], cfg: cfg}
			byARN[arn] = t
			order = append(order, arn)
		}
		c := &fcontainer{id: in.ID, dockerName: strings.TrimPrefix(in.Name, "/"), name: l[ecsmeta.LabelContainerName],
			image: in.Config.Image, imageID: in.Image, created: in.Created, running: in.State.Running,
			network: string(in.HostConfig.NetworkMode), awsvpc: in.HostConfig.NetworkMode == "none"}
		c.pause = strings.HasPrefix(c.name, ecsmeta.PauseContainer) // every kind of pause container
		if in.State.Running {
			c.started = in.State.StartedAt
			c.state = ecsmeta.StatusRunning
		} else {
			c.state = ecsmeta.StatusStopped
		}
		for _, kv := range in.Config.Env {
			if v, ok := strings.CutPrefix(kv, ecsmeta.EnvMetadataV4+"="); ok {
				c.uuid = v[strings.LastIndex(v, "/")+1:]
			}
			if v, ok := strings.CutPrefix(kv, "PORTS="); ok {
				for p := range strings.SplitSeq(v, ",") {
					if n, err := strconv.Atoi(p); err == nil {
						c.mapped = append(c.mapped, ecsmeta.WirePort{ContainerPort: n, Protocol: "tcp", HostPort: n})
					}
				}
			}
		}
		if in.NetworkSettings != nil {
			for _, p := range slices.Sorted(maps.Keys(in.NetworkSettings.Ports)) {
				n, _ := strconv.Atoi(p.Port())
				for _, b := range in.NetworkSettings.Ports[p] {
					hp, _ := strconv.Atoi(b.HostPort)
					c.ports = append(c.ports, ecsmeta.WirePort{ContainerPort: n, Protocol: p.Proto(), HostPort: hp, HostIp: b.HostIP})
				}
			}
		}
		t.containers = append(t.containers, c)
	}
	out := make([]*task, 0, len(order))
	for _, arn := range order {
		t := byARN[arn]
		slices.SortFunc(t.containers, func(a, b *fcontainer) int { return cmp.Compare(a.created, b.created) })
		t.resolveNetworks()
		out = append(out, t)
	}
	return out, nil
}

// resolveNetworks tells the task's network mode apart, as the agent knows it from the task definition:
// a container on another container's network is an awsvpc app container, unless that container is the
// Service Connect pause container the agent gave it in a bridge task (agent/api/task/task.go,
// shouldOverrideNetworkMode). Then its ports are on the pause container, so the agent knows none for it.
func (t *task) resolveNetworks() {
	for _, c := range t.containers {
		owner, ok := strings.CutPrefix(c.network, "container:")
		if !ok {
			continue
		}
		c.awsvpc = !slices.ContainsFunc(t.containers, func(o *fcontainer) bool {
			return (o.id == owner || o.dockerName == owner) && ecsmeta.ServiceConnectPause(o.name)
		})
		// awsvpc: the task definition's portMappings, which Docker cannot hold on a container that
		// shares the pause container's network; the workload's PORTS stand in for them.
		if c.awsvpc && !c.pause {
			c.ports = append(c.ports, c.mapped...)
		}
	}
}

func (t *task) known() string {
	for _, c := range t.containers {
		if c.running && !c.pause {
			return ecsmeta.StatusRunning
		}
	}
	return ecsmeta.StatusStopped
}

func (t *task) desired() string { return cmp.Or(t.cfg.DesiredStatus, ecsmeta.StatusRunning) }

func (t *task) networks() []ecsmeta.WireNetwork {
	if t.cfg.ENI == "" && t.cfg.ENIv6 == "" {
		return nil
	}
	idx := 0
	n := ecsmeta.WireNetwork{NetworkMode: "awsvpc", AttachmentIndex: &idx, MACAddress: "0e:10:e2:01:bd:91"}
	if t.cfg.ENI != "" {
		n.IPv4Addresses = []string{t.cfg.ENI}
		if p, err := netip.ParseAddr(t.cfg.ENI); err == nil {
			pfx, _ := p.Prefix(24)
			n.IPv4SubnetCIDRBlock = pfx.String()
		}
		n.PrivateDNSName = "ip-" + strings.ReplaceAll(t.cfg.ENI, ".", "-") + ".ec2.internal"
	}
	if t.cfg.ENIv6 != "" {
		n.IPv6Addresses = []string{t.cfg.ENIv6}
	}
	return []ecsmeta.WireNetwork{n}
}

func (t *task) agentTask() ecsmeta.AgentTask {
	at := ecsmeta.AgentTask{Arn: t.arn, DesiredStatus: t.desired(), KnownStatus: t.known(), Family: t.family, Version: t.revision,
		Containers: []ecsmeta.AgentContainer{}}
	for _, c := range t.containers {
		if c.pause {
			continue
		}
		ac := ecsmeta.AgentContainer{DockerId: c.id, DockerName: c.dockerName, Name: c.name, Image: c.image, ImageID: c.imageID,
			CreatedAt: c.created, StartedAt: c.started, Ports: c.ports}
		if c.awsvpc {
			ac.Networks = t.networks()
		}
		at.Containers = append(at.Containers, ac)
	}
	return at
}

func (t *task) tmdsTask() ecsmeta.TMDSTask {
	tt := ecsmeta.TMDSTask{Cluster: t.cluster, TaskARN: t.arn, Family: t.family, Revision: t.revision,
		DesiredStatus: t.desired(), KnownStatus: t.known(), Limits: map[string]float64{"CPU": 0.25, "Memory": 512},
		AvailabilityZone: t.cfg.AvailabilityZone, LaunchType: "EC2", ServiceName: t.cfg.Service, Containers: []ecsmeta.TMDSContainer{}}
	if t.cfg.NoServiceName {
		tt.ServiceName = ""
	}
	if t.cfg.ENI != "" {
		tt.VPCID = "vpc-0abc"
	}
	for _, c := range t.containers {
		tt.Containers = append(tt.Containers, c.tmds(t))
	}
	return tt
}

// tmdsTaskWithTags is /taskWithTags: the task and, as the agent asks ECS for them on each request,
// its tags, or an error entry when the agent may not read them.
func (t *task) tmdsTaskWithTags() ecsmeta.TMDSTask {
	tt := t.tmdsTask()
	if t.cfg.TagsDenied {
		tt.Errors = []ecsmeta.TMDSError{{ErrorField: "TaskTags", ErrorCode: "AccessDeniedException", StatusCode: 400, ResourceARN: t.arn,
			ErrorMessage: "User: arn:aws:sts::111122223333:assumed-role/ecsInstanceRole/i-0abc is not authorized to perform: ecs:ListTagsForResource"}}
		return tt
	}
	if len(t.cfg.Tags) > 0 {
		tt.TaskTags = maps.Clone(t.cfg.Tags)
	}
	return tt
}

func (c *fcontainer) tmds(t *task) ecsmeta.TMDSContainer {
	tc := ecsmeta.TMDSContainer{DockerId: c.id, Name: c.name, DockerName: c.dockerName, Image: c.image, ImageID: c.imageID,
		Ports: c.ports, DesiredStatus: t.desired(), KnownStatus: c.state, CreatedAt: c.created, StartedAt: c.started,
		Type: "NORMAL", Labels: map[string]string{ecsmeta.LabelCluster: t.cluster, ecsmeta.LabelTaskARN: t.arn,
			ecsmeta.LabelContainerName: c.name, ecsmeta.LabelFamily: t.family, ecsmeta.LabelRevision: t.revision}}
	if c.pause {
		tc.Type = "CNI_PAUSE"
	}
	switch {
	case c.awsvpc:
		tc.Networks = t.networks()
	case strings.HasPrefix(c.network, "container:"):
		// Docker has no networks for it; the agent then reports the host config's mode with the
		// settings' empty address (agent/handlers/v4/container_metadata_handler.go).
		tc.Networks = []ecsmeta.WireNetwork{{NetworkMode: c.network, IPv4Addresses: []string{""}}}
	default:
		tc.Networks = []ecsmeta.WireNetwork{{NetworkMode: "bridge", IPv4Addresses: []string{"172.17.0.2"}}}
	}
	if h, ok := t.cfg.Health[c.name]; ok {
		tc.Health = &ecsmeta.WireHealth{Status: h, StatusSince: "2024-05-01T10:00:31.01Z"}
		if h == "UNHEALTHY" {
			code := 1
			tc.Health.ExitCode, tc.Health.Output = &code, "probe failed"
		}
	}
	return tc
}
