package packaging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// decodeStrict decodes JSON into v, rejecting fields v does not have: a misspelt key in a task
// definition would otherwise be dropped without a word.
func decodeStrict(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode into %T: %v", v, err)
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// TestMain removes the binary daemon built, if a test asked for it.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// daemon builds the ecs-registrator binary once for the tests that ask it about its flags.
func daemon(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ecsr-pkg-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ecs-registrator")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/ecs-registrator").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// checkEnv makes sure every REGISTRATOR_ variable names a flag of the daemon and holds a value the
// daemon accepts.
func checkEnv(t *testing.T, env map[string]string) {
	t.Helper()
	help, _ := exec.Command(daemon(t), "-h").CombinedOutput()
	cmd := exec.Command(daemon(t), "-h")
	for k, v := range env {
		name, ok := strings.CutPrefix(k, "REGISTRATOR_")
		if !ok {
			continue
		}
		flag := "-" + strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		if !regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(flag) + `\b`).Match(help) {
			t.Errorf("%s names no flag of the daemon (%s)", k, flag)
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the daemon refuses this environment: %v\n%s", err, out)
	}
}

func TestDaemonTaskDefinition(t *testing.T) {
	var td ecs.RegisterTaskDefinitionInput
	decodeStrict(t, read(t, "ecs/ecs-registrator-task-definition.json"), &td)
	checkDaemonTask(t, td)
	var svc ecs.CreateServiceInput
	decodeStrict(t, read(t, "ecs/ecs-registrator-service.json"), &svc)
	if svc.SchedulingStrategy != "DAEMON" || svc.LaunchType != "EC2" || *svc.TaskDefinition != *td.Family {
		t.Errorf("service: %s %s %s", svc.SchedulingStrategy, svc.LaunchType, *svc.TaskDefinition)
	}
}

// checkDaemonTask asserts what the daemon's task definition must be: host network, the Docker socket
// read-only, env config the daemon accepts, a health check the binary has, awslogs, a memory reservation.
func checkDaemonTask(t *testing.T, td ecs.RegisterTaskDefinitionInput) {
	t.Helper()
	if td.NetworkMode != "host" {
		t.Errorf("network mode %q, want host: the daemon reaches the Consul agent and the ECS agent on loopback", td.NetworkMode)
	}
	if len(td.ContainerDefinitions) != 1 {
		t.Fatalf("%d containers", len(td.ContainerDefinitions))
	}
	c := td.ContainerDefinitions[0]
	var socketVolume string
	for _, v := range td.Volumes {
		if v.Host != nil && v.Host.SourcePath != nil && *v.Host.SourcePath == "/var/run/docker.sock" {
			socketVolume = *v.Name
		}
	}
	mounted := false
	for _, m := range c.MountPoints {
		if *m.SourceVolume == socketVolume {
			mounted = true
			if m.ReadOnly == nil || !*m.ReadOnly || *m.ContainerPath != "/var/run/docker.sock" {
				t.Errorf("the Docker socket must be mounted read-only at /var/run/docker.sock: %+v", m)
			}
		}
	}
	if socketVolume == "" || !mounted {
		t.Error("the Docker socket is not mounted")
	}
	env := map[string]string{}
	for _, kv := range c.Environment {
		env[*kv.Name] = *kv.Value
	}
	checkEnv(t, env)
	// The registration policy ships opt-in: the variable is there to be filled (packaging/README.md,
	// "Registration policy").
	if _, ok := env["REGISTRATOR_POLICY"]; !ok {
		t.Error("no REGISTRATOR_POLICY slot in the environment")
	}
	hc := c.HealthCheck
	if hc == nil || !slices.Equal(hc.Command, []string{"CMD", "/ecs-registrator", "healthcheck"}) {
		t.Fatalf("health check %+v, want CMD /ecs-registrator healthcheck (the image has no shell)", hc)
	}
	out, err := exec.Command(daemon(t), "healthcheck", "-addr", "127.0.0.1:1").CombinedOutput()
	if err == nil || !strings.HasPrefix(string(out), "unhealthy:") {
		t.Errorf("the binary's healthcheck against nothing: %v %q", err, out)
	}
	if c.LogConfiguration == nil || c.LogConfiguration.LogDriver != "awslogs" {
		t.Error("logs must go to CloudWatch (awslogs)")
	}
	if c.MemoryReservation == nil || *c.MemoryReservation < 32 || c.Memory == nil || *c.Memory < 2**c.MemoryReservation {
		t.Errorf("memory reservation %v, limit %v", c.MemoryReservation, c.Memory)
	}
	if !*c.Essential {
		t.Error("the daemon container must be essential")
	}
}

func TestConsulClientTaskDefinition(t *testing.T) {
	var td ecs.RegisterTaskDefinitionInput
	decodeStrict(t, read(t, "ecs/consul-client-task-definition.json"), &td)
	c := td.ContainerDefinitions[0]
	// The entry point writes the agent's configuration (TestConsulClientConfigsEnforceACLs runs it),
	// then starts the image's entry point as "agent" with the command's arguments.
	if td.NetworkMode != "host" || len(c.EntryPoint) != 4 || !strings.HasSuffix(c.EntryPoint[2], "\nexec docker-entrypoint.sh agent \"$@\"\n") ||
		!slices.Contains(c.Command, "-client=127.0.0.1") ||
		!slices.ContainsFunc(c.Command, func(s string) bool { return strings.HasPrefix(s, "-retry-join=provider=aws tag_key=") }) {
		t.Errorf("consul client: %s %q %v", td.NetworkMode, c.EntryPoint, c.Command)
	}
	var svc ecs.CreateServiceInput
	decodeStrict(t, read(t, "ecs/consul-client-service.json"), &svc)
	if svc.SchedulingStrategy != "DAEMON" || *svc.TaskDefinition != *td.Family {
		t.Errorf("service: %s %s", svc.SchedulingStrategy, *svc.TaskDefinition)
	}
}

// The example a service team copies: its dockerLabels must register one service with an HTTP check
// and no problem.
func TestExampleServiceTaskDefinition(t *testing.T) {
	var td ecs.RegisterTaskDefinitionInput
	decodeStrict(t, read(t, "ecs/example-service-task-definition.json"), &td)
	c := td.ContainerDefinitions[0]
	pm := c.PortMappings[0]
	cont := desired.Container{ID: "0123456789ab", Name: "ecs-orders-1-orders-a0a0a0a0a0a0a0a0a0a0", Image: *c.Image, Running: true,
		NetworkMode: string(td.NetworkMode), Labels: c.DockerLabels,
		Ports: []desired.Port{{Port: int(*pm.ContainerPort), Proto: string(pm.Protocol), HostIP: "0.0.0.0", HostPort: 32768}}}
	res := desired.Desired(cont, desired.Options{Node: "ip-10-0-1-23", AdvertiseIP: netip.MustParseAddr("10.0.1.23"), OptIn: true})
	if len(res.Problems) != 0 || len(res.Services) != 1 {
		t.Fatalf("the example's labels: problems %v, services %d", res.Problems, len(res.Services))
	}
	s := res.Services[0]
	if s.Name != "orders" || len(s.Checks) != 1 || s.Checks[0].HTTP != "http://10.0.1.23:32768/health" || s.Meta["team"] != "payments" {
		t.Errorf("service %+v", s)
	}
}

func TestSystemdUnit(t *testing.T) {
	f, err := os.Open("systemd/ecs-registrator.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unit := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			unit[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("line %d is not key=value in a section: %q", n, line)
			}
			unit[section][k] = append(unit[section][k], v)
		}
	}
	for _, want := range []struct{ section, key, value string }{
		{"Service", "ExecStart", "/usr/local/bin/ecs-registrator"},
		{"Service", "Restart", "always"},
		{"Service", "KillSignal", "SIGTERM"},
		{"Service", "SupplementaryGroups", "docker"},
		{"Service", "EnvironmentFile", "-/etc/default/ecs-registrator"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if !slices.Contains(unit[want.section][want.key], want.value) {
			t.Errorf("[%s] %s=%s missing (have %v)", want.section, want.key, want.value, unit[want.section][want.key])
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		if out, err := exec.Command("systemd-analyze", "verify", "systemd/ecs-registrator.service").CombinedOutput(); err != nil &&
			!strings.Contains(string(out), "/usr/local/bin/ecs-registrator") {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
	env := map[string]string{}
	for line := range strings.Lines(string(read(t, "systemd/ecs-registrator.default"))) {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		t.Fatal("no settings in the default file")
	}
	checkEnv(t, env)
}

// The service mesh example, on the secured path: the application's labels register one service with
// its sidecar at the host's address (host networking: the task reaches the host's agent on loopback,
// with no instance metadata) and its upstreams; the proxy container finds that registration with
// sidecar-for, logging in with the task's IAM role through the proxies' auth method and its server ID,
// and takes the agent's address from its environment.
func TestExampleMeshTaskDefinition(t *testing.T) {
	var td ecs.RegisterTaskDefinitionInput
	decodeStrict(t, read(t, "ecs/example-mesh-task-definition.json"), &td)
	if td.NetworkMode != types.NetworkModeHost || len(td.ContainerDefinitions) != 2 {
		t.Fatalf("want a host-network task of the application and its proxy: %s, %d containers", td.NetworkMode, len(td.ContainerDefinitions))
	}
	if td.TaskRoleArn == nil || !strings.Contains(*td.TaskRoleArn, ":role/") {
		t.Errorf("task role %v: the proxy logs in with the task's IAM role, tagged with its service's name", td.TaskRoleArn)
	}
	app, proxy := td.ContainerDefinitions[0], td.ContainerDefinitions[1]
	task := &ecsmeta.Task{Cluster: "prod", ARN: "arn:aws:ecs:eu-west-1:111122223333:task/prod/1a2b3c4d", Family: *td.Family, Revision: "1",
		Container: *app.Name}
	for _, pm := range app.PortMappings {
		task.Ports = append(task.Ports, ecsmeta.Port{ContainerPort: int(*pm.ContainerPort), Protocol: string(pm.Protocol)})
	}
	opts := desired.Options{Node: "ip-10-0-1-23", AdvertiseIP: netip.MustParseAddr("10.0.1.23"), OptIn: true}
	res := desired.Desired(desired.Container{ID: "0123456789ab", Name: "ecs-orders-mesh-1-orders-a0a0", Image: *app.Image, Running: true,
		NetworkMode: "host", Labels: app.DockerLabels, Task: task}, opts)
	if len(res.Problems) != 0 || len(res.Services) != 1 {
		t.Fatalf("the example's labels: problems %v, services %d", res.Problems, len(res.Services))
	}
	c := res.Services[0].Connect
	want := []desired.Upstream{{Name: "payments", LocalPort: 9191}, {Name: "ledger", LocalPort: 9192}}
	if c == nil || c.Addr() != "10.0.1.23:21000" || c.LocalPort != 8080 || !slices.Equal(c.Upstreams, want) {
		t.Fatalf("sidecar %+v", c)
	}
	if *proxy.PortMappings[0].ContainerPort != int32(c.BindPort) {
		t.Errorf("the proxy publishes %d, the sidecar listens on %d", *proxy.PortMappings[0].ContainerPort, c.BindPort)
	}
	if len(proxy.DockerLabels) != 0 {
		t.Errorf("the proxy container carries labels: %v", proxy.DockerLabels)
	}
	env := map[string]string{}
	for _, kv := range proxy.Environment {
		env[*kv.Name] = *kv.Value
	}
	if env["CONSUL_HTTP_ADDR"] != "127.0.0.1:8500" || env["CONSUL_GRPC_ADDR"] != "127.0.0.1:8502" {
		t.Errorf("the proxy's environment %v: want the host's agent on loopback, CONSUL_HTTP_ADDR=127.0.0.1:8500 and CONSUL_GRPC_ADDR=127.0.0.1:8502", env)
	}
	argv := append(slices.Clone(proxy.EntryPoint), proxy.Command...)
	cmd := strings.Join(argv, " ")
	flags := regexp.MustCompile(`^/ecs-registrator sidecar-for (.*)-container ` + regexp.QuoteMeta(*app.Name) + ` -- consul connect envoy\b`).FindStringSubmatch(cmd)
	if flags == nil || !regexp.MustCompile(`-consul-iam-auth-method \S+ `).MatchString(flags[1]) || !regexp.MustCompile(`-consul-iam-server-id \S+ `).MatchString(flags[1]) {
		t.Fatalf("the proxy runs %q, want /ecs-registrator sidecar-for -consul-iam-auth-method <method> -consul-iam-server-id <server ID> -container %s -- consul connect envoy", cmd, *app.Name)
	}
	// sidecar-for takes this command line: run as the container would, but with no task credentials,
	// it parses every flag and stops at the login, refusing to use anything but the task's role.
	run := exec.Command(daemon(t), argv[1:]...)
	run.Env = []string{"PATH=/usr/bin:/bin", "CONSUL_HTTP_ADDR=127.0.0.1:1"}
	out, err := run.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !bytes.Contains(out, []byte("no task role credentials")) {
		t.Errorf("sidecar-for with the example's command line and no task role: %v\n%s", err, out)
	}
}

// linuxOnly is the placement constraint that keeps a task off a cluster's Windows container instances
// (the built-in attribute ecs.os-type is linux or windows).
const linuxOnly = "attribute:ecs.os-type == linux"

// checkPlatform asserts what every packaged task definition declares about the hosts it runs on:
// Linux, both as its runtime platform and as a memberOf placement constraint (a DAEMON service
// places one task on every instance that meets its constraints, so without one it would also try
// the cluster's Windows instances). multiArch: its images are manifest lists of linux/amd64 and
// linux/arm64, so the task definition must not name an architecture, neither as cpuArchitecture
// (which pins one) nor as an ecs.cpu-architecture constraint: one daemon service covers x86 and
// Graviton instances alike, each pulling its own image.
func checkPlatform(t *testing.T, name string, td ecs.RegisterTaskDefinitionInput, multiArch bool) {
	t.Helper()
	rp := td.RuntimePlatform
	if rp == nil || rp.OperatingSystemFamily != types.OSFamilyLinux {
		t.Errorf("%s: runtimePlatform %+v, want operatingSystemFamily LINUX", name, rp)
	}
	if !slices.ContainsFunc(td.PlacementConstraints, func(c types.TaskDefinitionPlacementConstraint) bool {
		return c.Type == types.TaskDefinitionPlacementConstraintTypeMemberOf && c.Expression != nil && *c.Expression == linuxOnly
	}) {
		t.Errorf("%s: no memberOf placement constraint %q (have %+v)", name, linuxOnly, td.PlacementConstraints)
	}
	if !multiArch {
		return
	}
	if rp != nil && rp.CpuArchitecture != "" {
		t.Errorf("%s: cpuArchitecture %s pins one architecture; its images are multi-architecture", name, rp.CpuArchitecture)
	}
	for _, c := range td.PlacementConstraints {
		if c.Expression != nil && strings.Contains(*c.Expression, "ecs.cpu-architecture") {
			t.Errorf("%s: placement constraint %q pins an architecture; its images are multi-architecture", name, *c.Expression)
		}
	}
}

// Every task definition in ecs/ declares its platform; the daemon's (the canary's too) and the Consul
// client's (the DAEMON services, whose images are multi-architecture) name no CPU architecture.
func TestTaskDefinitionPlatforms(t *testing.T) {
	files, err := filepath.Glob("ecs/*task-definition.json")
	canary, _ := filepath.Glob("ecs/canary/*task-definition.json")
	files = append(files, canary...)
	if err != nil || len(files) < 5 {
		t.Fatalf("task definitions: %v %v", files, err)
	}
	for _, f := range files {
		var td ecs.RegisterTaskDefinitionInput
		decodeStrict(t, read(t, f), &td)
		checkPlatform(t, f, td, strings.HasPrefix(*td.Family, "ecs-registrator") || *td.Family == "consul-client")
	}
}

// The Dockerfile is built by the legacy builder once per architecture (make image): its first
// instruction after FROM scratch must be the COPY of the binary. Anything else first (ARG, LABEL,
// ENV) commits an image of the Docker daemon's own architecture and the arm64 build fails; a first
// COPY of something alike for both architectures (the CA bundle) lets the builder's cache, which
// ignores the platform, give the arm64 build the amd64 image.
func TestDockerfileBuildsPerArchitecture(t *testing.T) {
	instructions := dockerfile(t)
	if len(instructions) < 2 || instructions[0] != "FROM scratch" || !strings.HasPrefix(instructions[1], "COPY ecs-registrator /ecs-registrator") {
		t.Fatalf("the Dockerfile must start FROM scratch, then COPY ecs-registrator /ecs-registrator: %q", instructions[:min(2, len(instructions))])
	}
	for _, in := range instructions {
		if strings.HasPrefix(in, "RUN ") {
			t.Errorf("a RUN step needs emulation for the other architecture: %s", in)
		}
	}
}
