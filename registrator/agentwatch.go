package registrator

import (
	"context"
	"time"

	"github.com/ecs-registrator/ecs-registrator/internal/retry"
)

// watchAgent reads the agent's services every AgentPoll and hands each change to the applier: an
// agent that restarted and forgot what it was given, or a service someone else registered, is seen
// within a second rather than at the next resync. (The agent's service list takes no blocking
// query.) A read that finds what the last one found, with no write by the applier in between and
// the last one merged, costs the applier nothing.
func (r *Registrator) watchAgent(ctx context.Context) error {
	log := r.log.With("component", "consul")
	b := retry.Backoff(5 * time.Second)
	var last observation
	down, seen := false, false
	for {
		wait := r.cfg.AgentPoll
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
	}
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
