package registrator

import (
	"context"
	"errors"
	"maps"

	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// Agent is the part of the local Consul agent the registrator uses (after gliderlabs/registrator's
// RegistryAdapter): small, so that dry-run and the tests' recording fakes stay simple.
type Agent interface {
	NodeName(ctx context.Context) (string, error)
	// Services returns the agent's services: the owned ones in full, and the IDs of the others. The
	// maps may be shared with other reads' answers: callers read them and never change them.
	Services(ctx context.Context) (AgentState, error)
	// Register writes a service and its checks. replaces: the agent holds a registration under this
	// ID (this daemon's, or gliderlabs's being taken over), so checks whose ID changed (an upgrade, a
	// check added) start with the status of the check they replace, not critical until Consul's
	// first probe.
	Register(ctx context.Context, s desired.Service, replaces bool) error
	// Deregister removes an owned service; one already gone is not an error.
	Deregister(ctx context.Context, id string) error
	// UpdateTTL sets the status and output of a TTL check.
	UpdateTTL(ctx context.Context, checkID string, st health.State) error
	// Maintain puts a service the agent holds into maintenance mode (its maintenance check, critical)
	// without registering it again.
	Maintain(ctx context.Context, id, note string) error
}

// TokenRotator is an Agent whose token can change while the daemon runs: a login renewed or done again,
// a token file rotated. Consul's agent syncs each service to the catalog with the token it was
// registered with, so when TokenGeneration changes, every held service is registered again.
type TokenRotator interface {
	TokenGeneration() uint64
}

// ErrRefused is the kind of an Agent's error when the agent answered and refused the request (an
// ACL, a bad definition), as opposed to not answering: the agent is reachable, and the write is that
// service's problem, not the others'. Test for it with errors.Is.
var ErrRefused = errors.New("the agent refused the request")

// AgentState is what the agent holds.
type AgentState struct {
	Owned   map[string]desired.Service
	Foreign map[string]bool
	// Unmarked are the foreign services without an external-source, as gliderlabs/registrator leaves
	// them (see Migration): ID, name, address and port only. Each is in Foreign too.
	Unmarked map[string]desired.Service
}

// Equal reports whether two reads of the agent found the same services.
func (s AgentState) Equal(o AgentState) bool {
	return maps.Equal(s.Foreign, o.Foreign) && maps.EqualFunc(s.Owned, o.Owned, desired.Service.Equal) &&
		maps.EqualFunc(s.Unmarked, o.Unmarked, desired.Service.Equal)
}
