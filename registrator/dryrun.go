package registrator

import (
	"context"
	"log/slog"
	"maps"
	"sync"

	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// DryRun is an Agent that reads from the real agent and only logs the writes it would make. It remembers
// them and shows them in Services, so the daemon sees its pretend writes as done and logs each once.
type DryRun struct {
	Agent
	log *slog.Logger

	mu      sync.Mutex
	pretend map[string]*desired.Service // nil value: pretend-deregistered
}

// NewDryRun wraps agent.
func NewDryRun(agent Agent, log *slog.Logger) *DryRun {
	return &DryRun{Agent: agent, log: log, pretend: map[string]*desired.Service{}}
}

func (d *DryRun) Services(ctx context.Context) (AgentState, error) {
	st, err := d.Agent.Services(ctx)
	if err != nil {
		return st, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st.Owned = maps.Clone(st.Owned) // the agent's answer may be shared with the next read's
	for id, s := range d.pretend {
		if s == nil {
			delete(st.Owned, id)
		} else {
			st.Owned[id] = *s
		}
	}
	return st, nil
}

func (d *DryRun) Register(_ context.Context, s desired.Service, _ bool) error {
	d.log.Info("dry run: would register", "service", s.ID, "service_name", s.Name, "address", s.Addr(), "tags", s.Tags)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pretend[s.ID] = &s
	return nil
}

func (d *DryRun) Maintain(_ context.Context, id, note string) error {
	d.log.Info("dry run: would put into maintenance", "service", id, "note", note)
	return nil
}

func (d *DryRun) UpdateTTL(_ context.Context, checkID string, st health.State) error {
	d.log.Debug("dry run: would update check", "check", checkID, "status", st.Status, "output", st.Output)
	return nil
}

func (d *DryRun) Deregister(_ context.Context, id string) error {
	d.log.Info("dry run: would deregister", "service", id)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pretend[id] = nil
	return nil
}
