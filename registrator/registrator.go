package registrator

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/ecs-registrator/ecs-registrator/internal/promtext"
	"golang.org/x/sync/errgroup"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/depstate"
	"github.com/ecs-registrator/ecs-registrator/internal/retry"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
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
	// ok is false for a container ECS did not start. A container that is not running needs no more.
	Lookup(c ecsmeta.Ref) (task ecsmeta.Task, ok bool)
	// Remember takes what this daemon wrote into its services' Meta before it restarted, so that it
	// does not ask the ECS API again.
	Remember(known []ecsmeta.Known)
	// Forget drops a container that is gone.
	Forget(id string)
	// Host returns the host's EC2 identity, zero while unknown.
	Host() ecsmeta.Host
	// Run fetches in the background until ctx ends, calling changed with the ID of a container whose
	// metadata changed, or "" when the host's did.
	Run(ctx context.Context, changed func(containerID string))
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
	// AgentPoll is how often the agent's services are read, to notice an agent that restarted and
	// forgot them, or a foreign service registered. Default 1s.
	AgentPoll time.Duration
	// HealthTTL is the TTL of the checks that mirror a container's own health (Docker HEALTHCHECK,
	// ECS health). They are refreshed every third of it; default DefaultHealthTTL.
	HealthTTL time.Duration
	// Self is the service under which the daemon registers itself on its node, with a TTL check
	// (SelfTTL, default DefaultSelfTTL) it heartbeats (self.go); "" registers none.
	Self    string
	SelfTTL time.Duration
	// Version is the daemon's version, for its own registration.
	Version string
	// ECS enriches task containers; nil reads the ECS labels only.
	ECS  Enricher
	Tags desired.TagTemplates
	// InspectTags is gliderlabs-mode -tags: one template over each container's docker inspect document.
	InspectTags *desired.InspectTagTemplate
	// Gliderlabs selects gliderlabs/registrator's label semantics (Options.Gliderlabs).
	Gliderlabs bool
	// IPFromLabel is -useIpFromLabel (Options.IPFromLabel).
	IPFromLabel string
	// Policy is the registration policy (-policy; Options.Policy): nil lets any container claim any
	// name. Evaluating carries out its verdicts; the core counts and shows the refusals.
	Policy *desired.Policy
	// IDPrefix is the first part of default service IDs; empty uses the Consul agent's node name.
	// gliderlabs mode sets the hostname, as gliderlabs/registrator does.
	IDPrefix string
	// KeepFailed is -deregister on-success: a container that exits with a non-zero code that is not a
	// signal's keeps its services (its mirrored health critical) until it runs again or is removed.
	KeepFailed bool
	// Migrate says what happens to services gliderlabs/registrator left on the agent.
	Migrate Migration
	Logger  *slog.Logger
	// Metrics, when set, receives the daemon's Prometheus metrics.
	Metrics *promtext.Registry
	// HostLifecycle, when set, drains the whole host while it is going away (hostdrain.go); nil never does.
	HostLifecycle HostLifecycle
}

// Registrator keeps the Consul agent in step with Docker. Create it with New and run it with Run.
//
// The data path: the Docker watch (watch.go) and the syncs (sync.go) queue container IDs; workers
// evaluate each container into the store (evaluate.go, store.go); the applier plans from the whole
// store and the agent's state (plan.go) and is the only writer to the agent (apply.go), whose own
// watch (agentwatch.go) tells it what the agent holds. Snapshot (snapshot.go) is what the view reads.
type Registrator struct {
	docker  Docker
	agent   Agent
	cfg     Config
	log     *slog.Logger
	queue   *queue
	store   *store
	applier *applier
	syncCh  chan struct{} // a full sync is wanted; capacity 1 merges requests
	synced  chan struct{} // closed after the first full sync
	readyCh chan struct{} // closed when Ready turns true
	// selfWake makes the heartbeat beat now (capacity 1): the host's drain began or ended.
	selfWake chan struct{}

	node      atomic.Pointer[string]
	ready     atomic.Bool
	lastEvent atomic.Int64 // timeNano of the last Docker event seen, for replay after a reconnect
	syncCount atomic.Int64 // completed full syncs
	dockerUp  depstate.State
	consulUp  depstate.State
	metrics   *metrics
	activity  activity
}

// dependency is a dependency's state as the snapshot shows it.
func dependency(d *depstate.State) Dependency {
	st := d.Get()
	return Dependency{Up: st.Up, Since: st.Since, LastError: st.LastError}
}

// DefaultHealthTTL is how long mirrored health outlasts the daemon. It is refreshed every third of
// it, so a daemon that is down (a crash loop, a failed pull, a bad rollout over half the fleet) changes
// nothing in Consul for at least two thirds of it, ten minutes: healthy services are not taken out of
// rotation because the daemon watching them is. The daemon's own check (Self) shows the outage within
// DefaultSelfTTL; after the TTL the instances it can no longer vouch for leave the passing set.
const DefaultHealthTTL = 15 * time.Minute

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
	if cfg.SelfTTL <= 0 {
		cfg.SelfTTL = DefaultSelfTTL
	}
	r := &Registrator{
		docker: docker,
		agent:  agent,
		cfg:    cfg,
		log:    cfg.Logger,
		queue:  newQueue(),
		store:  newStore(),
		syncCh: make(chan struct{}, 1),
		synced: make(chan struct{}),

		readyCh:  make(chan struct{}),
		selfWake: make(chan struct{}, 1),
	}
	r.node.Store(new(string))
	r.metrics = newMetrics(r, cfg.Metrics)
	r.applier = newApplier(agent, r.store, cfg, r.metrics, &r.activity)
	return r
}

// Ready reports whether the first full sync since Run started has completed and been applied.
func (r *Registrator) Ready() bool { return r.ready.Load() }

// ConsulUp reports whether the Consul agent answered last time it was asked.
func (r *Registrator) ConsulUp() bool { return r.consulUp.Get().Up }

// Syncs is the number of completed full syncs (resyncs), for tests and metrics.
func (r *Registrator) Syncs() int64 { return r.syncCount.Load() }

// Run works until ctx ends. It never returns because Docker or Consul are down; it returns ctx's error.
// Registrations are left in place on return: a restarting daemon must not cause a traffic gap.
func (r *Registrator) Run(ctx context.Context) error {
	started := time.Now()
	var self sync.WaitGroup
	selfCtx, stopSelf := context.WithCancel(ctx)
	defer func() { stopSelf(); self.Wait() }() // its last write ("stopped") is done when Run returns
	if r.cfg.Self != "" {
		// From the start: a daemon that never reaches Docker on a new node is down, and says so.
		self.Go(func() { _ = r.heartbeat(selfCtx) })
	}
	if err := r.waitForNode(ctx); err != nil {
		return err
	}
	if err := r.waitForDocker(ctx); err != nil {
		return err
	}
	r.rememberTasks(ctx)
	g, ctx := errgroup.WithContext(ctx)
	if r.cfg.HostLifecycle != nil {
		r.noteHost() // before the first plan: a daemon started on a host that is going registers nothing
		g.Go(func() error { return r.watchHost(ctx) })
	}
	r.requestSync()
	g.Go(func() error { return r.applier.Run(ctx) })
	g.Go(func() error { return r.watchDocker(ctx) })
	g.Go(func() error { return r.syncLoop(ctx) })
	g.Go(func() error { return r.becomeReady(ctx, started) })
	g.Go(func() error { return r.watchAgent(ctx) })
	if r.cfg.ECS != nil {
		g.Go(func() error { r.cfg.ECS.Run(ctx, r.ecsChanged); return ctx.Err() })
	}
	for range r.cfg.Workers {
		g.Go(func() error { return r.work(ctx) })
	}
	g.Go(func() error {
		<-ctx.Done()
		r.queue.shutDown()
		return ctx.Err()
	})
	return g.Wait()
}

// waitForNode reads the agent's node name, the first part of every service ID, retrying until it answers.
func (r *Registrator) waitForNode(ctx context.Context) error {
	log := r.log.With("component", "consul")
	return retryUntil(ctx, log, "consul agent", func() error {
		node, err := r.agent.NodeName(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.consulUp.Record(err) // the status page says why: unreachable, or which permission is missing
			}
			return err
		}
		r.node.Store(&node)
		r.consulUp.Record(nil)
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
		if ctx.Err() == nil {
			r.dockerUp.Record(err)
		}
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
		log.Warn(what+" "+refusedOrUnreachable(err)+"; retrying", "err", err, "retry_in", d)
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

// refusedOrUnreachable says whether a dependency refused a request (it answered: an ACL token without the
// permission the error names, say) or could not be reached.
func refusedOrUnreachable(err error) string {
	if errors.Is(err, ErrRefused) {
		return "refused the request"
	}
	return "unreachable"
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func shortID(id string) string { return id[:min(12, len(id))] }
