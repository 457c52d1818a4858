package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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

// DNS rebinding, against the real daemon's listener: a request naming a host the attacker controls is
// refused on every endpoint, and one naming the listen address is answered.
func TestStatusServerRefusesForeignHost(t *testing.T) {
	t.Parallel()
	testenv.Docker(t)
	consul := testenv.StartConsul(t)
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	dm := startDaemon(t, consul, listen)
	testenv.Eventually(t, 20*time.Second, "daemon never ready", dm.ready)
	base := "http://" + listen
	for _, path := range []string{"/v1/status", "/v1/containers", "/", "/healthz", "/readyz", "/metrics"} {
		code, body := getWithHost(t, base+path, "evil.example")
		if code != http.StatusMisdirectedRequest || !strings.Contains(body, "DNS rebinding") || strings.Contains(body, consul.Node) {
			t.Errorf("GET %s with Host: evil.example: %d %q, want 421 saying why and nothing of the snapshot", path, code, body)
		}
		if code, body := getWithHost(t, base+path, listen); code != http.StatusOK {
			t.Errorf("GET %s with Host: %s: %d %.200s", path, listen, code, body)
		}
	}
	if code, body := getWithHost(t, base+"/v1/status", "localhost:9555"); code != http.StatusOK || !strings.Contains(body, consul.Node) {
		t.Errorf("GET /v1/status with Host: localhost:9555: %d %.200s", code, body)
	}
	_ = dm.cmd.Process.Signal(syscall.SIGTERM)
	_ = dm.cmd.Wait()
}

// getWithHost GETs url with a Host header of its own, as a browser following a rebound name does.
func getWithHost(t *testing.T, url, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The real daemon with -listen unix:///path: it replaces the socket a killed daemon left, serves the
// page and probes there (0660) and nowhere else, the healthcheck subcommand (as the image's
// HEALTHCHECK runs it: REGISTRATOR_LISTEN, no flags) and status reach it, and SIGTERM removes it.
func TestStatusServerOnUnixSocket(t *testing.T) {
	t.Parallel()
	testenv.Docker(t)
	consul := testenv.StartConsul(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "status.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	addr := "unix://" + path
	dm := startDaemon(t, consul, addr)
	at, err := parseListen(addr)
	if err != nil {
		t.Fatal(err)
	}
	client, base := at.client(5 * time.Second)
	probe := func(p string) (int, string) {
		resp, err := client.Get(base + p)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testenv.Eventually(t, 10*time.Second, "/healthz never answered on the socket", func() bool { code, _ := probe("/healthz"); return code == http.StatusOK })
	testenv.Eventually(t, 20*time.Second, "/readyz never ready on the socket", func() bool { code, _ := probe("/readyz"); return code == http.StatusOK })
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != socketMode {
		t.Errorf("socket mode %v, %v; want %o", fi.Mode(), err, socketMode)
	}
	if code, body := probe("/v1/status"); code != http.StatusOK || !strings.Contains(body, `"containers"`) {
		t.Errorf("/v1/status on the socket: %d %.200s", code, body)
	}
	if !strings.Contains(dm.out.String(), addr) {
		t.Errorf("the log does not name the socket %s", addr)
	}
	hc := exec.Command(binary, "healthcheck")
	hc.Env = append(os.Environ(), "REGISTRATOR_LISTEN="+addr)
	if out, err := hc.CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Errorf("healthcheck over the socket: %v %s", err, out)
	}
	if out, err := exec.Command(binary, "status", "-json", "-addr", addr).CombinedOutput(); err != nil || !json.Valid(out) {
		t.Errorf("status -json over the socket: %v %.200s", err, out)
	}
	_ = dm.cmd.Process.Signal(syscall.SIGTERM)
	if err := dm.cmd.Wait(); err != nil {
		t.Errorf("daemon exit: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is still there after the daemon stopped: %v", err)
	}
	if err := exec.Command(binary, "healthcheck", "-addr", addr).Run(); err == nil {
		t.Error("healthcheck exited 0 with the daemon gone")
	}
}
