package testenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// Consul is a Consul agent on free ports: a dev agent (a single-node server that keeps nothing), or a
// server or client of a Cluster.
type Consul struct {
	t     testing.TB
	bin   string
	Node  string
	HTTP  int
	DNS   int
	ports []int // server RPC, serf LAN, serf WAN
	cmd   *exec.Cmd
	log   *os.File
	// Token is the management token of an agent with ACLs on (StartConsulACL), "" otherwise.
	Token string
	// HTTPS is the port of an agent that serves HTTPS and requires client certificates
	// (StartConsulTLS), 0 otherwise; TLS holds the files a client needs.
	HTTPS int
	TLS   *TLSFiles
	conf  string // extra configuration file
	// extraClient is another address the HTTP API listens on, "" for loopback only.
	extraClient string

	// Cluster members only.
	Bind      string   // address the agent gossips on
	server    int      // bootstrap-expect for a server, 0 for a client
	join      []string // serf LAN addresses to join
	dataDir   string
	clustered bool
}

// StartConsul starts a dev agent that is stopped when the test ends.
func StartConsul(t testing.TB) *Consul {
	t.Helper()
	c := newAgent(t, "node", "127.0.0.1", false)
	c.Start()
	return c
}

// StartConsulReachable starts a dev agent whose HTTP API listens on addr too (the Docker bridge's
// gateway, see BridgeGateway), for containers that talk to it: Connect proxies. Connect is on, as in
// every dev agent.
func StartConsulReachable(t testing.TB, addr string) *Consul {
	t.Helper()
	c := newAgent(t, "mesh", "127.0.0.1", false)
	c.extraClient = addr
	c.Start()
	return c
}

// StartConsulACL starts a dev agent with ACLs on and default deny, as production datacenters run;
// Token is its management token, which the agent also uses for itself.
func StartConsulACL(t testing.TB) *Consul {
	t.Helper()
	c := newAgent(t, "acl", "127.0.0.1", false)
	c.Token = fmt.Sprintf("00000000-0000-4000-8000-%012d", c.HTTP)
	c.Start()
	return c
}

// StartConsulACLReachable is StartConsulACL listening on addr too, for containers: a secured
// datacenter's Connect proxies, which log in for their own tokens.
func StartConsulACLReachable(t testing.TB, addr string) *Consul {
	t.Helper()
	c := newAgent(t, "aclmesh", "127.0.0.1", false)
	c.Token = fmt.Sprintf("00000000-0000-4000-8000-%012d", c.HTTP)
	c.extraClient = addr
	c.Start()
	return c
}

// NewToken creates an ACL policy with these rules and a token holding it, and returns the token's
// secret.
func (c *Consul) NewToken(t testing.TB, name, rules string) string {
	t.Helper()
	a := c.API()
	if _, _, err := a.ACL().PolicyCreate(&api.ACLPolicy{Name: name, Rules: rules}, nil); err != nil {
		t.Fatalf("policy %s: %v", name, err)
	}
	tok, _, err := a.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{Name: name}}}, nil)
	if err != nil {
		t.Fatalf("token %s: %v", name, err)
	}
	return tok.SecretID
}

// StartConsulTLS starts a dev agent that also serves HTTPS on c.HTTPS and requires a client
// certificate there (verify_incoming), with certificates made for the test. Its plain HTTP port stays
// open for the test's own checks.
func StartConsulTLS(t testing.TB) *Consul {
	t.Helper()
	c := newAgent(t, "tls", "127.0.0.1", false)
	c.HTTPS = FreePort(t)
	c.TLS = MakeTLS(t)
	c.conf = filepath.Join(t.TempDir(), "tls.hcl")
	hcl := fmt.Sprintf(`tls {
  defaults { ca_file = %q  cert_file = %q  key_file = %q }
  https { verify_incoming = true }
}
ports { https = %d }
`, c.TLS.CA, c.TLS.ServerCert, c.TLS.ServerKey, c.HTTPS)
	if err := os.WriteFile(c.conf, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Start()
	return c
}

// ClientAddr is the address a registrator is given: https://127.0.0.1:port for an agent that
// serves HTTPS, else host:port.
func (c *Consul) ClientAddr() string {
	if c.HTTPS != 0 {
		return fmt.Sprintf("https://127.0.0.1:%d", c.HTTPS)
	}
	return c.Addr()
}

// Addr is the agent's HTTP address, host:port.
func (c *Consul) Addr() string { return fmt.Sprintf("127.0.0.1:%d", c.HTTP) }

// API returns a client for the agent.
func (c *Consul) API() *api.Client {
	cfg := api.DefaultConfig()
	cfg.Address = c.Addr()
	cfg.Token, cfg.TokenFile = c.Token, ""
	cl, err := api.NewClient(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// SerfAddr is the agent's gossip address, for others to join.
func (c *Consul) SerfAddr() string { return fmt.Sprintf("%s:%d", c.Bind, c.ports[1]) }

// Cluster is a Consul cluster of servers on loopback, each with its own ports and data directory.
type Cluster struct {
	Servers []*Consul
}

// StartConsulCluster starts n servers that elect a leader, stopped when the test ends.
func StartConsulCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	cl := &Cluster{}
	for i := range n {
		c := newAgent(t, fmt.Sprintf("server-%d", i), "127.0.0.1", true)
		c.server = n
		cl.Servers = append(cl.Servers, c)
	}
	for _, c := range cl.Servers {
		for _, o := range cl.Servers {
			if o != c {
				c.join = append(c.join, o.SerfAddr())
			}
		}
	}
	var wg sync.WaitGroup
	for _, c := range cl.Servers {
		wg.Go(c.Start) // a server waits for its peers to elect a leader
	}
	wg.Wait()
	return cl
}

// StartClient starts a client agent that gossips on bind (e.g. 127.0.0.2, one per simulated host) and
// joins the cluster.
func (cl *Cluster) StartClient(t testing.TB, node, bind string) *Consul {
	t.Helper()
	c := newAgent(t, node, bind, true)
	for _, s := range cl.Servers {
		c.join = append(c.join, s.SerfAddr())
	}
	c.Start()
	return c
}

// newAgent prepares an agent on free ports, stopped when the test ends: a dev agent, or a cluster member
// that gossips on bind and keeps a data directory.
func newAgent(t testing.TB, node, bind string, clustered bool) *Consul {
	t.Helper()
	Real(t)
	bin, ok := ConsulBinary()
	if !ok {
		Missing(t, "no consul binary (run scripts/consul-build.sh, or set ECSR_CONSUL)")
	}
	c := &Consul{t: t, bin: bin, Node: fmt.Sprintf("%s-%d", node, FreePort(t)), Bind: bind, clustered: clustered}
	if clustered {
		c.dataDir = t.TempDir()
	}
	c.HTTP, c.DNS = FreePort(t), FreePort(t)
	c.ports = []int{FreePort(t), FreePort(t), FreePort(t)}
	f, err := os.Create(filepath.Join(t.TempDir(), "consul.log"))
	if err != nil {
		t.Fatal(err)
	}
	c.log = f
	t.Cleanup(c.Stop)
	return c
}

// Start starts the agent (again, after Stop) on the same ports and waits until it has a leader. A dev
// agent keeps nothing across restarts; cluster members keep their data directory.
func (c *Consul) Start() {
	c.t.Helper()
	hcl := `telemetry { prometheus_retention_time = "1h" disable_hostname = true } ports { grpc_tls = -1 }`
	if c.Token != "" {
		hcl += fmt.Sprintf(` acl { enabled = true default_policy = "deny" enable_token_persistence = false
			tokens { initial_management = %q agent = %q } }`, c.Token, c.Token)
	}
	args := []string{"agent", "-dev", "-bind", "127.0.0.1"}
	if c.clustered {
		args = []string{"agent", "-data-dir", c.dataDir, "-bind", c.Bind, "-advertise", c.Bind}
		if c.server > 0 {
			args = append(args, "-server", "-bootstrap-expect", strconv.Itoa(c.server))
		}
		for _, j := range c.join {
			args = append(args, "-retry-join", j)
		}
		// Quick failure detection and elections on loopback.
		hcl += ` performance { raft_multiplier = 1 }`
	}
	args = append(args, "-client", strings.TrimSpace("127.0.0.1 "+c.extraClient),
		"-node", c.Node, "-http-port", strconv.Itoa(c.HTTP), "-dns-port", strconv.Itoa(c.DNS),
		"-server-port", strconv.Itoa(c.ports[0]), "-serf-lan-port", strconv.Itoa(c.ports[1]),
		"-serf-wan-port", strconv.Itoa(c.ports[2]), "-grpc-port", "-1", "-hcl", hcl)
	if c.conf != "" {
		args = append(args, "-config-file", c.conf)
	}
	c.cmd = exec.Command(c.bin, args...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		c.t.Errorf("start consul: %v", err)
		return
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := c.ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(c.log.Name())
			c.t.Errorf("consul agent %s not ready in 60s: %v\n%s", c.Node, err, out)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready says why the agent cannot serve a test yet: no leader, or, with ACLs on, a management
// token the leader has not stored yet. The leader writes it only after it is elected, so for a
// moment every request made with it is refused as "ACL not found".
func (c *Consul) ready() error {
	get := func(path string) (int, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+c.Addr()+path, nil)
		if c.Token != "" {
			req.Header.Set("X-Consul-Token", c.Token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, b, err
	}
	code, body, err := get("/v1/status/leader")
	if err != nil {
		return err
	}
	if code != 200 || len(body) <= 4 {
		return fmt.Errorf("no leader yet: %d %s", code, body)
	}
	if c.Token == "" {
		return nil
	}
	if code, body, err = get("/v1/acl/token/self"); err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("management token not usable yet: %d %s", code, body)
	}
	return nil
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

// PassingWatch follows a service's passing set through blocking queries, so that every state Consul
// goes through is seen without polling, and keeps the fewest instances counted in one.
type PassingWatch struct {
	mu       sync.Mutex
	fewest   int
	observed int
	states   []PassingState
	stop     context.CancelFunc
	done     sync.WaitGroup
}

// PassingState is one state of the passing set: the count, and when the blocking query that
// returned it came back (at most a network round trip after Consul changed).
type PassingState struct {
	At time.Time
	N  int
}

// WatchPassing starts watching service's passing set; count says how many of its instances matter
// (nil counts them all). Stop ends the watch.
func WatchPassing(t testing.TB, a *api.Client, service string, count func([]*api.ServiceEntry) int) *PassingWatch {
	if count == nil {
		count = func(es []*api.ServiceEntry) int { return len(es) }
	}
	ctx, stop := context.WithCancel(context.Background())
	w := &PassingWatch{fewest: -1, stop: stop}
	t.Cleanup(w.Stop)
	w.done.Go(func() {
		idx := uint64(0)
		for ctx.Err() == nil {
			out, meta, err := a.Health().Service(service, "", true, (&api.QueryOptions{WaitIndex: idx, WaitTime: 5 * time.Second}).WithContext(ctx))
			if err != nil {
				continue
			}
			idx = meta.LastIndex
			n := count(out)
			at := time.Now()
			w.mu.Lock()
			if len(w.states) == 0 || w.states[len(w.states)-1].N != n {
				w.states = append(w.states, PassingState{At: at, N: n})
			}
			if w.fewest < 0 || n < w.fewest {
				w.fewest = n
			}
			w.observed++
			w.mu.Unlock()
		}
	})
	return w
}

// Stop ends the watch; it may be called more than once.
func (w *PassingWatch) Stop() {
	w.stop()
	w.done.Wait()
}

// States are the counts the watch saw, each with when it first saw it, oldest first.
func (w *PassingWatch) States() []PassingState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.states)
}

// Fewest is the fewest instances seen in one state of the passing set, and the states seen.
func (w *PassingWatch) Fewest() (fewest, observed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fewest, w.observed
}
