package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
	"github.com/ecs-registrator/ecs-registrator/status"
)

// TestConnectMeshEndToEnd runs the service mesh for real: the daemon registers two containers with
// sidecars, Consul's built-in proxy runs in each container's network namespace and finds its
// registration with `ecs-registrator sidecar-for`, and a client calls its upstream through the mesh
// (mutual TLS between the proxies). An intention deny blocks the call, deleting it allows it again,
// and `docker stop` of the application takes it and its sidecar out of the passing set at once.
func TestConnectMeshEndToEnd(t *testing.T) {
	docker := testenv.Docker(t)
	gw := testenv.BridgeGateway(t, docker)
	consul := testenv.StartConsulReachable(t, gw)
	a := consul.API()

	proxyImage := buildProxyImage(t, docker)

	// -internal: the built-in proxy listens where its registration says, so that must be an address
	// of the container's own namespace (Envoy binds the bind_address and bind_port the daemon gives it).
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	d := startDaemonArgs(t, consul, listen, []string{"-internal"})
	testenv.Eventually(t, 30*time.Second, "daemon never became ready", d.ready)

	suffix := testenv.FreePort(t)
	orders := testenv.Start(t, docker, testenv.Workload{Name: fmt.Sprintf("ecsr-mesh-orders-%d", suffix), TCP: []int{8080},
		Drain: 10 * time.Second, Labels: map[string]string{"SERVICE_NAME": "orders", "SERVICE_CONNECT": "true"}})
	caller := testenv.Start(t, docker, testenv.Workload{Name: fmt.Sprintf("ecsr-mesh-client-%d", suffix), TCP: []int{8080},
		Labels: map[string]string{"SERVICE_NAME": "client", "SERVICE_CONNECT": "true", "SERVICE_CONNECT_UPSTREAMS": "orders:9191"}})
	consulAddr := fmt.Sprintf("%s:%d", gw, consul.HTTP)
	for _, app := range []string{orders, caller} {
		startProxy(t, docker, proxyImage, app, []string{"CONSUL_HTTP_ADDR=" + consulAddr}, "-wait", "30s")
	}

	// Both services and both sidecars pass: the sidecars' checks are Consul's own (the public
	// listener's TCP check and an alias of the service).
	for _, name := range []string{"orders", "orders-sidecar-proxy", "client", "client-sidecar-proxy"} {
		took := testenv.EventuallyExplain(t, 60*time.Second, func() bool { return passing(t, a, name) == 1 },
			func() string { return name + " never passed: " + checksOf(t, a, name) })
		t.Logf("%s passing after %v", name, took.Round(time.Millisecond))
	}
	ordersID := serviceIDOf(t, a, "orders")
	sidecar, _, err := a.Agent().Service(ordersID+desired.SidecarSuffix, nil)
	if err != nil {
		t.Fatalf("orders' sidecar: %v", err)
	}
	if sidecar.Proxy.DestinationServiceID != ordersID || sidecar.Meta[desired.MetaContainerID] != orders {
		t.Fatalf("sidecar %s serves %q with Meta %v", sidecar.ID, sidecar.Proxy.DestinationServiceID, sidecar.Meta)
	}
	checks, err := a.Agent().ChecksWithFilter(fmt.Sprintf("ServiceID == %q", sidecar.ID))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, c := range checks {
		kinds[c.Type] = true
	}
	if len(checks) != 2 || !kinds["tcp"] || !kinds["alias"] {
		t.Errorf("the sidecar's checks are not Consul's standard two (tcp, alias): %v", kinds)
	}

	url := fmt.Sprintf("http://%s:8080/fetch?url=http://127.0.0.1:9191/", ipOf(t, docker, caller))
	call := func() (int, string) {
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	reached := func() bool { code, body := call(); return code == 200 && body == orders[:12] }
	explain := func() string { code, body := call(); return fmt.Sprintf("the call answered %d %q", code, body) }
	took := testenv.EventuallyExplain(t, 30*time.Second, reached, explain)
	t.Logf("client reached orders through the mesh after %v", took.Round(time.Millisecond))

	if _, err := a.Connect().IntentionUpsert(&api.Intention{SourceName: "client", DestinationName: "orders", Action: api.IntentionActionDeny}, nil); err != nil {
		t.Fatal(err)
	}
	took = testenv.EventuallyExplain(t, 15*time.Second, func() bool { code, _ := call(); return code == http.StatusBadGateway }, explain)
	t.Logf("intention deny blocked the call after %v", took.Round(time.Millisecond))
	if _, err := a.Connect().IntentionDeleteExact("client", "orders", nil); err != nil {
		t.Fatal(err)
	}
	took = testenv.EventuallyExplain(t, 15*time.Second, reached, explain)
	t.Logf("deleting the intention allowed the call again after %v", took.Round(time.Millisecond))

	// The status page shows the sidecar, its checks and its upstreams.
	var snap status.Snapshot
	if err := json.Unmarshal(testenv.Get(t, "http://"+listen+"/v1/status", http.StatusOK), &snap); err != nil {
		t.Fatal(err)
	}
	var mesh *status.Connect
	for _, c := range snap.Containers {
		for _, sv := range c.Services {
			if c.ID == caller && sv.Connect != nil {
				mesh = sv.Connect
			}
		}
	}
	if mesh == nil || mesh.SidecarID != serviceIDOf(t, a, "client")+desired.SidecarSuffix ||
		strings.Join(mesh.Upstreams, ",") != "orders:9191" || len(mesh.Checks) != 2 {
		t.Errorf("/v1/status: the client's sidecar is %+v", mesh)
	}

	// The daemon held on to the service with its sidecar all along: neither an orphan nor foreign.
	if _, _, err := a.Agent().Service(sidecar.ID, nil); err != nil {
		t.Fatalf("the sidecar is gone before the stop: %v", err)
	}

	// docker stop: the kill drains the service, and Consul takes the sidecar with it, while the
	// application still serves its 10 s drain.
	svc := testenv.WatchPassing(t, a, "orders", nil)
	side := testenv.WatchPassing(t, a, "orders-sidecar-proxy", nil)
	testenv.Eventually(t, 5*time.Second, "the watches never saw the passing sets", func() bool {
		_, n1 := svc.Fewest()
		_, n2 := side.Fewest()
		return n1 > 0 && n2 > 0
	})
	stopped := time.Now()
	stopDone := make(chan error, 1)
	go func() { stopDone <- docker.ContainerStop(t.Context(), orders, container.StopOptions{}) }()
	gone := func(w *testenv.PassingWatch) time.Duration {
		var at time.Duration
		testenv.Eventually(t, 5*time.Second, "out of the passing set", func() bool {
			st := w.States()
			if last := st[len(st)-1]; last.N == 0 {
				at = last.At.Sub(stopped)
				return true
			}
			return false
		})
		return at
	}
	svcGone, sideGone := gone(svc), gone(side)
	t.Logf("docker stop: orders out of the passing set after %v, its sidecar after %v",
		svcGone.Round(time.Millisecond), sideGone.Round(time.Millisecond))
	if svcGone > 2*time.Second || sideGone > 2*time.Second {
		t.Errorf("not at once: the service left after %v, its sidecar after %v", svcGone, sideGone)
	}
	if in := testenv.Inspect(t, docker, orders); !in.State.Running {
		t.Errorf("the application exited before the check: its 10 s drain says the measurement was too slow")
	}
	if _, _, err := a.Agent().Service(sidecar.ID, nil); err == nil {
		t.Errorf("the sidecar %s is still registered after its service left", sidecar.ID)
	}
	if code, body := call(); code == 200 {
		t.Errorf("the client still reaches orders after its stop: %q", body)
	}
	if err := <-stopDone; err != nil {
		t.Errorf("docker stop: %v", err)
	}
}

// buildProxyImage builds the image of Consul's built-in proxy with sidecar-for in it. The image has
// no libc: a static build of the daemon, beside the race-enabled one.
func buildProxyImage(t *testing.T, docker *client.Client) string {
	t.Helper()
	static := filepath.Join(t.TempDir(), "ecs-registrator")
	build := exec.Command("go", "build", "-o", static, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	return testenv.BuildMeshProxy(t, docker, static)
}

// startProxy runs Consul's built-in proxy in app's network namespace, found with `sidecar-for
// <args> -- /consul connect proxy` (the container's hostname is app's), and returns its container
// ID. Its log is shown when the test fails.
func startProxy(t *testing.T, docker *client.Client, image, app string, env []string, args ...string) string {
	t.Helper()
	cmd := append(append([]string{"/ecs-registrator", "sidecar-for"}, args...), "--", "/consul", "connect", "proxy")
	resp, err := docker.ContainerCreate(t.Context(), &container.Config{Image: image, Env: env, Cmd: cmd},
		&container.HostConfig{NetworkMode: container.NetworkMode("container:" + app)}, nil, nil, "")
	if err != nil {
		t.Fatalf("create proxy: %v", err)
	}
	// t.Context() is cancelled before cleanups run: a removal under it never reaches dockerd, and the
	// proxy would outlive the test in the namespace of a removed container.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if t.Failed() {
			t.Logf("proxy for %.12s:\n%s", app, containerLogs(ctx, docker, resp.ID))
		}
		if err := docker.ContainerRemove(ctx, resp.ID, container.RemoveOptions{Force: true}); err != nil {
			t.Errorf("remove the proxy for %.12s: %v", app, err)
		}
	})
	if err := docker.ContainerStart(t.Context(), resp.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	return resp.ID
}

// containerLogs is a container's output so far, or why it cannot be read.
func containerLogs(ctx context.Context, docker *client.Client, id string) string {
	logs, err := docker.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return err.Error()
	}
	defer logs.Close()
	out, _ := io.ReadAll(logs)
	return string(out)
}

func passing(t *testing.T, a *api.Client, name string) int {
	t.Helper()
	es, _, err := a.Health().Service(name, "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func checksOf(t *testing.T, a *api.Client, name string) string {
	t.Helper()
	cs, err := a.Agent().ChecksWithFilter(fmt.Sprintf("ServiceName == %q", name))
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s=%s (%s)", c.CheckID, c.Status, strings.TrimSpace(c.Output)))
	}
	return strings.Join(out, "; ")
}

func serviceIDOf(t *testing.T, a *api.Client, name string) string {
	t.Helper()
	s, err := a.Agent().ServicesWithFilter(fmt.Sprintf("Service == %q", name))
	if err != nil || len(s) != 1 {
		t.Fatalf("service %s: %v %v", name, s, err)
	}
	for id := range s {
		return id
	}
	return ""
}

func ipOf(t *testing.T, docker *client.Client, id string) string {
	t.Helper()
	in := testenv.Inspect(t, docker, id)
	for _, n := range in.NetworkSettings.Networks {
		if n.IPAddress != "" {
			return n.IPAddress
		}
	}
	t.Fatalf("container %.12s has no IP address", id)
	return ""
}
