package registrator

import (
	"context"
	"time"

	"github.com/ecs-registrator/ecs-registrator/internal/retry"
)

// watchAgent follows the agent's services with blocking queries and hands every change to the
// applier: an agent that restarted and forgot what it was given, or a service someone else
// registered, is seen within AgentPoll rather than at the next resync. In steady state it costs one
// request per blocking query's wait.
func (r *Registrator) watchAgent(ctx context.Context) error {
	log := r.log.With("component", "consul")
	b := retry.Backoff(5 * time.Second)
	hash, down, owned := "", false, 0
	for {
		o := r.applier.startRead()
		st, err := r.agent.Services(ctx, hash)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if !down {
				log.Warn("consul agent unreachable", "err", err)
			}
			down, hash = true, ""
			r.consulUp.set(err)
			r.metrics.fail(errConsulRead)
			if err := sleep(ctx, max(b.NextBackOff(), r.cfg.AgentPoll)); err != nil {
				return err
			}
			continue
		}
		b.Reset()
		r.consulUp.set(nil)
		if down {
			down = false
			log.Info("consul agent answers again")
			r.refreshNode(ctx)
			r.queue.retryNow()
		}
		if st.Hash != hash || hash == "" {
			// A blocking query times out with the same hash: nothing changed then.
			o.state = st
			r.applier.observe(ctx, o)
		}
		if len(st.Owned) == 0 && owned > 0 {
			r.refreshNode(ctx) // lost everything: a restarted agent, maybe under another name
		}
		hash, owned = st.Hash, len(st.Owned)
		// Changes come in bursts (a deployment); one read per AgentPoll takes them all.
		if err := sleep(ctx, r.cfg.AgentPoll); err != nil {
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
