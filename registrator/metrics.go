package registrator

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

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
	evaluate        prometheus.Histogram
	lag             prometheus.Histogram
	registrations   prometheus.Counter
	deregistrations prometheus.Counter
	drains          prometheus.Counter
	hostDrains      prometheus.Counter
	healthUpdates   prometheus.Counter
	errors          *prometheus.CounterVec
	refusals        *prometheus.CounterVec
}

func newMetrics(r *Registrator, reg prometheus.Registerer) *metrics {
	m := &metrics{
		evaluate: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ecsr_evaluate_duration_seconds",
			Help: "Time to evaluate one container: inspect, ECS facts, desired services.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ecsr_registration_lag_seconds",
			Help: "Time from a container's Docker start event to its registration in Consul.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		registrations:   prometheus.NewCounter(prometheus.CounterOpts{Name: "ecsr_registrations_total", Help: "Service registrations written to Consul."}),
		deregistrations: prometheus.NewCounter(prometheus.CounterOpts{Name: "ecsr_deregistrations_total", Help: "Service deregistrations written to Consul."}),
		drains:          prometheus.NewCounter(prometheus.CounterOpts{Name: "ecsr_drains_total", Help: "Containers taken out of the passing set because they were stopping."}),
		hostDrains: prometheus.NewCounter(prometheus.CounterOpts{Name: "ecsr_host_drains_total",
			Help: "Times the whole host started draining: an EC2 Spot interruption notice or an Auto Scaling termination in instance metadata."}),
		healthUpdates: prometheus.NewCounter(prometheus.CounterOpts{Name: "ecsr_health_updates_total", Help: "Mirrored health statuses written to Consul, refreshes included."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ecsr_errors_total",
			Help: "Errors by reason: docker_events, docker_list, docker_inspect, consul_read, consul_register, consul_deregister, consul_check_update, bad_definition."}, []string{"reason"}),
	}
	for _, reason := range errorReasons {
		m.errors.WithLabelValues(reason) // present at 0 from the start
	}
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ecsr_policy_refusals_total",
		Help: "Services the registration policy kept out, by what it refused: name, id (an explicit service ID) or mesh. Counted when a container's problems change, as ecsr_errors_total{reason=\"bad_definition\"} is."},
		[]string{"kind"})
	for _, kind := range desired.Refusals {
		m.refusals.WithLabelValues(kind)
	}
	if reg == nil {
		return m
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	reg.MustRegister(m.evaluate, m.lag, m.registrations, m.deregistrations, m.drains, m.hostDrains, m.healthUpdates, m.errors, m.refusals,
		gauge("ecsr_docker_connected", "1 while the Docker event stream is up.", func() float64 { return b2f(r.dockerUp.Get().Up) }),
		gauge("ecsr_consul_connected", "1 while the Consul agent answers.", func() float64 { return b2f(r.consulUp.Get().Up) }),
		gauge("ecsr_ready", "1 once the first full sync is done.", func() float64 { return b2f(r.ready.Load()) }),
		gauge("ecsr_host_draining", "1 while the host is going away and every container on it is drained.", func() float64 {
			return b2f(r.store.hostDrain().why != "")
		}),
		gauge("ecsr_containers_watched", "Containers the daemon knows.", func() float64 { return float64(r.store.len()) }),
		gauge("ecsr_services_owned", "Services the daemon holds in the Consul agent.", func() float64 {
			return float64(len(r.applier.last().held))
		}),
	)
	return m
}

func (m *metrics) fail(reason string) { m.errors.WithLabelValues(reason).Inc() }

// refuse counts a service the registration policy kept out; a kind outside desired.Refusals (there is
// none) is not counted, so the label stays bounded whatever a Problem says.
func (m *metrics) refuse(kind string) {
	if slices.Contains(desired.Refusals, kind) {
		m.refusals.WithLabelValues(kind).Inc()
	}
}
