package ecsmeta

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// countingECS is a stand-in ECS API that answers DescribeTasks for any task of cluster prod (group
// service:svc-<n> for task .../<n>, tag team=t<n>) and records the tasks each call named.
type countingECS struct {
	*endpoint
	mu       sync.Mutex
	calls    [][]string
	throttle int // answer this many calls with a ThrottlingException first
}

func newCountingECS(t *testing.T) *countingECS {
	c := &countingECS{}
	c.endpoint = newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var in struct {
			Cluster string
			Tasks   []string
		}
		if err := json.Unmarshal(b, &in); err != nil || r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerServiceV20141113.DescribeTasks" {
			t.Errorf("unexpected request %s", b)
		}
		c.mu.Lock()
		c.calls = append(c.calls, in.Tasks)
		throttled := c.throttle > 0
		c.throttle--
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if throttled {
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"__type":"ThrottlingException","message":"Rate exceeded"}`))
			return
		}
		var tasks []string
		for _, arn := range in.Tasks {
			n := arn[strings.LastIndex(arn, "/")+1:]
			tasks = append(tasks, fmt.Sprintf(`{"taskArn":%q,"group":"service:svc-%s","lastStatus":"RUNNING","tags":[{"key":"team","value":"t%s"}]}`, arn, n, n))
		}
		_, _ = w.Write([]byte(`{"failures":[],"tasks":[` + strings.Join(tasks, ",") + `]}`))
	})
	t.Setenv("AWS_ENDPOINT_URL_ECS", c.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return c
}

func (c *countingECS) named() (calls int, tasks []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, call := range c.calls {
		tasks = append(tasks, call...)
	}
	return len(c.calls), tasks
}

func testTask(n int) Task {
	return Task{Cluster: "prod", ARN: fmt.Sprintf("arn:aws:ecs:us-west-2:111122223333:task/prod/%d", n)}
}

// runDescriber runs a describer until the test ends; its answers are waited for with wait.
func runDescriber(t *testing.T, window, interval time.Duration) *testDescriber {
	td := &testDescriber{answered: map[string]bool{}}
	td.d = newDescriber(&ecsAPI{}, window, interval, func(arn string) {
		td.mu.Lock()
		td.answered[arn] = true
		td.mu.Unlock()
	})
	var wg sync.WaitGroup
	wg.Go(func() { td.d.run(t.Context()) })
	t.Cleanup(wg.Wait)
	return td
}

type testDescriber struct {
	d        *describer
	mu       sync.Mutex
	answered map[string]bool
}

// describe asks, waits for the answer, and takes it.
func (td *testDescriber) describe(t *testing.T, task Task) (apiTask, error) {
	t.Helper()
	if res, ok, err := td.d.ask(task); ok {
		return res, err
	}
	testenv.Eventually(t, 10*time.Second, "no answer for "+task.ARN, func() bool {
		td.mu.Lock()
		defer td.mu.Unlock()
		return td.answered[task.ARN]
	})
	td.mu.Lock()
	delete(td.answered, task.ARN)
	td.mu.Unlock()
	res, ok, err := td.d.ask(task)
	if !ok {
		t.Fatalf("%s answered but no answer kept", task.ARN)
	}
	return res, err
}

// Requests within the window share calls of at most 100 tasks; each gets its own task's answer.
func TestDescribeBatches(t *testing.T) {
	api := newCountingECS(t)
	td := runDescriber(t, 200*time.Millisecond, time.Millisecond)
	for i := range 150 {
		if _, ok, _ := td.d.ask(testTask(i)); ok {
			t.Fatalf("task %d answered before it was asked", i)
		}
	}
	for i := range 150 {
		got, err := td.describe(t, testTask(i))
		if err != nil || got.service != fmt.Sprintf("svc-%d", i) || got.tags["team"] != fmt.Sprintf("t%d", i) {
			t.Errorf("task %d got %+v, %v", i, got, err)
		}
	}
	calls, tasks := api.named()
	if calls != 2 || len(tasks) != 150 {
		t.Errorf("%d calls naming %d tasks, want 2 calls (100 and 50) naming 150", calls, len(tasks))
	}
}

// Requests that come while a call of their cluster is less than the interval old wait for it, and go
// together: a host makes at most one call per interval however its tasks trickle in. A task forgotten
// while it waits is not described.
func TestDescribeSpacesCalls(t *testing.T) {
	api := newCountingECS(t)
	td := runDescriber(t, 10*time.Millisecond, 500*time.Millisecond)
	if _, err := td.describe(t, testTask(0)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		td.d.ask(testTask(i))
	}
	td.d.forget(testTask(3).ARN)
	for i := 1; i <= 2; i++ {
		if _, err := td.describe(t, testTask(i)); err != nil {
			t.Fatal(err)
		}
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.calls) != 2 || len(api.calls[0]) != 1 || !slices.Equal(api.calls[1], []string{testTask(1).ARN, testTask(2).ARN}) {
		t.Errorf("calls %v; want the first alone, then the two asked within its interval together, not the forgotten one", api.calls)
	}
}

// A ThrottlingException fails that batch and holds every call back for at least the interval, longer
// each time in a row.
func TestDescribeBacksOffWhenThrottled(t *testing.T) {
	api := newCountingECS(t)
	api.throttle = 2
	td := runDescriber(t, time.Millisecond, 50*time.Millisecond)
	if _, err := td.describe(t, testTask(1)); err == nil || !strings.Contains(err.Error(), "ThrottlingException") {
		t.Fatalf("first call: %v, want the ThrottlingException", err)
	}
	td.d.mu.Lock()
	first := td.d.throttled
	td.d.mu.Unlock()
	if first < 50*time.Millisecond {
		t.Fatalf("pause after a ThrottlingException %v, want at least the interval", first)
	}
	if _, err := td.describe(t, testTask(1)); err == nil {
		t.Fatal("second call was not throttled")
	}
	td.d.mu.Lock()
	second := td.d.throttled
	td.d.mu.Unlock()
	if second != 2*first {
		t.Errorf("pauses %v then %v; want it doubled", first, second)
	}
	if _, err := td.describe(t, testTask(1)); err != nil {
		t.Fatal(err)
	}
	td.d.mu.Lock()
	defer td.d.mu.Unlock()
	if td.d.throttled != 0 {
		t.Errorf("pause %v after a success, want none", td.d.throttled)
	}
}

// The ECS API is asked only for a task that a container wants registered, only when task metadata
// lacks what is asked for, and never for a task whose services a daemon before this one described.
func TestSourceAsksTheAPIOnlyWhenNeeded(t *testing.T) {
	body := string(fixture(t, "tmds-task-awsvpc.json")) // has ServiceName curl-svc
	noService := strings.Replace(body, `,"ServiceName":"curl-svc"`, "", 1)
	withTags := strings.Replace(body, `"Containers"`, `"TaskTags":{"team":"tmds-team"},"Containers"`, 1)
	tagError := strings.Replace(body, `"Containers"`, `"Errors":[{"ErrorField":"TaskTags","ErrorCode":"AccessDeniedException","ErrorMessage":"not authorized","StatusCode":400,"ResourceARN":"`+awsvpcARN+`"}],"Containers"`, 1)
	for _, tc := range []struct {
		name    string
		agent   string // the ECS agent's version, when its introspection answers
		tmds    string // task metadata's /task answer ("" disables task metadata)
		tagged  string // its /taskWithTags answer
		tagMeta []string
		wanted  bool
		known   *Known
		calls   int
		service string
		team    string
	}{
		{name: "service name from task metadata, no tag Meta", tmds: body, wanted: true, calls: 0, service: "curl-svc"},
		{name: "not wanted: never described", tmds: noService, wanted: false, calls: 0},
		{name: "an agent from 1.63.1 on without ServiceName: not in a service", agent: "Amazon ECS Agent - v1.89.1 (abcdef0)",
			tmds: noService, wanted: true, calls: 0},
		{name: "an agent before 1.63.1 without ServiceName", agent: "Amazon ECS Agent - v1.30.0 (02ff320c)",
			tmds: noService, wanted: true, calls: 1, service: "svc-8f03e41243824aea923aca126495f665"},
		{name: "no service name in task metadata", tmds: noService, wanted: true, calls: 1, service: "svc-8f03e41243824aea923aca126495f665"},
		{name: "tags from taskWithTags", tmds: body, tagged: withTags, tagMeta: []string{"team"}, wanted: true, calls: 0, service: "curl-svc", team: "tmds-team"},
		{name: "taskWithTags could not read the tags", tmds: body, tagged: tagError, tagMeta: []string{"team"}, wanted: true, calls: 1,
			service: "curl-svc", team: "t8f03e41243824aea923aca126495f665"},
		{name: "no task metadata", wanted: true, calls: 1, service: "svc-8f03e41243824aea923aca126495f665"},
		{name: "a daemon before this one described it", tmds: noService, tagMeta: []string{"team"}, wanted: true,
			known: &Known{TaskARN: awsvpcARN, Service: "old-svc", Tags: map[string]string{"team": "old-team"}, TagsRead: []string{"team"}}, calls: 0, service: "old-svc", team: "old-team"},
		{name: "a daemon before this one lacked a tag", tmds: noService, tagMeta: []string{"team"}, wanted: true,
			known: &Known{TaskARN: awsvpcARN, Service: "old-svc"}, calls: 1, service: "svc-8f03e41243824aea923aca126495f665", team: "t8f03e41243824aea923aca126495f665"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newCountingECS(t)
			cfg := Config{API: true, TagMeta: tc.tagMeta, DescribeWindow: time.Millisecond, DescribeInterval: time.Millisecond, AgentURL: ""}
			var tmds *endpoint
			if tc.tmds != "" {
				tmds = newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
					switch r.URL.Path {
					case "/v4/uuid-curl/task":
						_, _ = w.Write([]byte(tc.tmds))
					case "/v4/uuid-curl/taskWithTags":
						_, _ = w.Write([]byte(tc.tagged))
					default:
						w.WriteHeader(404)
					}
				})
				cfg.TMDSURL = tmds.URL
			}
			if tc.agent != "" {
				var desired atomic.Value
				desired.Store(StatusRunning)
				serve := agentFor(t, &desired)
				agent := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/v1/metadata" {
						_, _ = fmt.Fprintf(w, `{"Cluster":"prod","ContainerInstanceArn":"arn:aws:ecs:us-west-2:111122223333:container-instance/prod/1","Version":%q}`, tc.agent)
						return
					}
					serve(w, r)
				})
				cfg.AgentURL = agent.URL
			}
			s, _ := runSource(t, cfg)
			if tc.known != nil {
				s.Remember([]Known{*tc.known})
			}
			c := Ref{ID: awsvpcApp, Labels: awsvpcLabels, Env: awsvpcEnv, Running: true, Wanted: tc.wanted}
			var task Task
			testenv.EventuallyExplain(t, 10*time.Second, func() bool {
				task, _ = s.Lookup(c)
				calls, _ := api.named()
				return calls == tc.calls && task.Service == tc.service && task.Tags["team"] == tc.team &&
					(tmds == nil || tmds.requests.Load() > 0)
			}, func() string {
				calls, _ := api.named()
				return fmt.Sprintf("service %q tags %v after %d calls; want %q, team %q, %d calls", task.Service, task.Tags, calls, tc.service, tc.team, tc.calls)
			})
			// Settled: more lookups and the background fetching ask nothing more.
			for range 20 {
				s.Lookup(c)
			}
			if calls, tasks := api.named(); calls != tc.calls || slices.ContainsFunc(tasks, func(a string) bool { return a != awsvpcARN }) {
				t.Errorf("%d calls naming %v; want %d", calls, tasks, tc.calls)
			}
		})
	}
}

// Task metadata without ServiceName means a task outside a service when the agent is 1.63.1 or newer
// (it would name it): no ECS API call for it. An older agent never names it: the API is asked.
func TestSourceTrustsServiceNamesOfNewAgents(t *testing.T) {
	noService := strings.Replace(string(fixture(t, "tmds-task-awsvpc.json")), `,"ServiceName":"curl-svc"`, "", 1)
	for version, want := range map[string]bool{"Amazon ECS Agent - v1.89.1 (abcdef0)": false, "Amazon ECS Agent - v1.63.1 (x)": false,
		"Amazon ECS Agent - v1.63.0 (x)": true, "Amazon ECS Agent - v1.30.0 (02ff320c)": true} {
		var desired atomic.Value
		desired.Store(StatusRunning)
		serve := agentFor(t, &desired)
		agent := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/metadata" {
				_, _ = fmt.Fprintf(w, `{"Cluster":"prod","ContainerInstanceArn":"arn:aws:ecs:us-west-2:111122223333:container-instance/prod/1","Version":%q}`, version)
				return
			}
			serve(w, r)
		})
		tmds := newEndpoint(t, serveBody([]byte(noService), 200))
		s, _ := runSource(t, Config{AgentURL: agent.URL, TMDSURL: tmds.URL, API: true, DescribeWindow: time.Hour})
		s.Lookup(ref(awsvpcApp, awsvpcLabels, awsvpcEnv, true))
		testenv.Eventually(t, 10*time.Second, "the agent's version and the task's metadata never read", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			ts := s.tasks[awsvpcARN]
			return s.agent.Version != "" && ts != nil && ts.tmds != nil
		})
		s.mu.Lock()
		need, wait := s.needsAPILocked(s.tasks[awsvpcARN])
		s.mu.Unlock()
		if need != want || wait {
			t.Errorf("%s: needs the API %v (waiting %v), want %v", version, need, wait, want)
		}
	}
}
