package registrator

import (
	"context"
	"time"
)

// The applier's side of reading the agent. A read is numbered before it starts, so that merging it
// keeps the writes the applier made meanwhile (merge); sync.go and agentwatch.go read through these
// methods and never touch the applier's counters.

// observation is the agent's services as read at one moment.
type observation struct {
	state AgentState
	seq   uint64 // the applier's write count when the read started: later writes are newer than it
	read  uint64 // the read's number (applier.reads when it started): an older read never replaces a newer
	full  bool   // read by a full sync, after the store learnt every container Docker lists
}

// readAgent reads the agent's services for the applier. The read is not handed over yet (observe): a
// full sync first learns every container Docker lists, so that no registration made after the read
// is mistaken for an orphan.
func (a *applier) readAgent(ctx context.Context) (observation, error) {
	o := observation{seq: a.seq.Load(), read: a.reads.Add(1)}
	st, err := a.agent.Services(ctx)
	o.state = st
	return o, err
}

// news reports whether a read tells the applier anything that last, the read before it, did not:
// another answer, a write in between, or last not merged (a newer read was).
func (a *applier) news(o, last observation) bool {
	return o.seq != last.seq || !o.state.Equal(last.state) || a.merged.Load() != last.read
}

// waitSettled waits until settled reports every container queued at the first sync evaluated, and
// then for a round, begun after that, that tried every write it planned; kick asks for a round. A
// write the agent refused waits in its backoff, the container's problem, not the daemon's.
func (a *applier) waitSettled(ctx context.Context, settled func() bool, kick func()) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var after uint64
	asked := false
	for {
		switch {
		case !asked && settled():
			after, asked = a.rounds.Load(), true
			kick()
		case asked && a.doneRound.Load() > after:
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
