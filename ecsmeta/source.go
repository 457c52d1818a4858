package ecsmeta

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/ecs-registrator/ecs-registrator/internal/retry"
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
	deps    map[string]*DepStatus
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
	desired   map[string]string
	lastStop  time.Time
	hostGoing bool // DrainingSince was asked: a termination notice is in force
	// instanceDraining: the ECS API said this container instance is DRAINING (asked with -ecs-api
	// while a notice is in force, at most every instanceEvery).
	instanceDraining bool
	instanceAsked    time.Time
}

// instanceEvery is how often the ECS API is asked whether the container instance drains, while a
// termination notice is in force.
const instanceEvery = 2 * time.Second

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
		deps:      map[string]*DepStatus{},
	}
	api.ipv6Only = func() bool { return cfg.IPv6Only || s.Host().IPv6Only() }
	s.describe = newDescriber(api, cfg.DescribeWindow, cfg.DescribeInterval, s.describeDone)
	for name, on := range map[string]bool{DepAgent: cfg.AgentURL != "", DepTMDS: cfg.TMDSURL != "", DepIMDS: cfg.IMDS != nil, DepAPI: cfg.API} {
		s.deps[name] = &DepStatus{Name: name, Enabled: on}
	}
	if cfg.Host.InstanceID != "" {
		s.deps[DepIMDS].Up, s.deps[DepIMDS].Used = true, true
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
		out = append(out, *s.deps[name])
	}
	return out
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

// fetchLoop fetches what is missing of one task, with backoff, until the task is forgotten.
func (s *Source) fetchLoop(ctx context.Context, ts *taskState) {
	b := retry.Backoff(5 * time.Second)
	for {
		failed := s.fetchMissing(ctx, ts)
		var retry <-chan time.Time
		if failed {
			retry = time.After(b.NextBackOff())
		} else {
			b.Reset()
			if s.watchesHealth(ts) {
				retry = time.After(s.cfg.HealthPoll)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ts.wake:
		case <-retry:
		}
	}
}

// fetchMissing asks each source for what it has not yet given about the task, and reports whether any
// request failed.
func (s *Source) fetchMissing(ctx context.Context, ts *taskState) (failed bool) {
	s.mu.Lock()
	var needAgent, path string
	if s.cfg.AgentURL != "" {
		for id := range ts.containers {
			if ts.agent == nil || !slices.ContainsFunc(ts.agent.Containers, func(c AgentContainer) bool { return c.DockerId == id }) {
				needAgent = id
				break
			}
		}
	}
	if s.cfg.TMDSURL != "" && (ts.tmds == nil || s.pollsHealthLocked(ts) && time.Since(ts.tmdsAt) >= s.cfg.HealthPoll) {
		for _, id := range slices.Sorted(maps.Keys(ts.containers)) {
			if p := ts.containers[id]; p != "" {
				path = p
				break
			}
		}
	}
	// Tags come from task metadata's /taskWithTags, once, after /task.
	tagsPath := ""
	if len(s.cfg.TagMeta) > 0 && ts.tags == nil && ts.api == nil && !ts.tagsUnavailable && path == "" && ts.tmds != nil {
		tagsPath = ts.tmdsPath
	}
	t := ts.labels
	s.mu.Unlock()

	if needAgent != "" {
		at, err := s.client.taskByDockerID(ctx, needAgent)
		if err == nil && at.Arn != t.ARN {
			err = errors.New("ecs agent: container " + needAgent[:min(12, len(needAgent))] + " belongs to task " + at.Arn + ", its labels say " + t.ARN)
		}
		// A 404 is the agent answering that it does not know the container yet: retried, but the
		// agent is up.
		s.record(ctx, DepAgent, answered(err))
		if err == nil {
			s.update(ts, func() { ts.agent = &at })
		} else {
			failed = true
		}
	}
	if path != "" {
		tt, err := s.client.tmdsTask(ctx, path, false)
		if err == nil && tt.TaskARN != t.ARN {
			err = errors.New("task metadata: " + path + " is task " + tt.TaskARN + ", the container's labels say " + t.ARN)
		}
		s.record(ctx, DepTMDS, answered(err))
		s.mu.Lock()
		if err != nil {
			failed = true
			ts.tmdsFailures++
			s.mu.Unlock()
		} else {
			same := ts.tmds != nil && reflect.DeepEqual(*ts.tmds, tt)
			ts.tmdsAt, ts.tmdsFailures, ts.tmdsPath = time.Now(), 0, path
			s.wakeLocked(ts) // the tags, if asked for, next
			s.mu.Unlock()
			if !same {
				s.update(ts, func() { ts.tmds = &tt })
			}
		}
	}
	if tagsPath != "" && s.fetchTags(ctx, ts, t, tagsPath) {
		failed = true
	}
	s.mu.Lock()
	needAPI, waitAgent := s.needsAPILocked(ts)
	s.mu.Unlock()
	if waitAgent {
		failed = true // look again once the ECS agent said its version
	}
	if needAPI {
		switch at, ok, err := s.describe.ask(t); {
		case !ok:
			// Queued with the other tasks of its cluster: the answer wakes this loop.
		case s.record(ctx, DepAPI, err):
			s.update(ts, func() { ts.api = &at })
		default:
			failed = true
		}
	}
	return failed
}

// tagFailuresMax is how many failed /taskWithTags reads make the tags unavailable from task metadata
// (the ECS API is asked instead, with -ecs-api): the agent answers slowly or not at all while ECS
// throttles its tag reads.
const tagFailuresMax = 3

// fetchTags reads the task's tags through /taskWithTags, for which the ECS agent asks ECS (two
// ListTagsForResource calls, each retried for up to 30 s when throttled: see tagsTimeout); it
// reports a failure to retry.
func (s *Source) fetchTags(ctx context.Context, ts *taskState, t Task, path string) (failed bool) {
	tt, err := s.client.tmdsTask(ctx, path, true)
	if err == nil && tt.TaskARN != t.ARN {
		err = errors.New("task metadata: " + path + " is task " + tt.TaskARN + ", the container's labels say " + t.ARN)
	}
	terr := tt.tagsError()
	if err == nil && terr == nil {
		tags := tt.TaskTags
		if tags == nil {
			tags = map[string]string{} // the task has none: answered
		}
		s.update(ts, func() { ts.tags = tags })
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || strings.Contains(terr.Error(), "Throttl") {
		if ts.tagFailures++; ts.tagFailures < tagFailuresMax {
			return true
		}
		terr = cmp.Or(err, terr)
	}
	// Refused (the instance role lacks ecs:ListTagsForResource), or failing again and again.
	ts.tagsUnavailable = true
	if !s.tagsWarned {
		s.tagsWarned = true
		msg := "task tags are not available from task metadata; -ecs-tag-meta needs ecs:ListTagsForResource on the container instance role"
		if s.cfg.API {
			msg += "; asking the ECS API instead"
		}
		s.log.Warn(msg, "task", t.ARN, "err", terr)
	}
	s.wakeLocked(ts)
	return false
}

// watchesHealth reports whether task metadata is read again every HealthPoll for a container's health.
func (s *Source) watchesHealth(ts *taskState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pollsHealthLocked(ts)
}

// pollsHealthLocked reports whether a container of the task has an ECS health check that only task
// metadata shows. On EC2 an ECS health check is a Docker HEALTHCHECK, which the daemon follows from
// Docker's events: no polling.
func (s *Source) pollsHealthLocked(ts *taskState) bool {
	if s.cfg.TMDSURL == "" || ts.tmds == nil {
		return false
	}
	return slices.ContainsFunc(ts.tmds.Containers, func(c TMDSContainer) bool {
		_, ours := ts.containers[c.DockerId]
		return c.Health != nil && ours && !ts.dockerHealth[c.DockerId]
	})
}

// tmdsFailuresMax is how many failed task metadata reads in a row make the ECS API answer instead.
const tmdsFailuresMax = 3

// needsAPILocked reports whether the ECS API is to be asked about a task now: it is enabled, a
// container of the task asks to be registered, nothing (the API, or a daemon before this one) has
// answered yet, and task metadata cannot give the service name or the tags asked for.
//
// A task without ServiceName in its metadata is not in a service (RunTask) if the agent is 1.63.1 or
// newer: waitAgent says to look again once the agent said its version, while it has not yet.
func (s *Source) needsAPILocked(ts *taskState) (need, waitAgent bool) {
	if !s.cfg.API || ts.api != nil || !slices.Contains(slices.Collect(maps.Values(ts.wanted)), true) {
		return false, false
	}
	usable := s.cfg.TMDSURL != "" && ts.tmdsFailures < tmdsFailuresMax &&
		slices.ContainsFunc(slices.Collect(maps.Values(ts.containers)), func(p string) bool { return p != "" })
	if !usable {
		return true, false
	}
	if ts.tmds == nil {
		return false, false // task metadata first: it may say all
	}
	tagsMissing := len(s.cfg.TagMeta) > 0 && ts.tags == nil && ts.tagsUnavailable
	if ts.tmds.ServiceName != "" || tagsMissing {
		return tagsMissing, false
	}
	if d := s.deps[DepAgent]; s.cfg.AgentURL != "" && s.agent.Version == "" && (!d.Used || d.Up) {
		return false, true
	}
	return !s.agentGivesServiceNamesLocked(), false
}

// agentGivesServiceNamesLocked reports whether the ECS agent puts ServiceName in task metadata
// (1.63.1 and newer), so that its absence means a task that is not in a service (RunTask). Without
// the agent's version (introspection off, or not read yet) it is assumed not to.
func (s *Source) agentGivesServiceNamesLocked() bool {
	v := s.agent.Version // "Amazon ECS Agent - v1.89.1 (abcdef0)"
	i := strings.Index(v, " - v")
	if i < 0 {
		return false
	}
	f := strings.FieldsFunc(v[i+4:], func(r rune) bool { return r == '.' || r == ' ' || r == '-' })
	var n [3]int
	for j := range min(3, len(f)) {
		n[j], _ = strconv.Atoi(f[j])
	}
	return cmp.Or(cmp.Compare(n[0], 1), cmp.Compare(n[1], 63), cmp.Compare(n[2], 1)) >= 0
}

// update applies f to a task's state and tells the registrator about each of its containers.
func (s *Source) update(ts *taskState, f func()) {
	s.mu.Lock()
	f()
	ids := slices.Sorted(maps.Keys(ts.containers))
	notify := s.notify
	s.mu.Unlock()
	for _, id := range ids {
		notify(id)
	}
}

// answered is err unless it is a 404, which says the dependency works but lacks the container.
func answered(err error) error {
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// record notes the outcome of a request to a dependency, logging when its state changes, and reports
// whether it succeeded. A cancelled request says nothing about the dependency.
func (s *Source) record(ctx context.Context, dep string, err error) bool {
	if err != nil && ctx.Err() != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deps[dep]
	wasUp, used := d.Up, d.Used
	d.Used = true
	d.Up = err == nil
	if err != nil {
		d.LastError = err.Error()
	}
	if d.Up != wasUp || !used {
		d.Since = time.Now()
		switch {
		case err != nil && dep == DepIMDS && !used:
			s.log.Info("no EC2 instance metadata (not on EC2?); zone and instance ID stay unknown until it answers", "err", err)
		case err != nil:
			s.log.Warn(dep+" unavailable; registering from labels and retrying in the background", "err", err)
		case used:
			s.log.Info(dep + " answers again")
		}
	}
	return err == nil
}

// pollAgent reads every task from the ECS agent each Poll interval while there are task containers,
// to see a task marked for stopping (DesiredStatus STOPPED) before its containers get the signal.
func (s *Source) pollAgent(ctx context.Context) {
	for {
		t := time.NewTimer(s.pollInterval())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.pollOnce(ctx)
	}
}

// pollInterval is Poll, or a quarter of it while the host is going away (DrainingSince was asked):
// then ECS stops the host's tasks one by one, and each should leave within a second of its stop.
func (s *Source) pollInterval() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hostGoing {
		return s.cfg.Poll / 4
	}
	return s.cfg.Poll
}

// pollOnce reads the agent's tasks once, when the host has task containers, and notifies the
// containers of every task whose state changed.
func (s *Source) pollOnce(ctx context.Context) {
	s.mu.Lock()
	n, known := len(s.tasks), s.agent.Cluster != ""
	s.mu.Unlock()
	if n == 0 {
		return
	}
	if !known {
		m, err := s.client.metadata(ctx)
		if !s.record(ctx, DepAgent, err) {
			return
		}
		s.mu.Lock()
		s.agent = m
		s.mu.Unlock()
		s.log.Info("ecs agent", "cluster", m.Cluster, "container_instance", m.ContainerInstanceArn, "version", m.Version)
	}
	tasks, err := s.client.tasks(ctx)
	if !s.record(ctx, DepAgent, err) {
		return
	}
	var changed []string
	s.mu.Lock()
	s.noteStopsLocked(tasks, time.Now())
	for _, at := range tasks {
		ts := s.tasks[at.Arn]
		if ts == nil || (ts.agent != nil && reflect.DeepEqual(*ts.agent, at)) {
			continue
		}
		if ts.agent == nil || ts.agent.DesiredStatus != at.DesiredStatus {
			s.log.Info("ecs task status", "task", at.Arn, "desired", at.DesiredStatus, "known", at.KnownStatus)
		}
		ts.agent = &at
		// A stopped task's metadata changes no more. (KnownStatus alone could be a read from before
		// the task's first container started; a task ECS stopped wants to be stopped too.)
		if at.KnownStatus == StatusStopped && at.DesiredStatus == StatusStopped && ts.cancel != nil {
			ts.cancel()
		}
		changed = append(changed, slices.Collect(maps.Keys(ts.containers))...)
	}
	notify := s.notify
	s.mu.Unlock()
	slices.Sort(changed)
	for _, id := range changed {
		notify(id)
	}
	s.checkInstance(ctx)
}

// checkInstance asks the ECS API, while a termination notice is in force and -ecs-api is on, whether
// this container instance is DRAINING. ECS sets that as soon as it drains the host (managed instance
// draining, Spot draining), before it stops any task: with a minimum healthy percent of 100 the
// first task stops only once its replacement runs elsewhere.
func (s *Source) checkInstance(ctx context.Context) {
	s.mu.Lock()
	arn, cluster := s.agent.ContainerInstanceArn, s.agent.Cluster
	due := s.cfg.API && s.hostGoing && !s.instanceDraining && arn != "" && time.Since(s.instanceAsked) >= instanceEvery
	if due {
		s.instanceAsked = time.Now()
	}
	s.mu.Unlock()
	if !due {
		return
	}
	status, err := s.api.instanceStatus(ctx, Task{ARN: arn}.Region(), cluster, arn)
	if !s.record(ctx, DepAPI, err) || status != "DRAINING" {
		return
	}
	s.mu.Lock()
	s.instanceDraining = true
	s.mu.Unlock()
}

// noteStopsLocked keeps every task's desired status and when one last turned STOPPED. A task first
// seen already STOPPED is no news: it may have been stopped long ago.
func (s *Source) noteStopsLocked(tasks []AgentTask, now time.Time) {
	desired := make(map[string]string, len(tasks))
	for _, at := range tasks {
		desired[at.Arn] = at.DesiredStatus
		if was, ok := s.desired[at.Arn]; ok && was != StatusStopped && at.DesiredStatus == StatusStopped {
			s.lastStop = now
		}
	}
	s.desired = desired
}

// DrainingSince reports whether ECS drains this host: the ECS API says the container instance is
// DRAINING (with -ecs-api), or a task on it was seen marked STOPPED since t. With managed instance
// draining or Spot draining, ECS sets the instance DRAINING and stops its tasks one by one after the
// notice. Being asked also makes the agent polls faster, and starts the ECS API's.
func (s *Source) DrainingSince(t time.Time) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hostGoing = true
	if s.instanceDraining {
		return "the ECS API says this container instance is DRAINING", true
	}
	if s.lastStop.Before(t) {
		return "", false
	}
	return "a task on this host marked STOPPED at " + s.lastStop.UTC().Format(time.RFC3339), true
}

// lookupHost reads the host's identity from instance metadata, retrying with backoff until it answers.
func (s *Source) lookupHost(ctx context.Context) {
	if s.Host().InstanceID != "" {
		return
	}
	b := retry.Backoff(time.Minute)
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		h, err := LookupHost(rctx, s.cfg.IMDS)
		cancel()
		if s.record(ctx, DepIMDS, err) {
			s.mu.Lock()
			h.LocalIPv4 = cmp.Or(s.host.LocalIPv4, h.LocalIPv4)
			s.host = h
			notify := s.notify
			s.mu.Unlock()
			s.log.Info("ec2 instance", "instance_id", h.InstanceID, "availability_zone", h.AvailabilityZone)
			notify("")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.NextBackOff()):
		}
	}
}

// mergeLocked combines the labels with what the agent, task metadata and the ECS API said.
func (s *Source) mergeLocked(t Task, ts *taskState, id string) Task {
	t.AvailabilityZone = s.host.AvailabilityZone
	if ts == nil {
		return t
	}
	if at := ts.agent; at != nil {
		t.DesiredStatus, t.KnownStatus = at.DesiredStatus, at.KnownStatus
		for _, c := range at.Containers {
			if c.DockerId == id {
				t.Ports = ports(c.Ports)
				t.Addrs = addrs(c.Networks)
			}
		}
	}
	if tt := ts.tmds; tt != nil {
		t.Service = tt.ServiceName
		t.AvailabilityZone = cmp.Or(tt.AvailabilityZone, t.AvailabilityZone)
		if ts.agent == nil {
			t.DesiredStatus, t.KnownStatus = tt.DesiredStatus, tt.KnownStatus
		}
		for _, c := range tt.Containers {
			if c.DockerId != id {
				continue
			}
			if c.Health != nil {
				t.Health = Health{Defined: true, Status: c.Health.Status, Output: c.Health.Output}
			}
			if len(t.Addrs) == 0 {
				t.Addrs = addrs(c.Networks)
			}
			if len(t.Ports) == 0 {
				t.Ports = ports(c.Ports)
			}
		}
	}
	tags := ts.tags
	if a := ts.api; a != nil {
		t.Service = cmp.Or(t.Service, a.service)
		if tags == nil {
			tags = a.tags
		}
	}
	if tags != nil && len(s.cfg.TagMeta) > 0 {
		t.TagsRead = s.cfg.TagMeta
		for _, k := range s.cfg.TagMeta {
			if v, ok := tags[k]; ok {
				if t.Tags == nil {
					t.Tags = map[string]string{}
				}
				t.Tags[k] = v
			}
		}
	}
	return t
}

// addrs returns the awsvpc ENI addresses of a container's networks, IPv4 first.
func addrs(networks []WireNetwork) []netip.Addr {
	var v4, v6 []netip.Addr
	for _, n := range networks {
		if n.NetworkMode != "awsvpc" {
			continue
		}
		for _, s := range n.IPv4Addresses {
			if ip, err := netip.ParseAddr(s); err == nil && ip.Is4() && !ip.IsUnspecified() {
				v4 = append(v4, ip)
			}
		}
		for _, s := range n.IPv6Addresses {
			if ip, err := netip.ParseAddr(s); err == nil && ip.Is6() && !ip.IsUnspecified() {
				v6 = append(v6, ip)
			}
		}
	}
	return append(v4, v6...)
}

// ports returns a container's ports once each: the agent reports a dynamic bridge port twice (IPv4 and
// IPv6 bindings).
func ports(wire []WirePort) []Port {
	var out []Port
	for _, p := range wire {
		proto := strings.ToLower(cmp.Or(p.Protocol, "tcp"))
		if p.ContainerPort < 1 || p.ContainerPort > 65535 || (proto != "tcp" && proto != "udp") {
			continue
		}
		q := Port{ContainerPort: p.ContainerPort, Protocol: proto, HostPort: p.HostPort}
		if !slices.Contains(out, q) {
			out = append(out, q)
		}
	}
	return out
}
