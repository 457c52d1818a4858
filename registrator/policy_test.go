package registrator

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/promtext"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// The core carries out the policy's verdicts as evaluating gives them: a refused service stays off
// the agent, the container shows the problem, the log says the policy refused it, and the refusal is
// counted by kind (not by container or name), once per change of the container's problems.
func TestLoopCarriesOutThePolicy(t *testing.T) {
	pol, err := desired.ParsePolicy([]byte(`{"default": "ecs-identity"}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		reg := promtext.NewRegistry()
		l := startLoop(t, nil, nil, func(c *Config) { c.Policy, c.Metrics = pol, reg })
		task := func(family string, labels ...string) map[string]string {
			m := map[string]string{ecsmeta.LabelCluster: "prod", ecsmeta.LabelTaskARN: "arn:aws:ecs:eu-west-1:1:task/prod/" + family,
				ecsmeta.LabelFamily: family, ecsmeta.LabelRevision: "1", ecsmeta.LabelContainerName: "app"}
			for i := 0; i+1 < len(labels); i += 2 {
				m[labels[i]] = labels[i+1]
			}
			return m
		}
		l.d.start(spec{id: "orders", name: "orders-1", port: 8080, labels: task("orders", "SERVICE_NAME", "orders")})
		l.d.start(spec{id: "rogue", name: "rogue-1", port: 8080, labels: task("rogue", "SERVICE_NAME", "payments")})
		l.d.start(spec{id: "squat", name: "squat-1", port: 8080, labels: task("squat", "SERVICE_NAME", "squat", "SERVICE_ID", "node1:orders-1:8080")})
		l.d.start(spec{id: "plain", name: "plain-1", port: 8080, labels: map[string]string{"SERVICE_NAME": "payments"}})
		l.settle()
		if got := strings.Join(slices.Sorted(maps.Keys(l.r.OwnedServices())), " "); got != "node1:orders-1:8080" {
			t.Fatalf("owned services %q, want only orders'", got)
		}
		for id, want := range map[string]string{"rogue": `service name "payments" refused by the policy's default (ecs-identity)`,
			"squat": `service ID "node1:orders-1:8080" refused`, "plain": "nothing to a container without ECS labels"} {
			v := l.container(id)
			if len(v.Problems) != 1 || v.Problems[0].Severity != desired.SeverityError || !strings.Contains(v.Problems[0].Message, want) {
				t.Errorf("%s: problems %+v, want one error with %q", id, v.Problems, want)
			}
		}
		if n := strings.Count(l.logs.String(), `msg="refused by the registration policy"`); n != 3 {
			t.Errorf("%d log lines say the policy refused a service, want 3", n)
		}
		// A resync evaluates everything again; the problems are the same, so nothing is counted again.
		l.r.requestSync()
		l.settle()
		for kind, want := range map[string]float64{desired.RefusedName: 2, desired.RefusedID: 1, desired.RefusedMesh: 0} {
			if got := counterValue(t, reg, "ecsr_policy_refusals_total", "kind", kind); got != want {
				t.Errorf("ecsr_policy_refusals_total{kind=%q} = %v, want %v", kind, got, want)
			}
		}
		if got := counterValue(t, reg, "ecsr_errors_total", "reason", errBadDefinition); got != 0 {
			t.Errorf("a refusal counted as a bad definition too: %v", got)
		}
	})
}

// counterValue is the value of a labelled counter (the label's value given), as /metrics serves it,
// failing when it is not exported.
func counterValue(t *testing.T, reg *promtext.Registry, name, label, value string) float64 {
	t.Helper()
	for _, m := range family(t, reg, name).GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && lp.GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return 0
}

// family is the named metric as Prometheus's own parser reads /metrics.
func family(t *testing.T, reg *promtext.Registry, name string) *dto.MetricFamily {
	t.Helper()
	var b strings.Builder
	if _, err := reg.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if fams[name] == nil {
		t.Fatalf("no metric %s", name)
	}
	return fams[name]
}
