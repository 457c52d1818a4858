// Package registrator keeps the local Consul agent holding exactly the services that the local Docker
// engine's opted-in containers should advertise. Docker events only say which container to look at
// (watch.go); parallel workers evaluate a container into the store: inspect, ECS facts and the pure
// desired.Desired (evaluate.go, store.go). A pure planner decides from the whole store and what the
// agent holds which container owns each service ID and what to write (plan.go); one applier, the only
// writer to the agent, carries the plan out (apply.go). Syncs and a watch on the agent repair drift
// (sync.go, agentwatch.go). The package only ever touches services it owns.
//
// What a container wants (labels, addresses, checks, mesh keys, tag templates) and what the
// registration policy lets it claim are registrator/desired; the core passes the policy in and counts
// and shows its refusals (ecsr_policy_refusals_total).
// The core writes through the small Agent interface (agent.go) and imports no Consul client, nor an
// AWS one of its own (AWS is ecsmeta's): the Consul adapter behind Agent, with its token, login and
// TLS, is registrator/consul. A change to when services are written, which container owns one, or
// how drift and draining are handled belongs here.
package registrator
