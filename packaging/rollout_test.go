package packaging

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// checkRollout asserts how a DAEMON service of ours rolls out a new revision: on each host the old
// task stops before the new one starts (maximumPercent 100: a host runs one task of a DAEMON
// service), at most half the hosts at a time (minimumHealthyPercent 50: a bad image stops the daemon
// on half the fleet, not all of it), and the deployment circuit breaker rolls a revision whose tasks
// keep failing back to the last one that completed (packaging/README.md, "Rollout and rollback").
func checkRollout(t *testing.T, name string, dc *types.DeploymentConfiguration) {
	t.Helper()
	if dc == nil {
		t.Errorf("%s: no deploymentConfiguration", name)
		return
	}
	if dc.MaximumPercent == nil || *dc.MaximumPercent != 100 {
		t.Errorf("%s: maximumPercent %v, want 100", name, dc.MaximumPercent)
	}
	if dc.MinimumHealthyPercent == nil || *dc.MinimumHealthyPercent != 50 {
		t.Errorf("%s: minimumHealthyPercent %v, want 50", name, dc.MinimumHealthyPercent)
	}
	if cb := dc.DeploymentCircuitBreaker; cb == nil || !cb.Enable || !cb.Rollback {
		t.Errorf("%s: deploymentCircuitBreaker %+v, want enable and rollback", name, cb)
	}
}

// Every DAEMON service we ship, in the stack and for the CLI, rolls out half the hosts at a time and
// rolls back on its own.
func TestDaemonServicesRollOutAndBack(t *testing.T) {
	tpl := loadTemplate(t)
	n := 0
	for name, r := range tpl.Resources {
		if r.Type != "AWS::ECS::Service" {
			continue
		}
		b, _ := json.Marshal(resolve(r.Properties))
		var svc ecs.CreateServiceInput
		decodeStrict(t, b, &svc)
		checkRollout(t, name, svc.DeploymentConfiguration)
		n++
	}
	files, err := filepath.Glob("ecs/*-service.json")
	if err != nil {
		t.Fatal(err)
	}
	// The canary's own service; gliderlabs-service.json only adds a constraint to the user's.
	files = append(files, "ecs/canary/ecs-registrator-canary-service.json")
	for _, f := range files {
		var svc ecs.CreateServiceInput
		decodeStrict(t, read(t, f), &svc)
		if svc.SchedulingStrategy != types.SchedulingStrategyDaemon {
			t.Errorf("%s: %s, want DAEMON", f, svc.SchedulingStrategy)
		}
		checkRollout(t, f, svc.DeploymentConfiguration)
		n++
	}
	if n < 5 {
		t.Errorf("only %d services", n)
	}
}
