// Package fakeecs is a faithful stand-in for the ECS agent's two local APIs, introspection (51678) and
// task metadata v4 (51679), built from the wire-format reference. No ECS agent runs off AWS, so its
// answers are derived from real containers on a real dockerd: their com.amazonaws.ecs.* labels, their
// ECS_CONTAINER_METADATA_URI_V4 env, their state and port bindings. What Docker cannot know (service
// name, zone, awsvpc ENI address, a task's desired status) the test sets per task.
package fakeecs

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"golang.org/x/time/rate"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
)

// Fault makes an endpoint misbehave.
type Fault int

const (
	Healthy   Fault = iota
	Slow            // answers after 5 s
	Error500        // HTTP 500
	Throttled       // HTTP 429, as the agent's rate limiter does
	Garbage         // HTTP 200 with a body that is not the JSON asked for
)

// TaskConfig is what the test says about a task that Docker cannot show.
type TaskConfig struct {
	Service          string
	AvailabilityZone string
	ENI              string // awsvpc ENI IPv4 address
	ENIv6            string
	DesiredStatus    string            // default RUNNING
	Health           map[string]string // container name -> HEALTHY or UNHEALTHY
	// NoServiceName: task metadata omits ServiceName, as agents before 1.63.1 do; the ECS API still
	// knows the service.
	NoServiceName bool
	// Tags are the task's tags, in /taskWithTags and the ECS API; TagsDenied makes /taskWithTags report
	// that the agent may not read them (its instance role lacks ecs:ListTagsForResource).
	Tags       map[string]string
	TagsDenied bool
}

// Agent serves both APIs on loopback ports that stay the same across Stop and Start.
type Agent struct {
	Introspection *Server
	TMDS          *Server

	t       testing.TB
	docker  *client.Client
	cluster string

	mu       sync.Mutex
	tagReads atomic.Int64 // ListTagsForResource calls the agent made for /taskWithTags
	tasks    map[string]TaskConfig
	inspect  map[string]inspected // Docker ID -> last inspect, while its state is the same
}

type inspected struct {
	state string
	in    container.InspectResponse
}

// Server is one HTTP listener that can be stopped (connection refused) and started again.
type Server struct {
	addr      string
	handler   http.Handler
	mu        sync.Mutex
	srv       *http.Server
	fault     Fault
	requests  atomic.Int64
	throttled atomic.Int64
	limiter   *rate.Limiter // nil: no rate limit
}

// Start runs a fake agent for the containers of docker until the test ends.
func Start(t testing.TB, docker *client.Client) *Agent {
	a := &Agent{t: t, docker: docker, cluster: "test", tasks: map[string]TaskConfig{}, inspect: map[string]inspected{}}
	a.Introspection = newServer(t, http.HandlerFunc(a.introspection), nil)
	// The real agent allows 40 requests a second with a burst of 60 per source address.
	a.TMDS = newServer(t, http.HandlerFunc(a.metadata), rate.NewLimiter(40, 60))
	return a
}

func newServer(t testing.TB, h http.Handler, limiter *rate.Limiter) *Server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{addr: ln.Addr().String(), handler: h, limiter: limiter}
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.addr }

// Requests is the number of requests the server has received.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Throttled is the number of requests its rate limiter refused.
func (s *Server) Throttled() int64 { return s.throttled.Load() }

// SetFault makes every following answer misbehave, or not.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// Stop closes the listener: clients get connection refused.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Start listens again on the same address.
func (s *Server) Start(t testing.TB) {
	var ln net.Listener
	var err error
	for range 50 { // the port was ours a moment ago; TIME_WAIT does not block a listener
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.serve(ln)
}

func (s *Server) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 5 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	fault := s.fault
	s.mu.Unlock()
	if s.limiter != nil && !s.limiter.Allow() {
		s.throttled.Add(1)
		fault = Throttled
	}
	switch fault {
	case Slow:
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
			return
		}
	case Error500:
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	case Throttled:
		// The agent's throttler answers with this plain text body.
		http.Error(w, "You have reached maximum request limit.", http.StatusTooManyRequests)
		return
	case Garbage:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"Tasks":"<html>not json`))
		return
	}
	s.handler.ServeHTTP(w, r)
}

// URL of the introspection API and base URL of task metadata.
func (a *Agent) AgentURL() string { return a.Introspection.URL() }
func (a *Agent) TMDSURL() string  { return a.TMDS.URL() }

// SetTask says what Docker cannot show about a task.
func (a *Agent) SetTask(arn string, c TaskConfig) {
	a.mu.Lock()
	a.tasks[arn] = c
	a.mu.Unlock()
}

// StopTask marks a task DesiredStatus STOPPED, as ECS does before it signals the containers.
func (a *Agent) StopTask(arn string) {
	a.mu.Lock()
	c := a.tasks[arn]
	c.DesiredStatus = ecsmeta.StatusStopped
	a.tasks[arn] = c
	a.mu.Unlock()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *Agent) introspection(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/metadata":
		writeJSON(w, 200, ecsmeta.AgentMetadata{Cluster: a.cluster,
			ContainerInstanceArn: "arn:aws:ecs:us-east-1:111122223333:container-instance/" + a.cluster + "/2dd1b186f39845a584488d2ef155c131",
			Version:              "Amazon ECS Agent - v1.89.1 (fakeecs)"})
	case "/v1/tasks":
		tasks, err := a.snapshot(r.Context())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		q := r.URL.Query()
		dockerID, arn := q.Get("dockerid"), q.Get("taskarn")
		if dockerID != "" && arn != "" {
			writeJSON(w, 400, ecsmeta.AgentTask{})
			return
		}
		if dockerID == "" && arn == "" {
			out := ecsmeta.AgentTasks{Tasks: []ecsmeta.AgentTask{}}
			for _, t := range tasks {
				out.Tasks = append(out.Tasks, t.agentTask())
			}
			writeJSON(w, 200, out)
			return
		}
		var found []*task
		for _, t := range tasks {
			match := t.arn == arn
			for _, c := range t.containers {
				if c.pause {
					continue // internal containers are not listed
				}
				if dockerID != "" && (c.id == dockerID || len(dockerID) <= 12 && strings.HasPrefix(c.id, dockerID)) {
					match = true
				}
			}
			if match {
				found = append(found, t)
			}
		}
		switch len(found) {
		case 0:
			writeJSON(w, 404, ecsmeta.AgentTask{})
		case 1:
			writeJSON(w, 200, found[0].agentTask())
		default:
			writeJSON(w, 400, ecsmeta.AgentTask{})
		}
	default:
		writeJSON(w, 404, map[string][]string{"AvailableCommands": {"/v1/metadata", "/v1/tasks", "/license"}})
	}
}

func (a *Agent) metadata(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v4/")
	uuid, sub, _ := strings.Cut(rest, "/")
	if ok {
		tasks, err := a.snapshot(r.Context())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		for _, t := range tasks {
			for _, c := range t.containers {
				if c.uuid != uuid || uuid == "" {
					continue
				}
				switch sub {
				case "":
					writeJSON(w, 200, c.tmds(t))
				case "task":
					writeJSON(w, 200, t.tmdsTask())
				case "taskWithTags":
					a.tagReads.Add(2) // the agent asks ECS for the task's and the instance's tags
					writeJSON(w, 200, t.tmdsTaskWithTags())
				default:
					writeJSON(w, 404, "V4 task metadata handler: unknown path")
				}
				return
			}
		}
	}
	writeJSON(w, 404, "V4 task metadata handler: unable to get task arn from request: unable to get container id from request: unable to get task ARN for endpoint ID "+uuid)
}

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

// TagReads is the number of ListTagsForResource calls the agent made to answer /taskWithTags.
func (a *Agent) TagReads() int64 { return a.tagReads.Load() }

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
