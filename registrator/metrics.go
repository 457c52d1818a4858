package registrator

import (
	"github.com/ecs-registrator/ecs-registrator/internal/promtext"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// Error reasons: a fixed set, so the label never takes unbounded values.
const (
	errDockerEvents   = "docker_events"
	errDockerList     = "docker_list"
	errDockerInspect  = "docker_inspect"
	errConsulRead     = "consul_read"
	errConsulRegister = "consul_register"
	errConsulDereg    = "consul_deregister"
	errConsulCheck    = "consul_check_update"
	errBadDefinition  = "bad_definition" // a container's labels kept something out
)

var errorReasons = []string{errDockerEvents, errDockerList, errDockerInspect, errConsulRead, errConsulRegister,
	errConsulDereg, errConsulCheck, errBadDefinition}

type metrics struct {
	evaluate        *promtext.Histogram
	lag             *promtext.Histogram
	registrations   *promtext.Counter
	deregistrations *promtext.Counter
	drains          *promtext.Counter
	hostDrains      *promtext.Counter
	healthUpdates   *promtext.Counter
	errors          *promtext.CounterVec
	refusals        *promtext.CounterVec
}

// newMetrics adds the daemon's series to reg; with none, they are counted and not served.
func newMetrics(r *Registrator, reg *promtext.Registry) *metrics {
	if reg == nil {
		reg = promtext.NewRegistry()
	}
	m := &metrics{
		evaluate: reg.Histogram("ecsr_evaluate_duration_seconds", "Time to evaluate one container: inspect, ECS facts, desired services.",
			promtext.ExponentialBuckets(0.0005, 2, 14)),
		lag: reg.Histogram("ecsr_registration_lag_seconds", "Time from a container's Docker start event to its registration in Consul.",
			promtext.ExponentialBuckets(0.001, 2, 14)),
		registrations:   reg.Counter("ecsr_registrations_total", "Service registrations written to Consul."),
		deregistrations: reg.Counter("ecsr_deregistrations_total", "Service deregistrations written to Consul."),
		drains:          reg.Counter("ecsr_drains_total", "Containers taken out of the passing set because they were stopping."),
		hostDrains: reg.Counter("ecsr_host_drains_total",
			"Times the whole host started draining: an EC2 Spot interruption notice or an Auto Scaling termination in instance metadata."),
		healthUpdates: reg.Counter("ecsr_health_updates_total", "Mirrored health statuses written to Consul, refreshes included."),
		errors: reg.CounterVec("ecsr_errors_total",
			"Errors by reason: docker_events, docker_list, docker_inspect, consul_read, consul_register, consul_deregister, consul_check_update, bad_definition.",
			"reason", errorReasons),
		refusals: reg.CounterVec("ecsr_policy_refusals_total",
			"Services the registration policy kept out, by what it refused: name, id (an explicit service ID) or mesh. Counted when a container's problems change, as ecsr_errors_total{reason=\"bad_definition\"} is.",
			"kind", desired.Refusals),
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	reg.GaugeFunc("ecsr_docker_connected", "1 while the Docker event stream is up.", func() float64 { return b2f(r.dockerUp.Get().Up) })
	reg.GaugeFunc("ecsr_consul_connected", "1 while the Consul agent answers.", func() float64 { return b2f(r.consulUp.Get().Up) })
	reg.GaugeFunc("ecsr_ready", "1 once the first full sync is done.", func() float64 { return b2f(r.ready.Load()) })
	reg.GaugeFunc("ecsr_host_draining", "1 while the host is going away and every container on it is drained.", func() float64 {
		return b2f(r.store.hostDrain().why != "")
	})
	reg.GaugeFunc("ecsr_containers_watched", "Containers the daemon knows.", func() float64 { return float64(r.store.len()) })
	reg.GaugeFunc("ecsr_services_owned", "Services the daemon holds in the Consul agent.", func() float64 {
		return float64(len(r.applier.last().held))
	})
	return m
}

func (m *metrics) fail(reason string) { m.errors.Inc(reason) }

// refuse counts a service the registration policy kept out; a kind outside desired.Refusals (there is
// none) is not counted, so the label stays bounded whatever a Problem says.
func (m *metrics) refuse(kind string) { m.refusals.Inc(kind) }
