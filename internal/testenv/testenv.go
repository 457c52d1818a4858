// Package testenv gives integration tests the real components they need: the host's dockerd, private
// dockerd instances a test may restart, Consul dev agents on free ports, and a workload image built FROM
// scratch. A missing component skips the test on a laptop and fails it in CI (CI=true): a green CI that
// skipped the real components proves nothing.
package testenv

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

// Real skips the test under -short: the fast layer (`go test -short ./...`) runs without dockerd,
// Consul or the tool cache, whatever the machine has. Every helper that starts or reaches a real
// component calls it.
func Real(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: a real-component test")
	}
}

// Missing skips the test, or fails it when CI=true.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	Real(t)
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and a real component is missing: %s", msg)
	}
	t.Skipf("skipping: %s", msg)
}

// Eventually polls cond every 10 ms until it holds or timeout passes, and returns how long it took.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return EventuallyExplain(t, timeout, cond, func() string { return what })
}

// EventuallyExplain is Eventually whose failure message is made when it fails, so that it shows the
// last state cond saw rather than the state before polling began.
func EventuallyExplain(t testing.TB, timeout time.Duration, cond func() bool, why func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("after %v: %s", timeout, why())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// FreePort returns a port, free on TCP and UDP a moment ago, that no other caller in this process gets.
func FreePort(t testing.TB) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	// Below the kernel's ephemeral range (32768 and up), where Docker's published ports and every
	// outgoing connection take theirs: a port handed out here is not taken by those a moment later.
	// Never the same port twice in one test process, so it also serves as a unique number.
	for range 10000 {
		p := 15000 + rand.IntN(17000)
		if usedPorts[p] {
			continue
		}
		usedPorts[p] = true
		tcp, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			continue
		}
		udp, err := net.ListenPacket("udp", fmt.Sprintf(":%d", p)) // Consul's DNS port is UDP too
		tcp.Close()
		if err != nil {
			continue
		}
		udp.Close()
		return p
	}
	t.Fatal("no free port")
	return 0
}

var (
	portMu    sync.Mutex
	usedPorts = map[int]bool{}
)

// Docker returns a client for the host's dockerd (DOCKER_HOST or the default socket).
func Docker(t testing.TB) *client.Client {
	t.Helper()
	return dockerAt(t, "")
}

func dockerAt(t testing.TB, host string) *client.Client {
	t.Helper()
	Real(t)
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		c.Close()
		Missing(t, "dockerd at %s does not answer: %v", c.DaemonHost(), err)
	}
	// Settle the API version now: the client negotiates lazily, and its Events reads the version
	// without the lock negotiation writes it under, a race when tests share the client.
	c.NegotiateAPIVersion(ctx)
	logEngine(ctx, c)
	t.Cleanup(func() { c.Close() })
	return c
}

var (
	buildMu sync.Mutex
	built   = map[string]bool{} // docker host -> workload image built
	binOnce sync.Once
	binData []byte // the workload binary, kept in memory: its build directory is removed at once
	binErr  error
)

// WorkloadImage is the tag of the test workload image, built once per process and Docker daemon.
const WorkloadImage = "ecsr-workload:test"

// BuildWorkload makes sure the daemon behind c has WorkloadImage, built FROM scratch from
// internal/testenv/workload; no registry is involved.
func BuildWorkload(t testing.TB, c *client.Client) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ecsr-workload-")
		if err != nil {
			binErr = err
			return
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "workload")
		cmd := exec.Command("go", "build", "-trimpath", "-o", path, "github.com/ecs-registrator/ecs-registrator/internal/testenv/workload")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build workload: %v\n%s", err, out)
			return
		}
		binData, binErr = os.ReadFile(path)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if built[c.DaemonHost()] {
		return WorkloadImage
	}
	bin := binData
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY workload /workload\nENTRYPOINT [\"/workload\"]\n")},
		{"workload", 0o755, bin},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	resp, err := c.ImageBuild(t.Context(), &ctxTar, build.ImageBuildOptions{
		Tags: []string{WorkloadImage}, Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		t.Fatalf("build workload image: %v", err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("build workload image: %s", out)
	}
	built[c.DaemonHost()] = true
	return WorkloadImage
}

// Workload describes a test container running the workload program.
type Workload struct {
	Name    string
	Labels  map[string]string
	Env     []string
	TCP     []int // container ports served and published (bridge) or bound (host network)
	UDP     []int
	Publish bool // publish the ports on ephemeral host ports (bridge network)
	// Hold are TCP ports exposed (and published with Publish) but not served: a pause container that
	// holds the ports of the container on its network.
	Hold        []int
	Network     string // "" is the default bridge
	Restart     string // restart policy name, e.g. "always"
	Drain       time.Duration
	StopSignal  string
	NoAutoClean bool
	// HealthProbe, when set, is the path of a Docker HEALTHCHECK the workload runs against its first TCP
	// port every HealthInterval (default 250ms), unhealthy after one failure.
	HealthProbe    string
	HealthInterval time.Duration
}

// Start creates and starts the workload container and removes it when the test ends.
func Start(t testing.TB, c *client.Client, w Workload) string {
	t.Helper()
	id := Create(t, c, w)
	if err := c.ContainerStart(t.Context(), id, container.StartOptions{}); err != nil {
		t.Fatalf("start %s: %v", w.Name, err)
	}
	return id
}

// Create creates the workload container without starting it.
func Create(t testing.TB, c *client.Client, w Workload) string {
	t.Helper()
	image := BuildWorkload(t, c)
	cfg, hc := w.configs(image)
	resp, err := c.ContainerCreate(t.Context(), cfg, hc, nil, nil, w.Name)
	if err != nil {
		t.Fatalf("create %s: %v", w.Name, err)
	}
	if !w.NoAutoClean {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = c.ContainerRemove(ctx, resp.ID, container.RemoveOptions{Force: true})
		})
	}
	return resp.ID
}

func (w Workload) configs(image string) (*container.Config, *container.HostConfig) {
	env := append([]string{"PORTS=" + joinInts(w.TCP), "UDP_PORTS=" + joinInts(w.UDP)}, w.Env...)
	if w.Drain > 0 {
		env = append(env, "DRAIN="+w.Drain.String())
	}
	cfg := &container.Config{Image: image, Labels: w.Labels, Env: env, StopSignal: w.StopSignal, ExposedPorts: map[nat.Port]struct{}{}}
	hc := &container.HostConfig{NetworkMode: container.NetworkMode(w.Network), PortBindings: nat.PortMap{}}
	if w.HealthProbe != "" && len(w.TCP) > 0 {
		interval := cmp.Or(w.HealthInterval, 250*time.Millisecond)
		cfg.Healthcheck = &container.HealthConfig{
			Test:     []string{"CMD", "/workload", "probe", fmt.Sprintf("http://127.0.0.1:%d%s", w.TCP[0], w.HealthProbe)},
			Interval: interval, Timeout: 2 * time.Second, Retries: 1,
		}
	}
	if w.Restart != "" {
		hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyMode(w.Restart)}
	}
	expose := func(port int, proto string) {
		if hc.NetworkMode.IsContainer() {
			return // Docker refuses exposed ports on another container's network (awsvpc app containers)
		}
		p := nat.Port(fmt.Sprintf("%d/%s", port, proto))
		cfg.ExposedPorts[p] = struct{}{}
		if w.Publish {
			hc.PortBindings[p] = []nat.PortBinding{{}}
		}
	}
	for _, p := range w.TCP {
		expose(p, "tcp")
	}
	for _, p := range w.UDP {
		expose(p, "udp")
	}
	for _, p := range w.Hold {
		expose(p, "tcp")
	}
	return cfg, hc
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

// Inspect returns the container's inspect data or fails the test.
func Inspect(t testing.TB, c *client.Client, id string) container.InspectResponse {
	t.Helper()
	in, err := c.ContainerInspect(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

var (
	containerListAll     = container.ListOptions{All: true}
	containerRemoveForce = container.RemoveOptions{Force: true}
)
