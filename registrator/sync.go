package registrator

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/retry"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// requestSync asks the sync loop for a full sync soon; requests merge.
func (r *Registrator) requestSync() {
	select {
	case r.syncCh <- struct{}{}:
	default:
	}
}

// syncLoop runs a full sync on request and every Resync interval.
func (r *Registrator) syncLoop(ctx context.Context) error {
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
			return ctx.Err()
		case <-r.syncCh:
		case <-tick:
		case <-retry:
		}
		retry = nil
		if err := r.fullSync(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d := b.NextBackOff()
			log.Warn("full sync failed; retrying", "err", err, "retry_in", d)
			retry = time.After(d)
			continue
		}
		b.Reset()
		if r.syncCount.Add(1) == 1 {
			r.queue.mark()
			close(r.synced)
		}
	}
}

// becomeReady declares the daemon ready once the first full sync has been evaluated and applied.
func (r *Registrator) becomeReady(ctx context.Context, started time.Time) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-r.synced:
	}
	// Every container queued by then evaluated, and a round of the applier after that. Containers
	// that come and go meanwhile do not hold it up: on a host that never stops churning, waiting
	// for a queue with nothing in it would never end.
	if err := r.applier.waitSettled(ctx, r.queue.passed, r.store.notify); err != nil {
		return err
	}
	r.ready.Store(true)
	close(r.readyCh)
	r.log.Info("first full sync done", "component", "sync", "took", time.Since(started).Round(time.Millisecond))
	return nil
}

// fullSync reads the agent's services, then Docker's containers, evaluates again those the list
// shows otherwise than the store knows them (markListed), with a fresh inspect, and hands the agent's state to the applier. The agent is read first: a
// service registered after that read belongs to a container that the list then holds, so no fresh
// registration is mistaken for an orphan.
func (r *Registrator) fullSync(ctx context.Context) error {
	o, err := r.applier.readAgent(ctx)
	if ctx.Err() == nil {
		r.consulUp.Record(err)
	}
	if err != nil {
		r.metrics.fail(errConsulRead)
		return err
	}
	marked, err := r.markListed(ctx, false)
	if err != nil {
		return err
	}
	o.full = true
	r.applier.observe(ctx, o)
	r.refreshNode(ctx) // a new node name queues every container itself
	for _, id := range marked {
		r.queue.add(id)
	}
	return nil
}

// rememberTasks hands the enricher what this daemon wrote into its services' Meta before it restarted,
// before any container is evaluated: a rolling update of the daemon service restarts every host's
// daemon at once, and none of them need ask the ECS API about tasks it already described. The agent
// answered a moment ago (waitForNode); if it does not now, the first full sync goes on without.
func (r *Registrator) rememberTasks(ctx context.Context) {
	if r.cfg.ECS == nil {
		return
	}
	st, err := r.agent.Services(ctx)
	if err != nil {
		r.log.Debug("could not read the agent's services for their ECS Meta", "err", err)
		return
	}
	r.cfg.ECS.Remember(knownTasks(st.Owned))
}

// knownTasks is what this daemon wrote into its services' Meta about their ECS tasks: the service
// name, the tags it looked up (MetaECSTags) and their values (Meta keys are lower case). A task whose
// services disagree (a container's own label wins over a task tag in its Meta) is left out: the
// enricher asks about it again.
func knownTasks(owned map[string]desired.Service) []ecsmeta.Known {
	byTask := map[string]*ecsmeta.Known{}
	var bad []string
	for _, s := range owned {
		arn := s.Meta[desired.MetaECSTaskARN]
		if arn == "" || s.Meta[desired.MetaECSService] == "" && s.Meta[desired.MetaECSTags] == "" {
			continue
		}
		k := ecsmeta.Known{TaskARN: arn, Service: s.Meta[desired.MetaECSService], Tags: map[string]string{}}
		if read := s.Meta[desired.MetaECSTags]; read != "" {
			k.TagsRead = strings.Split(read, ",")
			for _, tag := range k.TagsRead {
				if v, ok := s.Meta[strings.ToLower(tag)]; ok {
					k.Tags[strings.ToLower(tag)] = v
				}
			}
		}
		if prev, ok := byTask[arn]; ok {
			if prev.Service != k.Service || !maps.Equal(prev.Tags, k.Tags) || !slices.Equal(prev.TagsRead, k.TagsRead) {
				bad = append(bad, arn)
			}
			continue
		}
		byTask[arn] = &k
	}
	for _, arn := range bad {
		delete(byTask, arn)
	}
	out := make([]ecsmeta.Known, 0, len(byTask))
	for _, k := range byTask {
		out = append(out, *k)
	}
	return out
}
