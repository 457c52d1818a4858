package registrator_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/internal/fakeecs"
	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	"github.com/ecs-registrator/ecs-registrator/registrator"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// ecsTask is one simulated ECS task (fakeecs.Task), its fields by their old names.
type ecsTask struct {
	arn, family, revision string
}

func newTask(t *testing.T, family string) ecsTask {
	k := fakeecs.NewTask(t, family)
	return ecsTask{arn: k.ARN, family: k.Family, revision: k.Revision}
}

// container returns the workload for one container of the task, named as ECS names them.
func (k ecsTask) container(name string, w testenv.Workload) testenv.Workload {
	return fakeecs.Task{ARN: k.arn, Family: k.family, Revision: k.revision}.Container(name, w)
}

// runECS starts a registrator with an ecsmeta.Source reading the fake agent (and IMDS when given).
func runECS(t *testing.T, d *client.Client, fake *fakeecs.Agent, imdsURL string, mod ...func(*ecsmeta.Config)) *env {
	t.Helper()
	return runECSWith(t, d, testenv.StartConsul(t), fake, imdsURL, mod...)
}

func runECSWith(t *testing.T, d *client.Client, consul *testenv.Consul, fake *fakeecs.Agent, imdsURL string, mod ...func(*ecsmeta.Config)) *env {
	t.Helper()
	cfg := ecsmeta.Config{AgentURL: fake.AgentURL(), TMDSURL: fake.TMDSURL(), Poll: time.Second}
	if imdsURL != "" {
		t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imdsURL)
		cfg.IMDS = ecsmeta.NewIMDS()
	}
	for _, m := range mod {
		m(&cfg)
	}
	src := ecsmeta.New(cfg)
	e := run(t, d, consul, func(c *registrator.Config) { c.ECS = src })
	e.ecs = src
	return e
}

func (e *env) service(t *testing.T, containerID string, timeout time.Duration, cond func(*api.AgentService) bool) *api.AgentService {
	t.Helper()
	var got *api.AgentService
	testenv.EventuallyExplain(t, timeout, func() bool {
		for _, s := range e.services(t, containerID) {
			got = s
			return cond(s)
		}
		return false
	}, func() string {
		return fmt.Sprintf("container %.12s never had a matching service (last %+v)", containerID, got)
	})
	return got
}

// Bridge, host and awsvpc task containers land in Consul at the right address with all ECS Meta; the
// pause container never does. Not parallel: it sets the IMDS endpoint in the environment.
func TestECSNetworkModes(t *testing.T) {
	d := testenv.Docker(t)
	imds := testenv.StartIMDS(t)
	fake := fakeecs.Start(t, d)
	e := runECS(t, d, fake, imds.URL)
	e.waitReady(t)
	host := testenv.IMDSValues

	bridge := newTask(t, "web")
	fake.SetTask(bridge.arn, fakeecs.TaskConfig{Service: "web-svc", AvailabilityZone: "eu-west-1b"})
	bridgeID := testenv.Start(t, d, bridge.container("app", testenv.Workload{TCP: []int{8080}, Publish: true,
		Labels: map[string]string{"SERVICE_REGISTER": "true"}}))

	hostTask := newTask(t, "edge")
	fake.SetTask(hostTask.arn, fakeecs.TaskConfig{Service: "edge-svc", AvailabilityZone: "eu-west-1b"})
	proxyPort := testenv.FreePort(t)
	hostID := testenv.Start(t, d, hostTask.container("proxy", testenv.Workload{TCP: []int{proxyPort}, Network: "host",
		Labels: map[string]string{"SERVICE_NAME": "edge"}}))

	vpc := newTask(t, "api")
	fake.SetTask(vpc.arn, fakeecs.TaskConfig{Service: "api-svc", AvailabilityZone: "eu-west-1b", ENI: "10.0.12.34"})
	pauseID := testenv.Start(t, d, vpc.container(ecsmeta.PauseContainer, testenv.Workload{Network: "none",
		Labels: map[string]string{"SERVICE_REGISTER": "true"}}))
	appID := testenv.Start(t, d, vpc.container("api", testenv.Workload{TCP: []int{9000}, Network: "container:" + pauseID,
		Labels: map[string]string{"SERVICE_REGISTER": "true"}}))

	full := func(s *api.AgentService) bool { return s.Meta[desired.MetaECSService] != "" }
	cases := []struct {
		id, task, container, service, addr string
		port                               int
		ecs                                ecsTask
	}{
		{bridgeID, bridge.arn, "app", "web-svc", "127.0.0.1", hostPort(t, d, bridgeID, "8080/tcp"), bridge},
		{hostID, hostTask.arn, "proxy", "edge", "127.0.0.1", proxyPort, hostTask},
		{appID, vpc.arn, "api", "api-svc", "10.0.12.34", 9000, vpc},
	}
	for _, c := range cases {
		s := e.service(t, c.id, 10*time.Second, full)
		if s.Service != c.service || s.Address != c.addr || s.Port != c.port {
			t.Errorf("%s: %s at %s:%d, want %s at %s:%d", c.container, s.Service, s.Address, s.Port, c.service, c.addr, c.port)
		}
		in := testenv.Inspect(t, d, c.id)
		want := map[string]string{
			desired.MetaECSCluster: "test", desired.MetaECSTaskARN: c.task, desired.MetaECSTaskFamily: c.ecs.family,
			desired.MetaECSTaskRevision: "7", desired.MetaECSService: c.service, desired.MetaECSContainer: c.container,
			desired.MetaAvailabilityZone: "eu-west-1b", desired.MetaEC2InstanceID: host["instance-id"],
			desired.MetaContainerID: c.id, desired.MetaContainerName: in.Name[1:],
		}
		if c.container == "proxy" {
			want[desired.MetaECSService] = "edge-svc" // SERVICE_NAME names it; Meta keeps the ECS service
		}
		for k, v := range want {
			if s.Meta[k] != v {
				t.Errorf("%s: meta[%s] = %q, want %q", c.container, k, s.Meta[k], v)
			}
		}
	}
	if got := e.services(t, pauseID); len(got) != 0 {
		t.Errorf("pause container registered: %v", keys(got))
	}
	if _, why := e.problems(pauseID); why == "" {
		t.Error("pause container has no reason for staying out")
	}

	// The snapshot shows the task; the source knows the host and the agent (the agent's own metadata
	// comes with the first task poll).
	testenv.Eventually(t, 5*time.Second, "the source never learnt the host and the agent", func() bool {
		return e.ecs.Host().InstanceID == host["instance-id"] && e.ecs.Agent().Cluster == "test"
	})
	var snap registrator.Snapshot
	testenv.Eventually(t, 5*time.Second, "awsvpc container not in the snapshot with its task", func() bool {
		snap = e.reg.Snapshot()
		for _, c := range snap.Containers {
			if c.ID == appID {
				return c.Task != nil && c.Task.Service == "api-svc" && c.Task.Family == "api" && len(c.Services) == 1
			}
		}
		return false
	})
}

// A Service Connect task in bridge mode, laid out as the agent lays it out (agent/api/task/task.go):
// each container runs on a pause container of its own, named ~internal~ecs~pause-<container>, which is
// on the bridge and publishes the container's ports. The container is registered at the advertise
// address and the pause container's published port within 5 s; no pause container ever is.
func TestECSServiceConnectBridge(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	fake := fakeecs.Start(t, d)
	e := runECS(t, d, fake, "")
	e.waitReady(t)
	task := newTask(t, "orders")
	name := "orders-" + strconv.Itoa(testenv.FreePort(t))
	fake.SetTask(task.arn, fakeecs.TaskConfig{Service: name})
	// The Service Connect container's pause container holds its listener; an application's, its ports.
	scPause := testenv.Start(t, d, task.container(ecsmeta.PauseContainer+"-ecs-service-connect-AbCd", testenv.Workload{Hold: []int{15000}, Publish: true}))
	testenv.Start(t, d, task.container("ecs-service-connect-AbCd", testenv.Workload{Network: "container:" + scPause}))
	pause := testenv.Start(t, d, task.container(ecsmeta.PauseContainer+"-app", testenv.Workload{Hold: []int{8080}, Publish: true}))
	started := time.Now()
	app := testenv.Start(t, d, task.container("app", testenv.Workload{TCP: []int{8080}, Network: "container:" + pause,
		Labels: map[string]string{"SERVICE_NAME": name}}))

	port := hostPort(t, d, pause, "8080/tcp")
	s := e.service(t, app, 5*time.Second, func(s *api.AgentService) bool { return s.Service == name })
	t.Logf("registered %v after the start", time.Since(started).Round(time.Millisecond))
	if s.Address != "127.0.0.1" || s.Port != port || s.Meta[desired.MetaECSService] != name || s.Meta[desired.MetaECSContainer] != "app" {
		t.Errorf("registered at %s:%d with Meta %v, want 127.0.0.1:%d (the pause container's published port) and the task's Meta", s.Address, s.Port, s.Meta, port)
	}
	// The published port reaches the application (once it listens: the registration does not wait for
	// that): the layout is the agent's, not one the test made up.
	var answer string
	testenv.EventuallyExplain(t, 5*time.Second, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", port))
		if err != nil {
			answer = err.Error()
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answer = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		return answer == "200 ok"
	}, func() string { return "the pause container's published port never reached the application: " + answer })
	for _, id := range []string{pause, scPause} {
		if got := e.services(t, id); len(got) != 0 {
			t.Errorf("pause container %.12s registered: %v", id, keys(got))
		}
		if _, why := e.problems(id); !strings.Contains(why, "pause container") {
			t.Errorf("pause container %.12s: not registered because %q", id, why)
		}
	}
}

// ECS marks a task for stopping before its containers get the signal: its services leave the passing
// set within 5 s while the container still runs.
func TestECSDrainOnDesiredStopped(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	fake := fakeecs.Start(t, d)
	e := runECS(t, d, fake, "")
	task := newTask(t, "drain")
	name := "drain-" + strconv.Itoa(testenv.FreePort(t))
	fake.SetTask(task.arn, fakeecs.TaskConfig{Service: name})
	id := testenv.Start(t, d, task.container("app", testenv.Workload{TCP: []int{8080}, Publish: true,
		Labels: map[string]string{"SERVICE_REGISTER": "true"}}))
	e.service(t, id, 10*time.Second, func(s *api.AgentService) bool { return s.Service == name })
	if e.passing(t, name) != 1 {
		t.Fatal("not passing before the drain")
	}

	fake.StopTask(task.arn)
	took := testenv.Eventually(t, 5*time.Second, "stopping task still in the passing set", func() bool { return e.passing(t, name) == 0 })
	t.Logf("DesiredStatus=STOPPED to out of the passing set: %v", took)
	if !testenv.Inspect(t, d, id).State.Running {
		t.Fatal("the container stopped; the drain must come before the signal")
	}
}

// With the ECS agent down a task container registers from its labels at once, and gains the service
// name and zone once the agent is back.
func TestECSAgentDownThenBack(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	fake := fakeecs.Start(t, d)
	fake.Introspection.Stop()
	fake.TMDS.Stop()
	e := runECS(t, d, fake, "")
	e.waitReady(t)
	task := newTask(t, "down")
	fake.SetTask(task.arn, fakeecs.TaskConfig{Service: "down-svc", AvailabilityZone: "us-east-1c"})
	id := testenv.Start(t, d, task.container("app", testenv.Workload{TCP: []int{8080}, Publish: true,
		Labels: map[string]string{"SERVICE_REGISTER": "true"}}))
	took := testenv.Eventually(t, time.Second, "not registered from labels within 1s with the agent down", func() bool {
		return len(e.services(t, id)) == 1
	})
	s := e.service(t, id, time.Second, func(*api.AgentService) bool { return true })
	t.Logf("registered from labels %v after start; name %s", took, s.Service)
	if s.Service != "down" || s.Meta[desired.MetaECSTaskARN] != task.arn || s.Meta[desired.MetaECSService] != "" {
		t.Errorf("from labels: %s meta %v", s.Service, s.Meta)
	}

	fake.Introspection.Start(t)
	fake.TMDS.Start(t)
	took = testenv.Eventually(t, 10*time.Second, "ecs-service and availability-zone never arrived", func() bool {
		for _, s := range e.services(t, id) {
			return s.Meta[desired.MetaECSService] == "down-svc" && s.Meta[desired.MetaAvailabilityZone] == "us-east-1c" &&
				s.Service == "down-svc"
		}
		return false
	})
	t.Logf("metadata arrived %v after the agent came back", took)
}

// Every way task metadata and introspection can misbehave: registration from labels never stalls, and
// the metadata arrives once they heal.
func TestECSDegradation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault fakeecs.Fault
	}{
		{"slow", fakeecs.Slow}, {"500", fakeecs.Error500}, {"429", fakeecs.Throttled}, {"garbage", fakeecs.Garbage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := testenv.Docker(t)
			fake := fakeecs.Start(t, d)
			fake.Introspection.SetFault(tc.fault)
			fake.TMDS.SetFault(tc.fault)
			e := runECS(t, d, fake, "")
			e.waitReady(t)
			task := newTask(t, "deg")
			fake.SetTask(task.arn, fakeecs.TaskConfig{Service: "deg-" + tc.name, AvailabilityZone: "us-east-1a"})
			id := testenv.Start(t, d, task.container("app", testenv.Workload{TCP: []int{8080}, Publish: true,
				Labels: map[string]string{"SERVICE_REGISTER": "true"}}))
			took := testenv.Eventually(t, time.Second, "not registered from labels within 1s", func() bool { return len(e.services(t, id)) == 1 })
			t.Logf("registered %v after start with the agent %s", took, tc.name)

			fake.Introspection.SetFault(fakeecs.Healthy)
			fake.TMDS.SetFault(fakeecs.Healthy)
			e.service(t, id, 10*time.Second, func(s *api.AgentService) bool {
				return s.Service == "deg-"+tc.name && s.Meta[desired.MetaAvailabilityZone] == "us-east-1a"
			})
		})
	}
}

// startServiceTasks starts n one-container tasks of family that opt in, each in service <family>-<i>
// as task metadata says, and returns their container IDs.
func startServiceTasks(t *testing.T, d *client.Client, fake *fakeecs.Agent, family string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		task := newTask(t, family)
		fake.SetTask(task.arn, fakeecs.TaskConfig{Service: fmt.Sprintf("%s-%d", family, i)})
		ids = append(ids, testenv.Start(t, d, task.container("app", testenv.Workload{TCP: []int{8080}, Publish: true,
			Labels: map[string]string{"SERVICE_REGISTER": "true"}})))
	}
	return ids
}

// Many task containers at once stay under the agent's task metadata rate limit: no 429 is ever seen.
func TestECSStaysUnderRateLimit(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	fake := fakeecs.Start(t, d)
	e := runECS(t, d, fake, "")
	e.waitReady(t)
	ids := startServiceTasks(t, d, fake, "many", 30)
	for _, id := range ids {
		e.service(t, id, 30*time.Second, func(s *api.AgentService) bool { return s.Meta[desired.MetaECSService] != "" })
	}
	if n := fake.TMDS.Throttled(); n != 0 {
		t.Errorf("task metadata answered 429 %d times", n)
	}
	// Only this test's tasks count: the daemon also sees other tests' task containers on the shared
	// dockerd, and asks this fake about those too.
	var paths []string
	for _, id := range ids {
		for _, kv := range testenv.Inspect(t, d, id).Config.Env {
			if v, ok := strings.CutPrefix(kv, ecsmeta.EnvMetadataV4+"=http://169.254.170.2"); ok {
				paths = append(paths, v+"/")
			}
		}
	}
	if n := fake.TMDS.RequestsUnder(paths...); len(paths) != len(ids) || n > int64(len(ids))+5 {
		t.Errorf("%d task metadata requests for %d tasks (%d paths); one per task is enough", n, len(ids), len(paths))
	}
}

// A task definition's health check, as task metadata reports it, is mirrored like a Docker HEALTHCHECK.
func TestECSHealthMirrored(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	fake := fakeecs.Start(t, d)
	src := ecsmeta.New(ecsmeta.Config{AgentURL: fake.AgentURL(), TMDSURL: fake.TMDSURL(), HealthPoll: 500 * time.Millisecond})
	e := run(t, d, testenv.StartConsul(t), func(c *registrator.Config) { c.ECS = src })
	task := newTask(t, "ecshc")
	name := "ecshc-" + strconv.Itoa(testenv.FreePort(t))
	fake.SetTask(task.arn, fakeecs.TaskConfig{Service: name, Health: map[string]string{"app": "HEALTHY"}})
	id := testenv.Start(t, d, task.container("app", testenv.Workload{TCP: []int{8080}, Publish: true,
		Labels: map[string]string{"SERVICE_REGISTER": "true"}}))
	s := e.service(t, id, 10*time.Second, func(s *api.AgentService) bool { return s.Service == name })
	testenv.Eventually(t, 5*time.Second, "never passing", func() bool { return e.passing(t, name) == 1 })
	if c := e.checks(t, s.ID)[health.MirrorID(s.ID)]; c == nil || c.Name != "ECS container health" {
		t.Fatalf("mirror check = %+v", c)
	}
	fake.SetTask(task.arn, fakeecs.TaskConfig{Service: name, Health: map[string]string{"app": "UNHEALTHY"}})
	took := testenv.Eventually(t, 5*time.Second, "UNHEALTHY never mirrored", func() bool { return e.passing(t, name) == 0 })
	t.Logf("ECS UNHEALTHY mirrored %v after the agent reported it (health poll 500ms)", took)
	if out := e.checks(t, s.ID)[health.MirrorID(s.ID)].Output; !strings.Contains(out, "probe failed") {
		t.Errorf("output %q", out)
	}
}

// The ECS API at fleet scale. A thousand hosts share one DescribeTasks throttle: only tasks that ask
// to be registered are described, in batches; a restarted daemon reads back what it wrote into Meta;
// a service name task metadata gives costs no call. Not parallel: the ECS API endpoint is set in the
// environment.
func TestECSAPICallsAtFleetScale(t *testing.T) {
	d := testenv.Docker(t)
	fake := fakeecs.Start(t, d)
	describe := fake.StartAPI(t)
	consul := testenv.StartConsul(t)
	withAPI := func(c *ecsmeta.Config) { c.API, c.TagMeta = true, []string{"team"} }
	e := runECSWith(t, d, consul, fake, "", withAPI)
	e.waitReady(t)

	// 30 tasks that opt in and 30 that do not, task metadata without ServiceName (an older agent) and
	// tags it may not read: the ECS API is needed for the first 30.
	wanted := map[string]bool{}
	var ids []string
	for i := range 60 {
		task := newTask(t, "fleet")
		fake.SetTask(task.arn, fakeecs.TaskConfig{Service: fmt.Sprintf("fleet-%d", i), NoServiceName: true, TagsDenied: true,
			Tags: map[string]string{"team": fmt.Sprintf("t%d", i)}})
		labels := map[string]string{}
		if i%2 == 0 {
			labels["SERVICE_REGISTER"] = "true"
			wanted[task.arn] = true
		}
		id := testenv.Start(t, d, task.container("app", testenv.Workload{TCP: []int{8080}, Publish: true, Labels: labels}))
		if i%2 == 0 {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		e.service(t, id, 60*time.Second, func(s *api.AgentService) bool {
			return strings.HasPrefix(s.Meta[desired.MetaECSService], "fleet-") && s.Meta["team"] != ""
		})
	}
	calls := describe.Calls()
	named := 0
	for _, c := range calls {
		for _, arn := range c {
			named++
			if !wanted[arn] {
				t.Errorf("DescribeTasks named %s, whose container did not opt in", arn)
			}
		}
	}
	t.Logf("30 opted-in and 30 other tasks: %d DescribeTasks calls naming %d tasks", len(calls), named)
	if len(calls) > 5 || named != len(wanted) {
		t.Errorf("%d calls naming %d tasks; want them batched (at most 5 calls), each of the %d tasks named once", len(calls), named, len(wanted))
	}

	// A daemon restart (a rolling update of the daemon service): what it wrote into Meta answers.
	e.stop()
	before := len(describe.Calls())
	e2 := runECSWith(t, d, consul, fake, "", withAPI)
	e2.waitReady(t)
	for _, id := range ids {
		e2.service(t, id, 10*time.Second, func(s *api.AgentService) bool { return s.Meta[desired.MetaECSService] != "" })
	}
	after := describe.Calls()[before:]
	t.Logf("restart with 30 known tasks: %d DescribeTasks calls", len(after))
	if len(after) > 1 {
		t.Errorf("a restart with 30 known tasks made %d DescribeTasks calls (%v), want at most 1", len(after), after)
	}
}

// Task metadata that gives the service name, and no tag Meta asked for: no ECS API call at all.
func TestECSAPINotCalledWhenTaskMetadataSuffices(t *testing.T) {
	d := testenv.Docker(t)
	fake := fakeecs.Start(t, d)
	describe := fake.StartAPI(t)
	e := runECS(t, d, fake, "", func(c *ecsmeta.Config) { c.API = true })
	e.waitReady(t)
	ids := startServiceTasks(t, d, fake, "tmds", 10)
	for _, id := range ids {
		e.service(t, id, 30*time.Second, func(s *api.AgentService) bool { return strings.HasPrefix(s.Meta[desired.MetaECSService], "tmds-") })
	}
	if calls := describe.Calls(); len(calls) != 0 {
		t.Errorf("%d DescribeTasks calls (%v); task metadata gave every service name", len(calls), calls)
	}
}

// Tags asked for come from /taskWithTags, for which the agent (its instance role) asks ECS; the
// daemon's own API use stays at zero.
func TestECSTagsFromTaskMetadata(t *testing.T) {
	d := testenv.Docker(t)
	fake := fakeecs.Start(t, d)
	describe := fake.StartAPI(t)
	e := runECS(t, d, fake, "", func(c *ecsmeta.Config) { c.API, c.TagMeta = true, []string{"team"} })
	e.waitReady(t)
	task := newTask(t, "tagged")
	fake.SetTask(task.arn, fakeecs.TaskConfig{Service: "tagged", Tags: map[string]string{"team": "payments", "secret": "x"}})
	id := testenv.Start(t, d, task.container("app", testenv.Workload{TCP: []int{8080}, Publish: true,
		Labels: map[string]string{"SERVICE_REGISTER": "true"}}))
	s := e.service(t, id, 30*time.Second, func(s *api.AgentService) bool { return s.Meta["team"] == "payments" })
	if _, leaked := s.Meta["secret"]; leaked {
		t.Errorf("a tag not asked for reached Meta: %v", s.Meta)
	}
	if calls := describe.Calls(); len(calls) != 0 {
		t.Errorf("%d DescribeTasks calls; the tags came with task metadata", len(calls))
	}
	if n := fake.TagReads(task.arn); n != 2 {
		t.Errorf("the agent read tags %d times for one task; once per task (two ListTagsForResource) is the cost", n)
	}
}
