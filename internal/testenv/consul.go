package testenv

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// ConsulVersion is the Consul release the project builds and tests against (scripts/consul-build.sh).
const ConsulVersion = "v1.14.11"

// ConsulBinary finds the consul binary: $ECSR_CONSUL, the build cache, or PATH.
func ConsulBinary() (string, bool) {
	if p := os.Getenv("ECSR_CONSUL"); p != "" {
		return p, true
	}
	if p := filepath.Join(CacheDir(), "consul-"+ConsulVersion); isExecutable(p) {
		return p, true
	}
	p, err := exec.LookPath("consul")
	return p, err == nil
}

// CacheDir is where scripts/setup.sh keeps slow artifacts: $ECSR_CACHE, else ~/.cache/ecs-registrator.
func CacheDir() string {
	if c := os.Getenv("ECSR_CACHE"); c != "" {
		return c
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "ecs-registrator")
	}
	return filepath.Join(dir, "ecs-registrator")
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

// Consul is a Consul dev agent (a single-node server) on free loopback ports.
type Consul struct {
	t     testing.TB
	bin   string
	Node  string
	HTTP  int
	DNS   int
	ports []int
	cmd   *exec.Cmd
	log   *os.File
}

// StartConsul starts a dev agent that is stopped when the test ends.
func StartConsul(t testing.TB) *Consul {
	t.Helper()
	bin, ok := ConsulBinary()
	if !ok {
		Missing(t, "no consul binary (run scripts/consul-build.sh, or set ECSR_CONSUL)")
	}
	c := &Consul{t: t, bin: bin, Node: "node-" + strconv.Itoa(FreePort(t))}
	c.HTTP, c.DNS = FreePort(t), FreePort(t)
	c.ports = []int{FreePort(t), FreePort(t), FreePort(t)}
	f, err := os.Create(filepath.Join(t.TempDir(), "consul.log"))
	if err != nil {
		t.Fatal(err)
	}
	c.log = f
	c.Start()
	t.Cleanup(c.Stop)
	return c
}

// Addr is the agent's HTTP address, host:port.
func (c *Consul) Addr() string { return fmt.Sprintf("127.0.0.1:%d", c.HTTP) }

// API returns a client for the agent.
func (c *Consul) API() *api.Client {
	cfg := api.DefaultConfig()
	cfg.Address = c.Addr()
	cfg.Token = ""
	cl, err := api.NewClient(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// Start starts the agent (again, after Stop) on the same ports and waits until it has a leader. A dev
// agent keeps nothing across restarts.
func (c *Consul) Start() {
	c.t.Helper()
	hcl := `telemetry { prometheus_retention_time = "1h" disable_hostname = true } ports { grpc_tls = -1 }`
	c.cmd = exec.Command(c.bin, "agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1",
		"-node", c.Node, "-http-port", strconv.Itoa(c.HTTP), "-dns-port", strconv.Itoa(c.DNS),
		"-server-port", strconv.Itoa(c.ports[0]), "-serf-lan-port", strconv.Itoa(c.ports[1]),
		"-serf-wan-port", strconv.Itoa(c.ports[2]), "-grpc-port", "-1", "-hcl", hcl)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		c.t.Fatalf("start consul: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + c.Addr() + "/v1/status/leader")
		if err == nil {
			var b [64]byte
			n, _ := resp.Body.Read(b[:])
			resp.Body.Close()
			if resp.StatusCode == 200 && n > 4 {
				return
			}
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(c.log.Name())
			c.t.Fatalf("consul agent did not get a leader in 30s: %v\n%s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the agent and waits for it to exit.
func (c *Consul) Stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
	c.cmd = nil
}

// Restart stops and starts the agent: it comes back with no services.
func (c *Consul) Restart() {
	c.t.Helper()
	c.Stop()
	c.Start()
}

// Writes is the number of write requests (PUT, POST, DELETE) the agent's HTTP API has served since it
// started, read from its own metrics: an independent count of what the registrator wrote.
func (c *Consul) Writes() int {
	c.t.Helper()
	resp, err := http.Get("http://" + c.Addr() + "/v1/agent/metrics?format=prometheus")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "consul_api_http_count{") {
			continue
		}
		if !strings.Contains(line, `method="PUT"`) && !strings.Contains(line, `method="POST"`) && !strings.Contains(line, `method="DELETE"`) {
			continue
		}
		n, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			c.t.Fatalf("metrics line %q: %v", line, err)
		}
		total += int(n)
	}
	return total
}
