package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	"github.com/ecs-registrator/ecs-registrator/status"
)

// The operator surface of a running daemon: page, JSON, metrics and CLI agree, say why a container is
// kept out, and never show the Consul token.
func TestOperatorSurface(t *testing.T) {
	t.Parallel()
	const token = "7f3c0e52-token-never-shown-9d1b"
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	goodName := fmt.Sprintf("surface-good-%d", testenv.FreePort(t))
	badName := fmt.Sprintf("surface-bad-%d", testenv.FreePort(t))
	good := testenv.Start(t, d, testenv.Workload{Name: goodName, TCP: []int{8080}, Publish: true, Labels: map[string]string{
		"SERVICE_NAME": goodName, "SERVICE_CHECK_HTTP": "/health", "SERVICE_CHECK_INTERVAL": "1s"},
		Env: []string{"DB_PASSWORD=container-env-secret"}})
	bad := testenv.Start(t, d, testenv.Workload{Name: badName, TCP: []int{8080}, Publish: true, Labels: map[string]string{
		"SERVICE_NAME": badName, "SERVICE_CHECK_INTERVAL": "10"}})
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	dm := startDaemon(t, consul, listen, "CONSUL_HTTP_TOKEN="+token)
	base := "http://" + listen
	testenv.Eventually(t, 10*time.Second, "daemon never ready", dm.ready)

	var snap status.Snapshot
	var raw string
	testenv.Eventually(t, 10*time.Second, "check never passing in the snapshot", func() bool {
		raw = string(testenv.Get(t, base+"/v1/status", http.StatusOK))
		if err := json.Unmarshal([]byte(raw), &snap); err != nil {
			t.Fatal(err)
		}
		c, ok := status.Find(snap.Containers, good)
		return ok && len(c.Services) == 1 && len(c.Services[0].Checks) == 1 && c.Services[0].Checks[0].Status == "passing"
	})
	b, ok := status.Find(snap.Containers, bad[:12])
	if !ok || b.State != status.StateNotRegistered || len(b.Problems) != 1 || b.Problems[0].Key != "SERVICE_CHECK_INTERVAL" {
		t.Fatalf("bad container in the snapshot: %+v", b)
	}
	if !snap.Daemon.Ready || snap.Daemon.Node != consul.Node || snap.Dependencies[0].Name != "docker" || !snap.Dependencies[0].Up {
		t.Errorf("daemon %+v deps %+v", snap.Daemon, snap.Dependencies)
	}

	page := string(testenv.Get(t, base+"/", http.StatusOK))
	for _, want := range []string{badName, "SERVICE_CHECK_INTERVAL", "not a positive duration", goodName, "HTTP GET /health"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	one := string(testenv.Get(t, base+"/v1/containers/"+badName, http.StatusOK))
	if !strings.Contains(one, "SERVICE_CHECK_INTERVAL") {
		t.Errorf("/v1/containers/{name}: %s", one)
	}

	metrics := string(testenv.Get(t, base+"/metrics", http.StatusOK))
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(metrics))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	for _, name := range []string{"ecsr_evaluate_duration_seconds", "ecsr_registration_lag_seconds", "ecsr_registrations_total",
		"ecsr_deregistrations_total", "ecsr_drains_total", "ecsr_errors_total", "ecsr_docker_connected", "ecsr_consul_connected",
		"ecsr_containers_watched", "ecsr_services_owned", "ecsr_policy_refusals_total", "go_goroutines", "process_resident_memory_bytes"} {
		if families[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				// reason (ecsr_errors_total) and kind (ecsr_policy_refusals_total) take fixed sets of values.
				if strings.HasPrefix(name, "ecsr_") && (l.GetName() != "reason" && l.GetName() != "kind" || strings.ContainsAny(l.GetValue(), " :/")) {
					t.Errorf("%s has label %s=%q: labels must stay bounded", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
	if v := families["ecsr_errors_total"]; v != nil {
		for _, m := range v.GetMetric() {
			if m.GetLabel()[0].GetValue() == "bad_definition" && m.GetCounter().GetValue() < 1 {
				t.Error("the bad label is not counted in ecsr_errors_total{reason=\"bad_definition\"}")
			}
		}
	}

	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binary, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ecs-registrator %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	table := cli("status", "-addr", listen)
	if !strings.Contains(table, goodName) || !strings.Contains(table, badName) || !strings.Contains(table, "SERVICE_CHECK_INTERVAL") {
		t.Errorf("status table:\n%s", table)
	}
	var fromCLI status.Snapshot
	if err := json.Unmarshal([]byte(cli("status", "-json", "-addr", listen)), &fromCLI); err != nil || len(fromCLI.Containers) == 0 {
		t.Errorf("status -json: %v", err)
	}
	if out := cli("healthcheck", "-addr", listen); !strings.Contains(out, "ok") {
		t.Errorf("healthcheck: %q", out)
	}
	if out := cli("version"); !strings.HasPrefix(out, "ecs-registrator ") {
		t.Errorf("version: %q", out)
	}
	if err := exec.Command(binary, "healthcheck", "-addr", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))).Run(); err == nil {
		t.Error("healthcheck against nothing exited 0")
	}
	// Liveness is not readiness: with Consul down the health check passes and -ready does not.
	consul.Stop()
	testenv.Eventually(t, 10*time.Second, "still ready with Consul down", func() bool { return !dm.ready() })
	if out := cli("healthcheck", "-addr", listen); !strings.Contains(out, "ok") {
		t.Errorf("healthcheck with Consul down: %q", out)
	}
	if err := exec.Command(binary, "healthcheck", "-ready", "-addr", listen).Run(); err == nil {
		t.Error("healthcheck -ready exited 0 with Consul down")
	}

	_ = dm.cmd.Process.Signal(syscall.SIGTERM)
	_ = dm.cmd.Wait()
	for what, text := range map[string]string{"page": page, "json": raw, "metrics": metrics, "table": table, "logs": dm.out.String()} {
		if strings.Contains(text, token) {
			t.Errorf("the Consul token appears in the %s", what)
		}
		if strings.Contains(text, "container-env-secret") {
			t.Errorf("a container's environment appears in the %s", what)
		}
	}
}
