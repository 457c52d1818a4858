package ecsmeta

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/ecs-registrator/ecs-registrator/internal/depstate"
)

// Config says which AWS endpoints a Source reads.
type Config struct {
	AgentURL string       // ECS agent introspection, e.g. http://127.0.0.1:51678; "" disables
	TMDSURL  string       // task metadata v4 base, e.g. http://127.0.0.1:51679; "" disables
	IMDS     *imds.Client // nil disables instance metadata
	Host     Host         // already known host identity (main looked it up at start); zero if not
	API      bool         // call ECS DescribeTasks for the service name and tags task metadata lacks
	TagMeta  []string     // task tags copied to Meta: from /taskWithTags, else the ECS API
	// IPv6Only: the host has no IPv4 default route, so the ECS API is called at its dual-stack
	// endpoint. Instance metadata saying the instance has no IPv4 address does the same.
	IPv6Only bool
	// DescribeWindow is how long a DescribeTasks batch waits for more requests (default 1s), and
	// DescribeInterval the least time between two calls for one cluster (default 30s).
	DescribeWindow, DescribeInterval time.Duration
	Poll                             time.Duration
	// HealthPoll is how often task metadata is read again for a task whose containers have an ECS
	// health check (its status changes; nothing else there does). Default 5s, the shortest interval a
	// task definition's health check may have.
	HealthPoll time.Duration
	Timeout    time.Duration // per request to the ECS agent
	Logger     *slog.Logger
}

// Dependency names, for logs and the status page.
const (
	DepAgent = "ecs-agent"
	DepTMDS  = "task-metadata"
	DepIMDS  = "instance-metadata"
	DepAPI   = "ecs-api"
)

// DepStatus is the state of one AWS endpoint as the Source last saw it.
type DepStatus struct {
	Name      string    `json:"name"`
	Enabled   bool      `json:"enabled"`
	Up        bool      `json:"up"`
	LastError string    `json:"last_error,omitempty"`
	Since     time.Time `json:"since,omitzero"` // when Up last changed
	Used      bool      `json:"used"`           // asked at least once
}

// Source knows the ECS task of every task container on this host and this host's EC2 identity. Lookup
// answers at once from what is known; Run fetches the rest in the background and says which containers
// have news.
type Source struct {
	cfg      Config
	log      *slog.Logger
	client   *agentClient
	api      *ecsAPI
	describe *describer

	mu      sync.Mutex // never held across a network call
	host    Host
	agent   AgentMetadata         // the ECS agent's cluster and container instance, once read
	tasks   map[string]*taskState // by task ARN
	owner   map[string]string     // Docker ID -> task ARN
	known   map[string]apiTask    // task ARN -> what a daemon before this one wrote (Remember)
	deps    map[string]*awsDep
	running bool // Run has begun: fetch loops may start
	// toStart are the tasks whose fetch loops Run is to start (it owns their context); startTask
	// tells it there are some.
	toStart   []*taskState
	startTask chan struct{}
	// tagsWarned: the one warning that task metadata does not give task tags was logged.
	tagsWarned bool
	notify     func(string)
	stopped    bool
	wg         sync.WaitGroup
	// desired is every task's DesiredStatus at the agent's last answer, and lastStop when one last
	// turned STOPPED: a sign that ECS drains the host when it comes after a termination notice.
	desired map[string]string
	stops   []time.Time // when tasks turned STOPPED, the last stopsKept
	// goingUntil: DrainingSince was asked, so a notice is in force, until then (it is asked every
	// second while one is).
	goingUntil time.Time
	// instanceDraining: the ECS API said this container instance is DRAINING (asked with -ecs-api
	// while a notice is in force, at most every instanceEvery).
	instanceDraining bool
	instanceAsked    time.Time
}

type taskState struct {
	labels     Task
	containers map[string]string // Docker ID -> task metadata path ("" when the env lacks it)
	// wanted: a container of the task asks to be registered (only then is the ECS API asked);
	// dockerHealth: the containers whose health Docker reports, whose task metadata health is not polled.
	wanted       map[string]bool
	dockerHealth map[string]bool
	agent        *AgentTask
	tmds         *TMDSTask
	tmdsAt       time.Time // when tmds was read
	tmdsPath     string    // the path tmds was read from
	tmdsFailures int       // task metadata reads failed in a row
	// tags are the task's tags from /taskWithTags (nil until read); tagsUnavailable: it will not
	// give them (refused, or failing).
	tags            map[string]string
	tagFailures     int
	tagsUnavailable bool
	// api is the service and tags from the ECS API, or from a daemon before this one.
	api     *apiTask
	wake    chan struct{}
	cancel  context.CancelFunc
	started bool
}

// New returns a Source; nothing is fetched until Run.
func New(cfg Config) *Source {
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.HealthPoll <= 0 {
		cfg.HealthPoll = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DescribeWindow <= 0 {
		cfg.DescribeWindow = time.Second
	}
	if cfg.DescribeInterval <= 0 {
		cfg.DescribeInterval = 30 * time.Second
	}
	api := &ecsAPI{}
	s := &Source{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "ecs"),
		client:    newAgentClient(cfg.AgentURL, cfg.TMDSURL, cfg.Timeout),
		api:       api,
		describe:  nil, // below: its answers wake the task
		host:      cfg.Host,
		tasks:     map[string]*taskState{},
		owner:     map[string]string{},
		known:     map[string]apiTask{},
		startTask: make(chan struct{}, 1),
		deps:      map[string]*awsDep{},
	}
	api.ipv6Only = func() bool { return cfg.IPv6Only || s.Host().IPv6Only() }
	s.describe = newDescriber(api, cfg.DescribeWindow, cfg.DescribeInterval, s.describeDone)
	for name, on := range map[string]bool{DepAgent: cfg.AgentURL != "", DepTMDS: cfg.TMDSURL != "", DepIMDS: cfg.IMDS != nil, DepAPI: cfg.API} {
		s.deps[name] = &awsDep{enabled: on}
	}
	if cfg.Host.InstanceID != "" {
		s.deps[DepIMDS].Record(nil) // main looked it up
	}
	return s
}

// Host returns what instance metadata said about this host; zero fields are not known (yet).
func (s *Source) Host() Host {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.host
}

// Agent returns the cluster and container instance the ECS agent reported, zero until it has.
func (s *Source) Agent() AgentMetadata {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.agent
}

// Status returns the state of each AWS endpoint, sorted by name.
func (s *Source) Status() []DepStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []DepStatus
	for _, name := range slices.Sorted(maps.Keys(s.deps)) {
		d := s.deps[name]
		st := d.Get()
		out = append(out, DepStatus{Name: name, Enabled: d.enabled, Up: st.Up, LastError: st.LastError, Since: st.Since, Used: st.Used})
	}
	return out
}

// awsDep is one AWS endpoint: whether the configuration uses it, and its state.
type awsDep struct {
	enabled bool
	depstate.State
}

// Ref is what Lookup is told of a container.
type Ref struct {
	ID      string
	Labels  map[string]string
	Env     []string
	Running bool
	// Wanted: the container asks to be registered. Only a task with such a container is ever described
	// through the ECS API.
	Wanted bool
	// DockerHealth: Docker reports the container's health (a HEALTHCHECK, which is what an ECS health
	// check is on EC2), so task metadata is not polled for it.
	DockerHealth bool
}

// Known is what a daemon before this one wrote into a task's services' Meta: its service name, the
// tags it copied (by Meta key, lower case) and which tags it had looked up (TagsRead).
type Known struct {
	TaskARN, Service string
	Tags             map[string]string
	TagsRead         []string
}

// Remember takes what a daemon before this one learnt, so that a restarted daemon (a rolling update
// of the daemon service restarts every host's at once) does not ask the ECS API again. Call it before
// the containers are looked up.
func (s *Source) Remember(known []Known) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range known {
		if _, ok := s.known[k.TaskARN]; ok {
			continue
		}
		// Every tag asked for must have been looked up (a tag the task lacks is absent from Meta).
		// Meta keys are lower case.
		tags := map[string]string{}
		complete := k.Service != "" || len(k.TagsRead) > 0
		for _, tag := range s.cfg.TagMeta {
			if !slices.ContainsFunc(k.TagsRead, func(r string) bool { return strings.EqualFold(r, tag) }) {
				complete = false
				break
			}
			if v, ok := k.Tags[strings.ToLower(tag)]; ok {
				tags[tag] = v
			}
		}
		if complete {
			s.known[k.TaskARN] = apiTask{service: k.Service, tags: tags}
		}
	}
}

// Lookup returns what is known now of the ECS task of a container, never waiting on the network. ok is
// false for a container ECS did not start. For a running container it also makes sure the rest of its
// task's metadata is being fetched.
func (s *Source) Lookup(c Ref) (Task, bool) {
	id := c.ID
	t, ok := FromLabels(c.Labels)
	if !ok {
		return t, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.tasks[t.ARN]
	if ts == nil && c.Running && !t.Pause() {
		ts = &taskState{labels: t, containers: map[string]string{}, wanted: map[string]bool{}, dockerHealth: map[string]bool{},
			wake: make(chan struct{}, 1)}
		if k, ok := s.known[t.ARN]; ok {
			ts.api = &k
			delete(s.known, t.ARN)
		}
		s.tasks[t.ARN] = ts
	}
	if ts == nil {
		return s.mergeLocked(t, nil, id), true
	}
	_, known := ts.containers[id]
	if c.Running && (ts.wanted[id] != c.Wanted || ts.dockerHealth[id] != c.DockerHealth) {
		ts.wanted[id], ts.dockerHealth[id] = c.Wanted, c.DockerHealth
		if known {
			s.wakeLocked(ts) // it may need the API, or no more health polling, now
		}
	}
	switch {
	case !known && c.Running && !t.Pause():
		ts.containers[id] = metadataPath(c.Env)
		s.owner[id] = t.ARN
		s.startLocked(ts)
		s.wakeLocked(ts)
	case known && !c.Running:
		// A stopped container needs nothing more; its task's fetching ends with its last running
		// container, though ECS keeps stopped containers for hours.
		s.releaseLocked(id)
	}
	return s.mergeLocked(t, ts, id), true
}

// Forget drops a container that is gone, and its task's cache with its last container.
func (s *Source) Forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(id)
}

func (s *Source) wakeLocked(ts *taskState) {
	select {
	case ts.wake <- struct{}{}:
	default:
	}
}

// describeDone wakes the task an ECS API answer is for.
func (s *Source) describeDone(arn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts := s.tasks[arn]; ts != nil {
		s.wakeLocked(ts)
	}
}

func (s *Source) releaseLocked(id string) {
	arn, ok := s.owner[id]
	if !ok {
		return
	}
	delete(s.owner, id)
	ts := s.tasks[arn]
	delete(ts.containers, id)
	delete(ts.wanted, id)
	delete(ts.dockerHealth, id)
	if len(ts.containers) == 0 {
		if ts.cancel != nil {
			ts.cancel()
		}
		delete(s.tasks, arn)
		s.describe.forget(arn)
	}
}

// Run fetches metadata until ctx ends. changed is called with the Docker ID of a container whose task
// metadata changed, or with "" when the host's identity did (every container may be affected).
func (s *Source) Run(ctx context.Context, changed func(containerID string)) {
	s.mu.Lock()
	s.running, s.notify = true, changed
	for _, ts := range s.tasks {
		s.startLocked(ts)
	}
	s.mu.Unlock()

	var wg sync.WaitGroup
	if s.cfg.AgentURL != "" {
		wg.Go(func() { s.pollAgent(ctx) })
	}
	if s.cfg.IMDS != nil {
		wg.Go(func() { s.lookupHost(ctx) })
	}
	if s.cfg.API {
		wg.Go(func() { s.describe.run(ctx) })
	}
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-s.startTask:
			s.startQueued(ctx)
		}
	}
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	wg.Wait()
	s.wg.Wait()
}

// startLocked has Run start the task's fetch loop, once Run is running.
func (s *Source) startLocked(ts *taskState) {
	if ts.started || !s.running || s.stopped || len(ts.containers) == 0 {
		return
	}
	ts.started = true
	s.toStart = append(s.toStart, ts)
	select {
	case s.startTask <- struct{}{}:
	default:
	}
}

// startQueued starts the queued tasks' fetch loops under Run's ctx, each cancelled when its task is
// forgotten (a task forgotten while queued is not started).
func (s *Source) startQueued(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ts := range s.toStart {
		if s.tasks[ts.labels.ARN] != ts || s.stopped {
			continue
		}
		tctx, cancel := context.WithCancel(ctx)
		ts.cancel = cancel
		s.wg.Go(func() { s.fetchLoop(tctx, ts) })
	}
	s.toStart = nil
}
