package ecsmeta

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// The awsvpc fixtures describe task 8f03... with app container dd44...; the container's labels and env
// as the ECS agent sets them.
const (
	awsvpcARN = "arn:aws:ecs:us-west-2:111122223333:task/prod/8f03e41243824aea923aca126495f665"
	awsvpcApp = "dd44dd44dd44dd44dd44dd44dd44dd44dd44dd44dd44dd44dd44dd44dd44dd44"
)

var (
	awsvpcLabels = map[string]string{LabelCluster: "prod", LabelTaskARN: awsvpcARN, LabelContainerName: "curl",
		LabelFamily: "curltest", LabelRevision: "26"}
	awsvpcEnv = []string{"ECS_CONTAINER_METADATA_URI_V4=http://169.254.170.2/v4/uuid-curl", "AWS_EXECUTION_ENV=AWS_ECS_EC2"}
)

// endpoint is an httptest server whose answers the test changes as it goes.
type endpoint struct {
	*httptest.Server
	mu       sync.Mutex
	handle   func(w http.ResponseWriter, r *http.Request)
	requests atomic.Int64
}

func newEndpoint(t testing.TB, h func(w http.ResponseWriter, r *http.Request)) *endpoint {
	e := &endpoint{handle: h}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.requests.Add(1)
		e.mu.Lock()
		h := e.handle
		e.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) set(h func(w http.ResponseWriter, r *http.Request)) {
	e.mu.Lock()
	e.handle = h
	e.mu.Unlock()
}

func serveBody(b []byte, code int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		_, _ = w.Write(b)
	}
}

// agentFor serves the introspection API for the awsvpc fixture task, with the given desired status.
func agentFor(t *testing.T, desired *atomic.Value) func(http.ResponseWriter, *http.Request) {
	task := strings.Replace(string(fixture(t, "agent-task-awsvpc.json")), "aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11", awsvpcApp, 1)
	task = strings.Replace(task, "arn:aws:ecs:us-east-1:111122223333:task/prod/1a2b3c4d", awsvpcARN, 1)
	return func(w http.ResponseWriter, r *http.Request) {
		body := strings.Replace(task, `"DesiredStatus":"RUNNING"`, `"DesiredStatus":"`+desired.Load().(string)+`"`, 1)
		switch {
		case r.URL.Path == "/v1/tasks" && r.URL.Query().Get("dockerid") == awsvpcApp:
			_, _ = w.Write([]byte(body))
		case r.URL.Path == "/v1/metadata":
			_, _ = w.Write(fixture(t, "agent-metadata.json"))
		case r.URL.Path == "/v1/tasks" && len(r.URL.Query()) == 0:
			_, _ = w.Write([]byte(`{"Tasks":[` + body + `]}`))
		default:
			w.WriteHeader(404)
			_, _ = w.Write(fixture(t, "agent-error.json"))
		}
	}
}

type notes struct {
	mu  sync.Mutex
	ids []string
}

func (n *notes) add(id string) { n.mu.Lock(); n.ids = append(n.ids, id); n.mu.Unlock() }
func (n *notes) count(id string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, x := range n.ids {
		if x == id {
			c++
		}
	}
	return c
}

func runSource(t *testing.T, cfg Config) (*Source, *notes) {
	t.Helper()
	if cfg.Poll == 0 {
		cfg.Poll = 50 * time.Millisecond
	}
	s := New(cfg)
	n := &notes{}
	done := make(chan struct{})
	ctx := t.Context()
	go func() { s.Run(ctx, n.add); close(done) }()
	t.Cleanup(func() { <-done })
	return s, n
}

func TestSourceEnrichesAwsvpcTask(t *testing.T) {
	var desired atomic.Value
	desired.Store(StatusRunning)
	agent := newEndpoint(t, agentFor(t, &desired))
	tmdsBody := fixture(t, "tmds-task-awsvpc.json")
	tmds := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v4/uuid-curl/task" {
			w.WriteHeader(404)
			_, _ = w.Write(fixture(t, "tmds-404.json"))
			return
		}
		_, _ = w.Write(tmdsBody)
	})
	s, n := runSource(t, Config{AgentURL: agent.URL, TMDSURL: tmds.URL})

	// The first answer comes from the labels alone.
	task, ok := s.Lookup(ref(awsvpcApp, awsvpcLabels, awsvpcEnv, true))
	if !ok || task.Family != "curltest" || task.Revision != "26" || task.Container != "curl" {
		t.Fatalf("first lookup = %+v, %v", task, ok)
	}
	testenv.Eventually(t, 10*time.Second, "metadata never arrived", func() bool {
		task, _ = s.Lookup(ref(awsvpcApp, awsvpcLabels, awsvpcEnv, true))
		return task.Service != "" && len(task.Addrs) > 0 && n.count(awsvpcApp) > 0
	})
	if task.Service != "curl-svc" || task.AvailabilityZone != "us-west-2b" || task.Addrs[0].String() != "10.0.12.34" ||
		task.Health.Status != "UNHEALTHY" || task.DesiredStatus != StatusRunning || len(task.Ports) != 1 || task.Ports[0].ContainerPort != 9000 {
		t.Errorf("enriched = %+v", task)
	}
	for range 100 {
		s.Lookup(ref(awsvpcApp, awsvpcLabels, awsvpcEnv, true))
	}
	if got := tmds.requests.Load(); got != 1 {
		t.Errorf("task metadata asked %d times for one task, want 1", got)
	}

	// ECS marks the task for stopping: the poll sees it and says so.
	before := n.count(awsvpcApp)
	desired.Store(StatusStopped)
	testenv.Eventually(t, 10*time.Second, "stopping task never noticed", func() bool {
		task, _ = s.Lookup(ref(awsvpcApp, awsvpcLabels, awsvpcEnv, true))
		return task.Stopping() && n.count(awsvpcApp) > before
	})
	// The poll read the agent's own metadata before its first task list.
	if m := s.Agent(); m.Cluster != "default" || m.ContainerInstanceArn == "" {
		t.Errorf("agent metadata = %+v", m)
	}

	// Forgetting the last container drops the task: nothing is left to poll or fetch for.
	s.Forget(awsvpcApp)
	if n := s.taskCount(); n != 0 {
		t.Errorf("%d tasks cached after their last container went", n)
	}
}

func (s *Source) taskCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tasks)
}

func TestSourceNoTasksNoRequests(t *testing.T) {
	agent := newEndpoint(t, serveBody([]byte(`{"Tasks":[]}`), 200))
	s, _ := runSource(t, Config{AgentURL: agent.URL, TMDSURL: agent.URL})
	if _, ok := s.Lookup(ref("c1", map[string]string{"SERVICE_NAME": "x"}, nil, true)); ok {
		t.Fatal("a container without ECS labels has a task")
	}
	// The pause container and stopped containers are never fetched for.
	pause := map[string]string{LabelTaskARN: awsvpcARN, LabelContainerName: PauseContainer}
	if task, ok := s.Lookup(ref("p1", pause, nil, true)); !ok || !task.Pause() {
		t.Fatal("pause container not recognised")
	}
	s.Lookup(ref(awsvpcApp, awsvpcLabels, awsvpcEnv, false))
	// With no task cached the poll skips its request and no fetch loop exists.
	if n := s.taskCount(); n != 0 {
		t.Fatalf("%d tasks cached with no running task container", n)
	}
	if n := agent.requests.Load(); n != 0 {
		t.Fatalf("%d requests with no running task container", n)
	}
}

// Every way the agent can fail: the container keeps its label metadata, the Source keeps retrying,
// and the metadata arrives once the agent answers.
func TestSourceDegradation(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  func(http.ResponseWriter, *http.Request)
		up   bool // the endpoint counts as working: a 404 is an answer about one container
	}{
		{"500", serveBody([]byte("internal error"), 500), false},
		{"429", serveBody(fixture(t, "tmds-429.txt"), 429), false},
		{"garbage", serveBody(fixture(t, "garbage.html"), 200), false},
		{"404", serveBody(fixture(t, "tmds-404.json"), 404), true},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var desired atomic.Value
			desired.Store(StatusRunning)
			good := agentFor(t, &desired)
			tmdsBody := fixture(t, "tmds-task-awsvpc.json")
			agent := newEndpoint(t, tc.bad)
			tmds := newEndpoint(t, tc.bad)
			s, n := runSource(t, Config{AgentURL: agent.URL, TMDSURL: tmds.URL, Timeout: 500 * time.Millisecond})
			task, ok := s.Lookup(ref(awsvpcApp, awsvpcLabels, awsvpcEnv, true))
			if !ok || task.Family != "curltest" {
				t.Fatalf("labels lost: %+v", task)
			}
			testenv.Eventually(t, 10*time.Second, "failures never retried and recorded", func() bool {
				st := status(s, DepTMDS)
				return tmds.requests.Load() >= 2 && st.Used && st.Up == tc.up && (tc.up || st.LastError != "")
			})
			if n.count(awsvpcApp) != 0 {
				t.Error("a failed fetch reported news")
			}
			agent.set(good)
			tmds.set(serveBody(tmdsBody, 200))
			testenv.Eventually(t, 10*time.Second, "metadata never arrived after recovery", func() bool {
				task, _ = s.Lookup(ref(awsvpcApp, awsvpcLabels, awsvpcEnv, true))
				return task.Service == "curl-svc" && len(task.Addrs) == 1 && n.count(awsvpcApp) > 0
			})
			if st := status(s, DepTMDS); !st.Up {
				t.Errorf("task metadata status after recovery: %+v", st)
			}
		})
	}
}

func status(s *Source, dep string) DepStatus {
	for _, d := range s.Status() {
		if d.Name == dep {
			return d
		}
	}
	return DepStatus{}
}

// ECS keeps stopped containers for hours: once a task's last container stops, nothing is fetched
// for it any more, though the container is not removed.
func TestSourceStoppedTaskEndsItsFetching(t *testing.T) {
	var desired atomic.Value
	desired.Store(StatusRunning)
	agent := newEndpoint(t, agentFor(t, &desired))
	tmds := newEndpoint(t, serveBody(fixture(t, "tmds-task-awsvpc.json"), 200)) // with an ECS health check
	s, _ := runSource(t, Config{AgentURL: agent.URL, TMDSURL: tmds.URL, HealthPoll: 20 * time.Millisecond})
	s.Lookup(ref(awsvpcApp, awsvpcLabels, awsvpcEnv, true))
	testenv.Eventually(t, 10*time.Second, "health never polled", func() bool { return tmds.requests.Load() >= 3 })

	if task, ok := s.Lookup(ref(awsvpcApp, awsvpcLabels, awsvpcEnv, false)); !ok || task.Family != "curltest" {
		t.Fatalf("a stopped task container still has its labels' task: %+v, %v", task, ok)
	}
	if n := s.taskCount(); n != 0 {
		t.Fatalf("%d tasks cached after the last container stopped", n)
	}
	// Let an in-flight request finish, then watch ten health intervals: a fixed window is the
	// measurement here (nothing may happen in it), not a wait for something.
	time.Sleep(50 * time.Millisecond)
	before, polls := tmds.requests.Load(), agent.requests.Load()
	time.Sleep(200 * time.Millisecond)
	if got := tmds.requests.Load() - before; got != 0 {
		t.Errorf("%d task metadata requests for a stopped task", got)
	}
	if got := agent.requests.Load() - polls; got != 0 {
		t.Errorf("%d agent polls with no running task container", got)
	}
}

// ref is a container that asks to be registered, whose health Docker does not report.
func ref(id string, labels map[string]string, env []string, running bool) Ref {
	return Ref{ID: id, Labels: labels, Env: env, Running: running, Wanted: true}
}

// A container whose health Docker reports (an ECS health check is a Docker HEALTHCHECK on EC2) is not
// polled through task metadata; one whose health only task metadata shows is, every HealthPoll.
func TestSourcePollsHealthOnlyWhereDockerCannotSeeIt(t *testing.T) {
	body := fixture(t, "tmds-task-awsvpc.json") // the container has an ECS health check
	docker := newEndpoint(t, serveBody(body, 200))
	tmdsOnly := newEndpoint(t, serveBody(body, 200))
	cfg := Config{HealthPoll: 20 * time.Millisecond}
	cfg.TMDSURL = docker.URL
	withDocker, _ := runSource(t, cfg)
	cfg.TMDSURL = tmdsOnly.URL
	withoutDocker, _ := runSource(t, cfg)
	c := ref(awsvpcApp, awsvpcLabels, awsvpcEnv, true)
	withoutDocker.Lookup(c)
	c.DockerHealth = true
	withDocker.Lookup(c)
	// The control polls ten times; in the same time the other read its task once.
	testenv.Eventually(t, 10*time.Second, "task metadata health never polled", func() bool { return tmdsOnly.requests.Load() >= 10 })
	if n := docker.requests.Load(); n != 1 {
		t.Errorf("%d task metadata reads for a container whose health Docker reports, want 1", n)
	}
	if task, _ := withDocker.Lookup(c); task.Service != "curl-svc" {
		t.Errorf("task = %+v; its metadata was read once", task)
	}
}

// The signs that ECS drains the host: a task turning STOPPED after a time, and, with the ECS API,
// the container instance DRAINING, which ECS sets before it stops any task. The instance is asked
// about only once DrainingSince is (a notice is in force), and not again once it drains.
func TestSourceDrainingSince(t *testing.T) {
	var desired, other atomic.Value
	desired.Store(StatusRunning)
	other.Store(StatusRunning)
	// Two tasks on the host: the one the test looks up, and another whose stop is the second.
	own := agentFor(t, &desired)
	second := strings.Replace(strings.Replace(string(fixture(t, "agent-task-awsvpc.json")), "arn:aws:ecs:us-east-1:111122223333:task/prod/1a2b3c4d",
		awsvpcARN+"0", 1), "aa11aa11", "bb22bb22", 1)
	agent := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/tasks" && len(r.URL.Query()) == 0 {
			rec := httptest.NewRecorder()
			own(rec, r)
			body := strings.TrimSuffix(rec.Body.String(), "]}") + "," +
				strings.Replace(second, `"DesiredStatus":"RUNNING"`, `"DesiredStatus":"`+other.Load().(string)+`"`, 1) + "]}"
			_, _ = w.Write([]byte(body))
			return
		}
		own(w, r)
	})
	tmds := newEndpoint(t, serveBody(fixture(t, "tmds-task-awsvpc.json"), 200))
	var instance atomic.Value
	instance.Store("ACTIVE")
	var asked atomic.Int64
	api := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var in struct {
			Cluster            string
			ContainerInstances []string
		}
		if r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerServiceV20141113.DescribeContainerInstances" ||
			json.Unmarshal(b, &in) != nil || in.Cluster != "default" || len(in.ContainerInstances) != 1 {
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"__type":"InvalidParameterException","message":"bad request"}`))
			return
		}
		asked.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte(`{"containerInstances":[{"containerInstanceArn":"` + in.ContainerInstances[0] + `","status":"` +
			instance.Load().(string) + `","agentConnected":true,"runningTasksCount":1}],"failures":[]}`))
	})
	t.Setenv("AWS_ENDPOINT_URL_ECS", api.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	s, _ := runSource(t, Config{AgentURL: agent.URL, TMDSURL: tmds.URL, API: true, DescribeInterval: time.Hour})
	s.Lookup(ref(awsvpcApp, awsvpcLabels, awsvpcEnv, true))
	testenv.Eventually(t, 10*time.Second, "the agent was never polled", func() bool { return s.Agent().ContainerInstanceArn != "" })
	polled := agent.requests.Load()
	testenv.Eventually(t, 10*time.Second, "the agent was not polled again", func() bool { return agent.requests.Load() >= polled+5 })
	if n := asked.Load(); n != 0 {
		t.Fatalf("the container instance was asked about %d times without a notice", n)
	}

	notice := time.Now()
	if why, ok := s.DrainingSince(notice); ok {
		t.Fatalf("draining before any sign: %q", why)
	}
	testenv.Eventually(t, 10*time.Second, "the container instance was never asked about", func() bool { return asked.Load() > 0 })
	if _, ok := s.DrainingSince(notice); ok {
		t.Fatal("an ACTIVE instance is draining")
	}
	// One stop could be a deploy that came then: no sign yet. The second is.
	desired.Store(StatusStopped)
	testenv.Eventually(t, 10*time.Second, "the stop was never seen", func() bool {
		task, _ := s.Lookup(ref(awsvpcApp, awsvpcLabels, awsvpcEnv, true))
		return task.Stopping()
	})
	polled = agent.requests.Load()
	testenv.Eventually(t, 10*time.Second, "the agent was not polled again", func() bool { return agent.requests.Load() >= polled+2 })
	if why, ok := s.DrainingSince(notice); ok {
		t.Fatalf("one stop is a sign: %q", why)
	}
	other.Store(StatusStopped)
	var why string
	testenv.Eventually(t, 10*time.Second, "two stops were never a sign", func() bool {
		var ok bool
		why, ok = s.DrainingSince(notice)
		return ok
	})
	if !strings.Contains(why, "2 tasks on this host marked STOPPED") {
		t.Errorf("sign %q", why)
	}
	if _, ok := s.DrainingSince(time.Now().Add(time.Minute)); ok {
		t.Error("a stop before the time is a sign")
	}

	instance.Store("DRAINING")
	testenv.Eventually(t, 10*time.Second, "DRAINING was never a sign", func() bool {
		why, _ = s.DrainingSince(time.Now().Add(time.Minute))
		return strings.Contains(why, "DRAINING")
	})
	// The agent is polled every 12.5 ms now: that many polls span more than instanceEvery, after
	// which the instance would have been asked again, were it.
	n, polled := asked.Load(), agent.requests.Load()
	testenv.Eventually(t, 30*time.Second, "the agent was not polled again", func() bool {
		return agent.requests.Load() >= polled+int64(instanceEvery/(50*time.Millisecond/4))*6/5
	})
	if got := asked.Load() - n; got != 0 {
		t.Errorf("asked %d more times after DRAINING", got)
	}
}
