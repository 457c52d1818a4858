package registrator

import (
	"context"
	"time"

	"github.com/ecs-registrator/ecs-registrator/internal/retry"
)

// changeWaiter is an Agent that can wait until the agent's services may have changed (consul.Agent:
// a blocking query on the catalog, which the agent updates the moment its services change).
type changeWaiter interface {
	WaitChange(ctx context.Context, node string, index uint64) (uint64, error)
}

// watchAgent reads the agent's services and hands each change to the applier: an agent that
// restarted and forgot what it was given, or a service someone else registered, is seen within a
// second rather than at the next resync. The agent's service list takes no blocking query, so
// between reads the watch waits on the catalog when the agent offers that (an idle host then reads
// nothing), and at most one read is made every AgentPoll; an agent that restarts breaks the wait.
// When the wait fails (no server to answer, a refusal), it reads every AgentPoll
// for a minute before trying again. A read that finds what the last one found, with no write by the
// applier in between and the last one merged, costs the applier nothing.
func (r *Registrator) watchAgent(ctx context.Context) error {
	log := r.log.With("component", "consul")
	b := retry.Backoff(5 * time.Second)
	var last observation
	down, seen := false, false
	waiter, _ := r.agent.(changeWaiter)
	var index uint64
	var pollUntil time.Time // waits failed: read every AgentPoll until then
	for {
		wait := r.cfg.AgentPoll
		readAt := time.Now()
		o, err := r.applier.readAgent(ctx)
		st := o.state
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			if !down {
				log.Warn("consul agent "+refusedOrUnreachable(err), "err", err)
			}
			down, seen = true, false
			r.consulUp.Record(err)
			r.metrics.fail(errConsulRead)
			wait = max(b.NextBackOff(), wait)
		default:
			b.Reset()
			r.consulUp.Record(nil)
			if down {
				down = false
				log.Info("consul agent answers again")
				r.refreshNode(ctx)
				r.queue.retryNow()
			}
			if len(st.Owned) == 0 && len(last.state.Owned) > 0 {
				r.refreshNode(ctx) // lost everything: a restarted agent, maybe under another name
			}
			if !seen || r.applier.news(o, last) {
				r.applier.observe(ctx, o)
			}
			last, seen = o, true
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		if waiter == nil || down || time.Now().Before(pollUntil) {
			continue
		}
		next, err := waiter.WaitChange(ctx, *r.node.Load(), index)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			log.Debug("cannot wait for the agent's services to change; reading them every "+r.cfg.AgentPoll.String(), "err", err)
			index, pollUntil = 0, time.Now().Add(time.Minute)
		default:
			index = next
			if err := r.ownWritesPause(ctx, o.seq, readAt); err != nil {
				return err
			}
		}
	}
}

// ownWritesPause waits, after the catalog changed, while the change may be the daemon's own: until
// its writes pause for AgentPoll, and no longer than five AgentPolls after the last read (from
// readAt; seq is the applier's write count when it started). A change when the daemon has not
// written since is someone else's, and is read at once. On a host where containers start and stop
// all the time this keeps the watch's reads, which cost the agent and the daemon in proportion to
// the agent's services, away from the registrations the daemon is making.
func (r *Registrator) ownWritesPause(ctx context.Context, seq uint64, readAt time.Time) error {
	for time.Since(readAt) < 5*r.cfg.AgentPoll {
		now := r.applier.seq.Load()
		if now == seq {
			return nil
		}
		seq = now
		if err := sleep(ctx, r.cfg.AgentPoll); err != nil {
			return err
		}
	}
	return nil
}

// refreshNode re-reads the node name: an agent that restarted may have another, and every default
// service ID starts with it.
func (r *Registrator) refreshNode(ctx context.Context) {
	node, err := r.agent.NodeName(ctx)
	if err != nil || node == *r.node.Load() {
		return
	}
	r.log.Warn("consul node name changed", "old", *r.node.Load(), "new", node)
	r.node.Store(&node)
	for _, id := range r.store.ids() {
		r.queue.add(id)
	}
}
