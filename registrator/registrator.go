package registrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/internal/retry"
	"github.com/ecs-registrator/ecs-registrator/status"
)

// Docker is the part of the Docker Engine API the registrator reads. It never writes to Docker.
type Docker interface {
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	// ClientVersion is the negotiated Engine API version, for the status page.
	ClientVersion() string
}

// Enricher knows what the environment (ECS, EC2) says about containers; ecsmeta.Source is one.
type Enricher interface {
	// Lookup returns what is known now of a container's ECS task, without waiting on the network;
	// ok is false for a container ECS did not start.
	Lookup(id string, labels map[string]string, env []string, running bool) (task ecsmeta.Task, ok bool)
	// Forget drops a container that is gone.
	Forget(id string)
	// Host returns the host's EC2 identity, zero while unknown.
	Host() ecsmeta.Host
	// Run fetches in the background until ctx ends, calling changed with the ID of a container whose
	// metadata changed, or "" when the host's did.
	Run(ctx context.Context, changed func(containerID string))
	// Status reports each AWS endpoint's state, for the status page.
	Status() []ecsmeta.DepStatus
}

// DrainMode says how a stopping container stops being advertised.
type DrainMode string

const (
	// DrainDeregister removes the services at once: every consumer, health-filtered or not, stops
	// routing to them. The default.
	DrainDeregister DrainMode = "deregister"
	// DrainMaintenance keeps the services registered with Consul's maintenance check (critical), so
	// operators still see the stopping instance, until the container dies.
	DrainMaintenance DrainMode = "maintenance"
)

// Config is the registrator's configuration; cmd/ecs-registrator fills it from flags and env.
type Config struct {
	AdvertiseIP netip.Addr
	Internal    bool
	OptIn       bool
	Resync      time.Duration // 0 disables the periodic resync (the agent watch still runs)
	Drain       DrainMode
	Workers     int
	// AgentPoll is how often the agent's owned services are checked against what was written, to notice
	// an agent that restarted and forgot them. Default 1s.
	AgentPoll time.Duration
	// HealthTTL is the TTL of the checks that mirror a container's own health (Docker HEALTHCHECK,
	// ECS health). They are refreshed every third of it; default 90s.
	HealthTTL time.Duration
	// ECS enriches task containers; nil reads the ECS labels only.
	ECS    Enricher
	Tags   TagTemplates
	Logger *slog.Logger
	// Metrics, when set, receives the daemon's Prometheus metrics.
	Metrics prometheus.Registerer
}

// Registrator keeps the Consul agent in step with Docker. Create it with New and run it with Run.
type Registrator struct {
	docker Docker
	agent  Agent
	cfg    Config
	log    *slog.Logger
	queue  *queue
	syncCh chan struct{} // a full sync is wanted; capacity 1 merges requests

	mu         sync.Mutex // guards the fields below; never held across a network call
	node       string
	ledger     map[string]ledgerEntry // service ID -> what the agent holds, as far as we know
	foreign    map[string]bool        // IDs of services on the agent that are not ours
	containers map[string]*containerState
	waiters    map[string][]string  // service ID -> containers that want it while another holds it
	deleted    map[string]time.Time // service ID -> when this daemon deregistered it, until the next sync
	mirrored   map[string]ttlPush   // mirror check ID -> what was last pushed to it

	loaded   chan struct{} // closed once the ledger holds a first agent snapshot
	loadOnce sync.Once

	ready      atomic.Bool
	lastEvent  atomic.Int64 // timeNano of the last Docker event seen, for replay after a reconnect
	syncCount  atomic.Int64 // completed full syncs
	dockerUp   depState
	consulUp   depState
	startedRun time.Time
	metrics    *metrics
	activity   activity
}

// depState is whether a dependency answers, since when, and its last error.
type depState struct {
	mu      sync.Mutex
	up      bool
	since   time.Time
	lastErr string
}

// set records the outcome of talking to the dependency.
func (d *depState) set(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	up := err == nil
	if up != d.up || d.since.IsZero() {
		d.since = time.Now()
	}
	d.up = up
	if err != nil {
		d.lastErr = err.Error()
	}
}

func (d *depState) Load() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.up
}

func (d *depState) get() (up bool, since time.Time, lastErr string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.up, d.since, d.lastErr
}

type ledgerEntry struct {
	Service
	deleting bool      // a deregistration is under way; the agent may already lack it
	written  time.Time // when this daemon last wrote it (zero when read from the agent)
}

// ttlPush is the last status written to a mirror check, and when.
type ttlPush struct {
	health.State
	at time.Time
}

// containerState is what the registrator remembers of one container between reconciles.
type containerState struct {
	name     string
	kill     *killMark
	problems []Problem
	skipped  string

	// For the status page and metrics.
	image    string
	running  bool
	draining bool
	task     *ecsmeta.Task
	startAt  time.Time // Docker's time of the start event not yet followed by a registration
}

// killMark records a Docker kill event; Reconcile decides with the container's stop signal whether it
// is a stop.
type killMark struct {
	signal string
	at     time.Time // Docker's clock, comparable with State.StartedAt
}

// DefaultHealthTTL outlasts a daemon restart (an ECS daemon-service update pulls and starts the new
// image in well under a minute), so mirrored checks never flap because of one, and still takes an
// unwatched instance out of the passing set within a minute and a half of the daemon's death.
const DefaultHealthTTL = 90 * time.Second

// New returns a Registrator; nothing runs until Run.
func New(docker Docker, agent Agent, cfg Config) *Registrator {
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.AgentPoll <= 0 {
		cfg.AgentPoll = time.Second
	}
	if cfg.Drain == "" {
		cfg.Drain = DrainDeregister
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HealthTTL <= 0 {
		cfg.HealthTTL = DefaultHealthTTL
	}
	r := &Registrator{
		docker:     docker,
		agent:      agent,
		cfg:        cfg,
		log:        cfg.Logger,
		queue:      newQueue(),
		syncCh:     make(chan struct{}, 1),
		ledger:     map[string]ledgerEntry{},
		foreign:    map[string]bool{},
		containers: map[string]*containerState{},
		waiters:    map[string][]string{},
		deleted:    map[string]time.Time{},
		mirrored:   map[string]ttlPush{},
		loaded:     make(chan struct{}),
	}
	r.metrics = newMetrics(r, cfg.Metrics)
	return r
}

// Ready reports whether the first full sync since Run started has completed.
func (r *Registrator) Ready() bool { return r.ready.Load() }

// Syncs is the number of completed full syncs (resyncs), for tests and metrics.
func (r *Registrator) Syncs() int64 { return r.syncCount.Load() }

// Run works until ctx ends. It never returns because Docker or Consul are down; it returns ctx's error.
// Registrations are left in place on return: a restarting daemon must not cause a traffic gap.
func (r *Registrator) Run(ctx context.Context) error {
	r.startedRun = time.Now()
	if err := r.waitForNode(ctx); err != nil {
		return err
	}
	if err := r.waitForDocker(ctx); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	r.requestSync()
	g.Go(func() error { r.watchDocker(ctx); return nil })
	g.Go(func() error { r.syncLoop(ctx); return nil })
	g.Go(func() error { r.watchAgent(ctx); return nil })
	g.Go(func() error { r.refreshMirrors(ctx); return nil })
	if r.cfg.ECS != nil {
		g.Go(func() error {
			r.cfg.ECS.Run(ctx, func(id string) {
				if id == "" {
					r.requestSync()
				} else {
					r.queue.add(id)
				}
			})
			return nil
		})
	}
	for range r.cfg.Workers {
		g.Go(func() error { r.work(ctx); return nil })
	}
	g.Go(func() error {
		<-ctx.Done()
		r.queue.shutDown()
		return nil
	})
	_ = g.Wait()
	return ctx.Err()
}

// waitForNode reads the agent's node name, the first part of every service ID, retrying until it answers.
func (r *Registrator) waitForNode(ctx context.Context) error {
	log := r.log.With("component", "consul")
	return retryUntil(ctx, log, "consul agent", func() error {
		node, err := r.agent.NodeName(ctx)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.node = node
		r.mu.Unlock()
		r.consulUp.set(nil)
		log.Info("consul agent answers", "node", node)
		return nil
	})
}

// waitForDocker makes one call that settles the client's API version before any concurrent use: the
// Docker client (v28.5.2) negotiates lazily and its Events reads the version without the lock that
// negotiation writes it under. Once negotiated, the version is never written again.
func (r *Registrator) waitForDocker(ctx context.Context) error {
	return retryUntil(ctx, r.log.With("component", "docker"), "docker", func() error {
		_, err := r.docker.ContainerList(ctx, container.ListOptions{Limit: 1})
		return err
	})
}

// retryUntil calls fn until it succeeds or ctx ends, backing off up to 5s and logging each failure.
func retryUntil(ctx context.Context, log *slog.Logger, what string, fn func() error) error {
	b := retry.Backoff(5 * time.Second)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		d := b.NextBackOff()
		log.Warn(what+" unreachable; retrying", "err", err, "retry_in", d)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}

// watchDocker subscribes to container events, then asks for a full sync, on every (re)connect.
func (r *Registrator) watchDocker(ctx context.Context) {
	log := r.log.With("component", "docker")
	b := retry.Backoff(5 * time.Second)
	for ctx.Err() == nil {
		start := time.Now()
		err := r.streamEvents(ctx, log)
		if err == nil {
			err = errors.New("event stream ended")
		}
		if ctx.Err() == nil {
			r.dockerUp.set(err)
			r.metrics.fail(errDockerEvents)
		}
		if ctx.Err() != nil {
			return
		}
		// A stream that was healthy for a while failed for a new reason: retry quickly.
		if time.Since(start) > time.Minute {
			b.Reset()
		}
		d := b.NextBackOff()
		log.Warn("docker event stream ended; reconnecting", "err", err, "retry_in", d)
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
}

func (r *Registrator) streamEvents(ctx context.Context, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)))}
	if last := r.lastEvent.Load(); last > 0 {
		opts.Since = fmt.Sprintf("%d.%09d", last/1e9, last%1e9)
	}
	msgs, errs := r.docker.Events(ctx, opts)
	// Subscribed first, listed second: nothing that happens in between is missed.
	if err := r.relist(ctx); err != nil {
		return err
	}
	r.dockerUp.set(nil)
	r.queue.retryNow()
	log.Info("watching docker events")
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			if err == nil {
				err = errors.New("stream closed")
			}
			return err
		case m := <-msgs:
			r.handleEvent(m)
		}
	}
}

// relist enqueues every container Docker has. It is the cheap half of a full sync: after a Docker
// reconnect the agent's state is still known.
func (r *Registrator) relist(ctx context.Context) error {
	list, err := r.docker.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, c := range list {
		r.queue.add(c.ID)
	}
	return nil
}

// handleEvent turns a Docker event into a queued container ID. Only which container changed matters;
// Reconcile looks at the container itself.
func (r *Registrator) handleEvent(m events.Message) {
	if m.Type != events.ContainerEventType || m.Actor.ID == "" {
		return
	}
	if m.TimeNano > r.lastEvent.Load() {
		r.lastEvent.Store(m.TimeNano)
	}
	action := string(m.Action)
	at := time.Unix(0, m.TimeNano)
	switch {
	case strings.HasPrefix(action, "exec_"):
		return // every health probe makes three of these
	case action == "kill":
		r.mu.Lock()
		st := r.stateLocked(m.Actor.ID)
		st.kill = &killMark{signal: m.Actor.Attributes["signal"], at: at}
		r.mu.Unlock()
	case action == "start":
		r.mu.Lock()
		r.stateLocked(m.Actor.ID).startAt = at
		r.mu.Unlock()
	case slices.Contains(ignoredActions, action):
		return
	}
	detail := ""
	if sig := m.Actor.Attributes["signal"]; sig != "" {
		detail = "signal " + sig
	} else if code := m.Actor.Attributes["exitCode"]; code != "" {
		detail = "exit code " + code
	}
	r.activity.add(status.Event{Time: at, Container: shortID(m.Actor.ID), Name: m.Actor.Attributes["name"], Source: "docker",
		Action: action, Detail: detail})
	r.queue.add(m.Actor.ID)
}

// ignoredActions cannot change what a container should advertise.
var ignoredActions = []string{"attach", "detach", "resize", "top", "copy", "archive-path", "extract-to-dir", "export", "commit", "create"}

func (r *Registrator) stateLocked(id string) *containerState {
	st := r.containers[id]
	if st == nil {
		st = &containerState{}
		r.containers[id] = st
	}
	return st
}

// requestSync asks the sync loop for a full sync soon; requests merge.
func (r *Registrator) requestSync() {
	select {
	case r.syncCh <- struct{}{}:
	default:
	}
}

// syncLoop runs a full sync on request and every Resync interval.
func (r *Registrator) syncLoop(ctx context.Context) {
	log := r.log.With("component", "sync")
	var tick <-chan time.Time
	if r.cfg.Resync > 0 {
		t := time.NewTicker(r.cfg.Resync)
		defer t.Stop()
		tick = t.C
	}
	b := retry.Backoff(5 * time.Second)
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.syncCh:
		case <-tick:
		case <-retry:
		}
		retry = nil
		if err := r.fullSync(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			d := b.NextBackOff()
			log.Warn("full sync failed; retrying", "err", err, "retry_in", d)
			retry = time.After(d)
			continue
		}
		b.Reset()
		if !r.ready.Load() {
			if err := r.waitIdle(ctx); err != nil {
				return
			}
			r.ready.Store(true)
			log.Info("first full sync done", "took", time.Since(r.startedRun).Round(time.Millisecond))
		}
	}
}

// fullSync reads the agent's services, then Docker's containers, and queues every container either
// knows. The agent is read first: a service registered after that read belongs to a container that the
// list then holds, so no fresh registration is mistaken for an orphan.
func (r *Registrator) fullSync(ctx context.Context) error {
	readStart := time.Now()
	st, err := r.agent.Services(ctx)
	if ctx.Err() == nil {
		r.consulUp.set(err)
	}
	if err != nil {
		r.metrics.fail(errConsulRead)
		return err
	}
	list, err := r.docker.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		r.metrics.fail(errDockerList)
		return fmt.Errorf("list containers: %w", err)
	}
	r.mu.Lock()
	// The agent's answer is the truth as of readStart; writes this daemon made since are newer.
	fresh := make(map[string]ledgerEntry, len(st.Owned))
	for id, s := range st.Owned {
		if at, ok := r.deleted[id]; !ok || at.Before(readStart) {
			fresh[id] = ledgerEntry{Service: s}
		}
	}
	for id, e := range r.ledger {
		if e.deleting || e.written.After(readStart) {
			fresh[id] = e
		}
	}
	for id, at := range r.deleted {
		if at.Before(readStart) {
			delete(r.deleted, id)
		}
	}
	r.ledger = fresh
	var keys []string
	var strays []string
	for id, e := range fresh {
		if e.ContainerID == "" {
			strays = append(strays, id)
		} else {
			keys = append(keys, e.ContainerID)
		}
	}
	r.foreign = st.Foreign
	r.mu.Unlock()
	r.loadOnce.Do(func() { close(r.loaded) })
	for _, c := range list {
		keys = append(keys, c.ID)
	}
	for _, k := range keys {
		r.queue.add(k)
	}
	// Owned but tied to no container: nothing can ever want it.
	for _, id := range strays {
		if err := r.deregister(ctx, id); err != nil {
			return err
		}
	}
	r.syncCount.Add(1)
	return nil
}

// waitIdle waits until the queue is empty and no worker is busy.
func (r *Registrator) waitIdle(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !r.queue.idle() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// watchAgent notices an agent that lost services it should hold (a dev agent restarts empty) or that
// answers again after an outage, and asks for a full sync at once rather than at the next resync.
func (r *Registrator) watchAgent(ctx context.Context) {
	log := r.log.With("component", "consul")
	b := retry.Backoff(r.cfg.AgentPoll)
	wait := r.cfg.AgentPoll
	down := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		readStart := time.Now()
		st, err := r.agent.Services(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !down {
				log.Warn("consul agent unreachable", "err", err)
			}
			down = true
			r.consulUp.set(err)
			r.metrics.fail(errConsulRead)
			wait = b.NextBackOff()
			continue
		}
		b.Reset()
		wait = r.cfg.AgentPoll
		r.consulUp.set(nil)
		if down {
			down = false
			log.Info("consul agent answers again; syncing")
			r.refreshNode(ctx, log)
			r.queue.retryNow()
			r.requestSync()
			continue
		}
		if missing := r.missingFrom(st, readStart); len(missing) > 0 {
			log.Warn("consul agent lacks services it was given (restarted?); syncing", "missing", len(missing), "example", missing[0])
			r.refreshNode(ctx, log)
			r.requestSync()
		}
	}
}

// refreshNode re-reads the node name: an agent that restarted may have another.
func (r *Registrator) refreshNode(ctx context.Context, log *slog.Logger) {
	node, err := r.agent.NodeName(ctx)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if node != r.node {
		log.Warn("consul node name changed", "old", r.node, "new", node)
		r.node = node
	}
}

// missingFrom lists ledger services that the agent, read at readStart, does not hold; services being
// deleted or written after the read are in flight, not missing.
func (r *Registrator) missingFrom(st AgentState, readStart time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var missing []string
	for id, e := range r.ledger {
		if _, ok := st.Owned[id]; !ok && !e.deleting && e.written.Before(readStart) {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	return missing
}

func (r *Registrator) work(ctx context.Context) {
	// Diffing against an empty ledger would rewrite every service at startup.
	select {
	case <-ctx.Done():
		return
	case <-r.loaded:
	}
	for {
		id, ok := r.queue.get()
		if !ok {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		began := time.Now()
		err := r.Reconcile(rctx, id)
		r.metrics.reconcile.Observe(time.Since(began).Seconds())
		cancel()
		switch {
		case err == nil:
			r.queue.forget(id)
		case ctx.Err() != nil:
		default:
			d := r.queue.retry(id, 10*time.Second)
			r.containerLog(id).Warn("reconcile failed; retrying", "err", err, "retry_in", d)
		}
		r.queue.done(id)
	}
}

func (r *Registrator) containerLog(id string) *slog.Logger {
	r.mu.Lock()
	name := ""
	if st := r.containers[id]; st != nil {
		name = st.name
	}
	r.mu.Unlock()
	return r.log.With("component", "reconcile", "container", shortID(id), "name", name)
}

func shortID(id string) string { return id[:min(12, len(id))] }

// Reconcile brings one container's services in the agent in line with what the container should
// advertise now. It is safe to call any number of times: when nothing changed it writes nothing.
func (r *Registrator) Reconcile(ctx context.Context, id string) error {
	in, err := r.docker.ContainerInspect(ctx, id)
	gone := cerrdefs.IsNotFound(err)
	if err != nil && !gone {
		r.metrics.fail(errDockerInspect)
		return fmt.Errorf("inspect: %w", err)
	}
	var res Result
	var c Container
	switch {
	case gone && r.cfg.ECS != nil:
		r.cfg.ECS.Forget(id)
	case !gone:
		c, res = r.evaluate(id, in)
	}
	log := r.containerLog(id)
	problems := res.Problems

	desired := map[string]Service{}
	for _, s := range res.Services {
		desired[s.ID] = s
	}
	r.mu.Lock()
	var toRegister []Service
	var toDeregister []string
	for _, s := range res.Services {
		e, ok := r.ledger[s.ID]
		switch {
		case r.foreign[s.ID]:
			problems = append(problems, Problem{Severity: SeverityError, Key: "SERVICE_ID",
				Message: fmt.Sprintf("a service with ID %q that ecs-registrator does not own is on the agent; left untouched", s.ID)})
		case ok && e.ContainerID != id && !e.deleting:
			problems = append(problems, Problem{Severity: SeverityError, Key: "SERVICE_ID",
				Message: fmt.Sprintf("service ID %q is already registered for container %s; waiting for it to go", s.ID, shortID(e.ContainerID))})
			if !slices.Contains(r.waiters[s.ID], id) {
				r.waiters[s.ID] = append(r.waiters[s.ID], id)
			}
		case ok && e.Service.Equal(s) && !e.deleting:
		case ok && e.Maintenance != "" && s.Maintenance == "":
			// Re-registering keeps the maintenance check; start over to lift it.
			toDeregister = append(toDeregister, s.ID)
			toRegister = append(toRegister, s)
		default:
			toRegister = append(toRegister, s)
		}
	}
	for sid, e := range r.ledger {
		if e.ContainerID == id {
			if _, ok := desired[sid]; !ok {
				toDeregister = append(toDeregister, sid)
			}
		}
	}
	if gone {
		delete(r.containers, id)
	}
	r.mu.Unlock()
	r.report(ctx, log, id, problems, res.Skipped)

	slices.Sort(toDeregister)
	for _, sid := range toDeregister {
		if err := r.deregister(ctx, sid); err != nil {
			return err
		}
		log.Info("deregistered", "service", sid)
		r.activity.add(status.Event{Container: shortID(id), Name: c.Name, Source: "reconcile", Action: "deregistered", Detail: sid})
	}
	for _, s := range toRegister {
		if err := r.agent.Register(ctx, s); err != nil {
			r.metrics.fail(errConsulRegister)
			return err
		}
		r.metrics.registrations.Inc()
		r.mu.Lock()
		r.ledger[s.ID] = ledgerEntry{Service: s, written: time.Now()}
		delete(r.mirrored, s.ID+":"+health.KindMirror) // registered with its status; the output follows
		if st := r.containers[id]; st != nil && !st.startAt.IsZero() {
			r.metrics.lag.Observe(time.Since(st.startAt).Seconds())
			st.startAt = time.Time{}
		}
		r.mu.Unlock()
		r.activity.add(status.Event{Container: shortID(id), Name: c.Name, Source: "reconcile", Action: "registered",
			Detail: s.ID + " at " + s.Addr()})
		log.Info("registered", "service", s.ID, "service_name", s.Name, "address", s.Addr(), "checks", len(s.Checks),
			"maintenance", s.Maintenance != "")
	}
	for _, s := range res.Services {
		r.mu.Lock()
		e, ours := r.ledger[s.ID]
		r.mu.Unlock()
		if s.Health == nil || !ours || e.ContainerID != id || e.deleting {
			continue // not registered for this container (an ID clash, reported above)
		}
		if err := r.pushMirror(ctx, log, s.ID+":"+health.KindMirror, *s.Health, false); err != nil {
			return err
		}
	}
	return nil
}

// pushMirror writes a mirror check's state when it differs from what was last written, or when force
// is set (the TTL refresh).
func (r *Registrator) pushMirror(ctx context.Context, log *slog.Logger, checkID string, st health.State, force bool) error {
	r.mu.Lock()
	last, ok := r.mirrored[checkID]
	r.mu.Unlock()
	if ok && last.State == st && !force {
		return nil
	}
	if err := r.agent.UpdateTTL(ctx, checkID, st); err != nil {
		r.metrics.fail(errConsulCheck)
		return err
	}
	r.metrics.healthUpdates.Inc()
	r.mu.Lock()
	r.mirrored[checkID] = ttlPush{State: st, at: time.Now()}
	r.mu.Unlock()
	if !ok || last.Status != st.Status {
		log.Info("health", "check", checkID, "status", st.Status, "output", st.Output)
		r.activity.add(status.Event{Source: "health", Action: st.Status, Detail: checkID + ": " + st.Output})
	}
	return nil
}

// refreshMirrors rewrites every mirror check's state a third of its TTL after the last write, so it
// never expires while the daemon runs.
func (r *Registrator) refreshMirrors(ctx context.Context) {
	log := r.log.With("component", "health")
	ttl := r.cfg.HealthTTL
	t := time.NewTicker(ttl / 6)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		due := map[string]health.State{}
		for id, p := range r.mirrored {
			if time.Since(p.at) >= ttl/3 {
				due[id] = p.State
			}
		}
		r.mu.Unlock()
		for _, id := range slices.Sorted(maps.Keys(due)) {
			if err := r.pushMirror(ctx, log, id, due[id], true); err != nil && ctx.Err() == nil {
				// The agent may have lost the service: a sync registers it again.
				log.Warn("refreshing a health check failed", "check", id, "err", err)
				r.requestSync()
			}
		}
	}
}

// evaluate works out what an existing container should advertise now: its ECS task, whether it is
// being stopped, and its desired services. It records what the status page shows of the container.
func (r *Registrator) evaluate(id string, in container.InspectResponse) (Container, Result) {
	c := FromInspect(in)
	opts := Options{AdvertiseIP: r.cfg.AdvertiseIP, Internal: r.cfg.Internal, OptIn: r.cfg.OptIn, Tags: r.cfg.Tags,
		HealthTTL: r.cfg.HealthTTL}
	if r.cfg.ECS != nil {
		opts.Host = r.cfg.ECS.Host()
		if t, ok := r.cfg.ECS.Lookup(c.ID, c.Labels, c.Env, c.Running); ok {
			c.Task = &t
		}
	} else if t, ok := ecsmeta.FromLabels(c.Labels); ok {
		c.Task = &t
	}
	r.mu.Lock()
	opts.Node = r.node
	st := r.stateLocked(id)
	st.name, st.image, st.running, st.task = c.Name, c.Image, c.Running, c.Task
	// ECS marks a task for stopping before its containers get the signal: stop advertising then.
	c.Draining = r.drainingLocked(st, c) || (c.Running && c.Task != nil && c.Task.Stopping())
	if c.Draining && !st.draining {
		r.metrics.drains.Inc()
		why := "stop signal"
		if c.Task != nil && c.Task.Stopping() {
			why = "ECS task DesiredStatus=STOPPED"
		}
		r.activity.add(status.Event{Container: shortID(id), Name: c.Name, Source: "reconcile", Action: "draining", Detail: why})
	}
	st.draining = c.Draining
	r.mu.Unlock()

	if !c.Draining || r.cfg.Drain != DrainMaintenance {
		return c, Desired(c, opts)
	}
	// Maintenance drain: the services stay, each with Consul's maintenance check naming this run.
	c.Draining = false
	res := Desired(c, opts)
	for i := range res.Services {
		res.Services[i].Maintenance = drainReason + " (started " + c.StartedAt.Format(time.RFC3339Nano) + ")"
	}
	return c, res
}

func (r *Registrator) deregister(ctx context.Context, sid string) error {
	r.mu.Lock()
	e, ok := r.ledger[sid]
	if ok {
		e.deleting = true
		r.ledger[sid] = e
	}
	r.mu.Unlock()
	err := r.agent.Deregister(ctx, sid)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.metrics.fail(errConsulDereg)
		if cur, ok := r.ledger[sid]; ok {
			cur.deleting = false
			r.ledger[sid] = cur
		}
		return err
	}
	delete(r.ledger, sid)
	r.metrics.deregistrations.Inc()
	delete(r.mirrored, sid+":"+health.KindMirror)
	r.deleted[sid] = time.Now()
	for _, w := range r.waiters[sid] {
		r.queue.add(w)
	}
	delete(r.waiters, sid)
	return nil
}

// drainingLocked decides whether the container's last kill event was a stop of its current run.
func (r *Registrator) drainingLocked(st *containerState, c Container) bool {
	k := st.kill
	if k == nil {
		// A daemon that restarted mid-drain finds its own maintenance note for this run on the agent.
		if r.cfg.Drain == DrainMaintenance && c.Running {
			note := drainReason + " (started " + c.StartedAt.Format(time.RFC3339Nano) + ")"
			for _, e := range r.ledger {
				if e.ContainerID == c.ID && e.Maintenance == note {
					return true
				}
			}
		}
		return false
	}
	if !c.Running || c.StartedAt.After(k.at) || !Terminating(k.signal, c.StopSignal) {
		st.kill = nil // ended, restarted since, or a signal like SIGHUP that is no stop
		return false
	}
	return true
}

// report records a container's problems and logs them when they change, not on every resync.
func (r *Registrator) report(ctx context.Context, log *slog.Logger, id string, problems []Problem, skipped string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.containers[id]
	if st == nil {
		return
	}
	if slices.Equal(st.problems, problems) && st.skipped == skipped {
		return
	}
	st.problems, st.skipped = slices.Clone(problems), skipped
	for _, p := range problems {
		if p.Severity == SeverityError {
			r.metrics.fail(errBadDefinition)
			r.activity.add(status.Event{Container: shortID(id), Name: st.name, Source: "reconcile", Action: "kept out", Detail: p.String()})
		}
		level := slog.LevelWarn
		if p.Severity == SeverityError {
			level = slog.LevelError
		}
		log.Log(ctx, level, "bad service definition", "key", p.Key, "problem", p.Message)
	}
	if skipped != "" {
		log.Debug("not registered", "reason", skipped)
	}
}

// OwnedServices returns the services the registrator believes the agent holds for it, by ID.
func (r *Registrator) OwnedServices() map[string]Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Service, len(r.ledger))
	for id, e := range r.ledger {
		if !e.deleting {
			out[id] = e.Service
		}
	}
	return out
}

// Problems returns the problems last reported for a container, and why it has no services if it has none.
func (r *Registrator) Problems(id string) ([]Problem, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.containers[id]
	if st == nil {
		return nil, ""
	}
	return slices.Clone(st.problems), st.skipped
}
