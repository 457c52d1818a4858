package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/fakeecs"
	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	cases := []struct {
		name    string
		args    []string
		env     func(string) string
		check   func(config) bool
		wantErr string
	}{
		{name: "defaults", env: env(), check: func(c config) bool {
			return c.core.OptIn && c.core.Resync == 30*time.Second && c.core.Drain == "deregister" && c.listen == listenAddr{"tcp", "127.0.0.1:9555"} && c.logFormat == "auto" && !c.dryRun
		}},
		{name: "env sets", env: env("REGISTRATOR_OPT_IN", "false", "REGISTRATOR_RESYNC", "5s", "REGISTRATOR_DRY_RUN", "true", "REGISTRATOR_IP", "::1"),
			check: func(c config) bool {
				return !c.core.OptIn && c.core.Resync == 5*time.Second && c.dryRun && c.ip == "::1"
			}},
		{name: "flags win over env", args: []string{"-resync", "1m", "-drain", "maintenance"}, env: env("REGISTRATOR_RESYNC", "5s", "REGISTRATOR_DRAIN", "deregister"),
			check: func(c config) bool { return c.core.Resync == time.Minute && c.core.Drain == "maintenance" }},
		{name: "bad env value names the variable", env: env("REGISTRATOR_RESYNC", "soon"), wantErr: "REGISTRATOR_RESYNC"},
		{name: "listen on a unix socket", env: env("REGISTRATOR_LISTEN", "unix:///run/ecs-registrator/status.sock"),
			check: func(c config) bool {
				return c.listen == listenAddr{"unix", "/run/ecs-registrator/status.sock"} && c.listen.host() == ""
			}},
		{name: "listen tcp:// form", args: []string{"-listen", "tcp://status.ops.internal:9555"}, env: env(),
			check: func(c config) bool {
				return c.listen == listenAddr{"tcp", "status.ops.internal:9555"} && c.listen.host() == "status.ops.internal"
			}},
		{name: "listen on every address", args: []string{"-listen", ":9555"}, env: env(),
			check: func(c config) bool { return c.listen == listenAddr{"tcp", ":9555"} && c.listen.host() == "" }},
		{name: "a relative socket path", args: []string{"-listen", "unix://status.sock"}, env: env(), wantErr: "absolute path"},
		{name: "listen without a port", args: []string{"-listen", "127.0.0.1"}, env: env(), wantErr: "-listen"},
		{name: "listen on another scheme", args: []string{"-listen", "udp://127.0.0.1:9555"}, env: env(), wantErr: "unix:///path"},
		{name: "bad drain", args: []string{"-drain", "later"}, env: env(), wantErr: "-drain"},
		{name: "no host drain margin", args: []string{"-host-drain-margin", "0s"}, env: env(), wantErr: "-host-drain-margin"},
		{name: "bad ip", args: []string{"-ip", "10.0.0.300"}, env: env(), wantErr: "-ip"},
		{name: "bad log format", args: []string{"-log-format", "xml"}, env: env(), wantErr: "-log-format"},
		{name: "bad log level", env: env("REGISTRATOR_LOG_LEVEL", "loud"), wantErr: "-log-level"},
		{name: "negative resync", args: []string{"-resync", "-1s"}, env: env(), wantErr: "-resync"},
		{name: "stray argument", args: []string{"extra"}, env: env(), wantErr: "unexpected argument"},
		{name: "unknown flag", args: []string{"-nope"}, env: env(), wantErr: "not defined"},
		{name: "ecs defaults", env: env(), check: func(c config) bool {
			return c.agentURI == "http://127.0.0.1:51678" && c.tmdsURI == "http://127.0.0.1:51679" && !c.ecsAPI && len(c.core.Tags) == 0
		}},
		{name: "ecs endpoints disabled", env: env("REGISTRATOR_ECS_AGENT_URI", "", "REGISTRATOR_ECS_TMDS_URI", ""),
			args: []string{"-ecs-agent-uri=", "-ecs-tmds-uri="}, check: func(c config) bool { return c.agentURI == "" && c.tmdsURI == "" }},
		{name: "bad agent uri", args: []string{"-ecs-agent-uri", "127.0.0.1:51678"}, env: env(), wantErr: "-ecs-agent-uri"},
		{name: "bad tmds uri", env: env("REGISTRATOR_ECS_TMDS_URI", "ftp://x"), wantErr: "-ecs-tmds-uri"},
		{name: "tag meta from task metadata", args: []string{"-ecs-tag-meta", "team"}, env: env(),
			check: func(c config) bool { return !c.ecsAPI && c.tagMeta == "team" }},
		{name: "tag meta needs task metadata or the api", args: []string{"-ecs-tag-meta", "team", "-ecs-tmds-uri="}, env: env(), wantErr: "-ecs-api"},
		{name: "tag meta with the api", env: env("REGISTRATOR_ECS_API", "true", "REGISTRATOR_ECS_TAG_META", "team, env"),
			check: func(c config) bool { return c.ecsAPI && slices.Equal(splitList(c.tagMeta), []string{"team", "env"}) }},
		{name: "tags parsed", args: []string{"-tags", "ecs,az-{{.AvailabilityZone}}"}, env: env(), check: func(c config) bool { return len(c.core.Tags) == 2 }},
		{name: "health ttl", env: env("REGISTRATOR_HEALTH_TTL", "2m"), check: func(c config) bool { return c.core.HealthTTL == 2*time.Minute }},
		{name: "host drain on by default", env: env(), check: func(c config) bool { return c.hostDrain }},
		{name: "host drain off", env: env("REGISTRATOR_HOST_DRAIN", "false"), check: func(c config) bool { return !c.hostDrain }},
		{name: "host drain margin", env: env("REGISTRATOR_HOST_DRAIN_MARGIN", "45s"), check: func(c config) bool { return c.hostDrainMargin == 45*time.Second }},
		{name: "health ttl too short", args: []string{"-health-ttl", "1s"}, env: env(), wantErr: "-health-ttl"},
		{name: "bad tag template", env: env("REGISTRATOR_TAGS", "az-{{.AvailabilityZone"), wantErr: "-tags"},
		// gliderlabs/registrator's command line.
		{name: "gliderlabs command line", args: []string{"-ip", "10.0.1.23", "consul://127.0.0.1:8500"}, env: env(), check: func(c config) bool {
			return c.core.Gliderlabs && c.consul == "127.0.0.1:8500" && !c.core.OptIn && c.ip == "10.0.1.23"
		}},
		{name: "gliderlabs resync in seconds", args: []string{"-resync", "45", "consul://"}, env: env(), check: func(c config) bool {
			return c.core.Resync == 45*time.Second && c.consul == ""
		}},
		{name: "gliderlabs explicit", args: []string{"-explicit", "consul://10.0.0.1:8500"}, env: env(), check: func(c config) bool { return c.core.OptIn }},
		{name: "gliderlabs tls", args: []string{"consul-tls://consul.internal:8501"}, env: env(), check: func(c config) bool {
			return c.consul == "https://consul.internal:8501"
		}},
		{name: "gliderlabs unix socket", args: []string{"consul-unix:///var/run/consul.sock"}, env: env(), check: func(c config) bool {
			return c.consul == "unix:///var/run/consul.sock"
		}},
		{name: "an explicit -consul wins over the URI", args: []string{"-consul", "10.9.9.9:8500", "consul://127.0.0.1:8500"}, env: env(),
			check: func(c config) bool { return c.consul == "10.9.9.9:8500" }},
		{name: "an explicit -opt-in wins in gliderlabs mode", env: env("REGISTRATOR_OPT_IN", "true"), args: []string{"consul://"},
			check: func(c config) bool { return c.core.OptIn }},
		{name: "gliderlabs flags without effect are accepted", args: []string{"-ttl", "30", "-ttl-refresh", "15", "-retry-attempts", "-1",
			"-retry-interval", "500", "-deregister", "always", "consul://"}, env: env(), check: func(c config) bool { return c.core.Gliderlabs }},
		{name: "another registry", args: []string{"etcd://127.0.0.1:2379"}, env: env(), wantErr: "only consul://"},
		{name: "two registries", args: []string{"consul://a:1", "consul://b:2"}, env: env(), wantErr: "unexpected argument"},
		{name: "gliderlabs mode adopts gliderlabs's registrations; -cleanup removes its leftovers", args: []string{"-cleanup", "consul://"}, env: env(),
			check: func(c config) bool { return c.core.Migrate.Adopt && c.core.Migrate.Cleanup }},
		{name: "gliderlabs mode without -cleanup removes nothing", args: []string{"consul://"}, env: env(),
			check: func(c config) bool { return c.core.Migrate.Adopt && !c.core.Migrate.Cleanup && !c.core.KeepFailed }},
		{name: "own flags: nothing of gliderlabs's is touched", env: env(), check: func(c config) bool { return !c.core.Migrate.Adopt && !c.core.Migrate.Cleanup }},
		{name: "-migrate-gliderlabs adopts and cleans up", args: []string{"-migrate-gliderlabs"}, env: env(),
			check: func(c config) bool { return c.core.Migrate.Adopt && c.core.Migrate.Cleanup && !c.core.Gliderlabs }},
		{name: "deregister on-success", args: []string{"-deregister", "on-success", "consul://"}, env: env(), check: func(c config) bool { return c.core.KeepFailed }},
		{name: "deregister something else", args: []string{"-deregister", "never", "consul://"}, env: env(), wantErr: "always or on-success"},
		{name: "useIpFromLabel", args: []string{"-useIpFromLabel", "ip", "consul://"}, env: env(), check: func(c config) bool { return c.core.IPFromLabel == "ip" }},
		{name: "gliderlabs -tags is one template over docker inspect", args: []string{"-tags", "{{.Config.Hostname}},x", "consul://"}, env: env(),
			check: func(c config) bool { return c.core.InspectTags != nil && len(c.core.Tags) == 0 }},
		{name: "gliderlabs -tags refuses httpGet", args: []string{"-tags", `{{httpGet "http://169.254.169.254/"}}`, "consul://"}, env: env(), wantErr: "httpGet"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseConfig(tc.args, tc.env, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(c) {
				t.Fatalf("config %+v, err %v", c, err)
			}
		})
	}
}

// daemon runs the real binary.
type daemon struct {
	cmd    *exec.Cmd
	out    *testenv.Buffer
	listen string
}

var binary string

// The binary is built with -race, once, unless -short skips every test that runs it (the build alone
// takes half a minute).
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "ecsr-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "ecs-registrator")
	if out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func startDaemon(t *testing.T, consul *testenv.Consul, listen string, extraEnv ...string) *daemon {
	t.Helper()
	return startDaemonArgs(t, consul, listen, nil, extraEnv...)
}

// startDaemonArgs runs the binary with a command line (after the environment startDaemon sets).
func startDaemonArgs(t *testing.T, consul *testenv.Consul, listen string, args []string, extraEnv ...string) *daemon {
	t.Helper()
	d := &daemon{out: &testenv.Buffer{}, listen: listen}
	d.cmd = exec.Command(binary, args...)
	d.cmd.Env = append(os.Environ(), "REGISTRATOR_CONSUL="+consul.Addr(), "REGISTRATOR_IP=127.0.0.1",
		"REGISTRATOR_LISTEN="+listen, "REGISTRATOR_LOG_LEVEL=debug")
	d.cmd.Env = append(d.cmd.Env, extraEnv...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("daemon output:\n%s", d.out)
		}
	})
	return d
}

func (d *daemon) ready() bool {
	resp, err := http.Get("http://" + d.listen + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func services(t *testing.T, a *api.Client, containerID string) int {
	t.Helper()
	s, err := a.Agent().ServicesWithFilter(fmt.Sprintf("Meta[\"container-id\"] == %q", containerID))
	if err != nil {
		t.Fatal(err)
	}
	return len(s)
}

// The daemon SIGKILLed while 50 containers change, then started again: converged within 5 s of the
// start, nothing stale, nothing missing, the foreign service untouched.
func TestDaemonSurvivesSIGKILLWhileContainersChange(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	a := consul.API()
	if err := a.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "hand-made", Name: "hand", Port: 7}); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	f := testenv.NewFleet(t, d, "sigkill", false)
	f.Start(25, false)

	first := startDaemon(t, consul, listen)
	testenv.Eventually(t, 10*time.Second, "daemon never ready", first.ready)
	converged := func() bool { ok, _ := f.Converged(a, consul.Node); return ok }
	testenv.Eventually(t, 10*time.Second, "never converged before the kill", converged)

	var wg sync.WaitGroup
	wg.Go(func() { f.Start(25, false); f.Remove(25, false) }) // 50 changes
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	wg.Wait()

	second := startDaemon(t, consul, listen)
	begin := time.Now()
	testenv.Eventually(t, 5*time.Second, "no convergence after restart", converged)
	t.Logf("converged %v after the restarted daemon was started", time.Since(begin))
	testenv.Eventually(t, 5*time.Second, "restarted daemon never ready", second.ready)
	if s, _, err := a.Agent().Service("hand-made", nil); err != nil || s.Port != 7 {
		t.Fatalf("hand-made service touched: %v %v", s, err)
	}
}

func TestSIGTERMExitsCleanlyAndLeavesRegistrations(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	a := consul.API()
	name := fmt.Sprintf("kept-%d", testenv.FreePort(t))
	id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Labels: map[string]string{"SERVICE_NAME": name}})
	dm := startDaemon(t, consul, fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "CONSUL_HTTP_TOKEN=s3cr3t-token-value")
	// Wait for the daemon's own account of the registration too: Consul can show the service while the
	// daemon is still reading the agent's answer, and a SIGTERM then cancels that read (the registration
	// stays and is adopted at the next start, but this test is about a daemon that knew it had registered).
	testenv.Eventually(t, 10*time.Second, "not registered", func() bool {
		return services(t, a, id) == 1 && strings.Contains(dm.out.String(), `"msg":"registered"`)
	})
	if err := dm.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := dm.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, dm.out)
	}
	if services(t, a, id) != 1 {
		t.Fatal("SIGTERM removed the registration: a rolling daemon update would cause a traffic gap")
	}
	// A stopped daemon is down: its own check says so at once, not a TTL later.
	if c := selfCheck(t, a); c == nil || c.Status != api.HealthCritical || !strings.HasPrefix(c.Output, "stopped at ") {
		t.Errorf("the daemon's own check after SIGTERM: %+v", c)
	}
	if strings.Contains(dm.out.String(), "s3cr3t-token-value") {
		t.Fatal("the Consul token appears in the logs")
	}
	if !strings.Contains(dm.out.String(), `{"time":`) || !strings.Contains(dm.out.String(), `"msg":"stopped; registrations left in place"`) {
		t.Fatalf("expected JSON logs when stderr is not a terminal:\n%s", dm.out)
	}
}

// On a plain Docker host (no ECS agent, no instance metadata) the defaults work: the advertise IP is the
// default route's address, and the missing metadata is mentioned once, not per container or retry.
// (That a host without task containers never asks the ECS agent is TestSourceNoTasksNoRequests: the
// shared dockerd here holds other tests' task containers.)
func TestPlainDockerHostDefaults(t *testing.T) {
	t.Parallel()
	ip, ok := defaultRouteAddr("/proc/net", interfaceIPv4)
	if !ok {
		t.Skip("this machine has no default route")
	}
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	a := consul.API()
	name := fmt.Sprintf("plain-%d", testenv.FreePort(t))
	id := testenv.Start(t, d, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Labels: map[string]string{"SERVICE_NAME": name}})
	// Nothing answers on the instance metadata address here; a closed port makes that quick.
	dm := startDaemon(t, consul, fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "REGISTRATOR_IP=",
		fmt.Sprintf("AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:%d", testenv.FreePort(t)))
	testenv.Eventually(t, 10*time.Second, "not registered", func() bool { return services(t, a, id) == 1 })
	s, _, err := a.Agent().Service(consul.Node+":"+name+":8080", nil)
	if err != nil || s.Address != ip.String() {
		t.Fatalf("service %+v (%v), want address %s", s, err, ip)
	}
	if _, ok := s.Meta["ec2-instance-id"]; ok {
		t.Errorf("instance ID without instance metadata: %v", s.Meta)
	}
	testenv.Eventually(t, 10*time.Second, "never said that instance metadata is missing", func() bool {
		return strings.Contains(dm.out.String(), "no EC2 instance metadata")
	})
	if err := dm.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = dm.cmd.Wait()
	out := dm.out.String()
	if n := strings.Count(out, "no EC2 instance metadata"); n != 1 {
		t.Errorf("missing instance metadata logged %d times, want once:\n%s", n, out)
	}
	// Nor does the host-drain watch fill the log, or drain anything.
	if n := strings.Count(out, `"component":"host-lifecycle"`); n != 1 {
		t.Errorf("the host-lifecycle watch logged %d lines without instance metadata, want one:\n%s", n, out)
	}
	if strings.Contains(out, "host is going away") {
		t.Errorf("a host without instance metadata drained:\n%s", out)
	}
}

// On EC2 the advertise IP is the instance's local-ipv4, and task containers carry zone and instance ID.
func TestEC2DefaultsFromInstanceMetadata(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	imds := testenv.StartIMDS(t)
	fake := fakeecs.Start(t, d)
	a := consul.API()
	arn := fmt.Sprintf("arn:aws:ecs:eu-west-1:111122223333:task/test/%032d", testenv.FreePort(t))
	fake.SetTask(arn, fakeecs.TaskConfig{Service: "orders-svc"})
	id := testenv.Start(t, d, testenv.Workload{Name: fmt.Sprintf("ecs-orders-3-app-%d", testenv.FreePort(t)), TCP: []int{8080}, Publish: true,
		Labels: map[string]string{"SERVICE_REGISTER": "true", ecsmeta.LabelCluster: "test", ecsmeta.LabelTaskARN: arn,
			ecsmeta.LabelContainerName: "app", ecsmeta.LabelFamily: "orders", ecsmeta.LabelRevision: "3"},
		Env: []string{ecsmeta.EnvMetadataV4 + "=http://169.254.170.2/v4/" + arn[len(arn)-32:] + "-app"}})
	startDaemon(t, consul, fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "REGISTRATOR_IP=",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL, "REGISTRATOR_ECS_AGENT_URI="+fake.AgentURL(),
		"REGISTRATOR_ECS_TMDS_URI="+fake.TMDSURL(), "REGISTRATOR_TAGS=az-{{.AvailabilityZone}},{{.Family}}-{{.Revision}}")
	var s *api.AgentService
	testenv.Eventually(t, 10*time.Second, "not registered with ECS metadata", func() bool {
		svcs, err := a.Agent().ServicesWithFilter(fmt.Sprintf("Meta[\"container-id\"] == %q", id))
		for _, v := range svcs {
			s = v
		}
		return err == nil && s != nil && s.Meta["ecs-service"] != ""
	})
	v := testenv.IMDSValues
	if s.Service != "orders-svc" || s.Address != v["local-ipv4"] || s.Meta["ec2-instance-id"] != v["instance-id"] ||
		s.Meta["availability-zone"] != v["placement-availability-zone"] || !slices.Equal(s.Tags, []string{"az-" + v["placement-availability-zone"], "orders-3"}) {
		t.Errorf("service %s at %s tags %v meta %v", s.Service, s.Address, s.Tags, s.Meta)
	}
}

// A team on gliderlabs/registrator swaps the image and keeps its command line: `-ip <addr>
// consul://<agent>`. Every published port is registered (gliderlabs's default), named after the
// image when no SERVICE_NAME is given, and -resync takes seconds.
func TestGliderlabsCommandLine(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	a := consul.API()
	unlabelled := testenv.Start(t, d, testenv.Workload{Name: fmt.Sprintf("glider-%d", testenv.FreePort(t)), TCP: []int{8080}, Publish: true})
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	dm := startDaemonArgs(t, consul, listen, []string{"-ip", "127.0.0.1", "-resync", "30", "-ttl", "30", "-ttl-refresh", "15",
		"-retry-attempts", "-1", "consul://" + consul.Addr()}, "REGISTRATOR_CONSUL=", "REGISTRATOR_IP=")
	testenv.Eventually(t, 15*time.Second, "the unlabelled container was not registered in gliderlabs mode", func() bool {
		return services(t, a, unlabelled) == 1
	})
	svcs, err := a.Agent().ServicesWithFilter(fmt.Sprintf("Meta[\"container-id\"] == %q", unlabelled))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs {
		if s.Service != "ecsr-workload" || s.Address != "127.0.0.1" {
			t.Errorf("service %s at %s, want the image's base name at 127.0.0.1", s.Service, s.Address)
		}
	}
	_ = dm.cmd.Process.Signal(syscall.SIGTERM)
	_ = dm.cmd.Wait()
}
