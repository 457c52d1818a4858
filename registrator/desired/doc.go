// Package desired is the pure step from one container to the Consul services it wants: Desired reads
// a Container (FromInspect builds it from docker inspect, with the ECS task ecsmeta found) and the
// daemon-wide Options, and returns a Result: the services, and each bad input as a Problem of that
// container alone. It does no I/O, keeps no state and never panics on tenant input, so it is tested by
// tables (the gliderlabs corpus among them) and fuzzed.
//
// A change belongs here when it changes what a container asks for: the SERVICE_ labels and env
// (labels.go, desired.go; env routes but gives Meta only in gliderlabs mode), the address and port
// other hosts reach (addresses.go), the glue to the health package's check definitions and what they
// may be aimed at (desired.go), the service mesh keys (connect.go), the -tags templates (tags.go,
// inspecttags.go over internal/tmpl), the model types (model.go), or the registration policy: who
// may claim which names, explicit IDs and mesh membership, decided from the ECS agent's labels and
// task metadata (policy.go; policyparse.go reads the -policy file). Desired carries out the policy's
// verdict; the core only counts and shows the refusals. Watching Docker, which container owns a
// contested ID, when to write and draining belong to the core, registrator, which imports this
// package; this package imports nothing of it.
package desired
